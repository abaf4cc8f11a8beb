//! test-fuzz: an in-guest syscall fuzzer. Several instances run at once
//! (`cargo xtask fuzz` boots `test-fuzz`, `test-fuzz-2`, ... from one ELF)
//! and issue random syscalls whose arguments are biased towards values
//! where kernels break: live, stale, foreign (read from a peer's shared
//! page) and transferred handles; the edges of the address space; physical
//! addresses of RAM, of the kernel's own pages, of memory-map holes and of
//! devices; random flags and rights; lengths 0, 1, 4095, 4096, huge.
//!
//! Arguments (`libos::args`, separated by spaces or commas):
//! `seed=S iterations=N instance=I instances=K driver=0|1` (`driver=1` if
//! the boot made it a driver, which may claim device frames).
//! Instance I draws its choices from a stream seeded by S and I, so a run
//! is reproducible from the seed (what the kernel answers still depends on
//! how the instances interleave, which the timer decides).
//!
//! Safety of the fuzzer itself: it touches memory only through its own
//! windows ([`W_RAM`], [`W_OTHER`], the boards), never passes its code,
//! stack, heap or board ranges to `unmap`/`frame_free`, and keeps a model
//! of every mapping it made, so it reads or writes a page only while the
//! model says the page is its own RAM. It never exits early, yields only
//! now and then, and holds at most [`MAX_LIVE`] capabilities (for a moment
//! [`HOG_LIVE`], to use up all memory).
//!
//! Oracles (a failed one is a "violation", printed with the last calls,
//! and makes the exit code 1): results are ABI error codes; pointers and
//! addresses the kernel must refuse are refused; stale, freed, foreign and
//! forged handles are `BadCapability`; `unmap` agrees with the model of
//! mappings; fresh frames read as zero; two mappings of one frame see the
//! same bytes and what was written stays written; contiguous runs obey
//! their alignment and limit; `frame_stats` conserves frames; at the end
//! nothing is left in the caller's capability table.
#![no_std]
#![no_main]

use abi::{
    CapInfo, CapKindCode, FrameStats, SysInfo, Sysnum, PAGE_SIZE, USER_MAP_TOP, USER_MIN,
    USER_STACK_TOP, USER_TOP,
};
use exo_demos::Line;
use libos::ipc::SendCap;
use libos::{println, sys, Error, Handle};

/// A raw stub's `(rax, rdx)` as a result.
fn sys_ok((rax, rdx): (u64, u64)) -> Result<u64, Error> {
    Error::check(rax).map(|()| rdx)
}

libos::entry!(main);

const PAGE: u64 = PAGE_SIZE;
/// Most capabilities held at once (beyond the boards), but for a hog.
const MAX_LIVE: usize = 64;
/// Most capabilities a hog holds (enough 16 MiB runs for all memory).
const HOG_LIVE: usize = 112;
/// Most mappings in the model at once.
const MAX_MAPS: usize = 128;
/// Size of the rings of stale and foreign handle values.
const RING: usize = 64;
/// Window for mappings of our own RAM (we read and write those pages).
const W_RAM: u64 = 0x0000_5000_0000_0000;
const W_RAM_PAGES: u64 = 1 << 16;
/// Window for mappings of device, received or unknown capabilities (never
/// touched from here, never used as a buffer for the kernel).
const W_OTHER: u64 = 0x0000_5100_0000_0000;
const W_OTHER_PAGES: u64 = 1 << 14;
/// Scratch page for the "is it RAM?" probe of `frame_alloc_at` results.
const PROBE_VA: u64 = 0x0000_5200_0000_0000;
/// Far-apart places for own RAM (1 GiB apart: each costs page tables, so
/// the per-process table quota gets hit).
const FAR: u64 = 0x0000_6000_0000_0000;
/// Never mapped: handler pieces and contexts there are refused.
const NEVER: u64 = 0x0000_7100_0000_0000;
/// Where a flood maps one page many times (see [`Fuzz::flood`]).
const FLOOD_VA: u64 = 0x0000_5300_0000_0000;
/// Most mappings a flood makes before giving up on a limit.
const FLOOD_MAX: u64 = 8192;
/// Where the bulk cycle maps what `frame_alloc_many` gave (nothing else
/// maps there).
const BULK_VA: u64 = 0x0000_5400_0000_0000;
/// Most frames one bulk cycle allocates.
const BULK_MAX: u64 = 130;
/// Our board: a page peers map read-only to learn our handle values.
const BOARD_VA: u64 = 0x0000_4000_0000_0000;
/// Where peers' boards are mapped (one page each).
const PEER_BOARDS_VA: u64 = 0x0000_4100_0000_0000;
/// Ranges never given to `unmap` or `map`: libos's heap and mapping area,
/// the boards.
const PROTECTED: [(u64, u64); 2] = [
    (libos::heap::HEAP_BASE, libos::mem::MAP_AREA_LIMIT),
    (BOARD_VA, PEER_BOARDS_VA + 0x100 * PAGE),
];
/// Offset of the shadow word in the first page of each own RAM capability.
const SHADOW: u64 = 2048;
const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;
const KERNEL_IMAGE: u64 = 0xffff_ffff_8000_0000;
const MAX_DEBUG_WRITE: u64 = abi::MAX_DEBUG_WRITE;
/// Board layout (u64 slots).
const BOARD_MAGIC: u64 = 0xf022_b0a2_d000_0001;
const SLOT_MAGIC: u64 = 0;
const SLOT_READY: u64 = 2;
const SLOT_HANDLES: u64 = 8;
const BOARD_HANDLES: u64 = 32;
/// Physical addresses of our frames (peers try to claim them).
const SLOT_PHYS: u64 = 48;
const BOARD_PHYS: u64 = 16;
const READY: u64 = 0x0002_ead1;
/// Yields a peer gets to show up before the fuzzer gives up.
const PATIENCE: u32 = 2_000_000;
const MAX_INSTANCES: usize = 16;
/// Violations printed in full (all are counted).
const MAX_REPORTED: u64 = 20;

/// Result slots: success, each ABI error code, any other code.
const RESULTS: usize = abi::Error::ALL.len() + 2;
/// Call slots: each syscall by number, then undefined numbers.
const BY_CALL: usize = Sysnum::ALL.len() + 1;

/// The slot of syscall number `num` in `by_call`.
fn call_slot(num: u64) -> usize {
    match Sysnum::try_from(num) {
        Ok(sys) => Sysnum::ALL.iter().position(|&s| s == sys).unwrap_or(0),
        Err(_) => BY_CALL - 1,
    }
}

/// How often each syscall is exercised, out of [`WEIGHT_TOTAL`] per step
/// (the remainder goes to undefined numbers). Exhaustive, like `Fuzz::op`.
const fn weight(sys: Sysnum) -> u64 {
    match sys {
        Sysnum::FrameAlloc => 6,
        Sysnum::FrameAllocAt => 5,
        Sysnum::FrameAllocContiguous => 5,
        Sysnum::FrameFree => 7,
        Sysnum::FramePhys => 4,
        Sysnum::FrameSeal => 2,
        Sysnum::Map => 13,
        Sysnum::Unmap => 6,
        Sysnum::Send => 6,
        Sysnum::Recv => 5,
        Sysnum::ProcessFind => 3,
        Sysnum::FrameStats => 5,
        Sysnum::SysInfo => 2,
        Sysnum::CapInfo => 4,
        Sysnum::DebugWrite => 4,
        Sysnum::TraceCtl => 2,
        Sysnum::GetPid => 4,
        Sysnum::Yield => 1,
        Sysnum::ExcHandler => 1,
        Sysnum::Resume => 1,
        Sysnum::Protect => 1,
        Sysnum::PageBits => 1,
        Sysnum::Exit => 0,
        Sysnum::EndpointCreate => 1,
        Sysnum::EndpointMint => 1,
        Sysnum::EndpointLookup => 1,
        Sysnum::Call => 1,
        Sysnum::Reply => 1,
        Sysnum::ReplyRecv => 1,
        Sysnum::IrqBind => 1,
        // A whole cycle: allocate, map, check, unmap, free, refusals.
        Sysnum::FrameAllocMany => 1,
        Sysnum::MapMany => 1,
        Sysnum::UnmapMany => 1,
        // In `FrameAllocMany`'s cycle (the weights must stay below 100).
        Sysnum::FreeMany => 0,
        // One op tries both (a hostile suite and `test-iomap` cover the
        // accepted paths with a real device).
        Sysnum::Iomap => 1,
        Sysnum::Iounmap => 0,
        Sysnum::IofaultBind => 0,
    }
}

/// Every defined right.
const ALL_RIGHTS: u64 = abi::Rights::ALL.bits();

/// Steps per hundred: what the rows do not take goes to undefined numbers.
const WEIGHT_TOTAL: u64 = 100;
const _: () = {
    let mut sum = 0;
    let mut i = 0;
    while i < Sysnum::ALL.len() {
        sum += weight(Sysnum::ALL[i]);
        i += 1;
    }
    assert!(sum < WEIGHT_TOTAL, "leave room for undefined numbers");
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// RAM we allocated: all rights, only we write it.
    Own,
    /// A device frame we claimed.
    Device,
    /// RAM we allocated and sealed: code from now on, mapped executable,
    /// never writable (and never touched).
    Sealed,
    /// Received from someone (maybe ourselves): never touched.
    Unknown,
}

#[derive(Clone, Copy)]
struct Live {
    h: u64,
    kind: Kind,
    pages: u64,
    /// What the shadow word of the first page holds (`Own` only).
    shadow: u64,
    /// Not mapped yet since allocation: must read as zero.
    fresh: bool,
}

const NO_LIVE: Live = Live {
    h: 0,
    kind: Kind::Unknown,
    pages: 0,
    shadow: 0,
    fresh: false,
};

#[derive(Clone, Copy)]
struct Map {
    va: u64,
    pages: u64,
    h: u64,
    write: bool,
    /// Our own RAM: we may read (and, if `write`, write) it.
    touch: bool,
}

const NO_MAP: Map = Map {
    va: 0,
    pages: 0,
    h: 0,
    write: false,
    touch: false,
};

/// One recent syscall, for violation reports.
#[derive(Clone, Copy, Default)]
struct Call {
    num: u64,
    args: [u64; 6],
    rax: u64,
    rdx: u64,
}

/// splitmix64: a stream per (seed, instance).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
    fn pick(&mut self, items: &[u64]) -> u64 {
        items[self.below(items.len() as u64) as usize]
    }
}

struct Fuzz {
    rng: Rng,
    me: usize,
    instances: usize,
    /// Booted as a driver (may claim device frames).
    driver: bool,
    pid: u64,
    /// Our board's handle.
    own_board: u64,
    /// Our (published) endpoint's receive capability: peers' boards and
    /// whatever they send arrive there.
    own_recv: u64,
    /// Send capabilities to each instance's endpoint (ours included,
    /// found by name during set-up: badged with our pid).
    sends: [u64; MAX_INSTANCES],
    /// Peers' boards we hold (mapped at `PEER_BOARDS_VA`).
    boards: [u64; MAX_INSTANCES],
    nboards: usize,
    info: SysInfo,
    live: [Live; HOG_LIVE],
    nlive: usize,
    maps: [Map; MAX_MAPS],
    nmaps: usize,
    stale: [u64; RING],
    nstale: usize,
    foreign: [u64; RING],
    nforeign: usize,
    phys: [u64; RING],
    nphys: usize,
    calls: u64,
    /// Successes (index 0), errors by code (1..=Error::ALL.len()), other
    /// codes (last).
    results: [u64; RESULTS],
    /// Calls and successes by syscall number (undefined ones last).
    by_call: [(u64, u64); BY_CALL],
    violations: u64,
    history: [Call; 8],
    nhistory: usize,
    /// Where `frame_stats`/`sys_info` write when given a good buffer
    /// (large enough for either, at two offsets).
    out: OutBuf,
}

