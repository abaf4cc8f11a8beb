//! Processes and the scheduler: each library OS is a process with its own
//! address space, capability table and inbox of capabilities sent to it.
//! Round robin, preempted by the PIT. Also the frame-ownership ledger that
//! lets a frame be shared and freed only when its last holder lets go.
//!
//! Everything here runs with the kernel lock held and interrupts off.
use crate::arch::paging::{AddressSpace, PageFlags};
use crate::arch::syscall::{USER_CS, USER_SS};
use crate::arch::trap::TrapFrame;
use crate::kprintln;
use crate::memory::{self, PAGE};
use abi::{Handle, Rights};
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use exo_core::captable::CapTable;
use exo_core::ramdisk::Expect;
use exo_core::slab::Slab;
use spin::Mutex;

/// Capabilities one process may hold at once.
pub const CAP_CAPACITY: usize = 1024;
/// `map` mappings one process may have at once (each is kernel heap; a
/// record's index must fit a page-table entry's tag).
pub const MAX_MAPPINGS: usize = crate::arch::paging::TAGS;
/// Processes the kernel runs at once: with the per-process bounds (1024
/// capabilities, 2048 mappings, 64 inbox entries, 1024 page tables) this
/// keeps the worst case within the kernel heap.
pub const MAX_PROCESSES: usize = 64;
/// Capabilities that may wait in one inbox.
pub const INBOX_CAPACITY: usize = 64;
/// End of the range `map` accepts: the lower half minus its last page, so
/// that no `syscall` can sit at the very top and return to a non-canonical
/// address (which would make `sysret`/`iretq` fault in ring 0).
pub const USER_MAP_TOP: u64 = abi::USER_TOP - PAGE;
/// Top of every user stack (exclusive).
pub const USER_STACK_TOP: u64 = 0x0000_7fff_ffff_0000;
/// Longest argument string a program can be given (`!args:NAME` entries).
pub const MAX_ARGS: usize = 1024;
/// User stack pages; the page below them stays unmapped (the guard).
pub const USER_STACK_PAGES: u64 = 16;

/// What a capability names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapKind {
    /// `count` physically contiguous RAM frames from `first` (1 for
    /// `frame_alloc`).
    Ram {
        /// First frame number.
        first: u64,
        /// Frames.
        count: u64,
    },
    /// A device frame (not RAM): always mapped uncached.
    Device {
        /// Frame number.
        frame: u64,
    },
}

impl CapKind {
    /// First frame and frame count.
    pub fn frames(&self) -> (u64, u64) {
        match *self {
            CapKind::Ram { first, count } => (first, count),
            CapKind::Device { frame } => (frame, 1),
        }
    }
}

/// A capability: what it names and what it allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap {
    /// The frames.
    pub kind: CapKind,
    /// The rights.
    pub rights: Rights,
    /// Live mappings made through this handle (so `frame_free` only scans
    /// the mappings when there is something to remove).
    pub mapped: u32,
}

/// A mapping made with `map`.
#[derive(Clone, Copy, Debug)]
pub struct MapRecord {
    /// Its first page.
    pub start: u64,
    /// The capability it maps through.
    pub handle: Handle,
    /// Pages mapped from the start address.
    pub pages: u64,
}

/// How a process ended.
#[derive(Clone, Debug)]
pub enum Ending {
    /// It called `exit(code)`.
    Exited(u64),
    /// The kernel ended it for a fault.
    Faulted(crate::trap::Fault),
}

