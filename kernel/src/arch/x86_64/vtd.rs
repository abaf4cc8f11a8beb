//! The VT-d remapping units the DMAR lists: this module owns their
//! registers and their translation tables. At boot it maps each unit's
//! register page (uncached, in the kernel half), reads what the unit says
//! of itself (decoded by [`exo_core::vtd::Unit`]) and turns DMA remapping
//! on (legacy mode) with a root table whose every entry is not present:
//! from then on no PCI function behind the unit can DMA at all (its
//! requests are blocked and recorded as faults).
//!
//! Each function has its own DMA address space: a domain with a
//! second-level page table, made at the first `iomap` of a frame into it
//! ([`io_map`]); the object model (`exo_core::object::iomap`) decides what
//! is mapped where and when the IOTLB is flushed ([`io_flush`]), which is
//! always before a frame a device could reach goes back to the allocator.
//! A DMA to an address the table does not map is blocked. When nobody
//! holds the function's configuration page any more ([`device_released`])
//! its context entry is cleared, the caches invalidated, and only then its
//! tables freed. Blocked transfers are read from the unit's fault records
//! and reported ([`report_faults`], polled: no fault interrupt is
//! programmed).
//!
//! Interrupts are not remapped: an MSI is a write to 0xfeeX_XXXX, which
//! DMA remapping does not translate, so a driver can still send any
//! vector (the kernel counts unowned vectors as spurious and blames nobody).
//!
//! The unit's register pages are refused to device claims
//! (`Platform::kernel_owned`), so no program can reprogram it.
use exo_core::platform::ScopeKind;
use exo_core::vtd::{self, gcmd, sl, Unit};
use spin::Mutex;

/// Version register.
const VER: usize = 0x00;
/// Capability register.
const CAP: usize = 0x08;
/// Extended capability register.
const ECAP: usize = 0x10;
/// Global command register.
const GCMD: usize = 0x18;
/// Global status register.
const GSTS: usize = 0x1c;
/// Root table address register.
const RTADDR: usize = 0x20;
/// Context command register.
const CCMD: usize = 0x28;
/// Fault status register.
const FSTS: usize = 0x34;
/// GSTS: queued invalidation is enabled.
const QIES: u32 = 1 << 26;
/// Page-table frames one function's DMA address space may have (its
/// root and the tables below it; 2 MiB of kernel memory): an `iomap` that
/// would need more is `OutOfMemory`. Tables are freed with the space.
const TABLES_PER_DOMAIN: usize = 512;
/// How long to wait for the unit to finish a command, in polls (QEMU
/// finishes them within the register write).
const POLLS: u32 = 1 << 24;

/// One unit's register page, mapped.
struct Registers(u64);

impl Registers {
    fn read32(&self, offset: usize) -> u32 {
        // SAFETY: `self.0` maps the unit's register page uncached (made by
        // `init` with `map_kernel_device`); `offset` is one of the
        // register offsets above, inside the page and 4-byte aligned, and
        // reading these registers has no side effects.
        unsafe { ((self.0 as usize + offset) as *const u32).read_volatile() }
    }

    fn read64(&self, offset: usize) -> u64 {
        // SAFETY: as in `read32`, for an 8-byte aligned 64-bit register
        // (the IOTLB register's offset comes from ECAP.IRO, inside the
        // page for every unit the kernel enables: see `Remapper::enable`).
        unsafe { ((self.0 as usize + offset) as *const u64).read_volatile() }
    }

    fn write32(&self, offset: usize, value: u32) {
        // SAFETY: as in `read32`; the writes this module makes (GCMD) are
        // the commands the VT-d specification defines, issued in its order.
        unsafe { ((self.0 as usize + offset) as *mut u32).write_volatile(value) }
    }

    fn write64(&self, offset: usize, value: u64) {
        // SAFETY: as in `read64` and `write32` (RTADDR, CCMD, IOTLB).
        unsafe { ((self.0 as usize + offset) as *mut u64).write_volatile(value) }
    }

    /// Waits until `done(register)` holds; `Err` after [`POLLS`] polls.
    fn wait64(&self, offset: usize, done: impl Fn(u64) -> bool) -> Result<(), ()> {
        (0..POLLS)
            .find(|_| {
                let ok = done(self.read64(offset));
                core::hint::spin_loop();
                ok
            })
            .map(|_| ())
            .ok_or(())
    }

