//! The kernel's object model, policy-free and host-tested: processes, their
//! capability tables, `map` records and endpoints, the frame-ownership
//! ledger, the semantics of every memory syscall, and the invariant checks
//! that tie them together.
//!
//! It reaches hardware only through [`Platform`] (the frame allocator and
//! the zeroing of fresh frames) and [`AddressSpace`] (page tables). The
//! kernel implements both on the real machine; [`model`] implements them
//! for host tests, where a property test drives random syscalls from
//! several processes against a reference model.
//!
//! Every method runs with the kernel lock held; none panics on anything a
//! program passes.
pub mod bulk;
pub mod endpoint;
pub mod endpoints;
pub mod fast;
pub mod invariants;
pub mod iomap;
pub mod ledger;
pub mod model;
pub mod procs;
pub mod reply_recv;
pub mod space;
#[cfg(test)]
mod tests;

pub use endpoint::{
    Endpoint, IrqBinding, Message, Outcome, Received, SetResult, Wait, IRQ_VECTORS,
};
pub use iomap::{IoFaultBinding, IoMap, IoSpaces};
pub use ledger::{Cap, CapKind, Ledger};
pub use procs::{Ending, MapRecord, Process, Procs};
pub use reply_recv::ReplyRecv;
pub use space::{AddressSpace, MapError, PageFlags, Tag, TAGS};

use crate::frame_alloc::AllocError;
use crate::memmap::FrameClass;
use abi::{CapInfo, CapKindCode, Error, FrameStats, Handle, IoFlags, MapFlags, Protection, Rights};
use abi::{USER_MAP_TOP, USER_MIN};
use ledger::Dropped;

/// Frame size.
pub const PAGE: u64 = abi::PAGE_SIZE;