/// A library OS.
pub struct Process {
    /// Process id (never reused).
    pub pid: u64,
    /// Name from the ramdisk.
    pub name: String,
    /// What the boot expects of it.
    pub expect: Expect,
    /// Saved user registers while it is not running.
    pub frame: TrapFrame,
    /// Its page tables.
    pub space: AddressSpace,
    /// Its capabilities.
    pub caps: CapTable<Cap>,
    /// Its `map` mappings. Each mapped page's entry carries the index of
    /// its record as a tag (`paging::Tag`).
    pub mappings: Slab<MapRecord>,
    /// Capabilities sent to it, not yet received.
    pub inbox: VecDeque<Cap>,
    /// Frames of its program image and stack (owned, not capabilities).
    pub private: Vec<u64>,
    /// May claim device frames. Without an IOMMU a device that can DMA can
    /// reach all of memory, so driving hardware is a privilege the person
    /// booting grants (ramdisk entry `!drivers`), not something a program
    /// can take.
    pub driver: bool,
}

/// The live processes, in pid order. Pids only grow, so a new process is
/// appended; a lookup by pid is a binary search over at most
/// [`MAX_PROCESSES`] entries, and the running process (every syscall's
/// caller) is found through a cached index, checked by pid.
pub struct Procs {
    list: Vec<Process>,
    /// Index of the running process in `list`: a hint, right unless a
    /// process below it has ended since (then the search finds it).
    running: usize,
}

impl Procs {
    fn new() -> Self {
        Procs {
            // Never reallocates: `spawn` refuses beyond MAX_PROCESSES.
            list: Vec::with_capacity(MAX_PROCESSES),
            running: 0,
        }
    }

    fn index(&self, pid: u64) -> Option<usize> {
        self.list.binary_search_by_key(&pid, |p| p.pid).ok()
    }

    /// Live processes.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether none is left.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Process `pid`.
    pub fn get(&self, pid: &u64) -> Option<&Process> {
        self.list.get(self.index(*pid)?)
    }

    /// Process `pid`.
    pub fn get_mut(&mut self, pid: &u64) -> Option<&mut Process> {
        let i = self.index(*pid)?;
        self.list.get_mut(i)
    }

    /// Process `pid`, without a search when it is the running one.
    #[inline]
    pub fn running_mut(&mut self, pid: u64) -> Option<&mut Process> {
        let i = self.running;
        if self.list.get(i).is_some_and(|p| p.pid == pid) {
            return self.list.get_mut(i);
        }
        self.get_mut(&pid)
    }

    /// Adds a process; its pid is above every live one.
    fn push(&mut self, proc: Process) {
        debug_assert!(self.list.last().is_none_or(|l| l.pid < proc.pid));
        self.list.push(proc);
    }

    /// Takes process `pid` out.
    fn remove(&mut self, pid: &u64) -> Option<Process> {
        let i = self.index(*pid)?;
        Some(self.list.remove(i))
    }

    /// Live processes in pid order.
    pub fn values(&self) -> impl Iterator<Item = &Process> {
        self.list.iter()
    }

    /// The pid that runs after `after` (round robin in pid order).
    fn next_after(&self, after: u64) -> Option<u64> {
        self.list
            .iter()
            .find(|p| p.pid > after)
            .or(self.list.first())
            .map(|p| p.pid)
    }

    /// Records that `pid` runs now.
    fn set_running(&mut self, pid: u64) {
        if let Some(i) = self.index(pid) {
            self.running = i;
        }
    }
}

/// The kernel's process state.
pub struct Kernel {
    /// Live processes.
    pub procs: Procs,
    /// The running process.
    pub current: u64,
    /// Runs named by more than one capability (in tables or inboxes),
    /// keyed by first frame: how many references beyond the first. A run
    /// held by exactly one capability has no entry, so allocating and
    /// freeing an unshared frame touch no map.
    pub shared: BTreeMap<u64, u64>,
    /// Claimed device frames (exclusive: one claim until every reference
    /// to it is gone).
    pub devices: BTreeSet<u64>,
    /// RAM frames held through capabilities (each counted once).
    pub held_ram: u64,
    /// Private frames of all processes.
    pub held_private: u64,
    /// Finished processes, in order.
    pub results: Vec<(u64, String, Expect, Ending)>,
    /// Next pid.
    pub next_pid: u64,
    /// Seed for per-process handle scrambling.
    pub key_state: u64,
}