    fn wait_status(&self, bit: u32) -> Result<(), ()> {
        (0..POLLS)
            .find(|_| self.read32(GSTS) & bit != 0)
            .map(|_| ())
            .ok_or(())
    }
}

/// Writes back the cache lines of `len` bytes at kernel address `at`, so a
/// unit whose page walks do not snoop the CPU caches (ECAP.C = 0) sees
/// what the kernel wrote; then fences, so the flush is done before the
/// invalidation command that follows.
fn flush(at: *const u8, len: usize) {
    for line in (0..len).step_by(64) {
        // SAFETY: `at..at + len` is a kernel mapping of a table frame this
        // module owns (the physical-memory offset mapping); `clflush` only
        // writes a line back and drops it from the cache.
        unsafe {
            core::arch::asm!("clflush [{}]", in(reg) at.wrapping_add(line), options(nostack, preserves_flags))
        };
    }
    // SAFETY: a fence has no memory effects beyond ordering.
    unsafe { core::arch::asm!("mfence", options(nostack, preserves_flags)) };
}

/// A unit with translation on, and its tables.
struct Remapper {
    regs: Registers,
    unit: Unit,
    /// Its register page's physical address (the DMAR's name for it).
    base: u64,
    /// Page-table depth (what the context entries' AW says).
    levels: u8,
    /// Physical address of the root table.
    root: u64,
    /// Physical address of each bus's context table, 0 where none yet.
    contexts: [u64; 256],
    /// The functions with a DMA address space, by `bus << 8 | devfn`.
    domains: alloc::collections::BTreeMap<u16, Domain>,
}

/// One function's DMA address space: its second-level page tables.
struct Domain {
    /// Physical address of the top-level table.
    root: u64,
    /// Every table frame of it (the root first), freed with it.
    tables: alloc::vec::Vec<u64>,
}