/// An output buffer for the kernel, larger than any ABI struct; 256-aligned
/// so that an `ExceptionFrame` at its start lies within one page (as
/// `exc_handler` requires of a save area).
#[repr(C, align(256))]
struct OutBuf([u64; 32]);

const _: () = assert!(
    core::mem::size_of::<FrameStats>() <= 128
        && core::mem::size_of::<SysInfo>() <= 128
        && core::mem::size_of::<CapInfo>() <= 128
        && core::mem::size_of::<abi::ExceptionFrame>() <= 256
);

fn main() -> Result<(), Error> {
    let mut seed = 1;
    let mut iterations = 10_000;
    let mut me = 0usize;
    let mut instances = 1usize;
    let mut driver = false;
    for word in libos::args().split(|c: char| c.is_whitespace() || c == ',') {
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        let Ok(n) = value.parse::<u64>() else {
            println!("fuzz: bad argument {word}");
            sys::exit(2);
        };
        match key {
            "seed" => seed = n,
            "iterations" => iterations = n,
            "instance" => me = n as usize,
            "instances" => instances = (n as usize).clamp(1, MAX_INSTANCES),
            "driver" => driver = n != 0,
            _ => println!("fuzz: unknown argument {word}"),
        }
    }
    if me >= instances {
        println!("fuzz: instance {me} of {instances}?");
        sys::exit(2);
    }
    let mut f = Fuzz {
        rng: Rng(seed ^ (me as u64 + 1).wrapping_mul(0xd6e8_feb8_6659_fd93)),
        me,
        instances,
        driver,
        pid: sys::getpid(),
        own_recv: 0,
        sends: [0; MAX_INSTANCES],
        own_board: 0,
        boards: [0; MAX_INSTANCES],
        nboards: 0,
        info: sys::sys_info(),
        live: [NO_LIVE; HOG_LIVE],
        nlive: 0,
        maps: [NO_MAP; MAX_MAPS],
        nmaps: 0,
        stale: [0; RING],
        nstale: 0,
        foreign: [0; RING],
        nforeign: 0,
        phys: [0; RING],
        nphys: 0,
        calls: 0,
        results: [0; RESULTS],
        by_call: [(0, 0); BY_CALL],
        violations: 0,
        history: [Call::default(); 8],
        nhistory: 0,
        out: OutBuf([0; 32]),
    };
    println!(
        "fuzz[{me}]: seed {seed}, {iterations} calls, instance {} of {instances} (pid {}{})",
        me + 1,
        f.pid,
        if driver { ", driver" } else { "" }
    );
    f.setup()?;
    let baseline = sys::frame_stats().held_by_caller;
    let step = (iterations / 10).max(1);
    let mut next_report = step;
    while f.calls < iterations {
        f.step();
        if f.calls >= next_report {
            next_report += step;
            println!(
                "fuzz[{me}]: {}% ({} calls, {} ok, {} live, {} mapped, {} violations)",
                f.calls * 100 / iterations,
                f.calls,
                f.results[0],
                f.nlive,
                f.nmaps,
                f.violations
            );
        }
    }
    f.teardown(baseline);
    f.summary();
    sys::exit(if f.violations == 0 { 0 } else { 1 })
}

/// The name of instance `i`: `test-fuzz`, `test-fuzz-2`, ...
fn instance_name(i: usize, buf: &mut [u8; 32]) -> &str {
    let base = b"test-fuzz";
    buf[..base.len()].copy_from_slice(base);
    let mut len = base.len();
    if i > 0 {
        buf[len] = b'-';
        len += 1;
        let n = i + 1;
        if n >= 10 {
            buf[len] = b'0' + (n / 10) as u8;
            len += 1;
        }
        buf[len] = b'0' + (n % 10) as u8;
        len += 1;
    }
    core::str::from_utf8(&buf[..len]).unwrap_or("test-fuzz")
}

/// Reads a word of a page the model says is mapped.
///
/// # Safety
/// `va` must be 8-aligned inside a page mapped readable in our space that
/// nothing else unmaps meanwhile.
unsafe fn peek(va: u64) -> u64 {
    // SAFETY: the caller's contract.
    unsafe { core::ptr::read_volatile(va as *const u64) }
}

/// Writes a word of a page the model says is our own writable RAM.
///
/// # Safety
/// As [`peek`], and the page must be mapped writable and hold no Rust
/// object (only the fuzzer's windows and its board qualify).
unsafe fn poke(va: u64, value: u64) {
    // SAFETY: the caller's contract.
    unsafe { core::ptr::write_volatile(va as *mut u64, value) }
}

fn protected(va: u64) -> bool {
    PROTECTED.iter().any(|&(lo, hi)| va >= lo && va < hi)
}

impl Fuzz {
    // ----- syscalls and bookkeeping -----

    /// Issues one syscall and records it.
    fn sc(&mut self, num: Sysnum, args: [u64; 6]) -> Result<u64, Error> {
        self.raw(num as u64, args)
    }

    fn raw(&mut self, num: u64, mut args: [u64; 6]) -> Result<u64, Error> {
        // Registers beyond a call's arguments are garbage now and then: the
        // kernel must ignore them.
        if let Ok(sys) = Sysnum::try_from(num) {
            if self.rng.chance(8) {
                for a in args.iter_mut().skip(sys.args().len()) {
                    *a = self.rng.next();
                }
            }
        }
        // SAFETY: every caller picks arguments that cannot unmap or free
        // memory Rust uses (see `protected` and the model) and passes only
        // buffers it owns, or addresses the kernel must refuse.
        // (`syscall6_ipc`: any number may be one that delivers a message and
        // writes rsi, rdi, r8 and r9 too.)
        let [rax, rdx, ..] = unsafe { abi::raw::syscall6_ipc(num, args) };
        self.calls += 1;
        self.history[self.nhistory % self.history.len()] = Call {
            num,
            args,
            rax,
            rdx,
        };
        self.nhistory += 1;
        let slot = &mut self.by_call[call_slot(num)];
        slot.0 += 1;
        slot.1 += u64::from(rax == 0);
        match abi::Error::try_from(rax) {
            _ if rax == 0 => {
                self.results[0] += 1;
                Ok(rdx)
            }
            Ok(e) => {
                self.results[rax as usize] += 1;
                Err(e.into())
            }
            Err(_) => {
                self.results[RESULTS - 1] += 1;
                self.violation(format_args!("rax {rax:#x} is no ABI error code"));
                Err(Error::InvalidArgument)
            }
        }
    }

    fn violation(&mut self, what: core::fmt::Arguments<'_>) {
        self.violations += 1;
        if self.violations > MAX_REPORTED {
            return;
        }
        println!(
            "fuzz[{}]: VIOLATION after {} calls: {what}",
            self.me, self.calls
        );
        if self.violations == 1 {
            let n = self.history.len().min(self.nhistory);
            for back in (0..n).rev() {
                let c = self.history[(self.nhistory - 1 - back) % self.history.len()];
                let name = Sysnum::try_from(c.num).map(|s| s.name()).unwrap_or("?");
                println!(
                    "fuzz[{}]:   {name}({:#x}, {:#x}, {:#x}, {:#x}) -> rax {} rdx {:#x}",
                    self.me, c.args[0], c.args[1], c.args[2], c.args[3], c.rax, c.rdx
                );
            }
        }
    }

    /// Requires `got` to be the error `want` (for arguments the kernel must
    /// refuse in one particular way).
    fn expect_err(&mut self, what: &str, got: Result<u64, Error>, want: Error) {
        if got != Err(want) {
            self.violation(format_args!("{what}: got {got:?}, expected {want}"));
        }
    }

    fn find_live(&self, h: u64) -> Option<usize> {
        if h == 0 {
            return None;
        }
        self.live[..self.nlive].iter().position(|l| l.h == h)
    }

    fn is_board(&self, h: u64) -> bool {
        h != 0 && (h == self.own_board || self.boards[..self.nboards].contains(&h))
    }

    fn push_ring(ring: &mut [u64; RING], n: &mut usize, value: u64) {
        ring[*n % RING] = value;
        *n += 1;
    }

    fn ring_pick(&mut self, which: u8) -> Option<u64> {
        let (ring, n) = match which {
            0 => (&self.stale, self.nstale),
            1 => (&self.foreign, self.nforeign),
            _ => (&self.phys, self.nphys),
        };
        if n == 0 {
            return None;
        }
        let i = self.rng.below(n.min(RING) as u64) as usize;
        Some(ring[i])
    }

    /// A new capability: into the pool (there is always room: see
    /// [`Self::make_room`]).
    fn add_live(&mut self, h: u64, kind: Kind, pages: u64) {
        let n = self.nstale.min(RING);
        if self.find_live(h).is_some() || self.is_board(h) || self.stale[..n].contains(&h) {
            self.violation(format_args!("handle {h:#x} issued twice"));
            return;
        }
        if self.nlive == HOG_LIVE {
            self.violation(format_args!("pool overflow (fuzzer bug)"));
            return;
        }
        self.live[self.nlive] = Live {
            h,
            kind,
            pages,
            shadow: 0,
            fresh: kind == Kind::Own,
        };
        self.nlive += 1;
    }

    /// `h` is gone from our table (freed or moved away): forget it and the
    /// mappings made through it, remember it as stale.
    fn forget(&mut self, h: u64) {
        if let Some(i) = self.find_live(h) {
            self.nlive -= 1;
            self.live[i] = self.live[self.nlive];
        }
        let mut i = 0;
        while i < self.nmaps {
            if self.maps[i].h == h {
                self.nmaps -= 1;
                self.maps[i] = self.maps[self.nmaps];
            } else {
                i += 1;
            }
        }
        Self::push_ring(&mut self.stale, &mut self.nstale, h);
    }

    /// Frees pool capabilities until there is room for `n` more.
    fn make_room(&mut self, n: usize) {
        while self.nlive + n > MAX_LIVE {
            let i = self.rng.below(self.nlive as u64) as usize;
            let h = self.live[i].h;
            let r = self.sc(Sysnum::FrameFree, [h, 0, 0, 0, 0, 0]);
            if r.is_err() {
                self.violation(format_args!("freeing live handle {h:#x}: {r:?}"));
            }
            self.forget(h);
        }
    }

    /// Unmaps model mappings until there is room for one more.
    fn make_map_room(&mut self) {
        while self.nmaps >= MAX_MAPS {
            let i = self.rng.below(self.nmaps as u64) as usize;
            let va = self.maps[i].va;
            let r = self.sc(Sysnum::Unmap, [va, 0, 0, 0, 0, 0]);
            if r.is_err() {
                self.violation(format_args!("unmapping our mapping at {va:#x}: {r:?}"));
            }
            self.nmaps -= 1;
            self.maps[i] = self.maps[self.nmaps];
        }
    }