/// The one kernel state.
pub static KERNEL: Mutex<Option<Kernel>> = Mutex::new(None);

/// Runs `f` on the kernel state.
pub fn with<R>(f: impl FnOnce(&mut Kernel) -> R) -> R {
    f(KERNEL.lock().as_mut().expect("process::init not called"))
}

/// Sets up the (empty) process table.
pub fn init(trace: bool) {
    crate::arch::syscall::TRACE_ON.store(trace, core::sync::atomic::Ordering::Relaxed);
    *KERNEL.lock() = Some(Kernel {
        procs: Procs::new(),
        current: 0,
        shared: BTreeMap::new(),
        devices: BTreeSet::new(),
        held_ram: 0,
        held_private: 0,
        results: Vec::new(),
        next_pid: 1,
        key_state: crate::arch::rdtsc() ^ 0x9e37_79b9_7f4a_7c15,
    });
}

impl Kernel {
    /// A fresh handle-scrambling key (splitmix64 over the boot TSC).
    fn next_key(&mut self) -> u64 {
        self.key_state = self.key_state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.key_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Loads a validated program as a new process. On error nothing is kept.
    ///
    /// `args` (at most [`MAX_ARGS`] bytes) is copied to the top of the new
    /// stack; the program starts with `rdi` = pid, `rsi` = the arguments'
    /// address and `rdx` = their length (the SysV argument registers, so
    /// `_start(pid, ptr, len)` receives them).
    pub fn spawn(
        &mut self,
        name: &str,
        expect: Expect,
        image: &[u8],
        args: &[u8],
        driver: bool,
    ) -> Result<u64, String> {
        if args.len() > MAX_ARGS {
            return Err(alloc::format!("arguments longer than {MAX_ARGS} bytes"));
        }
        if self.procs.len() >= MAX_PROCESSES {
            return Err(alloc::format!("more than {MAX_PROCESSES} processes"));
        }
        let plan = exo_core::elf::validate(image).map_err(|e| alloc::format!("{e}"))?;
        let space = AddressSpace::new().map_err(|_| String::from("out of memory"))?;
        let pid = self.next_pid;
        let mut proc = Process {
            pid,
            name: name.into(),
            expect,
            frame: TrapFrame::default(),
            space,
            caps: CapTable::new(CAP_CAPACITY, self.next_key()),
            mappings: Slab::new(MAX_MAPPINGS),
            inbox: VecDeque::new(),
            private: Vec::new(),
            driver,
        };
        let loaded = load_segments(&mut proc, &plan, image);
        if let Err(e) = loaded {
            self.held_private += proc.private.len() as u64;
            self.release_process(proc);
            return Err(e);
        }
        self.held_private += proc.private.len() as u64;
        // Arguments at the top of the stack, 16-byte aligned below them.
        let args_at = USER_STACK_TOP - (args.len() as u64).div_ceil(16) * 16;
        if !args.is_empty() {
            let (phys, _) = proc
                .space
                .translate(args_at & !(PAGE - 1))
                .expect("stack mapped");
            // SAFETY: the top stack page was just mapped to a fresh frame of
            // this process; MAX_ARGS < PAGE keeps the copy inside it.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    args.as_ptr(),
                    memory::phys_to_virt(phys + (args_at & (PAGE - 1))),
                    args.len(),
                );
            }
        }
        proc.frame = TrapFrame {
            rip: plan.entry,
            cs: USER_CS,
            rflags: 0x202,
            // As if `_start` had been called: rsp = 8 mod 16.
            rsp: args_at - 8,
            ss: USER_SS,
            rdi: pid,
            rsi: if args.is_empty() { 0 } else { args_at },
            rdx: args.len() as u64,
            ..TrapFrame::default()
        };
        self.next_pid += 1;
        self.procs.push(proc);
        Ok(pid)
    }

    /// Adds a reference to a run some capability already names (a copy
    /// made by `cap_transfer`).
    pub fn add_ref(&mut self, kind: CapKind) {
        *self.shared.entry(kind.frames().0).or_insert(0) += 1;
    }

    /// Registers a run just taken from the allocator, or a device claim.
    pub fn own_new(&mut self, kind: CapKind) {
        match kind {
            CapKind::Ram { count, .. } => self.held_ram += count,
            CapKind::Device { frame } => {
                self.devices.insert(frame);
            }
        }
    }

    /// Drops one reference; the last one frees RAM to the allocator (or
    /// ends a device claim).
    pub fn drop_ref(&mut self, kind: CapKind) {
        let (first, count) = kind.frames();
        if let Some(extra) = self.shared.get_mut(&first) {
            *extra -= 1;
            if *extra == 0 {
                self.shared.remove(&first);
            }
            return;
        }
        match kind {
            CapKind::Device { frame } => {
                self.devices.remove(&frame);
            }
            CapKind::Ram { .. } => {
                self.held_ram -= count;
                memory::frames(|f| {
                    if let Err(e) = f.alloc.free_range(first, count) {
                        kprintln!("BUG: freeing frames {first:#x}+{count}: {e:?}");
                    }
                });
            }
        }
    }

    /// Whether a device frame is claimed by anybody.
    pub fn device_claimed(&self, frame: u64) -> bool {
        self.devices.contains(&frame)
    }

    /// Removes every mapping made through `handle` in `proc`.
    pub fn unmap_handle(proc: &mut Process, handle: Handle) {
        for slot in proc.mappings.indices_where(|m| m.handle == handle) {
            Self::unmap_slot(proc, slot);
        }
    }

    /// Removes the `map` mapping that starts at `vaddr` (if any): the tag
    /// in the page's entry names its record.
    pub fn unmap_at(proc: &mut Process, vaddr: u64) -> bool {
        let records = &proc.mappings;
        let tag = proc.space.unmap_tagged(vaddr, |tag| {
            records
                .get(usize::from(tag))
                .is_some_and(|m| m.start == vaddr)
        });
        let Some(tag) = tag else {
            return false;
        };
        let record = proc.mappings.remove(usize::from(tag)).expect("accepted");
        Self::unmapped(proc, record, 1);
        true
    }

    /// Removes mapping record `slot` and its pages.
    fn unmap_slot(proc: &mut Process, slot: usize) {
        if let Some(record) = proc.mappings.remove(slot) {
            Self::unmapped(proc, record, 0);
        }
    }

    /// Finishes removing `record` (its first `done` pages are unmapped
    /// already).
    fn unmapped(proc: &mut Process, record: MapRecord, done: u64) {
        if let Ok(cap) = proc.caps.get_mut(record.handle) {
            cap.mapped = cap.mapped.saturating_sub(1);
        }
        for i in done..record.pages {
            proc.space.unmap(record.start + i * PAGE);
        }
    }

    /// Returns everything a process holds: mappings, capabilities, inbox,
    /// private frames, page tables.
    pub fn release_process(&mut self, mut proc: Process) {
        for slot in proc.mappings.indices_where(|_| true) {
            Self::unmap_slot(&mut proc, slot);
        }
        for cap in proc.caps.take_all() {
            self.drop_ref(cap.kind);
        }
        while let Some(cap) = proc.inbox.pop_front() {
            self.drop_ref(cap.kind);
        }
        let private = core::mem::take(&mut proc.private);
        self.held_private -= private.len() as u64;
        for frame in private {
            memory::frames(|f| f.alloc.free(frame)).expect("private frame");
        }
        proc.space.destroy();
    }

    /// Ends process `pid` and records why.
    pub fn end(&mut self, pid: u64, ending: Ending) {
        let Some(proc) = self.procs.remove(&pid) else {
            return;
        };
        match &ending {
            Ending::Exited(code) => {
                kprintln!(
                    "[exo] pid {} ({}) exited with code {}",
                    pid,
                    proc.name,
                    code
                )
            }
            Ending::Faulted(why) => {
                kprintln!("[exo] pid {} ({}) killed: {}", pid, proc.name, why)
            }
        }
        let (name, expect) = (proc.name.clone(), proc.expect);
        self.release_process(proc);
        self.results.push((pid, name, expect, ending));
    }

    /// Switches `frame` to the next runnable process after `after` (round
    /// robin). Returns false when no process is left.
    pub fn switch_after(&mut self, after: u64, frame: &mut TrapFrame) -> bool {
        let Some(next) = self.procs.next_after(after) else {
            return false;
        };
        let proc = self.procs.get_mut(&next).expect("present");
        proc.space.activate();
        *frame = proc.frame;
        self.current = next;
        self.procs.set_running(next);
        crate::arch::syscall::CURRENT_PID.store(next, core::sync::atomic::Ordering::Relaxed);
        true
    }

    /// Saves the running process's registers from `frame`.
    pub fn save_current(&mut self, frame: &TrapFrame) {
        if let Some(proc) = self.procs.get_mut(&self.current) {
            proc.frame = *frame;
        }
    }

    /// Frame counters: global plus the caller's share.
    pub fn stats(&self, pid: u64) -> abi::FrameStats {
        let mut stats = memory::counters();
        stats.held_by_all = self.held_ram + self.held_private;
        if let Some(proc) = self.procs.get(&pid) {
            let mut ram = proc.private.len() as u64;
            let mut device = 0;
            for (_, cap) in proc.caps.iter() {
                match cap.kind {
                    CapKind::Ram { count, .. } => ram += count,
                    CapKind::Device { .. } => device += 1,
                }
            }
            stats.held_by_caller = ram;
            stats.device_by_caller = device;
        }
        stats
    }

    /// Checks conservation and the ledger against every table; returns a
    /// description of the first violation.
    pub fn check_invariants(&self) -> Result<(), String> {
        let s = self.stats(0);
        let allocated = s.total - s.free - s.reserved;
        if allocated != s.kernel + s.held_by_all {
            return Err(alloc::format!(
                "conservation broken: total {} != free {} + reserved {} + kernel {} + held {}",
                s.total,
                s.free,
                s.reserved,
                s.kernel,
                s.held_by_all
            ));
        }
        // Count the references each run has in tables and inboxes.
        let mut refs: BTreeMap<u64, (CapKind, u64)> = BTreeMap::new();
        for proc in self.procs.values() {
            let kinds = proc
                .caps
                .iter()
                .map(|(_, c)| c.kind)
                .chain(proc.inbox.iter().map(|c| c.kind));
            for kind in kinds {
                refs.entry(kind.frames().0).or_insert((kind, 0)).1 += 1;
            }
        }
        let mut ram = 0;
        for (first, (kind, n)) in &refs {
            let extra = self.shared.get(first).copied().unwrap_or(0);
            if extra + 1 != *n {
                return Err(alloc::format!(
                    "frame run {first:#x}: {n} references, ledger says {}",
                    extra + 1
                ));
            }
            match *kind {
                CapKind::Device { frame } => {
                    if !self.devices.contains(&frame) {
                        return Err(alloc::format!(
                            "device frame {frame:#x} held but not claimed"
                        ));
                    }
                }
                CapKind::Ram { first, count } => {
                    ram += count;
                    let free = memory::frames(|f| (0..count).any(|i| f.alloc.is_free(first + i)));
                    if free {
                        return Err(alloc::format!("frame run {first:#x} held but free"));
                    }
                }
            }
        }
        if self.shared.keys().any(|k| !refs.contains_key(k)) {
            return Err("the ledger lists a shared run no capability names".into());
        }
        if self.devices.iter().any(|d| !refs.contains_key(d)) {
            return Err("a device claim outlived its capabilities".into());
        }
        for proc in self.procs.values() {
            check_mappings(proc)?;
        }
        if ram != self.held_ram {
            return Err(alloc::format!(
                "capabilities name {ram} RAM frames, ledger says {}",
                self.held_ram
            ));
        }
        Ok(())
    }
}

