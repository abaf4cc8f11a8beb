//! test-hostile: attacks the kernel through every syscall and checks that
//! each attack is refused with exactly the expected error.
//!
//! Every result is decoded losslessly (`libos::Error`): a code the ABI does
//! not define comes back as `Error::Unknown(code)` and fails the check,
//! instead of passing for another error.
//!
//! Runs with `test-hostile-victim` (another process whose handle we steal,
//! and which dies while we map a frame it shared) and `test-hostile-spin`
//! (spins without yielding until we are gone: preemption must keep us
//! running). Prints one line per attack and a final tally; exits 0 only if
//! every attack was refused as expected and nothing leaked.
#![no_std]
#![no_main]

use abi::{Rights, Sysnum};
use exo_demos::Line;
use libos::ipc::{Endpoint, SendCap};
use libos::{println, sys, Error};

libos::entry!(main);

const VA: u64 = 0x0000_3000_0000_0000;
const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;
const NON_CANONICAL: u64 = 0x0000_8000_0000_0000;

/// A raw syscall with any registers: the kernel must survive all of them.
fn sc(num: u64, a: [u64; 6]) -> Result<u64, Error> {
    // SAFETY: every attack targets addresses we do not use from Rust (or
    // none at all); the kernel validates, we only read its verdict.
    // (`syscall6_ipc`: garbage numbers may name a call that delivers a
    // message and writes rsi, rdi, r8 and r9 too.)
    let [rax, rdx, ..] = unsafe { abi::raw::syscall6_ipc(num, a) };
    Error::check(rax).map(|()| rdx)
}

fn s(num: Sysnum, a: [u64; 6]) -> Result<u64, Error> {
    sc(num as u64, a)
}

struct Tally {
    passed: u32,
    failed: u32,
}

impl Tally {
    fn expect(&mut self, name: &str, got: Result<u64, Error>, want: Error) {
        if got == Err(want) {
            self.passed += 1;
            println!("hostile: {name}: refused: {want}");
        } else {
            self.failed += 1;
            println!("hostile: {name}: FAILED: got {got:?}, expected {want}");
        }
    }

    fn check(&mut self, name: &str, ok: bool) {
        if ok {
            self.passed += 1;
            println!("hostile: {name}: ok");
        } else {
            self.failed += 1;
            println!("hostile: {name}: FAILED");
        }
    }
}

fn alloc() -> u64 {
    s(Sysnum::FrameAlloc, [0; 6]).expect("frame_alloc")
}

fn free(h: u64) -> Result<u64, Error> {
    s(Sysnum::FrameFree, [h, 0, 0, 0, 0, 0])
}

fn held() -> u64 {
    sys::frame_stats().held_by_caller
}