    /// The model mapping covering page `va`, if any.
    fn map_at(&self, va: u64) -> Option<&Map> {
        self.maps[..self.nmaps]
            .iter()
            .find(|m| va >= m.va && va - m.va < m.pages * PAGE)
    }

    /// Whether the model says every page of `[va, va+len)` is mapped
    /// writable (what the kernel needs to write a result there).
    fn writable(&self, va: u64, len: u64) -> bool {
        let Some(end) = va.checked_add(len) else {
            return false;
        };
        let mut page = va & !(PAGE - 1);
        while page < end {
            match self.map_at(page) {
                Some(m) if m.write => {}
                _ => return false,
            }
            page += PAGE;
        }
        true
    }

    // ----- argument generators -----

    /// A handle value: mostly live, else stale, foreign, forged or near.
    fn handle(&mut self) -> u64 {
        self.handle_live(55)
    }

    /// A handle value, live with probability `percent` (if any is).
    fn handle_live(&mut self, percent: u64) -> u64 {
        if self.nlive > 0 && self.rng.below(100) < percent {
            return self.live[self.rng.below(self.nlive as u64) as usize].h;
        }
        match 55 + self.rng.below(45) {
            55..=67 => self.ring_pick(0).unwrap_or(0),
            68..=79 => self.ring_pick(1).unwrap_or(1),
            80..=85 if self.nlive > 0 => {
                let h = self.live[self.rng.below(self.nlive as u64) as usize].h;
                h ^ (1 << self.rng.below(64))
            }
            86..=88 => 0,
            89..=91 => u64::MAX,
            92..=94 => self.rng.below(1024),
            _ => self.rng.next(),
        }
    }

    /// Page-aligned address in a window (sometimes on top of an existing
    /// mapping, to collide).
    fn window_va(&mut self, own: bool) -> u64 {
        if self.nmaps > 0 && self.rng.chance(5) {
            let m = self.maps[self.rng.below(self.nmaps as u64) as usize];
            return m.va + self.rng.below(m.pages) * PAGE;
        }
        let (base, pages) = if own {
            (W_RAM, W_RAM_PAGES)
        } else {
            (W_OTHER, W_OTHER_PAGES)
        };
        // A small hot region makes collisions common; the rest spreads.
        let span = if self.rng.chance(2) {
            256
        } else {
            pages - 4096
        };
        base + self.rng.below(span) * PAGE
    }

    /// Addresses `map` must refuse whatever the capability.
    fn bad_va(&mut self) -> u64 {
        let code = main as *const () as u64 & !(PAGE - 1);
        let items = [
            0,
            0x1000,
            USER_MIN - PAGE,
            USER_MAP_TOP,
            USER_TOP - 1,
            USER_TOP,
            1 << 47,
            KERNEL_HALF,
            KERNEL_IMAGE,
            0x0000_8000_0000_1000,
            0x8000_0000_0000_0000,
            !(PAGE - 1),
            u64::MAX,
            W_RAM + 8,
            W_OTHER + 0x800,
            code,
            USER_STACK_TOP - PAGE,
            USER_STACK_TOP - 16 * PAGE,
        ];
        self.rng.pick(&items)
    }

    /// A user pointer the kernel must refuse (kernel half, non-canonical,
    /// wrapping, unmapped).
    fn bad_ptr(&mut self) -> u64 {
        let unmapped = loop {
            let va = W_OTHER + W_OTHER_PAGES * PAGE + self.rng.below(1 << 20) * 8;
            if self.map_at(va).is_none() {
                break va;
            }
        };
        let items = [
            0,
            8,
            0xfff,
            KERNEL_HALF,
            KERNEL_IMAGE,
            0x0000_8000_0000_0000,
            0x8000_0000_0000_0000,
            u64::MAX - 7,
            USER_TOP - 8,
            unmapped,
        ];
        self.rng.pick(&items)
    }

    /// An output buffer for `frame_stats`/`sys_info` and whether the kernel
    /// must accept it (`Some(true)`), refuse it (`Some(false)`) or either.
    fn out_ptr(&mut self, len: u64) -> (u64, Option<bool>) {
        let r = self.rng.below(100);
        if r < 40 {
            // At the start, or 8 bytes in (aligned either way).
            let at = self.out.0.as_mut_ptr() as u64 + 8 * self.rng.below(2);
            return (at, Some(true));
        }
        if r < 70 {
            let touch: usize = self.maps[..self.nmaps].iter().filter(|m| m.touch).count();
            if touch > 0 {
                let k = self.rng.below(touch as u64) as usize;
                let m = *self.maps[..self.nmaps]
                    .iter()
                    .filter(|m| m.touch)
                    .nth(k)
                    .expect("counted");
                let page = m.va + self.rng.below(m.pages) * PAGE;
                // Never near the shadow word; some cross into the next page.
                let offsets = [0, 8, 64, 1000, PAGE - len, PAGE - 8, PAGE - 1];
                let va = page + self.rng.pick(&offsets);
                return (va, Some(self.writable(va, len)));
            }
        }
        if r < 80 {
            let code = main as *const () as u64;
            return (code, Some(false));
        }
        (self.bad_ptr(), Some(false))
    }

    fn phys_addr(&mut self) -> (u64, Option<Error>) {
        let bits = self.info.phys_addr_bits;
        let r = self.rng.below(100);
        if r < 30 {
            // RAM: near frames we saw, or anywhere in the first GiB.
            if let Some(p) = self.ring_pick(2) {
                if self.rng.chance(2) {
                    let delta = (self.rng.below(64) as i64 - 32) * PAGE as i64;
                    return (p.wrapping_add(delta as u64) & !(PAGE - 1), None);
                }
            }
            return (0x10_0000 + self.rng.below(0x3ff00) * PAGE, None);
        }
        if r < 45 {
            let kernel = [
                self.info.kernel_image_phys,
                self.info.kernel_pml4_phys,
                self.info.ramdisk_phys & !(PAGE - 1),
            ];
            return (self.rng.pick(&kernel), Some(Error::PermissionDenied));
        }
        if r < 75 {
            if self.rng.chance(5) {
                // The kernel's own interrupt controllers (I/O APIC, local
                // APIC): nobody may claim them, drivers included.
                let items = [0xfec0_0000, 0xfee0_0000];
                return (self.rng.pick(&items), Some(Error::PermissionDenied));
            }
            // Devices and holes (device capabilities: exclusive claims,
            // for drivers only).
            let items = [
                0xfed0_0000,
                0xb000_0000 + self.rng.below(0x1_0000) * PAGE,
                0xc000_0000 + self.rng.below(0x1000) * PAGE,
                0xfd_0000_0000,
                0x1_0000_0000,
                0x4000_0000,
                0xfffc_0000,
                (1u64 << bits) - PAGE,
            ];
            let want = (!self.driver).then_some(Error::PermissionDenied);
            return (self.rng.pick(&items), want);
        }
        if r < 85 {
            let items = [1u64 << bits, 1 << 52, !(PAGE - 1)];
            return (self.rng.pick(&items), Some(Error::InvalidFrame));
        }
        if r < 92 {
            let items = [0x10_0001, 0x10_0800, u64::MAX, 0xfed0_0008];
            return (self.rng.pick(&items), Some(Error::InvalidArgument));
        }
        let items = [0, 0x1000, 0x9f000, 0xa0000, 0xb8000, 0xf0000];
        (self.rng.pick(&items), None)
    }

    fn map_flags(&mut self) -> u64 {
        if self.rng.chance(8) {
            let items = [3, 7, 8, 0x10, 1 << 63, u64::MAX];
            return self.rng.pick(&items);
        }
        let items = [0, 0, 1, 1, 1, 1, 2, 4, 5, 6];
        self.rng.pick(&items)
    }

    fn rights(&mut self) -> u64 {
        if self.rng.chance(10) {
            let items = [0x20, 0x3f, 1 << 63, u64::MAX];
            return self.rng.pick(&items);
        }
        self.rng.below(abi::Rights::ALL.bits() + 1)
    }

    // ----- the steps -----

    fn step(&mut self) {
        if self.rng.chance(4) {
            self.touch();
        }
        if self.rng.chance(256) {
            self.publish();
        }
        if self.rng.chance(128) {
            self.learn();
        }
        if self.rng.chance(1 << 17) {
            self.hog();
        }
        if self.rng.chance(1 << 17) {
            self.flood();
        }
        if self.rng.chance(64) {
            self.remap();
        }
        // Every row of the syscall table by its weight; what is left of
        // the 100 goes to undefined numbers.
        let mut roll = self.rng.below(WEIGHT_TOTAL);
        for &sys in Sysnum::ALL {
            let w = weight(sys);
            if roll < w {
                return self.op(sys);
            }
            roll -= w;
        }
        self.op_unknown()
    }