/// A process's `map` records against its capabilities and page tables:
/// every record names a live capability, whose `mapped` count is its number
/// of records; the first and last page of each record map the right frames
/// and carry the record's index as their tag.
fn check_mappings(proc: &Process) -> Result<(), String> {
    let mut per_handle: BTreeMap<u64, u32> = BTreeMap::new();
    for (slot, m) in proc.mappings.iter() {
        let cap = proc.caps.get(m.handle).map_err(|_| {
            alloc::format!(
                "pid {}: mapping at {:#x} names a dead handle",
                proc.pid,
                m.start
            )
        })?;
        *per_handle.entry(m.handle.raw()).or_insert(0) += 1;
        let (first, count) = cap.kind.frames();
        for i in [0, m.pages - 1] {
            let at = m.start + i * PAGE;
            let want = (first + i) * PAGE;
            match proc.space.frame_and_tag(at) {
                Some((phys, Some(tag))) if phys == want && usize::from(tag) == slot && m.pages == count => {}
                found => {
                    return Err(alloc::format!(
                        "pid {}: page {at:#x} of mapping {slot}: expected frame {want:#x} tagged {slot}, found {found:?}",
                        proc.pid
                    ))
                }
            }
        }
    }
    for (h, cap) in proc.caps.iter() {
        let records = per_handle.get(&h.raw()).copied().unwrap_or(0);
        if cap.mapped != records {
            return Err(alloc::format!(
                "pid {}: handle {:#x} counts {} mappings, {} records name it",
                proc.pid,
                h.raw(),
                cap.mapped,
                records
            ));
        }
    }
    Ok(())
}