fn main() -> Result<(), Error> {
    let mut t = Tally {
        passed: 0,
        failed: 0,
    };
    // Reserved up front: the heap must not need a frame while the table is
    // full or memory is exhausted, nor grow between the counts we compare.
    let mut handles = alloc::vec::Vec::with_capacity(4096);
    let mut runs = alloc::vec::Vec::with_capacity(4096);
    let baseline = held();
    let info = sys::sys_info();
    let me = sys::getpid();

    // A foreign handle and a frame whose sharer died: see test-hostile-victim.
    // It sends us a read-only copy of its page, then calls us with a send
    // capability to its own endpoint; we answer, then call it: it exits
    // instead of receiving, and we must wake with NoSuchProcess.
    let ep = Endpoint::create(true)?;
    let first = ep.recv(abi::FOREVER)?;
    let shared = first.cap.ok_or(Error::InvalidArgument)?.raw();
    let second = ep.recv(abi::FOREVER)?;
    t.check(
        "both of the victim's messages carry its pid as badge (stamped by lookup)",
        first.badge == second.badge && first.badge != me && second.call,
    );
    // SAFETY: `second` came with the victim's send capability, ours now.
    let victim = unsafe { SendCap::from_raw(second.cap.ok_or(Error::InvalidArgument)?) };
    libos::ipc::reply([0, 0])?;
    t.expect(
        "a call blocked on an endpoint whose owner exits wakes with an error",
        victim.call([1, 2]).map(|m| m.words[0]),
        Error::NoSuchProcess,
    );
    drop(victim);
    s(Sysnum::Map, [shared, VA, 0, 0, 0, 0]).expect("map shared");
    // SAFETY: VA maps the shared frame readable (just mapped).
    let foreign = unsafe { core::ptr::read_volatile((VA + 8) as *const u64) };
    // SAFETY: as above.
    let marker = unsafe { core::ptr::read_volatile(VA as *const u64) };
    t.check(
        "a frame stays alive after its sharer died (a non-driver, it could not claim a device)",
        marker == 0x5eed_f00d,
    );
    t.expect(
        "another process's handle",
        s(Sysnum::FramePhys, [foreign, 0, 0, 0, 0, 0]),
        Error::BadCapability,
    );
    free(shared).expect("free shared");

    // Handles.
    t.expect(
        "random handle",
        s(Sysnum::FramePhys, [0x1234_5678_9abc_def0, 0, 0, 0, 0, 0]),
        Error::BadCapability,
    );
    t.expect(
        "zero handle",
        s(Sysnum::FramePhys, [0; 6]),
        Error::BadCapability,
    );
    let h = alloc();
    for (i, bit) in [0u32, 1, 7, 31, 32, 63].into_iter().enumerate() {
        let near = h ^ (1u64 << bit);
        let name = [
            "near-valid handle (bit 0)",
            "near-valid handle (bit 1)",
            "near-valid handle (bit 7)",
            "near-valid handle (bit 31)",
            "near-valid handle (bit 32)",
            "near-valid handle (bit 63)",
        ][i];
        t.expect(
            name,
            s(Sysnum::FramePhys, [near, 0, 0, 0, 0, 0]),
            Error::BadCapability,
        );
    }
    t.check(
        "live handle still works",
        matches!(s(Sysnum::FramePhys, [h, 0, 0, 0, 0, 0]), Ok(p) if p % 4096 == 0),
    );
    free(h).expect("free");
    t.expect(
        "freed handle",
        s(Sysnum::FramePhys, [h, 0, 0, 0, 0, 0]),
        Error::BadCapability,
    );
    t.expect("double free", free(h), Error::BadCapability);
    let h2 = alloc();
    t.expect(
        "stale handle (slot reused)",
        s(Sysnum::FramePhys, [h, 0, 0, 0, 0, 0]),
        Error::BadCapability,
    );
    t.expect(
        "map through a stale handle",
        s(Sysnum::Map, [h, VA, 1, 0, 0, 0]),
        Error::BadCapability,
    );

    // Capabilities in messages (the only way they travel).
    let no_write = Rights::READ | Rights::MAP | Rights::TRANSFER;
    let to_ep = SendCap::lookup("test-hostile")?.into_raw().raw();
    s(
        Sysnum::Send,
        [to_ep, 0, 0, h2, abi::send_rights(no_write), 0],
    )
    .expect("send to ourselves, without WRITE");
    t.expect(
        "handle used after sending it away",
        free(h2),
        Error::BadCapability,
    );
    let got = ep.recv(0)?;
    t.check(
        "the badge is the sender's pid, whatever it sends",
        got.badge == me && got.words == [0, 0],
    );
    let weak = got.cap.ok_or(Error::InvalidArgument)?.raw();
    t.expect(
        "send with more rights than held",
        s(
            Sysnum::Send,
            [to_ep, 0, 0, weak, abi::send_rights(Rights::ALL), 0],
        ),
        Error::PermissionDenied,
    );
    t.expect(
        "map writable without the WRITE right",
        s(Sysnum::Map, [weak, VA, 1, 0, 0, 0]),
        Error::PermissionDenied,
    );
    t.expect(
        "send through a frame capability (no send capability)",
        s(Sysnum::Send, [weak, 0, 0, 0, 0, 0]),
        Error::InvalidArgument,
    );
    t.expect(
        "send through our receive capability",
        s(Sysnum::Send, [ep.handle().raw(), 0, 0, 0, 0, 0]),
        Error::PermissionDenied,
    );
    t.expect(
        "irq_bind through another process's handle",
        s(Sysnum::IrqBind, [foreign, to_ep, 0, 0, 0, 0]),
        Error::BadCapability,
    );
    t.expect(
        "send with undefined flags",
        s(Sysnum::Send, [to_ep, 0, 0, weak, 1 << 5, 0]),
        Error::InvalidArgument,
    );
    t.expect(
        "send with no rights at all",
        s(
            Sysnum::Send,
            [to_ep, 0, 0, weak, abi::send_rights(Rights::NONE), 0],
        ),
        Error::InvalidArgument,
    );
    t.expect(
        "send with undefined rights",
        s(
            Sysnum::Send,
            [
                to_ep,
                0,
                0,
                weak,
                abi::SEND_RIGHTS | 0x20 << abi::SEND_RIGHTS_SHIFT,
                0,
            ],
        ),
        Error::InvalidArgument,
    );
    t.expect(
        "send rights without a capability",
        s(
            Sysnum::Send,
            [to_ep, 0, 0, 0, abi::send_rights(Rights::READ), 0],
        ),
        Error::InvalidArgument,
    );
    t.expect(
        "the retired cap_transfer (10)",
        sc(10, [weak, me, 1, 0, 0, 0]),
        Error::UnknownSyscall,
    );
    t.expect(
        "the retired cap_recv (11)",
        sc(11, [0; 6]),
        Error::UnknownSyscall,
    );
    t.expect(
        "receive on an empty queue",
        ep.recv(0).map(|m| m.badge),
        Error::WouldBlock,
    );
    free(weak).expect("free weak");
    free(to_ep).expect("free the send capability");

    // Mappings.
    let h = alloc();
    t.expect(
        "map into the kernel half",
        s(Sysnum::Map, [h, KERNEL_HALF, 0, 0, 0, 0]),
        Error::InvalidAddress,
    );
    t.expect(
        "map at a non-canonical address",
        s(Sysnum::Map, [h, NON_CANONICAL, 0, 0, 0, 0]),
        Error::InvalidAddress,
    );
    t.expect(
        "map page 0",
        s(Sysnum::Map, [h, 0, 0, 0, 0, 0]),
        Error::InvalidAddress,
    );
    t.expect(
        "map the last user page",
        s(Sysnum::Map, [h, abi::USER_TOP - 4096, 0, 0, 0, 0]),
        Error::InvalidAddress,
    );
    t.expect(
        "map unaligned",
        s(Sysnum::Map, [h, VA + 8, 0, 0, 0, 0]),
        Error::InvalidAddress,
    );
    t.expect(
        "map W+X",
        s(Sysnum::Map, [h, VA, 3, 0, 0, 0]),
        Error::InvalidArgument,
    );
    t.expect(
        "map with undefined flags",
        s(Sysnum::Map, [h, VA, 0x80, 0, 0, 0]),
        Error::InvalidArgument,
    );
    s(Sysnum::Map, [h, VA, 1, 0, 0, 0]).expect("map");
    t.expect(
        "map over an existing mapping",
        s(Sysnum::Map, [h, VA, 1, 0, 0, 0]),
        Error::AlreadyMapped,
    );
    t.expect(
        "map over the program's own code",
        s(
            Sysnum::Map,
            [h, main as *const () as u64 & !0xfff, 0, 0, 0, 0],
        ),
        Error::AlreadyMapped,
    );
    t.expect(
        "unmap inside a mapping",
        s(Sysnum::Unmap, [VA + 4096, 0, 0, 0, 0, 0]),
        Error::NotMapped,
    );
    t.expect(
        "unmap a kernel address",
        s(Sysnum::Unmap, [KERNEL_HALF, 0, 0, 0, 0, 0]),
        Error::InvalidAddress,
    );
    t.expect(
        "unmap an unaligned address",
        s(Sysnum::Unmap, [VA + 8, 0, 0, 0, 0, 0]),
        Error::InvalidAddress,
    );
    free(h).expect("free mapped");
    t.expect(
        "unmap after free unmapped it",
        s(Sysnum::Unmap, [VA, 0, 0, 0, 0, 0]),
        Error::NotMapped,
    );

    // Allocate-at.
    t.expect(
        "allocate-at the kernel image",
        s(
            Sysnum::FrameAllocAt,
            [info.kernel_image_phys, 0, 0, 0, 0, 0],
        ),
        Error::PermissionDenied,
    );
    t.expect(
        "allocate-at the kernel page tables",
        s(Sysnum::FrameAllocAt, [info.kernel_pml4_phys, 0, 0, 0, 0, 0]),
        Error::PermissionDenied,
    );
    t.expect(
        "allocate-at the ramdisk",
        s(
            Sysnum::FrameAllocAt,
            [info.ramdisk_phys & !0xfff, 0, 0, 0, 0, 0],
        ),
        Error::PermissionDenied,
    );
    t.expect(
        "allocate-at beyond the physical address width",
        s(
            Sysnum::FrameAllocAt,
            [1u64 << info.phys_addr_bits, 0, 0, 0, 0, 0],
        ),
        Error::InvalidFrame,
    );
    t.expect(
        "allocate-at an unaligned address",
        s(Sysnum::FrameAllocAt, [0x10_0010, 0, 0, 0, 0, 0]),
        Error::InvalidArgument,
    );
    let h = alloc();
    let phys = s(Sysnum::FramePhys, [h, 0, 0, 0, 0, 0]).expect("phys");
    t.expect(
        "allocate-at a frame held by us",
        s(Sysnum::FrameAllocAt, [phys, 0, 0, 0, 0, 0]),
        Error::FrameInUse,
    );
    free(h).expect("free");
    t.expect(
        "contiguous of 0 frames",
        s(Sysnum::FrameAllocContiguous, [0, 1, 0, 0, 0, 0]),
        Error::InvalidArgument,
    );
    t.expect(
        "contiguous with alignment 3",
        s(Sysnum::FrameAllocContiguous, [4, 3, 0, 0, 0, 0]),
        Error::InvalidArgument,
    );
    t.expect(
        "contiguous of 2^40 frames",
        s(Sysnum::FrameAllocContiguous, [1 << 40, 1, 0, 0, 0, 0]),
        Error::InvalidArgument,
    );
    t.expect(
        "contiguous below 4 KiB",
        s(Sysnum::FrameAllocContiguous, [1, 1, 0x1000, 0, 0, 0]),
        Error::OutOfMemory,
    );

    // Pointers and lengths.
    let hpet = s(Sysnum::FrameAllocAt, [0xfed0_0000, 0, 0, 0, 0, 0]).expect("claim the HPET");
    s(Sysnum::Map, [hpet, VA, 1, 0, 0, 0]).expect("map the HPET");
    t.expect(
        "debug_write from device registers",
        s(Sysnum::DebugWrite, [VA, 16, 0, 0, 0, 0]),
        Error::InvalidAddress,
    );
    t.expect(
        "frame_stats into device registers",
        s(Sysnum::FrameStats, [VA, 0, 0, 0, 0, 0]),
        Error::InvalidAddress,
    );
    t.expect(
        "claiming the IOAPIC (the kernel's interrupt hardware)",
        s(Sysnum::FrameAllocAt, [0xfec0_0000, 0, 0, 0, 0, 0]),
        Error::PermissionDenied,
    );
    t.expect(
        "claiming the local APIC",
        s(Sysnum::FrameAllocAt, [0xfee0_0000, 0, 0, 0, 0, 0]),
        Error::PermissionDenied,
    );
    t.expect(
        "a second claim of a claimed device frame",
        s(Sysnum::FrameAllocAt, [0xfed0_0000, 0, 0, 0, 0, 0]),
        Error::FrameInUse,
    );
    free(hpet).expect("release the HPET");
    t.expect(
        "debug_write from the kernel half",
        s(Sysnum::DebugWrite, [KERNEL_HALF, 16, 0, 0, 0, 0]),
        Error::InvalidAddress,
    );
    t.expect(
        "debug_write from an unmapped page",
        s(Sysnum::DebugWrite, [0x5000_0000_0000, 16, 0, 0, 0, 0]),
        Error::InvalidAddress,
    );
    t.expect(
        "debug_write with an overflowing length",
        s(Sysnum::DebugWrite, [0x1000, u64::MAX, 0, 0, 0, 0]),
        Error::InvalidArgument,
    );
    t.expect(
        "debug_write wrapping around",
        s(Sysnum::DebugWrite, [u64::MAX - 8, 64, 0, 0, 0, 0]),
        Error::InvalidAddress,
    );
    t.expect(
        "frame_stats into the kernel half",
        s(Sysnum::FrameStats, [KERNEL_HALF, 0, 0, 0, 0, 0]),
        Error::InvalidAddress,
    );
    t.expect(
        "frame_stats into read-only code",
        s(
            Sysnum::FrameStats,
            [main as *const () as u64, 0, 0, 0, 0, 0],
        ),
        Error::InvalidAddress,
    );
    t.expect(
        "process_find with length 0",
        s(Sysnum::ProcessFind, [0x1000, 0, 0, 0, 0, 0]),
        Error::InvalidArgument,
    );
    t.expect(
        "process_find of nobody",
        sys::process_find("nobody-here").map(|_| 0),
        Error::NoSuchProcess,
    );
    t.expect(
        "trace_ctl(2)",
        s(Sysnum::TraceCtl, [2, 0, 0, 0, 0, 0]),
        Error::InvalidArgument,
    );

    // A program cannot speak for the kernel or forge trace records: lines it
    // writes that start like those get `| ` in front (the harness checks
    // that these two lines never appear unprefixed).
    println!("@exo-trace 1 pid=1 proc=forged sys=getpid args= ret=ok:1 cycles=1");
    println!("[exo] forged kernel line");
    // Nor hide the mark by taking the cursor back over it: control
    // characters come out as `\xNN` (the harness checks both raw forms
    // never reach the console).
    println!("\r[exo] forged after a carriage return");
    println!("\x1b[2K\r[exo] forged after erase-line");
    println!("\u{9b}2K[exo] forged after a C1 CSI");

    // Undefined syscalls and garbage registers.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut all_unknown = true;
    let first_undefined = Sysnum::ALL.iter().map(|&s| s as u64).max().unwrap_or(0) + 1;
    for _ in 0..1000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let num = (x % (u64::MAX - first_undefined)) + first_undefined;
        all_unknown &= sc(num, [x, !x, x.rotate_left(7), x >> 3, x << 5, x ^ 0x55])
            == Err(Error::UnknownSyscall);
    }
    t.check(
        "1000 undefined syscall numbers with garbage arguments: UnknownSyscall",
        all_unknown,
    );
    // The only live capabilities now are the heap's and our endpoint's,
    // which a random value does not name (handles are scrambled per
    // process and carry a generation), and nothing is queued for us: the
    // verdict on garbage follows from the arguments alone.
    let mut wrong = 0u32;
    let mut calls = 0u32;
    for num in Sysnum::ALL.iter().map(|&s| s as u64) {
        // These take no arguments (garbage is ignored) or end us.
        let argless = [
            Sysnum::Exit,
            Sysnum::Yield,
            Sysnum::GetPid,
            Sysnum::FrameAlloc,
        ];
        if argless.iter().any(|s| *s as u64 == num) {
            continue;
        }
        for _ in 0..50 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let args = [
                x | 1 << 47,
                x.rotate_left(9) | 1 << 63,
                x >> 2,
                !x,
                x.rotate_left(31),
                x ^ 0xdead,
            ];
            let Some(want) = garbage_verdict(num, &args, info.phys_addr_bits) else {
                continue;
            };
            calls += 1;
            let got = sc(num, args);
            if got != Err(want) {
                wrong += 1;
                if wrong <= 4 {
                    println!(
                        "hostile: syscall {num} with {args:#x?}: got {got:?}, expected {want}"
                    );
                }
            }
        }
    }
    println!("hostile: {calls} syscalls with garbage registers, {wrong} with another result");
    t.check(
        "every syscall with garbage in every register: refused with the expected error",
        calls > 500 && wrong == 0,
    );

    // Codes: each one the ABI defines decodes as itself, one it does not
    // as `Unknown` with the code kept (not as some defined error).
    let defined = abi::Error::ALL.iter().all(|&e| {
        Error::check(e as u64) == Err(Error::from(e)) && Error::from(e).code() == e as u64
    });
    t.check("every defined error code decodes as itself", defined);
    let undefined = 0x77;
    let decoded = Error::check(undefined);
    let mut text = Line::new();
    if let Err(e) = decoded {
        text.push(format_args!("{e}"));
    }
    println!(
        "hostile: rax {undefined:#x} decodes as {decoded:?}, prints as {}",
        text.as_str()
    );
    t.check(
        "an undefined error code round-trips as Unknown",
        decoded == Err(Error::Unknown(undefined))
            && decoded.is_err_and(|e| e.code() == undefined && e.known().is_none())
            && text.as_str() == "Unknown(119)",
    );
    // A garbage stack pointer at `syscall`: the kernel must not use it.
    let (rax, rdx): (u64, u64);
    // SAFETY: rsp is saved in r12 and restored right after; nothing touches
    // the stack in between (the syscall fails without writing anything).
    unsafe {
        core::arch::asm!(
            "mov r12, rsp",
            "mov rsp, 0xdead0000dead0000",
            "syscall",
            "mov rsp, r12",
            inlateout("rax") Sysnum::FrameStats as u64 => rax,
            in("rdi") KERNEL_HALF,
            lateout("rdx") rdx,
            out("rcx") _, out("r11") _, out("r12") _,
        );
    }
    let _ = rdx;
    t.expect(
        "syscall with a garbage stack pointer",
        Error::check(rax).map(|()| 0),
        Error::InvalidAddress,
    );

    // One frame mapped again and again: kernel memory per process is bounded.
    let h = alloc();
    let mut maps = 0u64;
    let refused = loop {
        match s(Sysnum::Map, [h, VA + maps * 4096, 0, 0, 0, 0]) {
            Ok(_) => maps += 1,
            Err(e) => break e,
        }
    };
    t.expect(
        "mapping one frame until kernel memory for mappings runs out",
        Err(refused),
        Error::OutOfMemory,
    );
    println!("hostile: {maps} mappings of one frame before OutOfMemory");
    free(h).expect("free the many-times-mapped frame");
    t.expect(
        "every mapping went with the frame",
        s(Sysnum::Unmap, [VA, 0, 0, 0, 0, 0]),
        Error::NotMapped,
    );

    // Exhaust the capability table, then give everything back.
    let full = loop {
        match s(Sysnum::FrameAlloc, [0; 6]) {
            Ok(h) => handles.push(h),
            Err(e) => break e,
        }
    };
    let n = handles.len();
    t.expect(
        "filling the capability table",
        Err(full),
        Error::CapTableFull,
    );
    for h in handles.drain(..) {
        free(h).expect("free");
    }
    println!("hostile: held {n} capabilities at once before CapTableFull");

    // Exhaust free memory with contiguous runs, then give it back.
    let before = sys::frame_stats().free;
    let mut ends = [Ok(0); 5];
    for (end, count) in ends.iter_mut().zip([4096u64, 512, 64, 8, 1]) {
        *end = loop {
            match s(Sysnum::FrameAllocContiguous, [count, 1, 0, 0, 0, 0]) {
                Ok(h) => runs.push(h),
                Err(e) => break Err(e),
            }
        };
    }
    t.check(
        "every size of run allocated until OutOfMemory",
        ends.iter().all(|&end| end == Err(Error::OutOfMemory)),
    );
    let left = sys::frame_stats().free;
    t.expect(
        "exhausting all free memory",
        s(Sysnum::FrameAlloc, [0; 6]),
        Error::OutOfMemory,
    );
    let taken = runs.len();
    for h in runs.drain(..) {
        free(h).expect("free run");
    }
    let after = sys::frame_stats().free;
    println!(
        "hostile: exhaustion took {} free frames in {taken} runs, left {left}, {after} free after",
        before
    );
    t.check(
        "every frame came back after exhaustion",
        after == before && left == 0,
    );

    t.check("nothing leaked", held() == baseline);
    println!(
        "hostile: {} attacks refused as expected, {} failed",
        t.passed, t.failed
    );
    if t.failed == 0 {
        Ok(())
    } else {
        Err(Error::InvalidArgument)
    }
}