    /// The operation that exercises `sys`. Exhaustive: a new row in the
    /// syscall table does not compile until the fuzzer covers it.
    fn op(&mut self, sys: Sysnum) {
        match sys {
            Sysnum::FrameAlloc => self.op_alloc(),
            Sysnum::FrameAllocAt => self.op_alloc_at(),
            Sysnum::FrameAllocContiguous => self.op_contiguous(),
            Sysnum::FrameFree => self.op_free(),
            Sysnum::FramePhys => self.op_phys(),
            Sysnum::FrameSeal => self.op_seal(),
            Sysnum::Map => self.op_map(),
            Sysnum::Unmap => self.op_unmap(),
            Sysnum::Send => self.op_transfer(),
            Sysnum::Recv => self.op_recv(),
            Sysnum::ProcessFind => self.op_find(),
            Sysnum::FrameStats => self.op_stats(),
            Sysnum::SysInfo => self.op_info(),
            Sysnum::CapInfo => self.op_cap_info(),
            Sysnum::EndpointCreate => self.op_endpoint(),
            Sysnum::EndpointMint => {
                // A handle that names no endpoint of ours.
                let h = self.handle();
                let r = self.sc(Sysnum::EndpointMint, [h, 7, 0, 0, 0, 0]);
                let want = if self.find_live(h).is_some() {
                    Error::InvalidArgument
                } else {
                    Error::BadCapability
                };
                if !self.is_board(h) {
                    self.expect_err("endpoint_mint of a non-endpoint", r, want);
                }
            }
            Sysnum::EndpointLookup => {
                // The first fuzzer publishes an endpoint now and then (for
                // a moment, in `op_endpoint`): found, or not there.
                let name = b"test-fuzz";
                let r = self.sc(
                    Sysnum::EndpointLookup,
                    [name.as_ptr() as u64, name.len() as u64, 0, 0, 0, 0],
                );
                match r {
                    Ok(h) => {
                        let _ = self.sc(Sysnum::FrameFree, [h, 0, 0, 0, 0, 0]);
                    }
                    Err(Error::NoSuchProcess) => {}
                    Err(e) => self.violation(format_args!("endpoint_lookup of a fuzzer: {e}")),
                }
            }
            Sysnum::Call | Sysnum::ReplyRecv => {
                // Through a handle that names no endpoint.
                let h = self.handle();
                let r = self.sc(sys, [h, 1, 2, 0, 0, 0]);
                let want = if self.find_live(h).is_some() {
                    Error::InvalidArgument
                } else {
                    Error::BadCapability
                };
                if !self.is_board(h) {
                    self.expect_err("ipc through a non-endpoint", r, want);
                }
            }
            Sysnum::IrqBind => {
                // Not a device capability, or no send capability: refused.
                let h = self.handle();
                let r = self.sc(Sysnum::IrqBind, [h, 0x5eed, 0, 0, 0, 0]);
                let want = match self.find_live(h).map(|i| self.live[i].kind) {
                    Some(Kind::Device) => Error::BadCapability,
                    Some(Kind::Unknown) => return,
                    Some(_) => Error::PermissionDenied,
                    None => Error::BadCapability,
                };
                if !self.is_board(h) {
                    self.expect_err("irq_bind without an endpoint", r, want);
                }
            }
            Sysnum::Iomap | Sysnum::Iounmap | Sysnum::IofaultBind => {
                // Anything but a device capability as the device, or flags
                // the table refuses: refused, and nothing mapped anywhere.
                let (dev, frames) = (self.handle(), self.handle());
                let iova = self.rng.below(1 << 40) & !0xfff;
                let flags = self.rng.below(6);
                let want = match self.find_live(dev).map(|i| self.live[i].kind) {
                    Some(Kind::Device) | Some(Kind::Unknown) => None,
                    Some(_) => Some(Error::InvalidArgument),
                    None if self.is_board(dev) => Some(Error::InvalidArgument),
                    None => Some(Error::BadCapability),
                };
                let r = self.sc(Sysnum::Iomap, [dev, frames, iova, flags, 0, 0]);
                if !(1..=3).contains(&flags) {
                    self.expect_err("iomap with bad flags", r, Error::InvalidArgument);
                } else if let Some(want) = want {
                    self.expect_err("iomap through a non-device", r, want);
                }
                let r = self.sc(Sysnum::Iounmap, [dev, iova, 0, 0, 0, 0]);
                if let Some(want) = want {
                    self.expect_err("iounmap through a non-device", r, want);
                }
                let r = self.sc(Sysnum::IofaultBind, [dev, frames, 0, 0, 0, 0]);
                if let Some(want) = want {
                    self.expect_err("iofault_bind through a non-device", r, want);
                }
            }
            Sysnum::Reply => {
                let r = self.sc(Sysnum::Reply, [1, 2, 0, 0, 0, 0]);
                self.expect_err("reply with none owed", r, Error::InvalidArgument);
            }
            Sysnum::DebugWrite => self.op_debug_write(),
            Sysnum::TraceCtl => self.op_trace(),
            Sysnum::GetPid => {
                let r = self.sc(Sysnum::GetPid, [0; 6]);
                if r != Ok(self.pid) {
                    let pid = self.pid;
                    self.violation(format_args!("getpid gave {r:?}, we are {pid}"));
                }
            }
            Sysnum::Yield => {
                let _ = self.sc(Sysnum::Yield, [0; 6]);
            }
            Sysnum::ExcHandler => self.op_exc_handler(),
            Sysnum::Resume => self.op_resume(),
            Sysnum::Protect => self.op_protect(),
            Sysnum::PageBits => self.op_page_bits(),
            Sysnum::FrameAllocMany => self.op_bulk_cycle(),
            Sysnum::MapMany => {
                // A list with a handle we do not hold, or a bad count.
                let mut list = [self.handle(), 0x5eed_f00d];
                let (count, want) = match self.rng.below(3) {
                    0 => (0, Error::InvalidArgument),
                    1 => (abi::bounds::BULK as u64 + 1, Error::InvalidArgument),
                    _ => (2, Error::BadCapability),
                };
                if self.find_live(list[0]).is_some() || self.is_board(list[0]) {
                    list[0] = 0x5eed_0001;
                }
                let args = [list.as_mut_ptr() as u64, count, BULK_VA, 1, 0, 0];
                let r = self.sc(Sysnum::MapMany, args);
                self.expect_err("map_many of forged handles", r, want);
            }
            Sysnum::UnmapMany => {
                let (va, pages, want) = match self.rng.below(3) {
                    0 => (BULK_VA + 8, 1, Error::InvalidAddress),
                    1 => (BULK_VA, 0, Error::InvalidArgument),
                    _ => (BULK_VA, 1 + self.rng.below(64), Error::NotMapped),
                };
                let r = self.sc(Sysnum::UnmapMany, [va, pages, 0, 0, 0, 0]);
                self.expect_err("unmap_many where nothing is mapped", r, want);
            }
            Sysnum::FreeMany => {}
            // Weight 0: the fuzzer exits once, at the end of its run.
            Sysnum::Exit => {}
        }
    }

    /// The bulk calls end to end, on frames only this cycle holds:
    /// `frame_alloc_many` of 1 to [`BULK_MAX`] frames (every handle a
    /// fresh capability, sizes adding up), `map_many` of all of them at
    /// [`BULK_VA`] (every page reads zero, takes a write), `unmap_many`
    /// of the range, and `free_many` refused for a duplicate, then done,
    /// then refused again (the handles are dead).
    fn op_bulk_cycle(&mut self) {
        let mut handles = [0u64; BULK_MAX as usize];
        let count = 1 + self.rng.below(BULK_MAX);
        let ptr = handles.as_mut_ptr() as u64;
        let n = match self.sc(Sysnum::FrameAllocMany, [count, ptr, 0, 0, 0, 0]) {
            Ok(n) if n >= 1 && n <= count => n,
            Ok(n) => {
                return self.violation(format_args!("frame_alloc_many({count}) gave {n} handles"))
            }
            // Memory is short or the table full (a hog instance): fine.
            Err(Error::OutOfMemory | Error::CapTableFull) => return,
            Err(e) => return self.violation(format_args!("frame_alloc_many({count}): {e}")),
        };
        let handles = &mut handles[..n as usize];
        let mut pages = 0;
        for &h in handles.iter() {
            match sys::cap_info(abi::Handle::from_raw(h)) {
                Ok(info) if info.frames == 1 || info.frames == 64 => pages += info.frames,
                other => self.violation(format_args!("frame_alloc_many handle: {other:?}")),
            }
        }
        if pages != count {
            self.violation(format_args!(
                "frame_alloc_many({count}) gave {pages} frames"
            ));
        }
        let hp = handles.as_mut_ptr() as u64;
        match self.sc(Sysnum::MapMany, [hp, n, BULK_VA, 1, 0, 0]) {
            Ok(_) => {
                for page in 0..pages {
                    let va = BULK_VA + page * PAGE;
                    // SAFETY: just mapped writable, our own fresh RAM, used
                    // only through these raw pointers until `unmap_many`.
                    let word = unsafe { peek(va + 8 * (page % 512)) };
                    if word != 0 {
                        self.violation(format_args!("bulk page {page} reads {word:#x}"));
                    }
                    // SAFETY: as above.
                    unsafe { poke(va, page + 1) };
                }
                let r = self.sc(Sysnum::UnmapMany, [BULK_VA, pages, 0, 0, 0, 0]);
                if r != Ok(0) {
                    self.violation(format_args!("unmap_many of the bulk range: {r:?}"));
                }
            }
            Err(Error::OutOfMemory) => {}
            Err(e) => self.violation(format_args!("map_many of fresh handles: {e}")),
        }
        if n >= 2 {
            let mut dup = [handles[0], handles[1], handles[0]];
            let r = self.sc(Sysnum::FreeMany, [dup.as_mut_ptr() as u64, 3, 0, 0, 0, 0]);
            self.expect_err("free_many of a duplicate", r, Error::BadCapability);
        }
        let r = self.sc(Sysnum::FreeMany, [hp, n, 0, 0, 0, 0]);
        if r != Ok(0) {
            self.violation(format_args!("free_many of fresh handles: {r:?}"));
        }
        let r = self.sc(Sysnum::FreeMany, [hp, n, 0, 0, 0, 0]);
        self.expect_err("free_many of freed handles", r, Error::BadCapability);
    }

    /// `exc_handler`: removing the handler, or one whose pieces must be
    /// refused (never one that could run: a fuzzer fault must end us as
    /// it would without a handler).
    fn op_exc_handler(&mut self) {
        let code = Fuzz::op_exc_handler as *const () as u64;
        let data = self.out.0.as_mut_ptr() as u64;
        let stack = (data + 128) & !15;
        let (args, want) = match self.rng.below(6) {
            0 => ([0, 0, 0], None),
            1 => ([KERNEL_IMAGE, stack, data], Some(Error::InvalidAddress)),
            // Writable data is not executable.
            2 => ([data, stack, data], Some(Error::PermissionDenied)),
            // Code is not writable: neither a stack nor a save area.
            3 => (
                [code, (code & !(PAGE - 1)) + 2048, data],
                Some(Error::PermissionDenied),
            ),
            4 => (
                [code, stack, (code & !(PAGE - 1)) + 8],
                Some(Error::PermissionDenied),
            ),
            // Within the first page (a save area must not cross one).
            _ => (
                [code, stack, NEVER + 8 * self.rng.below(64)],
                Some(Error::NotMapped),
            ),
        };
        let r = self.sc(Sysnum::ExcHandler, [args[0], args[1], args[2], 0, 0, 0]);
        match want {
            None if r.is_err() => self.violation(format_args!("removing the handler: {r:?}")),
            None => {}
            Some(e) => self.expect_err("exc_handler", r, e),
        }
    }

    /// `protect`: refusals (bad addresses, counts and protections, pages
    /// nobody mapped, our program image) and, on one of our mappings, the
    /// protection it has (so the model stays true).
    fn op_protect(&mut self) {
        let code = Fuzz::op_protect as *const () as u64 & !(PAGE - 1);
        let far = NEVER + PAGE * self.rng.below(512);
        let (va, pages, prot, want) = match self.rng.below(8) {
            0 => (KERNEL_HALF, 1, 1, Some(Error::InvalidAddress)),
            1 => (far, 1, 1, Some(Error::NotMapped)),
            2 => (code, 1, 1, Some(Error::PermissionDenied)),
            3 => (W_RAM, 0, 1, Some(Error::InvalidArgument)),
            4 => (
                W_RAM,
                abi::bounds::PROTECT_PAGES + 1,
                1,
                Some(Error::InvalidArgument),
            ),
            5 => (
                W_RAM,
                1,
                4 + self.rng.below(100),
                Some(Error::InvalidArgument),
            ),
            6 => (far + 1, 1, 1, Some(Error::InvalidAddress)),
            _ => {
                if self.nmaps == 0 {
                    return;
                }
                let m = self.maps[self.rng.below(self.nmaps as u64) as usize];
                let exec = !m.write && !m.touch;
                if exec {
                    // Possibly mapped executable (sealed): leave it alone.
                    return;
                }
                (m.va, m.pages, if m.write { 2 } else { 1 }, None)
            }
        };
        let r = self.sc(Sysnum::Protect, [va, pages, prot, 0, 0, 0]);
        match want {
            None if r.is_err() => {
                self.violation(format_args!("protect {va:#x}+{pages} as mapped: {r:?}"))
            }
            None => {}
            Some(e) => self.expect_err("protect", r, e),
        }
    }