impl Remapper {
    /// Builds a root table for the unit at `base` with an empty context
    /// table for each of `buses`, and turns translation on; every function
    /// behind it is blocked from then on.
    fn enable(
        regs: Registers,
        unit: Unit,
        base: u64,
        buses: impl Iterator<Item = u8>,
    ) -> Result<Remapper, &'static str> {
        let levels = unit.levels().ok_or("no 3- or 4-level page tables")?;
        // Register-based invalidation is ignored while queued invalidation
        // is on (VT-d 6.5.2): a flush would "finish" and flush nothing.
        if regs.read32(GSTS) & QIES != 0 {
            return Err("the firmware left queued invalidation on, and this kernel flushes through the registers only");
        }
        if unit.write_buffer_flush {
            return Err("needs write-buffer flushes (CAP.RWBF), which this kernel does not issue");
        }
        if unit.iotlb_offset as usize + 16 > 4096 {
            return Err("IOTLB registers outside the register page");
        }
        let root =
            crate::memory::alloc_kernel_frame().map_err(|_| "no frame for the root table")?;
        let mut r = Remapper {
            regs,
            unit,
            base,
            levels,
            root,
            contexts: [0; 256],
            domains: alloc::collections::BTreeMap::new(),
        };
        r.sync(crate::memory::phys_to_virt(root), 4096);
        for bus in buses {
            r.add_bus(bus)?;
        }
        r.regs.write64(RTADDR, root);
        r.regs
            .write32(GCMD, gcmd::issue(r.regs.read32(GSTS), gcmd::SRTP));
        r.regs
            .wait_status(gcmd::SRTP)
            .map_err(|()| "the root table pointer was not latched")?;
        r.invalidate()
            .map_err(|()| "a global invalidation did not finish")?;
        r.regs
            .write32(GCMD, gcmd::issue(r.regs.read32(GSTS), gcmd::TE));
        r.regs
            .wait_status(gcmd::TE)
            .map_err(|()| "translation did not turn on")?;
        Ok(r)
    }

    /// Makes table bytes the kernel wrote visible to the unit.
    fn sync(&self, at: *const u8, len: usize) {
        if !self.unit.coherent {
            flush(at, len);
        }
    }

    /// Invalidates the whole context cache, then the whole IOTLB.
    fn invalidate(&self) -> Result<(), ()> {
        self.regs.write64(CCMD, vtd::CCMD_GLOBAL);
        self.regs.wait64(CCMD, |v| v & vtd::CCMD_ICC == 0)?;
        let iotlb = self.unit.iotlb_offset as usize + 8;
        self.regs.write64(iotlb, vtd::IOTLB_GLOBAL);
        self.regs.wait64(iotlb, |v| v & vtd::IOTLB_IVT == 0)
    }

    /// Gives `bus` an empty context table (every function on it still
    /// blocked). Boot only: the tables are the kernel's for good.
    fn add_bus(&mut self, bus: u8) -> Result<(), &'static str> {
        if self.contexts[usize::from(bus)] != 0 {
            return Ok(());
        }
        let table =
            crate::memory::alloc_kernel_frame().map_err(|_| "no frame for a context table")?;
        self.sync(crate::memory::phys_to_virt(table), 4096);
        let entry = vtd::root_entry(table);
        let at = crate::memory::phys_to_virt(self.root + 16 * u64::from(bus)) as *mut u64;
        // SAFETY: `self.root` is this unit's root table, a kernel frame this
        // module owns, mapped at the physical-memory offset; entry `bus` is
        // 16 bytes inside it. The high half first, the present bit (in the
        // low half) last.
        unsafe {
            at.add(1).write_volatile(entry[1]);
            at.write_volatile(entry[0]);
        }
        self.sync(at as *const u8, 16);
        self.contexts[usize::from(bus)] = table;
        Ok(())
    }

    /// The context entry of function `devfn` of `bus`, in its bus's table.
    fn context_at(&self, bus: u8, devfn: u8) -> Result<*mut u64, &'static str> {
        let table = self.contexts[usize::from(bus)];
        if table == 0 {
            return Err("its bus has no context table (not in the unit's scope at boot)");
        }
        Ok(crate::memory::phys_to_virt(table + 16 * u64::from(devfn)) as *mut u64)
    }

    /// The DMA address space of function `devfn` of `bus`, made (empty,
    /// with a context entry pointing at it) if it has none yet.
    fn domain(&mut self, bus: u8, devfn: u8) -> Result<&mut Domain, &'static str> {
        let key = u16::from(bus) << 8 | u16::from(devfn);
        if !self.domains.contains_key(&key) {
            let at = self.context_at(bus, devfn)?;
            let domain = domain_id(self, bus, devfn).ok_or("no domain ID for it")?;
            let root = crate::memory::alloc_kernel_frame().map_err(|_| "no frame for its table")?;
            self.sync(crate::memory::phys_to_virt(root), 4096);
            let Some(entry) = vtd::translated_entry(domain, self.levels, root) else {
                // SAFETY: `root` came from `alloc_kernel_frame` just now
                // and nothing points at it.
                unsafe { crate::memory::free_kernel_frame(root) };
                return Err("unsupported depth");
            };
            // SAFETY: `at` is the function's entry in a context table this
            // module owns (made by `add_bus`), mapped at the offset. The
            // high half first, the present bit (in the low half) last.
            unsafe {
                at.add(1).write_volatile(entry[1]);
                at.write_volatile(entry[0]);
            }
            self.sync(at as *const u8, 16);
            // The unit may have cached the not-present entry (caching
            // mode): drop it before the device is used.
            if self.invalidate().is_err() {
                crate::kprintln!("[exo] IOMMU: BUG: an invalidation did not finish");
            }
            let (b, d, f) = (bus, devfn >> 3, devfn & 7);
            crate::kprintln!(
                "[exo] IOMMU: {b:02x}:{d:02x}.{f}: DMA address space made (domain {domain}): its DMA reaches only what its driver maps (iomap)"
            );
            self.domains.insert(
                key,
                Domain {
                    root,
                    tables: alloc::vec![root],
                },
            );
        }
        self.domains.get_mut(&key).ok_or("no domain")
    }

    /// The leaf entry for `iova` in `domain`'s tables, making the tables
    /// on the way if `make` (else `None` where one is missing).
    fn leaf(&mut self, key: u16, iova: u64, make: bool) -> Option<*mut u64> {
        let levels = self.levels;
        let coherent = self.unit.coherent;
        let domain = self.domains.get_mut(&key)?;
        let mut table = domain.root;
        for level in (2..=levels).rev() {
            let at = (crate::memory::phys_to_virt(table) as *mut u64)
                .wrapping_add(sl::index(iova, level));
            // SAFETY: `table` is a table frame of this domain (its root or
            // one made below), mapped at the offset; the index is < 512.
            let entry = unsafe { at.read_volatile() };
            table = if sl::present(entry) {
                entry & sl::ADDRESS
            } else if make {
                if domain.tables.len() >= TABLES_PER_DOMAIN {
                    return None;
                }
                let next = crate::memory::alloc_kernel_frame().ok()?;
                if !coherent {
                    flush(crate::memory::phys_to_virt(next), 4096);
                }
                domain.tables.push(next);
                // SAFETY: as above; the new table is zeroed (all entries
                // not present) and flushed before the entry names it.
                unsafe { at.write_volatile(sl::table(next)) };
                if !coherent {
                    flush(at as *const u8, 8);
                }
                next
            } else {
                return None;
            };
        }
        Some((crate::memory::phys_to_virt(table) as *mut u64).wrapping_add(sl::index(iova, 1)))
    }

    /// Writes a leaf entry and makes it visible to the unit.
    fn set_leaf(&self, at: *mut u64, value: u64) {
        // SAFETY: `at` came from `leaf`: an entry of a leaf table of one of
        // this unit's domains, mapped at the offset.
        unsafe { at.write_volatile(value) };
        self.sync(at as *const u8, 8);
    }
}