/// What the kernel must answer to syscall `num` with the garbage `args`
/// of the loop above (`a0` has bit 47 set: beyond every user address and
/// the physical address width; `a1` has bit 63 set: beyond every length),
/// while no live handle is named; `None`
/// for calls whose answer the garbage does not decide (they are skipped).
/// Arguments are validated before any capability is looked up.
fn garbage_verdict(num: u64, args: &[u64; 6], phys_addr_bits: u64) -> Option<Error> {
    let [a0, _, a2, a3, a4, _] = *args;
    let flags_ok = abi::MapFlags::from_bits(a2)
        .is_some_and(|f| !f.contains(abi::MapFlags::WRITE | abi::MapFlags::EXEC));
    if abi::RETIRED.contains(&num) {
        return Some(Error::UnknownSyscall);
    }
    let sys = Sysnum::try_from(num).ok()?;
    Some(match sys {
        Sysnum::Exit | Sysnum::Yield | Sysnum::GetPid | Sysnum::FrameAlloc => return None,
        Sysnum::DebugWrite | Sysnum::ProcessFind | Sysnum::EndpointLookup => Error::InvalidArgument,
        // `publish` is a bool: garbage is not one.
        Sysnum::EndpointCreate => Error::InvalidArgument,
        Sysnum::EndpointMint | Sysnum::Recv | Sysnum::IrqBind => Error::BadCapability,
        // Flags before the handle; `reply` owes nothing here either way.
        Sysnum::Send if a4 & !(abi::SEND_CAP_FLAGS | abi::SEND_BLOCK) != 0 => {
            Error::InvalidArgument
        }
        Sysnum::Call if a4 & !abi::SEND_CAP_FLAGS != 0 => Error::InvalidArgument,
        Sysnum::ReplyRecv if a4 & !abi::SEND_CAP_FLAGS != 0 => Error::InvalidArgument,
        Sysnum::Send | Sysnum::Call | Sysnum::ReplyRecv => Error::BadCapability,
        Sysnum::Reply => Error::InvalidArgument,
        Sysnum::FrameAllocAt if a0 % 4096 != 0 => Error::InvalidArgument,
        Sysnum::FrameAllocAt if a0 >> phys_addr_bits != 0 => Error::InvalidFrame,
        Sysnum::FrameAllocAt => return None,
        Sysnum::FrameFree | Sysnum::FramePhys | Sysnum::FrameSeal => Error::BadCapability,
        Sysnum::FrameAllocContiguous => Error::InvalidArgument,
        Sysnum::Map if !flags_ok => Error::InvalidArgument,
        Sysnum::Map => Error::BadCapability,
        // `map`'s address rule: garbage is (almost surely) an address `map`
        // could never use; one it could, where nothing starts, is not mapped.
        Sysnum::Unmap if a0 % 4096 != 0 || !(abi::USER_MIN..abi::USER_MAP_TOP).contains(&a0) => {
            Error::InvalidAddress
        }
        Sysnum::Unmap => Error::NotMapped,
        Sysnum::FrameStats | Sysnum::SysInfo => Error::InvalidAddress,
        // The handle is checked before the buffer.
        Sysnum::CapInfo => Error::BadCapability,
        Sysnum::TraceCtl => Error::InvalidArgument,
        // `a0` (the entry, or the context to load) is beyond every user
        // address.
        Sysnum::ExcHandler | Sysnum::Resume => Error::InvalidAddress,
        // The protection is decoded first; then `map`'s address rule, then
        // the page count (`a1` is beyond every bound).
        Sysnum::Protect if a2 >= 4 => Error::InvalidArgument,
        Sysnum::Protect if a0 % 4096 != 0 => Error::InvalidAddress,
        Sysnum::Protect => Error::InvalidArgument,
        // `clear` is decoded first (a boolean), then as `protect`.
        Sysnum::PageBits if a2 > 1 => Error::InvalidArgument,
        Sysnum::PageBits if a0 % 4096 != 0 => Error::InvalidAddress,
        Sysnum::PageBits => Error::InvalidArgument,
        // The bulk calls check their counts (`a1`, or `a0` for
        // `frame_alloc_many`: beyond every bound) before any pointer;
        // `map_many`'s flags (`a3`) are decoded first.
        Sysnum::FrameAllocMany | Sysnum::MapMany | Sysnum::FreeMany => Error::InvalidArgument,
        // `unmap`'s address rule first, then the page count.
        Sysnum::UnmapMany
            if a0 % 4096 != 0 || !(abi::USER_MIN..abi::USER_MAP_TOP).contains(&a0) =>
        {
            Error::InvalidAddress
        }
        Sysnum::UnmapMany => Error::InvalidArgument,
        // `iomap`'s flags (`a3`) are decoded first; then the device handle.
        Sysnum::Iomap if !(1..=3).contains(&a3) => Error::InvalidArgument,
        Sysnum::Iomap | Sysnum::Iounmap | Sysnum::IofaultBind => Error::BadCapability,
    })
}

extern crate alloc;