    /// `page_bits`: refusals, and the bits of one of our mappings (read
    /// or cleared: nothing else depends on them).
    fn op_page_bits(&mut self) {
        let far = NEVER + PAGE * self.rng.below(512);
        let clear = self.rng.below(2);
        let (va, pages, want) = match self.rng.below(6) {
            0 => (KERNEL_HALF, 1, Some(Error::InvalidAddress)),
            1 => (far, 1, Some(Error::NotMapped)),
            2 => (W_RAM, 0, Some(Error::InvalidArgument)),
            3 => (
                W_RAM,
                abi::bounds::PAGE_BITS_PAGES + 1,
                Some(Error::InvalidArgument),
            ),
            4 => (far + 8, 1, Some(Error::InvalidAddress)),
            _ => {
                if self.nmaps == 0 {
                    return;
                }
                let m = self.maps[self.rng.below(self.nmaps as u64) as usize];
                (m.va, m.pages.min(abi::bounds::PAGE_BITS_PAGES), None)
            }
        };
        let r = self.sc(Sysnum::PageBits, [va, pages, clear, 0, 0, 0]);
        match want {
            None => match r {
                Err(e) => self.violation(format_args!("page_bits {va:#x}+{pages}: {e}")),
                Ok(bits) if pages < 32 && bits >> (2 * pages) != 0 => {
                    self.violation(format_args!("page_bits {va:#x}+{pages}: {bits:#x}"))
                }
                Ok(_) => {}
            },
            Some(e) => self.expect_err("page_bits", r, e),
        }
    }

    /// `resume`: contexts that must be refused (a bad pointer, a kernel or
    /// non-canonical rip, an rsp outside the lower half); the call returns.
    fn op_resume(&mut self) {
        let c = abi::ExceptionFrame {
            rip: match self.rng.below(3) {
                0 => KERNEL_IMAGE,
                1 => abi::USER_MAP_TOP + 8 * self.rng.below(512),
                _ => self.rng.next() | 1 << 47,
            },
            rsp: self.rng.next() | 1 << 47,
            ..abi::ExceptionFrame::default()
        };
        let base = self.out.0.as_mut_ptr();
        let ptr = match self.rng.below(4) {
            0 => KERNEL_HALF + 8 * self.rng.below(512),
            1 => base as u64 + 4,
            2 => NEVER + 8 * self.rng.below(512),
            _ => base as u64,
        };
        // SAFETY: `out` holds 256 bytes, 256-aligned; an ExceptionFrame is
        // smaller (asserted beside OutBuf).
        unsafe { core::ptr::write_volatile(base.cast::<abi::ExceptionFrame>(), c) };
        let r = self.sc(Sysnum::Resume, [ptr, 0, 0, 0, 0, 0]);
        self.expect_err("resume", r, Error::InvalidAddress);
    }

    fn op_alloc(&mut self) {
        self.make_room(1);
        if let Ok(h) = self.sc(Sysnum::FrameAlloc, [0; 6]) {
            self.add_live(h, Kind::Own, 1);
        }
    }

    fn op_alloc_at(&mut self) {
        self.make_room(1);
        let (phys, must) = self.phys_addr();
        let r = self.sc(Sysnum::FrameAllocAt, [phys, 0, 0, 0, 0, 0]);
        if let Some(want) = must {
            self.expect_err("frame_alloc_at", r, want);
        }
        let Ok(h) = r else { return };
        if must.is_some() {
            // Refused above; give back whatever the kernel gave.
            let _ = self.sc(Sysnum::FrameFree, [h, 0, 0, 0, 0, 0]);
            return;
        }
        // RAM or device? Neither maps executable: a device capability is
        // InvalidArgument, fresh RAM lacks EXEC (W^X: only a sealed
        // capability has it).
        let probe = self.sc(Sysnum::Map, [h, PROBE_VA, 2, 0, 0, 0]);
        let kind = match probe {
            Err(Error::PermissionDenied) => Kind::Own,
            Ok(_) => {
                self.violation(format_args!("a fresh frame mapped executable"));
                let r = self.sc(Sysnum::Unmap, [PROBE_VA, 0, 0, 0, 0, 0]);
                if r.is_err() {
                    self.violation(format_args!("unmapping the probe page: {r:?}"));
                }
                Kind::Own
            }
            Err(Error::InvalidArgument) => Kind::Device,
            Err(e) => {
                self.violation(format_args!("probe map of a fresh claim: {e}"));
                Kind::Unknown
            }
        };
        self.add_live(h, kind, 1);
        let p = self.sc(Sysnum::FramePhys, [h, 0, 0, 0, 0, 0]);
        if p != Ok(phys) {
            self.violation(format_args!("frame_alloc_at({phys:#x}) names {p:x?}"));
        }
    }

    fn op_contiguous(&mut self) {
        self.make_room(1);
        let r = self.rng.below(1000);
        let count = match r {
            0..=699 => 1 + self.rng.below(4),
            700..=899 => 5 + self.rng.below(60),
            900..=979 => 65 + self.rng.below(448),
            _ => {
                let items = [4096, 4097, 0, 1 << 40, u64::MAX, 2048];
                self.rng.pick(&items)
            }
        };
        let align = if self.rng.chance(2) {
            1
        } else {
            let items = [
                2,
                4,
                8,
                16,
                512,
                4096,
                1 << 20,
                1 << 40,
                1 << 63,
                0,
                3,
                6,
                u64::MAX,
            ];
            self.rng.pick(&items)
        };
        let max_phys = if self.rng.chance(2) {
            0
        } else {
            let items = [
                0x1000,
                0x10_0000,
                0x100_0000,
                0x1000_0000,
                0x4000_0000,
                1 << 40,
                u64::MAX,
                self.rng.below(0x4000_0000),
            ];
            self.rng.pick(&items)
        };
        let res = self.sc(
            Sysnum::FrameAllocContiguous,
            [count, align, max_phys, 0, 0, 0],
        );
        let invalid = count == 0 || count > 4096 || align == 0 || !align.is_power_of_two();
        if invalid {
            self.expect_err("frame_alloc_contiguous", res, Error::InvalidArgument);
        }
        let Ok(h) = res else { return };
        if invalid {
            let _ = self.sc(Sysnum::FrameFree, [h, 0, 0, 0, 0, 0]);
            return;
        }
        self.add_live(h, Kind::Own, count);
        match self.sc(Sysnum::FramePhys, [h, 0, 0, 0, 0, 0]) {
            Ok(p) => {
                let frame = p / PAGE;
                let end = p.checked_add(count * PAGE);
                if p % PAGE != 0
                    || frame & (align - 1) != 0
                    || (max_phys != 0 && end.is_none_or(|e| e > max_phys))
                {
                    self.violation(format_args!(
                        "contiguous({count}, {align}, {max_phys:#x}) gave {p:#x}"
                    ));
                }
                Self::push_ring(&mut self.phys, &mut self.nphys, p);
            }
            Err(e) => self.violation(format_args!("frame_phys of a fresh run: {e}")),
        }
    }

    fn op_free(&mut self) {
        let h = self.handle();
        if self.is_board(h) {
            return;
        }
        let live = self.find_live(h);
        let r = self.sc(Sysnum::FrameFree, [h, 0, 0, 0, 0, 0]);
        match (live, r) {
            (Some(_), Ok(_)) => self.forget(h),
            (Some(_), Err(e)) => {
                self.violation(format_args!("frame_free of live {h:#x}: {e}"));
                self.forget(h);
            }
            (None, Ok(_)) => self.violation(format_args!("freed {h:#x}, which we do not hold")),
            (None, Err(e)) => {
                self.expect_err("frame_free of a dead handle", Err(e), Error::BadCapability)
            }
        }
    }

    fn op_phys(&mut self) {
        let h = self.handle();
        let live = self.find_live(h).map(|i| self.live[i]);
        let r = self.sc(Sysnum::FramePhys, [h, 0, 0, 0, 0, 0]);
        match live {
            Some(l) if l.kind != Kind::Unknown => match r {
                Ok(p) => {
                    if l.kind == Kind::Own {
                        Self::push_ring(&mut self.phys, &mut self.nphys, p);
                    }
                }
                Err(e) => self.violation(format_args!("frame_phys of own {h:#x}: {e}")),
            },
            Some(_) => {}
            None if !self.is_board(h) => {
                self.expect_err("frame_phys of a dead handle", r, Error::BadCapability)
            }
            None => {}
        }
    }

    /// `frame_seal`: a dead handle is BadCapability, a device frame
    /// InvalidArgument, a sealed one PermissionDenied, a mapped one
    /// AlreadyMapped; our own unmapped RAM seals unless it is shared
    /// (FrameInUse), and is then code for good.
    fn op_seal(&mut self) {
        let h = self.handle_live(70);
        if self.is_board(h) {
            return;
        }
        let live = self.find_live(h).map(|i| (i, self.live[i]));
        let mapped = self.maps[..self.nmaps].iter().any(|m| m.h == h);
        let r = self.sc(Sysnum::FrameSeal, [h, 0, 0, 0, 0, 0]);
        match live {
            None => self.expect_err("frame_seal of a dead handle", r, Error::BadCapability),
            Some((_, l)) if l.kind == Kind::Device => {
                self.expect_err("frame_seal of a device frame", r, Error::InvalidArgument)
            }
            Some((_, l)) if l.kind == Kind::Sealed => {
                self.expect_err("frame_seal, again", r, Error::PermissionDenied)
            }
            Some((_, l)) if l.kind == Kind::Own && mapped => {
                self.expect_err("frame_seal of a mapped frame", r, Error::AlreadyMapped)
            }
            Some((i, l)) => match r {
                Ok(_) if l.kind == Kind::Own => self.live[i].kind = Kind::Sealed,
                // Received: its rights and sharing are the sender's story;
                // it stays unknown (and untouched).
                Ok(_) => {}
                Err(Error::FrameInUse) => {}
                Err(e) if l.kind == Kind::Unknown => {
                    // Maybe sealed, mapped, or a device frame a driver sent.
                    let allowed = [
                        Error::PermissionDenied,
                        Error::AlreadyMapped,
                        Error::InvalidArgument,
                    ];
                    if !allowed.contains(&e) {
                        self.violation(format_args!("frame_seal of a received {h:#x}: {e}"));
                    }
                }
                Err(e) => self.violation(format_args!("frame_seal of our own {h:#x}: {e}")),
            },
        }
    }