impl Remapper {
    /// Blocks function `devfn` of `bus` from DMA again; once this returns
    /// `Ok(true)` the unit caches no translation for it. `Ok(false)` if it
    /// was blocked already.
    fn block(&mut self, bus: u8, devfn: u8) -> Result<bool, &'static str> {
        let table = self.contexts[usize::from(bus)];
        if table == 0 {
            return Ok(false);
        }
        let at = crate::memory::phys_to_virt(table + 16 * u64::from(devfn)) as *mut u64;
        // SAFETY: the context table of `bus` is a kernel frame this module
        // owns (made by `add_bus`), mapped at the offset; entry `devfn` is
        // in it. The present bit (low half) goes first.
        unsafe {
            if at.read_volatile() & 1 == 0 {
                return Ok(false);
            }
            at.write_volatile(0);
            at.add(1).write_volatile(0);
        }
        self.sync(at as *const u8, 16);
        self.invalidate()
            .map_err(|()| "the invalidation did not finish")?;
        // Nothing can walk its tables any more: they can go.
        if let Some(domain) = self
            .domains
            .remove(&(u16::from(bus) << 8 | u16::from(devfn)))
        {
            for table in domain.tables {
                // SAFETY: a table frame of this domain (`alloc_kernel_frame`),
                // which no context entry names any more and the unit caches
                // nothing of (invalidated above).
                unsafe { crate::memory::free_kernel_frame(table) };
            }
        }
        Ok(true)
    }
}

impl Remapper {
    /// Reads, reports and clears every primary fault record the unit holds
    /// (each is a DMA it blocked), then the overflow flag.
    fn report_faults(&self) {
        if self.regs.read32(FSTS) & (vtd::FSTS_PPF | vtd::FSTS_PFO) == 0 {
            return;
        }
        let records = (self.unit.fault_records as usize).min(256);
        for i in 0..records {
            let at = self.unit.fault_recording_offset as usize + 16 * i;
            if at + 16 > 4096 {
                break;
            }
            let record = [self.regs.read64(at), self.regs.read64(at + 8)];
            if let Some(fault) = vtd::Fault::decode(record) {
                crate::kprintln!("[exo] IOMMU: blocked DMA {fault}");
                let mut told = TO_TELL.lock();
                if told.len() < TO_TELL_MAX {
                    told.push(fault);
                }
                // F is write-1-to-clear; the rest of the high half is
                // read-only.
                self.regs.write64(at + 8, vtd::FAULT_F);
            }
        }
        let fsts = self.regs.read32(FSTS);
        if fsts & vtd::FSTS_PFO != 0 {
            crate::kprintln!(
                "[exo] IOMMU: more blocked DMA than fault records: some went unreported"
            );
        }
        self.regs.write32(FSTS, fsts & vtd::FSTS_PFO);
    }
}

/// Reports the DMA the units blocked since the last call (the fault
/// records; the kernel polls them at every `iomap`/`iounmap`, when a
/// device is released and when a process ends, as no fault interrupt is
/// programmed).
pub fn report_faults() {
    for r in REMAPPERS.lock().iter() {
        r.report_faults();
    }
}

/// Faults read but not yet told to their function's holder
/// ([`take_faults`]); at most [`TO_TELL_MAX`] (the kernel's report is
/// the record of any beyond).
static TO_TELL: Mutex<alloc::vec::Vec<vtd::Fault>> = Mutex::new(alloc::vec::Vec::new());
const TO_TELL_MAX: usize = 32;