/// What the object model needs of the machine besides page tables.
pub trait Platform {
    /// A process's address space.
    type Space: AddressSpace;
    /// A process's saved registers.
    type Regs: Default + SetResult;
    /// Any free RAM frame, zeroed (every allocation hands out zeroed
    /// frames: no data from their last owner).
    fn alloc(&mut self) -> Result<u64, AllocError>;
    /// Frame `frame`, if it is free RAM, zeroed.
    fn alloc_at(&mut self, frame: u64) -> Result<(), AllocError>;
    /// `count` contiguous free frames, zeroed, the first aligned to
    /// `align`, all below frame `limit`.
    fn alloc_contiguous(
        &mut self,
        count: u64,
        align: u64,
        limit: Option<u64>,
    ) -> Result<u64, AllocError>;
    /// A run of [`crate::zero_pool::BLOCK`] free frames aligned to its
    /// size, zeroed (for `frame_alloc_many`; the kernel keeps a pool of
    /// them zeroed ahead of need).
    fn alloc_block(&mut self) -> Result<u64, AllocError>;
    /// Gives a run back.
    fn free_range(&mut self, first: u64, count: u64) -> Result<(), AllocError>;
    /// Whether `frame` is free.
    fn is_free(&self, frame: u64) -> bool;
    /// What `frame` is in the memory map.
    fn classify(&self, frame: u64) -> FrameClass;
    /// The CPU's physical address width.
    fn phys_addr_bits(&self) -> u32;
    /// Whether device page `phys` may be claimed at all (the kernel keeps
    /// its own interrupt controllers).
    fn device_claimable(&self, phys: u64) -> bool;
    /// Device page `phys` is claimed by nobody any more (its last holder
    /// freed it or ended). The kernel blocks the
    /// DMA of the PCI function whose configuration page it is (its
    /// `iomap` records are all gone by then).
    fn device_released(&mut self, phys: u64);
    /// Whether an IOMMU translates the DMA of the PCI function whose
    /// configuration page is device page `function` (so `iomap` can
    /// confine it).
    fn io_translated(&self, function: u64) -> bool;
    /// Maps I/O page `iova` of `function`'s DMA address space to frame
    /// `frame`, for what `flags` allow (the caller checked that nothing is
    /// mapped there); `Err` only when no frame for a table could be had.
    fn io_map(
        &mut self,
        function: u64,
        iova: u64,
        frame: u64,
        flags: IoFlags,
    ) -> Result<(), MapError>;
    /// Whether I/O page `iova` of `function` is mapped.
    fn io_is_mapped(&self, function: u64, iova: u64) -> bool;
    /// Unmaps I/O page `iova` of `function`; until [`io_flush`](Self::io_flush)
    /// the device may still reach the frame through a cached translation.
    fn io_unmap(&mut self, function: u64, iova: u64);
    /// Invalidates what the IOMMU caches for `function`: when it returns
    /// the device reaches nothing that was unmapped before.
    fn io_flush(&mut self, function: u64);
    /// The allocator's counters (`total`, `free`, `reserved`, `kernel`,
    /// `zeroed`): `free` counts a pool of pre-zeroed frames too (allocated
    /// in the allocator's view, nobody's), of which there are `zeroed`.
    fn counters(&self) -> FrameStats;
    /// Reports a broken internal expectation (never reachable from user
    /// input); the kernel prints it as a `BUG:` line.
    fn bug(&mut self, what: core::fmt::Arguments<'_>);
}

/// A process of platform `P`.
pub type Proc<P> = Process<<P as Platform>::Space, <P as Platform>::Regs>;

/// The kernel's process state over platform `P`.
pub struct Kernel<P: Platform> {
    /// The machine.
    pub platform: P,
    procs: Procs<P::Space, P::Regs>,
    current: u64,
    ledger: Ledger,
    next_pid: u64,
    key_state: u64,
    /// Live endpoints by id (ids are never reused).
    endpoints: endpoints::Endpoints,
    /// Interrupt vectors bound to endpoints.
    irqs: alloc::collections::BTreeMap<u8, endpoint::IrqBinding>,
    /// `iomap` records, by PCI function.
    iomaps: IoSpaces,
    /// Where each function's blocked DMA is told (`iofault_bind`).
    io_faults: alloc::collections::BTreeMap<u64, IoFaultBinding>,
}

/// A process that has ended: what the caller reports and hands to whoever
/// keeps the verdict.
#[derive(Debug)]
pub struct Ended {
    /// Its pid.
    pub pid: u64,
    /// Its name.
    pub name: alloc::string::String,
    /// Why.
    pub ending: Ending,
}

/// Maps an allocator error to the ABI's.
pub fn alloc_error(e: AllocError) -> Error {
    match e {
        AllocError::OutOfMemory => Error::OutOfMemory,
        AllocError::InUse => Error::FrameInUse,
        AllocError::Reserved => Error::PermissionDenied,
        AllocError::NotRam | AllocError::OutOfRange => Error::InvalidFrame,
        _ => Error::InvalidArgument,
    }
}

pub(super) fn require(held: Rights, needed: Rights) -> Result<(), Error> {
    if held.contains(needed) {
        Ok(())
    } else {
        Err(Error::PermissionDenied)
    }
}

impl<P: Platform> Kernel<P> {
    /// No processes yet; `seed` seeds the per-process handle scrambling.
    pub fn new(platform: P, seed: u64) -> Self {
        Kernel {
            platform,
            procs: Procs::default(),
            current: 0,
            ledger: Ledger::default(),
            next_pid: 1,
            key_state: seed ^ 0x9e37_79b9_7f4a_7c15,
            endpoints: endpoints::Endpoints::new(),
            irqs: alloc::collections::BTreeMap::new(),
            iomaps: IoSpaces::new(),
            io_faults: alloc::collections::BTreeMap::new(),
        }
    }

    /// The live processes.
    pub fn procs(&self) -> &Procs<P::Space, P::Regs> {
        &self.procs
    }

    /// The live processes, to save and load registers or switch spaces.
    pub fn procs_mut(&mut self) -> &mut Procs<P::Space, P::Regs> {
        &mut self.procs
    }

    /// The running process's pid (0 before the first runs).
    #[inline(always)]
    pub fn current(&self) -> u64 {
        self.current
    }

    /// Records that `pid` runs now.
    pub fn set_current(&mut self, pid: u64) {
        self.current = pid;
        self.procs.set_running(pid);
    }