    fn op_map(&mut self) {
        self.make_map_room();
        let h = self.handle_live(80);
        let live = self.find_live(h).map(|i| self.live[i]);
        let flags = self.map_flags();
        let pages = live.map_or(1, |l| l.pages);
        let own = live.is_some_and(|l| l.kind == Kind::Own);
        let (va, must_fail) = match self.rng.below(10) {
            0..=1 => (self.bad_va(), true),
            2 if own => {
                // The highest and lowest legal places, or far apart.
                let far = FAR + (self.rng.below(512) << 30) + self.rng.below(512) * PAGE;
                let items = [USER_MIN, USER_MAP_TOP - pages * PAGE, far];
                (self.rng.pick(&items), false)
            }
            _ => (self.window_va(own), false),
        };
        if protected(va) {
            return;
        }
        let r = self.sc(Sysnum::Map, [h, va, flags, 0, 0, 0]);
        let bad_flags = flags & !7 != 0 || flags & 3 == 3;
        let Ok(_) = r else {
            // Flags are checked before the handle.
            if live.is_none() && !self.is_board(h) && !bad_flags {
                self.expect_err("map through a dead handle", r, Error::BadCapability);
            }
            return;
        };
        let end = va.checked_add(pages * PAGE);
        let overlap = (0..pages).any(|i| self.map_at(va + i * PAGE).is_some());
        if must_fail
            || live.is_none()
            || va % PAGE != 0
            || va < USER_MIN
            || end.is_none_or(|e| e > USER_MAP_TOP)
            || overlap
            || bad_flags
        {
            self.violation(format_args!(
                "map({h:#x}, {va:#x}, {flags:#x}) succeeded (live {}, overlap {overlap})",
                live.is_some()
            ));
            return;
        }
        let Some(l) = live else { return };
        let write = flags & 1 != 0;
        // W^X per frame: our unsealed RAM never maps executable, sealed
        // RAM never writable.
        if (l.kind == Kind::Own && flags & 2 != 0) || (l.kind == Kind::Sealed && write) {
            self.violation(format_args!(
                "map({h:#x}, {va:#x}, {flags:#x}) of {:?} succeeded: W^X broken",
                l.kind
            ));
        }
        let touch = l.kind == Kind::Own;
        self.maps[self.nmaps] = Map {
            va,
            pages,
            h,
            write,
            touch,
        };
        self.nmaps += 1;
        if touch && l.fresh {
            // A fresh frame reads as zero (no data from its last owner).
            let last = va + (pages - 1) * PAGE;
            for at in [
                va,
                va + 8,
                va + SHADOW,
                va + PAGE - 8,
                last,
                last + PAGE - 8,
            ] {
                // SAFETY: just mapped, our own RAM, readable.
                let v = unsafe { peek(at) };
                if v != 0 {
                    self.violation(format_args!(
                        "fresh frame mapped at {va:#x} holds {v:#x} at {at:#x}"
                    ));
                    break;
                }
            }
            if let Some(i) = self.find_live(h) {
                self.live[i].fresh = false;
            }
        }
    }

    fn op_unmap(&mut self) {
        let r = self.rng.below(100);
        let va = if r < 45 && self.nmaps > 0 {
            self.maps[self.rng.below(self.nmaps as u64) as usize].va
        } else if r < 60 && self.nmaps > 0 {
            let m = self.maps[self.rng.below(self.nmaps as u64) as usize];
            if m.pages > 1 {
                m.va + PAGE
            } else {
                m.va + 8
            }
        } else if r < 80 {
            {
                let own = self.rng.chance(2);
                self.window_va(own)
            }
        } else {
            let code = main as *const () as u64 & !(PAGE - 1);
            let items = [
                0,
                USER_MIN,
                code,
                USER_STACK_TOP - PAGE,
                KERNEL_HALF,
                0x0000_8000_0000_0000,
                u64::MAX,
                USER_TOP - 1,
                PROBE_VA,
            ];
            self.rng.pick(&items)
        };
        if protected(va) {
            return;
        }
        let modelled = self.maps[..self.nmaps].iter().position(|m| m.va == va);
        let r = self.sc(Sysnum::Unmap, [va, 0, 0, 0, 0, 0]);
        match (modelled, r) {
            (Some(i), Ok(_)) => {
                self.nmaps -= 1;
                self.maps[i] = self.maps[self.nmaps];
            }
            (Some(i), Err(e)) => {
                self.violation(format_args!("unmap({va:#x}) of our mapping: {e}"));
                self.nmaps -= 1;
                self.maps[i] = self.maps[self.nmaps];
            }
            (None, Ok(_)) => {
                self.violation(format_args!("unmap({va:#x}) removed an unknown mapping"))
            }
            (None, Err(e)) => {
                // The rule `map` uses: an address it could never use is
                // invalid; a valid one where nothing starts is not mapped.
                let want = if va % PAGE != 0 || !(USER_MIN..USER_MAP_TOP).contains(&va) {
                    Error::InvalidAddress
                } else {
                    Error::NotMapped
                };
                self.expect_err("unmap where we mapped nothing", Err(e), want)
            }
        }
    }

    /// `send` of a capability through a send capability to a peer's
    /// endpoint or our own: moved or copied, with all its rights or a
    /// subset, or with flags or rights no call may carry.
    fn op_transfer(&mut self) {
        let h = self.handle();
        // Handle 0 is "no capability": a plain message, not a transfer.
        if self.is_board(h) || h == 0 {
            return;
        }
        let live = self.find_live(h);
        let to = self.sends[self.rng.below(self.instances as u64) as usize];
        let rights = self.rights();
        let mut flags = if self.rng.chance(2) {
            abi::SEND_COPY
        } else {
            0
        };
        if self.rng.below(10) < 6 {
            flags |= abi::SEND_RIGHTS | rights << abi::SEND_RIGHTS_SHIFT;
        }
        if self.rng.chance(10) {
            flags |= self.rng.pick(&[1 << 5, 1 << 40, u64::MAX]);
        }
        // Never SEND_BLOCK: a full queue must answer, not wait.
        flags &= !abi::SEND_BLOCK;
        let r = self.sc(Sysnum::Send, [to, 0, 0, h, flags, 0]);
        let flags_ok = flags & !abi::SEND_CAP_FLAGS == 0;
        let restrict = flags & abi::SEND_RIGHTS != 0;
        let asked = (flags >> abi::SEND_RIGHTS_SHIFT) & ALL_RIGHTS;
        match (live, r) {
            // Flags before the handle.
            (_, Err(e)) if !flags_ok => {
                self.expect_err("send with undefined flags", Err(e), Error::InvalidArgument)
            }
            // A peer's queue is full, or the peer is gone.
            (_, Err(Error::WouldBlock | Error::NoSuchProcess)) => {}
            (None, Ok(_)) => self.violation(format_args!("sent {h:#x}, which we do not hold")),
            (None, Err(e)) => {
                self.expect_err("send of a dead handle", Err(e), Error::BadCapability)
            }
            // A received capability may lack TRANSFER, checked first.
            (Some(i), Err(Error::PermissionDenied)) if self.live[i].kind == Kind::Unknown => {}
            (Some(_), Err(e)) if restrict && asked == 0 => {
                self.expect_err("send with no rights", Err(e), Error::InvalidArgument)
            }
            (Some(_), Err(_)) => {}
            (Some(i), Ok(_)) => {
                if !flags_ok || restrict && asked == 0 {
                    self.violation(format_args!("send with flags {flags:#x} succeeded"));
                }
                // Rights only shrink: no EXEC from unsealed RAM, no WRITE
                // from sealed.
                let kind = self.live[i].kind;
                let (write, exec) = (asked & 2 != 0, asked & 0x10 != 0);
                if restrict && ((kind == Kind::Own && exec) || (kind == Kind::Sealed && write)) {
                    self.violation(format_args!(
                        "send of {kind:?} {h:#x} with rights {asked:#x} succeeded"
                    ));
                }
                if flags & abi::SEND_COPY == 0 {
                    self.forget(h);
                }
            }
        }
    }

    /// `recv` on our endpoint without waiting: a capability a peer (or we)
    /// sent, or nothing.
    fn op_recv(&mut self) {
        self.make_room(1);
        if let Some(h) = self.take() {
            // Its size is unknown: the model counts one page per mapping
            // (fewer than there may be, which only hides collisions).
            self.add_live(h, Kind::Unknown, 1);
        }
    }

    /// The capability of the oldest message on our endpoint, if any.
    fn take(&mut self) -> Option<u64> {
        // SAFETY: recv writes only registers, all outputs of syscall6_ipc.
        let [rax, _, _, _, cap, _] =
            unsafe { abi::raw::syscall6_ipc(Sysnum::Recv as u64, [self.own_recv, 0, 0, 0, 0, 0]) };
        self.calls += 1;
        match Error::check(rax) {
            Ok(()) => (cap != 0).then_some(cap),
            Err(Error::WouldBlock) => None,
            Err(e) => {
                self.violation(format_args!("recv on our endpoint: {e}"));
                None
            }
        }
    }

    fn op_find(&mut self) {
        let mut buf = [0u8; 32];
        let r = self.rng.below(10);
        let (ptr, len, want): (u64, u64, Option<Result<u64, Error>>) = match r {
            0..=3 => {
                let j = self.rng.below(self.instances as u64) as usize;
                let name = instance_name(j, &mut buf);
                let expect = (j == self.me).then_some(Ok(self.pid));
                (name.as_ptr() as u64, name.len() as u64, expect)
            }
            4 => {
                let name = "nobody-by-that-name";
                (
                    name.as_ptr() as u64,
                    name.len() as u64,
                    Some(Err(Error::NoSuchProcess)),
                )
            }
            5 => {
                let name = "test-fu";
                (
                    name.as_ptr() as u64,
                    name.len() as u64,
                    Some(Err(Error::NoSuchProcess)),
                )
            }
            6 => {
                let name = [b'x'; 40];
                let len = self.rng.pick(&[0, 33, 40, u64::MAX]);
                (name.as_ptr() as u64, len, Some(Err(Error::InvalidArgument)))
            }
            _ => {
                let len = self.rng.pick(&[1, 4, 32]);
                (self.bad_ptr(), len, Some(Err(Error::InvalidAddress)))
            }
        };
        let got = self.sc(Sysnum::ProcessFind, [ptr, len, 0, 0, 0, 0]);
        if let Some(want) = want {
            if got != want {
                self.violation(format_args!(
                    "process_find({ptr:#x}, {len}) = {got:?}, expected {want:?}"
                ));
            }
        }
    }

    fn op_stats(&mut self) {
        let len = core::mem::size_of::<FrameStats>() as u64;
        let (ptr, ok) = self.out_ptr(len);
        let stack = ptr == self.out.0.as_mut_ptr() as u64;
        let r = self.sc(Sysnum::FrameStats, [ptr, 0, 0, 0, 0, 0]);
        self.check_out("frame_stats", ptr, ok, r);
        if stack && r.is_ok() {
            // SAFETY: the kernel wrote a whole FrameStats at the start of
            // `out`, which is large enough and aligned.
            let s = unsafe { core::ptr::read_volatile(ptr as *const FrameStats) };
            if s.free + s.reserved + s.kernel + s.held_by_all != s.total {
                self.violation(format_args!("frame_stats does not add up: {s:?}"));
            }
        }
    }

    fn op_info(&mut self) {
        let len = core::mem::size_of::<SysInfo>() as u64;
        let (ptr, ok) = self.out_ptr(len);
        let r = self.sc(Sysnum::SysInfo, [ptr, 0, 0, 0, 0, 0]);
        self.check_out("sys_info", ptr, ok, r);
    }