/// Maps the program's segments and its stack into `proc`, on fresh frames.
fn load_segments(
    proc: &mut Process,
    plan: &exo_core::elf::LoadPlan,
    image: &[u8],
) -> Result<(), String> {
    for seg in &plan.segments {
        let data = seg.data(image).ok_or("segment outside the file")?;
        let flags = PageFlags {
            write: seg.writable,
            exec: seg.executable,
            uncached: false,
        };
        for page in seg.pages().step_by(PAGE as usize) {
            let phys = private_frame(proc)?;
            // Copy the part of the file that falls into this page.
            let file_start = seg.vaddr;
            let file_end = seg.vaddr + data.len() as u64;
            let lo = page.max(file_start);
            let hi = (page + PAGE).min(file_end);
            if lo < hi {
                let src = &data[(lo - file_start) as usize..(hi - file_start) as usize];
                // SAFETY: `phys` is a frame just allocated to this process,
                // mapped at the offset; the copy stays inside it.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        src.as_ptr(),
                        memory::phys_to_virt(phys + (lo - page)),
                        src.len(),
                    );
                }
            }
            proc.space
                .map(page, phys, flags, None)
                .map_err(|e| alloc::format!("mapping segment page {page:#x}: {e:?}"))?;
        }
    }
    let flags = PageFlags {
        write: true,
        exec: false,
        uncached: false,
    };
    for i in 1..=USER_STACK_PAGES {
        let phys = private_frame(proc)?;
        proc.space
            .map(USER_STACK_TOP - i * PAGE, phys, flags, None)
            .map_err(|e| alloc::format!("mapping the stack: {e:?}"))?;
    }
    Ok(())
}

fn private_frame(proc: &mut Process) -> Result<u64, String> {
    let frame = memory::frames(|f| f.alloc.alloc()).map_err(|_| String::from("out of memory"))?;
    proc.private.push(frame);
    let phys = frame * PAGE;
    // SAFETY: the frame was just allocated to this process, not yet mapped.
    unsafe { memory::zero_frames(phys, 1) };
    Ok(phys)
}