/// The faults reported since the last call, each with the configuration
/// page of the function that made it: the kernel tells their holders
/// (`Kernel::io_fault`) where it holds the object model.
pub fn take_faults() -> alloc::vec::Vec<(u64, vtd::Fault)> {
    let faults = core::mem::take(&mut *TO_TELL.lock());
    let platform = crate::acpi::platform();
    faults
        .into_iter()
        .filter_map(|f| {
            let ecam = platform.ecam.as_ref()?;
            Some((ecam.config_page(f.bus, f.device, f.function)?, f))
        })
        .collect()
}

/// The units with translation on.
static REMAPPERS: Mutex<alloc::vec::Vec<Remapper>> = Mutex::new(alloc::vec::Vec::new());

/// Reads and prints every unit of the DMAR and turns translation on where
/// the unit allows it; prints what that means for DMA. Runs at boot,
/// before the first address space (it maps the registers).
pub fn init(platform: &exo_core::platform::Platform) {
    let Some(dmar) = &platform.dmar else {
        crate::kprintln!(
            "[exo] IOMMU: none (no ACPI DMAR table): DMA is unconfined; only designated drivers may claim devices"
        );
        return;
    };
    let mut on = 0;
    for u in &dmar.units {
        if !u.base.is_multiple_of(4096) || u.base == 0 {
            crate::kprintln!(
                "[exo] IOMMU: unit at {:#x}: not a page address, left alone",
                u.base
            );
            continue;
        }
        let regs = Registers(super::paging::map_kernel_device(u.base));
        let (cap, ecap) = (regs.read64(CAP), regs.read64(ECAP));
        let unit = Unit::decode(regs.read32(VER), cap, ecap);
        let was_on = regs.read32(GSTS) & gcmd::TE != 0;
        crate::kprintln!(
            "[exo] IOMMU: unit at {:#x}: {unit} (CAP {cap:#x}, ECAP {ecap:#x}); translation {}",
            u.base,
            if was_on {
                "on (left by the firmware)"
            } else {
                "off"
            }
        );
        let buses = u
            .scopes
            .iter()
            .filter(|s| matches!(s.kind, ScopeKind::PciEndpoint | ScopeKind::PciSubHierarchy))
            .map(|s| s.start_bus)
            .chain(
                platform
                    .ecam
                    .filter(|e| u.include_pci_all && e.segment == u.segment)
                    .map(|e| e.bus_start),
            );
        match Remapper::enable(regs, unit, u.base, buses) {
            Ok(r) => {
                crate::kprintln!(
                    "[exo] IOMMU: unit at {:#x}: translation on, root table at {:#x}: every function it serves is blocked until its driver maps frames for it",
                    u.base,
                    r.root
                );
                REMAPPERS.lock().push(r);
                on += 1;
            }
            Err(why) => crate::kprintln!(
                "[exo] IOMMU: unit at {:#x}: translation left off: {why}",
                u.base
            ),
        }
    }
    if on == dmar.units.len() && on > 0 {
        crate::kprintln!(
            "[exo] IOMMU: DMA is confined by VT-d: a PCI function reaches only the frames its driver maps for it (iomap), none before; interrupts are not remapped"
        );
    } else {
        crate::kprintln!(
            "[exo] IOMMU: DMA remapping is not on for every unit: DMA is unconfined; only designated drivers may claim devices"
        );
    }
}

/// The remapping unit (with translation on) and the function whose
/// configuration page is `phys`, if it is one; runs `f` on them.
fn with_function<T>(phys: u64, f: impl FnOnce(&mut Remapper, u8, u8, u8) -> T) -> Option<T> {
    let platform = crate::acpi::platform();
    let (Some(ecam), Some(dmar)) = (&platform.ecam, &platform.dmar) else {
        return None;
    };
    let (bus, device, function) = ecam.function_at(phys)?;
    let unit = dmar.unit_for(ecam.segment, bus, device, function)?;
    let mut remappers = REMAPPERS.lock();
    let r = remappers.iter_mut().find(|r| r.base == unit.base)?;
    Some(f(r, bus, device, function))
}