    /// An endpoint of our own, a message to ourselves and back: the badge
    /// and words arrive as sent, a capability travels (and is charged to
    /// us meanwhile), a full queue refuses, and everything goes again.
    fn op_endpoint(&mut self) {
        self.make_room(3);
        let publish = self.rng.below(2);
        let Ok(recv) = self.sc(Sysnum::EndpointCreate, [publish, 0, 0, 0, 0, 0]) else {
            return;
        };
        let badge = self.rng.next();
        let send = match self.sc(Sysnum::EndpointMint, [recv, badge, 0, 0, 0, 0]) {
            Ok(h) => h,
            Err(e) => {
                self.violation(format_args!("endpoint_mint of our own endpoint: {e}"));
                let _ = self.sc(Sysnum::FrameFree, [recv, 0, 0, 0, 0, 0]);
                return;
            }
        };
        let words = [self.rng.next(), self.rng.next()];
        let r = self.sc(Sysnum::Send, [send, words[0], words[1], 0, 0, 0]);
        if let Err(e) = r {
            self.violation(format_args!("send to our own endpoint: {e}"));
        }
        // SAFETY: recv writes only registers, all outputs of syscall6_ipc.
        let got = unsafe { abi::raw::syscall6_ipc(Sysnum::Recv as u64, [recv, 0, 0, 0, 0, 0]) };
        self.calls += 1;
        if got != [0, badge, words[0], words[1], 0, 0] {
            self.violation(format_args!(
                "recv gave {got:x?}, sent badge {badge:#x} {words:x?}"
            ));
        }
        if self.rng.chance(4) {
            let mut full = None;
            for i in 0..=abi::bounds::QUEUE {
                if let Err(e) = self.sc(Sysnum::Send, [send, i as u64, 0, 0, 0, 0]) {
                    full = Some((i, e));
                    break;
                }
            }
            if full != Some((abi::bounds::QUEUE, Error::WouldBlock)) {
                self.violation(format_args!("a full queue: {full:?}"));
            }
        }
        // Freeing the receive capability ends the endpoint (and what waits
        // in it); the send capability then names a dead one.
        let _ = self.sc(Sysnum::FrameFree, [recv, 0, 0, 0, 0, 0]);
        let r = self.sc(Sysnum::Send, [send, 0, 0, 0, 0, 0]);
        self.expect_err("send to a freed endpoint", r, Error::NoSuchProcess);
        let _ = self.sc(Sysnum::FrameFree, [send, 0, 0, 0, 0, 0]);
    }

    fn op_cap_info(&mut self) {
        let h = self.handle();
        let live = self.find_live(h).map(|i| self.live[i]);
        let len = core::mem::size_of::<CapInfo>() as u64;
        let (ptr, ok) = self.out_ptr(len);
        let stack = ptr == self.out.0.as_mut_ptr() as u64;
        let r = self.sc(Sysnum::CapInfo, [h, ptr, 0, 0, 0, 0]);
        let Some(l) = live else {
            // The handle is checked before the buffer.
            if !self.is_board(h) {
                self.expect_err("cap_info of a dead handle", r, Error::BadCapability);
            }
            return;
        };
        self.check_out("cap_info", ptr, ok, r);
        if !(stack && r.is_ok()) {
            return;
        }
        // SAFETY: the kernel wrote a whole CapInfo at the start of `out`,
        // which is large enough and aligned.
        let info = unsafe { core::ptr::read_volatile(ptr as *const CapInfo) };
        let all = abi::Rights::ALL.bits();
        let ram = if l.pages == 1 {
            CapKindCode::RamFrame
        } else {
            CapKindCode::RamRun
        };
        let good = match l.kind {
            Kind::Own | Kind::Sealed => {
                let rights = if l.kind == Kind::Own {
                    abi::Rights::WRITABLE
                } else {
                    abi::Rights::EXECUTABLE
                };
                info.cap_kind() == Some(ram)
                    && info.frames == l.pages
                    && info.rights == rights.bits()
                    && info.phys().is_some_and(|p| p % PAGE == 0)
            }
            Kind::Device => {
                info.cap_kind() == Some(CapKindCode::Device)
                    && info.frames == 1
                    && info.rights == abi::Rights::WRITABLE.bits()
                    && info.phys().is_some()
            }
            // Received: any kind this ABI defines, some rights, and the
            // address exactly when MAP is among them.
            Kind::Unknown => {
                info.cap_kind().is_some()
                    && info.frames >= 1
                    && info.rights != 0
                    && info.rights & !all == 0
                    && info.phys().is_some() == (info.rights & abi::Rights::MAP.bits() != 0)
            }
        };
        if !good {
            self.violation(format_args!("cap_info({h:#x}) = {info:?}"));
        }
    }

    fn check_out(&mut self, what: &str, ptr: u64, ok: Option<bool>, r: Result<u64, Error>) {
        match (ok, r) {
            (Some(true), Err(e)) => self.violation(format_args!("{what}({ptr:#x}) refused: {e}")),
            (Some(false), Ok(_)) => self.violation(format_args!("{what}({ptr:#x}) accepted")),
            (Some(false), Err(e)) => self.expect_err(what, Err(e), Error::InvalidAddress),
            _ => {}
        }
    }

    fn op_debug_write(&mut self) {
        static NEWLINE: [u8; 1] = *b"\n";
        let r = self.rng.below(100);
        let (ptr, len, want) = if r < 15 {
            // Nothing to print: succeeds with 0.
            (NEWLINE.as_ptr() as u64, 0, Some(Ok(0)))
        } else if r < 30 {
            // Nothing to copy, but the range may be outside the user half.
            (self.bad_ptr(), 0, None)
        } else if r < 31 && self.rng.chance(100) {
            // Rarely (an empty line on the console): a real write.
            (NEWLINE.as_ptr() as u64, 1, Some(Ok(1)))
        } else if r < 55 {
            let len = self
                .rng
                .pick(&[MAX_DEBUG_WRITE + 1, 1 << 32, 1 << 63, u64::MAX]);
            (
                NEWLINE.as_ptr() as u64,
                len,
                Some(Err(Error::InvalidArgument)),
            )
        } else {
            let len = self.rng.pick(&[1, 8, 4095, 4096]);
            (self.bad_ptr(), len, Some(Err(Error::InvalidAddress)))
        };
        let got = self.sc(Sysnum::DebugWrite, [ptr, len, 0, 0, 0, 0]);
        if let Some(want) = want {
            if got != want {
                self.violation(format_args!(
                    "debug_write({ptr:#x}, {len}) = {got:?}, expected {want:?}"
                ));
            }
        }
    }

    fn op_trace(&mut self) {
        if self.rng.chance(1 << 13) {
            // Tracing on for a moment: every record must still decode.
            let _ = self.sc(Sysnum::TraceCtl, [1, 0, 0, 0, 0, 0]);
            let r = self.sc(Sysnum::TraceCtl, [0, 0, 0, 0, 0, 0]);
            if r.is_err() {
                self.violation(format_args!("trace_ctl(0): {r:?}"));
            }
            return;
        }
        let v = self
            .rng
            .pick(&[0, 2, 3, 0x100, 1 << 32, 1 << 32 | 1, 1 << 63, u64::MAX]);
        let r = self.sc(Sysnum::TraceCtl, [v, 0, 0, 0, 0, 0]);
        let want = if v == 0 {
            Ok(0)
        } else {
            Err(Error::InvalidArgument)
        };
        if r != want {
            self.violation(format_args!("trace_ctl({v:#x}) = {r:?}"));
        }
    }

    fn op_unknown(&mut self) {
        let n = Sysnum::ALL.iter().map(|&s| s as u64).max().unwrap_or(0) + 1;
        let items = [
            n,
            n + 1,
            64,
            255,
            // Would be `exit`/`yield` if the kernel looked at 32 bits only.
            1 << 32 | Sysnum::Exit as u64,
            1 << 32 | Sysnum::Yield as u64,
            1 << 63,
            u64::MAX,
            n + self.rng.below(u64::MAX - n),
        ];
        let num = self.rng.pick(&items);
        let args = [
            self.rng.next(),
            self.rng.next(),
            self.rng.next(),
            self.rng.next(),
            self.rng.next(),
            self.rng.next(),
        ];
        let r = self.raw(num, args);
        self.expect_err("undefined syscall", r, Error::UnknownSyscall);
    }

    // ----- memory: shadows, boards -----

    /// Reads (and sometimes rewrites) the shadow word of an own capability
    /// through one of its mappings: every mapping of it must see the last
    /// value written through any of them.
    fn touch(&mut self) {
        if self.nmaps == 0 {
            return;
        }
        let m = self.maps[self.rng.below(self.nmaps as u64) as usize];
        if !m.touch {
            return;
        }
        let Some(i) = self.find_live(m.h) else {
            self.violation(format_args!(
                "mapping {:#x} of a dead handle (fuzzer bug)",
                m.va
            ));
            return;
        };
        // SAFETY: the model says `m` is mapped, our own RAM.
        let v = unsafe { peek(m.va + SHADOW) };
        let want = self.live[i].shadow;
        if v != want {
            self.violation(format_args!(
                "shadow word at {:#x} reads {v:#x}, wrote {want:#x}",
                m.va + SHADOW
            ));
        }
        if m.write && self.rng.chance(2) {
            let new = self.calls << 8 | self.me as u64 | 0x8000_0000_0000_0000;
            let last = m.va + (m.pages - 1) * PAGE;
            // SAFETY: mapped writable, our own RAM, no Rust object in it.
            // Dirty words make a frame that is not zeroed on reuse show.
            unsafe {
                poke(m.va + SHADOW, new);
                poke(m.va + 16, new);
                poke(last + PAGE - 16, new);
            }
            self.live[i].shadow = new;
        }
    }

    /// Writes some of our live handle values on our board.
    fn publish(&mut self) {
        for k in 0..BOARD_HANDLES.min(self.nlive as u64) {
            let h = self.live[k as usize].h;
            // SAFETY: the board is mapped writable for the whole run.
            unsafe { poke(BOARD_VA + (SLOT_HANDLES + k) * 8, h) };
        }
        for k in 0..BOARD_PHYS.min(self.nphys as u64) {
            let p = self.phys[k as usize];
            // SAFETY: as above.
            unsafe { poke(BOARD_VA + (SLOT_PHYS + k) * 8, p) };
        }
    }

    /// Reads handle values off a peer's board (foreign handles).
    fn learn(&mut self) {
        if self.nboards == 0 {
            return;
        }
        let b = self.rng.below(self.nboards as u64);
        for _ in 0..4 {
            let k = self.rng.below(BOARD_HANDLES);
            // SAFETY: peer boards stay mapped (read-only) for the whole run.
            let h = unsafe { peek(PEER_BOARDS_VA + b * PAGE + (SLOT_HANDLES + k) * 8) };
            if h != 0 && self.find_live(h).is_none() {
                Self::push_ring(&mut self.foreign, &mut self.nforeign, h);
            }
        }
        let k = self.rng.below(BOARD_PHYS);
        // SAFETY: as above.
        let p = unsafe { peek(PEER_BOARDS_VA + b * PAGE + (SLOT_PHYS + k) * 8) };
        if p != 0 {
            // A peer's frame: `FrameInUse` while it holds it, ours (and
            // zeroed) once it let go.
            Self::push_ring(&mut self.phys, &mut self.nphys, p);
        }
    }