    /// [`set_current`](Self::set_current) and process `pid`, with one
    /// look-up (the scheduler's switch). `None` (and nothing changed) if
    /// it is not live.
    #[inline]
    pub fn switch_current(&mut self, pid: u64) -> Option<&mut Proc<P>> {
        let p = self.procs.switch_to(pid)?;
        self.current = pid;
        Some(p)
    }

    /// A fresh handle-scrambling key (splitmix64).
    fn next_key(&mut self) -> u64 {
        self.key_state = self.key_state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.key_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A new, empty process on `space` (the loader fills it and then calls
    /// [`admit`](Self::admit)), or `None` at [`abi::MAX_PROCESSES`].
    pub fn new_process(&mut self, name: &str, space: P::Space, driver: bool) -> Option<Proc<P>> {
        if !self.has_room_for_a_process() {
            return None;
        }
        let pid = self.next_pid;
        self.next_pid += 1;
        let key = self.next_key();
        Some(Process::new(pid, name, space, driver, key))
    }

    /// Whether [`Kernel::new_process`] would make one (fewer than
    /// `MAX_PROCESSES` live): asked before an address space is built, so
    /// that a refusal does not drop one that needs tearing down.
    pub fn has_room_for_a_process(&self) -> bool {
        self.procs.len() < abi::MAX_PROCESSES
    }

    /// Takes a private frame (program image, stack) for `proc`, zeroed.
    pub fn private_frame(&mut self, proc: &mut Proc<P>) -> Result<u64, Error> {
        let frame = self.platform.alloc().map_err(alloc_error)?;
        proc.private.push(frame);
        self.ledger.held_private += 1;
        Ok(frame)
    }

    /// Makes a loaded process runnable.
    pub fn admit(&mut self, proc: Proc<P>) -> u64 {
        let pid = proc.pid;
        self.procs.push(proc);
        pid
    }

    /// Gives back everything a process holds that the object model knows
    /// of (mappings, capabilities, private frames) and returns its
    /// address space for the caller to free.
    pub fn release(&mut self, mut proc: Proc<P>) -> P::Space {
        // First out of every device's reach (and the IOTLBs flushed):
        // only then may its frames be reused.
        if proc.iomaps > 0 || !self.io_faults.is_empty() {
            self.end_iomaps(proc.pid);
        }
        for slot in proc.mappings.indices_where(|_| true) {
            unmap_slot(&mut proc, slot);
        }
        for cap in proc.caps.take_all() {
            self.drop_ref(cap.kind);
        }
        let private = core::mem::take(&mut proc.private);
        self.ledger.held_private -= private.len() as u64;
        for frame in private {
            self.give_back(frame, 1);
        }
        proc.space
    }

    /// Ends process `pid`; returns what ended and its address space.
    pub fn end(&mut self, pid: u64, ending: Ending) -> Option<(Ended, P::Space)> {
        self.end_irqs(pid);
        self.end_endpoints(pid);
        let mut proc = self.procs.remove(pid)?;
        let name = core::mem::take(&mut proc.name);
        let space = self.release(proc);
        Some((Ended { pid, name, ending }, space))
    }

    pub(super) fn drop_ref(&mut self, kind: CapKind) {
        match self.ledger.drop_ref(kind) {
            Dropped::FreeRam { first, count } => self.give_back(first, count),
            Dropped::Device { frame } => self.platform.device_released(frame * PAGE),
            Dropped::Nothing => {}
        }
    }

    /// Returns a run the object model owned to the allocator; a refusal is
    /// a kernel bug (reported, never a panic).
    fn give_back(&mut self, first: u64, count: u64) {
        if let Err(e) = self.platform.free_range(first, count) {
            self.platform
                .bug(format_args!("freeing frames {first:#x}+{count}: {e:?}"));
        }
    }

    /// The caller (every syscall's `pid` is the running process).
    #[inline(always)]
    pub fn caller(&mut self, pid: u64) -> Result<&mut Proc<P>, Error> {
        // A caller that is not alive is a kernel bug; answer, never panic.
        self.procs.running_mut(pid).ok_or(Error::NoSuchProcess)
    }

    /// Puts a freshly owned run into the caller's table; on a full table
    /// the run goes straight back.
    fn grant(&mut self, pid: u64, kind: CapKind, rights: Rights) -> Result<u64, Error> {
        let cap = Cap {
            kind,
            rights,
            mapped: 0,
        };
        let inserted = match self.caller(pid) {
            Ok(p) => p.caps.insert(cap).map_err(Error::from),
            Err(e) => Err(e),
        };
        self.ledger.own_new(kind);
        match inserted {
            Ok(h) => Ok(h.raw()),
            Err(e) => {
                // Owned by nobody: straight back.
                self.drop_ref(kind);
                Err(e)
            }
        }
    }

    /// Grants a run just taken (zeroed) from the allocator with every right
    /// but `EXEC` (which only `frame_seal` gives).
    #[inline]
    fn grant_ram(&mut self, pid: u64, first: u64, count: u64) -> Result<u64, Error> {
        self.grant(pid, CapKind::Ram { first, count }, Rights::WRITABLE)
    }

    /// `frame_alloc`.
    #[inline]
    pub fn frame_alloc(&mut self, pid: u64) -> Result<u64, Error> {
        let frame = self.platform.alloc().map_err(alloc_error)?;
        self.grant_ram(pid, frame, 1)
    }

    /// `frame_alloc_at`.
    pub fn frame_alloc_at(&mut self, pid: u64, phys: u64) -> Result<u64, Error> {
        if !phys.is_multiple_of(PAGE) {
            return Err(Error::InvalidArgument);
        }
        if phys >> self.platform.phys_addr_bits() != 0 {
            return Err(Error::InvalidFrame);
        }
        let frame = phys / PAGE;
        match self.platform.classify(frame) {
            FrameClass::Usable => {
                self.platform.alloc_at(frame).map_err(alloc_error)?;
                self.grant_ram(pid, frame, 1)
            }
            FrameClass::Reserved => Err(Error::PermissionDenied),
            FrameClass::NotRam => {
                // Device space: for drivers only, and never what the
                // platform keeps for itself.
                if !self.caller(pid)?.driver || !self.platform.device_claimable(phys) {
                    return Err(Error::PermissionDenied);
                }
                if self.ledger.device_claimed(frame) {
                    return Err(Error::FrameInUse);
                }
                self.grant(pid, CapKind::Device { frame }, Rights::WRITABLE)
            }
        }
    }

    /// `frame_alloc_contiguous`.
    pub fn frame_alloc_contiguous(
        &mut self,
        pid: u64,
        count: u64,
        align: u64,
        max_phys: u64,
    ) -> Result<u64, Error> {
        if count == 0
            || count > abi::MAX_CONTIGUOUS_FRAMES
            || align == 0
            || !align.is_power_of_two()
        {
            return Err(Error::InvalidArgument);
        }
        let limit = if max_phys == 0 {
            None
        } else {
            Some(max_phys / PAGE)
        };
        let first = self
            .platform
            .alloc_contiguous(count, align, limit)
            .map_err(alloc_error)?;
        self.grant_ram(pid, first, count)
    }

    /// `frame_free`.
    #[inline]
    pub fn frame_free(&mut self, pid: u64, h: Handle) -> Result<u64, Error> {
        let p = self.caller(pid)?;
        let cap = p.caps.remove(h)?;
        if cap.mapped > 0 {
            // The handle is gone from the table already; its records remain.
            unmap_handle(p, h);
            if p.iomaps > 0 {
                self.io_unmap_handle(pid, h);
            }
        }
        if let CapKind::EndpointRecv { ep } = cap.kind {
            self.destroy_endpoint(ep);
        }
        self.drop_ref(cap.kind);
        Ok(0)
    }

    /// `frame_phys`.
    pub fn frame_phys(&mut self, pid: u64, h: Handle) -> Result<u64, Error> {
        let cap = self.caller(pid)?.caps.get(h)?;
        require(cap.rights, Rights::MAP)?;
        Ok(cap.kind.frames().0 * PAGE)
    }

    /// `frame_seal`: the only capability to some RAM frames, holding
    /// `WRITE` and mapped nowhere, becomes executable for good (`WRITE`
    /// gone, `EXEC` gained). Checked in this order: the handle, the kind
    /// (a device is `InvalidArgument`), the right (`PermissionDenied`),
    /// its mappings (`AlreadyMapped`), other references (`FrameInUse`: in
    /// any table or queue, the caller's own included).
    pub fn frame_seal(&mut self, pid: u64, h: Handle) -> Result<u64, Error> {
        let shared = &self.ledger.shared;
        let proc = self.procs.running_mut(pid).ok_or(Error::NoSuchProcess)?;
        let cap = proc.caps.get_mut(h)?;
        let CapKind::Ram { first, .. } = cap.kind else {
            return Err(Error::InvalidArgument);
        };
        require(cap.rights, Rights::WRITE)?;
        if cap.mapped > 0 {
            return Err(Error::AlreadyMapped);
        }
        if shared.contains_key(&first) {
            return Err(Error::FrameInUse);
        }
        // The held rights without WRITE, with EXEC (defined bits only).
        let sealed = cap.rights.bits() & Rights::EXECUTABLE.bits() | Rights::EXEC.bits();
        cap.rights = Rights::from_bits(sealed).unwrap_or(Rights::EXECUTABLE);
        Ok(0)
    }

    /// `cap_info`: what capability `h` of the caller is. Needs no right;
    /// the physical address only with `MAP`, the rule of
    /// [`frame_phys`](Self::frame_phys).
    pub fn cap_info(&mut self, pid: u64, h: Handle) -> Result<CapInfo, Error> {
        let cap = self.caller(pid)?.caps.get(h)?;
        let (first, frames) = cap.kind.frames();
        let kind = match cap.kind {
            CapKind::Ram { count: 1, .. } => CapKindCode::RamFrame,
            CapKind::Ram { .. } => CapKindCode::RamRun,
            CapKind::Device { .. } => CapKindCode::Device,
            CapKind::EndpointRecv { .. } => CapKindCode::EndpointRecv,
            CapKind::EndpointSend { .. } => CapKindCode::EndpointSend,
        };
        let phys = if cap.rights.contains(Rights::MAP) {
            first * PAGE
        } else {
            CapInfo::PHYS_HIDDEN
        };
        Ok(CapInfo {
            kind: kind as u64,
            frames,
            rights: cap.rights.bits(),
            phys,
        })
    }

    /// `map`. `flags` was decoded by the syscall table: defined bits only,
    /// never `WRITE|EXEC`.
    #[inline]
    pub fn map(&mut self, pid: u64, h: Handle, vaddr: u64, flags: MapFlags) -> Result<u64, Error> {
        let p = self.caller(pid)?;
        // One lookup: the capability stays borrowed (its `mapped` count
        // goes up at the end) while the space and the records are used.
        let cap = p.caps.get_mut(h)?;
        require(cap.rights, Rights::MAP | Rights::READ)?;
        if flags.contains(MapFlags::WRITE) {
            require(cap.rights, Rights::WRITE)?;
        }
        let device = matches!(cap.kind, CapKind::Device { .. });
        if flags.contains(MapFlags::EXEC) {
            if device {
                return Err(Error::InvalidArgument);
            }
            // W^X per frame: only a sealed capability has EXEC, and then
            // no capability to these frames has WRITE.
            require(cap.rights, Rights::EXEC)?;
        }
        let (first, count) = cap.kind.frames();
        // Each mapping costs kernel heap: a process gets a bounded number.
        if p.mappings.len() >= abi::bounds::MAPPINGS {
            return Err(Error::OutOfMemory);
        }
        if !vaddr.is_multiple_of(PAGE) || vaddr < USER_MIN {
            return Err(Error::InvalidAddress);
        }
        let end = vaddr
            .checked_add(count * PAGE)
            .filter(|&end| end <= USER_MAP_TOP)
            .ok_or(Error::InvalidAddress)?;
        // Multi-page runs are checked first so that a refusal maps nothing
        // (a single page is checked by `map` itself).
        let mut page = vaddr;
        while count > 1 && page < end {
            if p.space.is_mapped(page) {
                return Err(Error::AlreadyMapped);
            }
            page += PAGE;
        }
        let pf = page_flags(flags, device);
        install(&mut p.space, &mut p.mappings, h, first, count, vaddr, pf)?;
        cap.mapped += 1;
        Ok(0)
    }

    /// `unmap`: the same address rule as `map` (an address `map` could
    /// never have used is `InvalidAddress`); a valid address with no
    /// mapping starting there is `NotMapped`.
    #[inline]
    pub fn unmap(&mut self, pid: u64, vaddr: u64) -> Result<u64, Error> {
        // Only where `map` could have put something: no walk elsewhere.
        if !vaddr.is_multiple_of(PAGE) || !(USER_MIN..USER_MAP_TOP).contains(&vaddr) {
            return Err(Error::InvalidAddress);
        }
        if unmap_at(self.caller(pid)?, vaddr) {
            Ok(0)
        } else {
            Err(Error::NotMapped)
        }
    }

    /// `protect`: the address rule of `map`, 1 to
    /// [`abi::bounds::PROTECT_PAGES`] pages, each a `map` mapping's page
    /// through a capability with the rights `to` needs; all checked before
    /// any page changes.
    pub fn protect(
        &mut self,
        pid: u64,
        vaddr: u64,
        pages: u64,
        to: Protection,
    ) -> Result<u64, Error> {
        if !vaddr.is_multiple_of(PAGE) || vaddr < USER_MIN {
            return Err(Error::InvalidAddress);
        }
        if pages == 0 || pages > abi::bounds::PROTECT_PAGES {
            return Err(Error::InvalidArgument);
        }
        vaddr
            .checked_add(pages * PAGE)
            .filter(|&end| end <= USER_MAP_TOP)
            .ok_or(Error::InvalidAddress)?;
        let needed = match to {
            Protection::None | Protection::Read => Rights::READ,
            Protection::Write => Rights::WRITE,
            Protection::Exec => Rights::EXEC,
        };
        let p = self.caller(pid)?;
        let (mappings, caps) = (&p.mappings, &p.caps);
        // Each tag names a mapping record, whose capability bounds what
        // its pages may become (program-image pages have no record, no
        // capability to judge by: `protect_range` refuses them).
        p.space.protect_range(vaddr, pages, to, |tag| {
            let record = mappings.get(usize::from(tag)).ok_or(Error::NotMapped)?;
            require(caps.get(record.handle)?.rights, needed)
        })?;
        Ok(0)
    }

    /// `page_bits`: the accessed and dirty bits of 1 to
    /// [`abi::bounds::PAGE_BITS_PAGES`] mapped pages of the caller (two
    /// bits a page, accessed first), cleared if `clear`; every page is
    /// checked before anything is cleared.
    pub fn page_bits(
        &mut self,
        pid: u64,
        vaddr: u64,
        pages: u64,
        clear: bool,
    ) -> Result<u64, Error> {
        if !vaddr.is_multiple_of(PAGE) || vaddr < USER_MIN {
            return Err(Error::InvalidAddress);
        }
        if pages == 0 || pages > abi::bounds::PAGE_BITS_PAGES {
            return Err(Error::InvalidArgument);
        }
        let end = vaddr
            .checked_add(pages * PAGE)
            .filter(|&end| end <= USER_MAP_TOP)
            .ok_or(Error::InvalidAddress)?;
        let p = self.caller(pid)?;
        if clear {
            let mut page = vaddr;
            while page < end {
                if !p.space.is_mapped(page) {
                    return Err(Error::NotMapped);
                }
                page += PAGE;
            }
        }
        let mut bits = 0;
        for i in 0..pages {
            let (accessed, dirty) = p
                .space
                .accessed_dirty(vaddr + i * PAGE, clear)
                .ok_or(Error::NotMapped)?;
            bits |= (u64::from(accessed) | u64::from(dirty) << 1) << (2 * i);
        }
        Ok(bits)
    }

    /// `process_find` once the name is copied in.
    pub fn find(&self, name: &[u8]) -> Result<u64, Error> {
        self.procs
            .values()
            .find(|p| p.name.as_bytes() == name)
            .map(|p| p.pid)
            .ok_or(Error::NoSuchProcess)
    }

    /// `frame_stats`: global counters plus `pid`'s share.
    pub fn stats(&self, pid: u64) -> FrameStats {
        let mut stats = self.platform.counters();
        stats.held_by_all = self.ledger.held_ram + self.ledger.held_private;
        if let Some(proc) = self.procs.get(pid) {
            let mut ram = proc.private.len() as u64;
            let mut device = 0;
            for (_, cap) in proc.caps.iter() {
                match cap.kind {
                    CapKind::Ram { count, .. } => ram += count,
                    CapKind::Device { .. } => device += 1,
                    CapKind::EndpointRecv { .. } | CapKind::EndpointSend { .. } => {}
                }
            }
            // What it has in queues is still charged to it.
            for (from, cap) in self.queued_caps() {
                if from == pid {
                    if let CapKind::Ram { count, .. } = cap.kind {
                        stats.queued_by_caller += count;
                    }
                }
            }
            stats.held_by_caller = ram;
            stats.device_by_caller = device;
        }
        stats
    }
}

/// The page flags of a mapping made with `flags` (device frames are always
/// uncached).
#[inline(always)]
pub(super) fn page_flags(flags: MapFlags, device: bool) -> PageFlags {
    PageFlags {
        write: flags.contains(MapFlags::WRITE),
        exec: flags.contains(MapFlags::EXEC),
        uncached: device || flags.contains(MapFlags::UNCACHED),
    }
}

/// Records a mapping of `count` frames from `first` through `h` at `vaddr`
/// (checked by the caller: rights, range, nothing mapped there) and maps
/// its pages, tagged with the record; on a failure maps nothing. The
/// capability's `mapped` count is the caller's to raise.
#[inline(always)]
pub(super) fn install<S: AddressSpace>(
    space: &mut S,
    mappings: &mut crate::slab::Slab<MapRecord>,
    h: Handle,
    first: u64,
    count: u64,
    vaddr: u64,
    pf: PageFlags,
) -> Result<(), Error> {
    let slot = mappings
        .insert(MapRecord {
            start: vaddr,
            handle: h,
            pages: count,
        })
        .map_err(|_| Error::OutOfMemory)?;
    let tag = Some(slot as Tag);
    for i in 0..count {
        if let Err(e) = space.map(vaddr + i * PAGE, (first + i) * PAGE, pf, tag) {
            for j in 0..i {
                space.unmap(vaddr + j * PAGE);
            }
            mappings.remove(slot);
            return Err(match e {
                MapError::AlreadyMapped => Error::AlreadyMapped,
                MapError::OutOfMemory => Error::OutOfMemory,
            });
        }
    }
    Ok(())
}

/// Removes every mapping made through `handle` in `proc`.
pub(super) fn unmap_handle<S: AddressSpace, R>(proc: &mut Process<S, R>, handle: Handle) {
    for slot in proc.mappings.indices_where(|m| m.handle == handle) {
        unmap_slot(proc, slot);
    }
}

/// Removes the `map` mapping that starts at `vaddr` (if any): the tag in
/// the page's leaf names its record.
fn unmap_at<S: AddressSpace, R>(proc: &mut Process<S, R>, vaddr: u64) -> bool {
    let records = &proc.mappings;
    let tag = proc.space.unmap_tagged(vaddr, |tag| {
        records
            .get(usize::from(tag))
            .is_some_and(|m| m.start == vaddr)
    });
    let Some(tag) = tag else {
        return false;
    };
    match proc.mappings.remove(usize::from(tag)) {
        Some(record) => unmapped(proc, record, 1),
        None => return false,
    }
    true
}

/// Removes mapping record `slot` and its pages.
fn unmap_slot<S: AddressSpace, R>(proc: &mut Process<S, R>, slot: usize) {
    if let Some(record) = proc.mappings.remove(slot) {
        unmapped(proc, record, 0);
    }
}

/// Finishes removing `record` (its first `done` pages are unmapped
/// already).
fn unmapped<S: AddressSpace, R>(proc: &mut Process<S, R>, record: MapRecord, done: u64) {
    if let Ok(cap) = proc.caps.get_mut(record.handle) {
        cap.mapped = cap.mapped.saturating_sub(1);
    }
    for i in done..record.pages {
        proc.space.unmap(record.start + i * PAGE);
    }
}