/// Whether a unit with translation on serves the PCI function whose
/// configuration page is `phys` (then `iomap` confines its DMA).
/// Every `iomap` and `iounmap` asks this first, so the fault records are
/// read here too (a unit has few: QEMU's one): a transfer the unit blocked
/// is reported by the driver's next IOMMU operation at the latest. A
/// function whose bus has no context table, or that no domain ID can
/// name, is not translated (it stays blocked; `iomap` says `NotSupported`).
pub fn translates(phys: u64) -> bool {
    report_faults();
    with_function(phys, |r, bus, device, f| {
        r.contexts[usize::from(bus)] != 0 && domain_id(r, bus, device << 3 | f).is_some()
    })
    .unwrap_or(false)
}

/// The domain ID of function `devfn` of `bus`: one per function, named
/// after it (ID 0 is reserved in caching mode, hence the 1), if the unit
/// has that many.
fn domain_id(r: &Remapper, bus: u8, devfn: u8) -> Option<u16> {
    u16::try_from(1 + (u32::from(bus) << 8 | u32::from(devfn)))
        .ok()
        .filter(|&d| u32::from(d) < r.unit.domains)
}

/// Maps I/O page `iova` of the function at config page `function` to
/// frame `frame` (making its address space on first use); the object
/// model checked that nothing is mapped there.
pub fn io_map(function: u64, iova: u64, frame: u64, read: bool, write: bool) -> Result<(), ()> {
    with_function(function, |r, bus, device, f| {
        let devfn = device << 3 | f;
        if let Err(why) = r.domain(bus, devfn) {
            crate::kprintln!(
                "[exo] IOMMU: {bus:02x}:{device:02x}.{f}: no DMA address space: {why}"
            );
            return Err(());
        }
        let key = u16::from(bus) << 8 | u16::from(devfn);
        let at = r.leaf(key, iova, true).ok_or(())?;
        // A device may ask for accesses that do not snoop the CPU caches,
        // and the frame was zeroed through them: it must not read the old
        // owner's bytes from memory behind the zeros. The unit forces
        // snooping (SNP) where it can; else the zeros go to memory first.
        let leaf = if r.unit.snoop_control {
            sl::leaf(frame * 4096, read, write) | sl::SNOOP
        } else {
            flush(crate::memory::phys_to_virt(frame * 4096), 4096);
            sl::leaf(frame * 4096, read, write)
        };
        r.set_leaf(at, leaf);
        Ok(())
    })
    .unwrap_or(Err(()))
}

/// Whether I/O page `iova` of `function` maps anything.
pub fn io_is_mapped(function: u64, iova: u64) -> bool {
    with_function(function, |r, bus, device, f| {
        let key = u16::from(bus) << 8 | u16::from(device << 3 | f);
        r.leaf(key, iova, false)
            // SAFETY: `leaf` returns an entry of one of the domain's leaf
            // tables, mapped at the offset.
            .is_some_and(|at| sl::present(unsafe { at.read_volatile() }))
    })
    .unwrap_or(false)
}

/// Unmaps I/O page `iova` of `function` (the caller flushes before the
/// frame can be reused).
pub fn io_unmap(function: u64, iova: u64) {
    with_function(function, |r, bus, device, f| {
        let key = u16::from(bus) << 8 | u16::from(device << 3 | f);
        if let Some(at) = r.leaf(key, iova, false) {
            r.set_leaf(at, 0);
        }
    });
}

/// Invalidates the unit's caches for `function`: when this returns, the
/// device reaches nothing unmapped before (and, in caching mode, sees
/// what was just mapped).
pub fn io_flush(function: u64) {
    with_function(function, |r, bus, device, f| {
        if r.invalidate().is_err() {
            crate::kprintln!(
                "[exo] IOMMU: BUG: {bus:02x}:{device:02x}.{f}: an IOTLB invalidation did not finish"
            );
        }
    });
}

/// Nobody holds device page `phys` any more: if it is a PCI function's
/// configuration page, the function is blocked from DMA again (the IOTLB
/// invalidated) and its address space freed. The object model removed
/// every `iomap` of it before (each when its capability went).
pub fn device_released(phys: u64) {
    report_faults();
    with_function(phys, |r, bus, device, function| {
        match r.block(bus, device << 3 | function) {
            Ok(true) => crate::kprintln!(
                "[exo] IOMMU: {bus:02x}:{device:02x}.{function} released: blocked from DMA, its address space freed"
            ),
            Ok(false) => {}
            // The unit did not confirm: a hardware failure the kernel
            // cannot repair; say so loudly.
            Err(why) => crate::kprintln!(
                "[exo] IOMMU: BUG: {bus:02x}:{device:02x}.{function} released, but {why}"
            ),
        }
    });
}