    /// Memory pressure: gives everything back, then takes runs of 4096
    /// frames, then ever smaller ones, until the kernel has no frame left
    /// (or the pool is full). Normal churn frees them again, at random.
    fn hog(&mut self) {
        while self.nlive > 0 {
            let h = self.live[self.nlive - 1].h;
            if self.sc(Sysnum::FrameFree, [h, 0, 0, 0, 0, 0]).is_err() {
                self.violation(format_args!("hog: freeing live {h:#x}"));
            }
            self.forget(h);
        }
        let mut count = 4096;
        while self.nlive < HOG_LIVE {
            match self.sc(Sysnum::FrameAllocContiguous, [count, 1, 0, 0, 0, 0]) {
                Ok(h) => self.add_live(h, Kind::Own, count),
                Err(Error::OutOfMemory) if count > 1 => count /= 2,
                Err(Error::OutOfMemory) => break,
                Err(e) => {
                    self.violation(format_args!("contiguous({count}) under pressure: {e}"));
                    break;
                }
            }
        }
        let free = sys::frame_stats().free;
        println!(
            "fuzz[{}]: hog: took {} runs, {free} frames left free",
            self.me, self.nlive
        );
    }

    /// TLB check: a page read through one mapping, then unmapped (by
    /// `unmap`, `frame_free` or a move in a message) and mapped again to a
    /// fresh frame, must read the fresh frame, not the old one.
    fn remap(&mut self) {
        let Some(m) = self.maps[..self.nmaps]
            .iter()
            .find(|m| m.touch && m.write)
            .copied()
        else {
            return;
        };
        let Some(i) = self.find_live(m.h) else {
            return;
        };
        let old = self.calls << 8 | self.me as u64 | 0x4000_0000_0000_0000;
        // SAFETY: the model says `m` is our own RAM, mapped writable.
        unsafe {
            poke(m.va + SHADOW, old);
            poke(m.va + 16, old);
        }
        self.live[i].shadow = old;
        let mut how = self.rng.below(3);
        let mut r = match how {
            0 => self.sc(Sysnum::Unmap, [m.va, 0, 0, 0, 0, 0]),
            1 => self.sc(Sysnum::FrameFree, [m.h, 0, 0, 0, 0, 0]),
            _ => {
                let own = self.sends[self.me];
                self.sc(Sysnum::Send, [own, 0, 0, m.h, 0, 0])
            }
        };
        if how == 2 && r == Err(Error::WouldBlock) {
            // Our own queue is full (peers fill it too): a refusal the
            // kernel owes us. Give the frame back instead.
            how = 1;
            r = self.sc(Sysnum::FrameFree, [m.h, 0, 0, 0, 0, 0]);
        }
        if let Err(e) = r {
            self.violation(format_args!("remap: removing {:#x} ({how}): {e}", m.va));
        }
        if how == 0 {
            if let Some(j) = self.maps[..self.nmaps].iter().position(|x| x.va == m.va) {
                self.nmaps -= 1;
                self.maps[j] = self.maps[self.nmaps];
            }
        } else {
            self.forget(m.h);
        }
        self.make_room(1);
        let Ok(h) = self.sc(Sysnum::FrameAlloc, [0; 6]) else {
            return;
        };
        self.add_live(h, Kind::Own, 1);
        if self.sc(Sysnum::Map, [h, m.va, 1, 0, 0, 0]).is_err() {
            return;
        }
        self.make_map_room();
        self.maps[self.nmaps] = Map {
            va: m.va,
            pages: 1,
            h,
            write: true,
            touch: true,
        };
        self.nmaps += 1;
        // SAFETY: just mapped writable, our own fresh frame.
        let (a, b) = unsafe { (peek(m.va + SHADOW), peek(m.va + 16)) };
        if a != 0 || b != 0 {
            self.violation(format_args!(
                "remap at {:#x}: fresh frame reads {a:#x}/{b:#x} (old frame had {old:#x})",
                m.va
            ));
        }
        if let Some(j) = self.find_live(h) {
            self.live[j].fresh = false;
        }
    }

    /// Maps one page at consecutive addresses until the kernel refuses
    /// (its per-process bound on mappings), then unmaps them all.
    fn flood(&mut self) {
        let Some(l) = self.live[..self.nlive]
            .iter()
            .find(|l| l.kind == Kind::Own && l.pages == 1)
            .copied()
        else {
            return;
        };
        let mut n = 0;
        let refusal = loop {
            if n == FLOOD_MAX {
                break None;
            }
            match self.sc(Sysnum::Map, [l.h, FLOOD_VA + n * PAGE, 0, 0, 0, 0]) {
                Ok(_) => n += 1,
                Err(e) => break Some(e),
            }
        };
        if refusal != Some(Error::OutOfMemory) || n < 1024 {
            self.violation(format_args!(
                "flood: {n} mappings, then {refusal:?} (expected a bound, OutOfMemory)"
            ));
        }
        for i in 0..n {
            let r = self.sc(Sysnum::Unmap, [FLOOD_VA + i * PAGE, 0, 0, 0, 0, 0]);
            if r.is_err() {
                self.violation(format_args!("flood: unmap {i}: {r:?}"));
            }
        }
        println!(
            "fuzz[{}]: flood: {n} mappings of one frame, then {refusal:?}; all unmapped",
            self.me
        );
    }

    /// Boards: ours goes to every peer, theirs come to us; then everybody
    /// waits until everybody holds every board, so that no random transfer
    /// can arrive before a board.
    fn setup(&mut self) -> Result<(), Error> {
        // Page tables for the flood and probe pages now, while the
        // per-process table quota has room (far mappings may use it up
        // later, and tables stay until exit).
        let scratch = sys::frame_alloc()?;
        let warm = (0..FLOOD_MAX.div_ceil(512)).map(|i| FLOOD_VA + i * 512 * PAGE);
        for va in warm.chain([PROBE_VA]) {
            sys::map(scratch, va, abi::MapFlags::NONE)?;
            // SAFETY: just mapped, never referenced.
            unsafe { sys::unmap(va) }?;
        }
        // SAFETY: no longer mapped anywhere.
        unsafe { sys::frame_free(scratch) }?;
        let board = sys::frame_alloc()?;
        sys::map(board, BOARD_VA, abi::MapFlags::WRITE)?;
        // SAFETY: just mapped writable at BOARD_VA, used by nothing else.
        unsafe { poke(BOARD_VA + SLOT_MAGIC * 8, BOARD_MAGIC) };
        self.own_board = board.raw();
        self.own_recv = sys_ok(abi::raw::endpoint_create(true))?;
        self.sends[self.me] = sys_ok(abi::raw::endpoint_mint(
            Handle::from_raw(self.own_recv),
            self.pid,
        ))?;
        if self.instances == 1 {
            // SAFETY: as above.
            unsafe { poke(BOARD_VA + SLOT_READY * 8, READY) };
            return Ok(());
        }
        // Boards travel as read-only copies in messages to each peer's
        // published endpoint.
        let mut buf = [0u8; 32];
        for j in 0..self.instances {
            let name = instance_name(j, &mut buf);
            if j == self.me {
                continue;
            }
            let mut waited = 0;
            let to = loop {
                match SendCap::lookup(name) {
                    Ok(cap) => break cap.into_raw(),
                    Err(Error::NoSuchProcess) if waited < PATIENCE => {
                        waited += 1;
                        sys::yield_now();
                    }
                    Err(e) => {
                        println!("fuzz[{}]: no endpoint of {name}: {e}", self.me);
                        return Err(e);
                    }
                }
            };
            self.sends[j] = to.raw();
            let flags = abi::SEND_COPY
                | abi::SEND_BLOCK
                | abi::send_rights(abi::Rights::READ | abi::Rights::MAP);
            // SAFETY: a copy without WRITE: our mapping stays, peers can
            // only read.
            let (rax, _) = unsafe { abi::raw::send(to, 0, 0, board.raw(), flags) };
            Error::check(rax)?;
        }
        let mut got = 0;
        while got + 1 < self.instances {
            // SAFETY: recv writes only registers, all outputs of syscall6_ipc.
            let [rax, _, _, _, h, _] = unsafe {
                abi::raw::syscall6_ipc(
                    Sysnum::Recv as u64,
                    [self.own_recv, PATIENCE as u64, 0, 0, 0, 0],
                )
            };
            if let Err(e) = Error::check(rax) {
                println!("fuzz[{}]: waiting for boards: {e}", self.me);
                return Err(e);
            }
            let h = Handle::from_raw(h);
            sys::map(h, PEER_BOARDS_VA + got as u64 * PAGE, abi::MapFlags::NONE)?;
            self.boards[got] = h.raw();
            got += 1;
        }
        let mut waited = 0;
        self.nboards = got;
        // SAFETY: our board is mapped writable.
        unsafe { poke(BOARD_VA + SLOT_READY * 8, READY) };
        for b in 0..got as u64 {
            loop {
                // SAFETY: peer boards are mapped readable.
                let (magic, ready) = unsafe {
                    (
                        peek(PEER_BOARDS_VA + b * PAGE + SLOT_MAGIC * 8),
                        peek(PEER_BOARDS_VA + b * PAGE + SLOT_READY * 8),
                    )
                };
                if magic != BOARD_MAGIC {
                    println!("fuzz[{}]: a board without magic: {magic:#x}", self.me);
                    return Err(Error::InvalidArgument);
                }
                if ready == READY {
                    break;
                }
                waited += 1;
                if waited > PATIENCE {
                    println!("fuzz[{}]: peers never got ready", self.me);
                    return Err(Error::WouldBlock);
                }
                sys::yield_now();
            }
        }
        Ok(())
    }

    /// Gives everything back and checks that nothing is left, or (one run
    /// in two, by the seed) leaves it all to `exit`, whose release the
    /// kernel's own leak check at the end of the run covers.
    fn teardown(&mut self, baseline: u64) {
        if self.rng.chance(2) {
            println!(
                "fuzz[{}]: leaving {} capabilities and {} mappings to exit",
                self.me, self.nlive, self.nmaps
            );
            return;
        }
        while self.nlive > 0 {
            let h = self.live[self.nlive - 1].h;
            let r = self.sc(Sysnum::FrameFree, [h, 0, 0, 0, 0, 0]);
            if r.is_err() {
                self.violation(format_args!("final free of {h:#x}: {r:?}"));
            }
            self.forget(h);
        }
        // Whatever peers sent and we did not take yet.
        for _ in 0..1000 {
            let Some(h) = self.take() else {
                break;
            };
            let r = self.sc(Sysnum::FrameFree, [h, 0, 0, 0, 0, 0]);
            if r.is_err() {
                self.violation(format_args!("freeing received {h:#x}: {r:?}"));
            }
        }
        let held = sys::frame_stats().held_by_caller;
        if held != baseline {
            self.violation(format_args!(
                "holding {held} frames after giving everything back, {baseline} before"
            ));
        }
        self.nmaps = 0;
    }

    fn summary(&self) {
        let mut line = Line::new();
        for (code, &n) in self.results.iter().enumerate().skip(1) {
            if n > 0 {
                let name = abi::Error::ALL.get(code - 1).map_or("other", |e| e.name());
                line.push(format_args!(" {name}={n}"));
            }
        }
        let mut calls = Line::new();
        for (slot, &(n, ok)) in self.by_call.iter().enumerate() {
            if n > 0 {
                let name = Sysnum::ALL.get(slot).map_or("undefined", |s| s.name());
                calls.push(format_args!(" {name}={ok}/{n}"));
            }
        }
        println!("fuzz[{}]: ok/calls:{}", self.me, calls.as_str());
        println!(
            "fuzz[{}]: done: {} calls, {} ok; errors:{}; {} violations",
            self.me,
            self.calls,
            self.results[0],
            line.as_str(),
            self.violations
        );
    }
}
