//! The VT-d remapping units the DMAR lists: this module owns their
//! registers and their translation tables. At boot it maps each unit's
//! register page (uncached, in the kernel half), reads what the unit says
//! of itself (decoded by [`exo_core::vtd::Unit`]) and turns DMA remapping
//! on (legacy mode) with a root table whose every entry is not present:
//! from then on no PCI function behind the unit can DMA at all (its
//! requests are blocked and recorded as faults).
//!
//! A function becomes able to DMA when a driver claims its configuration
//! page (`frame_alloc_at`, see [`device_claimed`]): it then gets a domain
//! of its own whose context entry is pass-through, i.e. its DMA reaches
//! physical addresses untranslated, as without an IOMMU. There are no I/O
//! address spaces (`iomap`) yet, so a claimed function is not confined;
//! what the unit buys today is that a function no driver claimed cannot
//! DMA. When nobody claims the page any more ([`device_released`]) the
//! entry is cleared again and the caches invalidated. Blocked transfers
//! are read from the unit's fault records and reported ([`report_faults`],
//! polled: no fault interrupt is programmed).
//!
//! The unit's register pages are refused to device claims
//! (`Platform::kernel_owned`), so no program can reprogram it.
use exo_core::platform::ScopeKind;
use exo_core::vtd::{self, gcmd, Unit};
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
        if !unit.pass_through {
            return Err("no pass-through translation (ECAP.PT)");
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

    /// Lets function `devfn` of `bus` DMA untranslated, in a domain of its
    /// own. Returns the domain, or `None` if it already could.
    fn allow(&mut self, bus: u8, devfn: u8) -> Result<Option<u16>, &'static str> {
        if self.contexts[usize::from(bus)] == 0 {
            return Err("its bus has no context table (not in the unit's scope at boot)");
        }
        let at =
            crate::memory::phys_to_virt(self.contexts[usize::from(bus)] + 16 * u64::from(devfn))
                as *mut u64;
        // SAFETY: the context table of `bus` is a kernel frame this module
        // owns (made by `add_bus`), mapped at the offset; entry `devfn` is
        // in it.
        if unsafe { at.read_volatile() } & 1 != 0 {
            return Ok(None);
        }
        // One domain per function, named after it (ID 0 is reserved in
        // caching mode, hence the 1).
        let domain = u16::try_from(1 + (u32::from(bus) << 8 | u32::from(devfn)))
            .ok()
            .filter(|&d| u32::from(d) < self.unit.domains)
            .ok_or("no domain ID for it")?;
        let entry = vtd::pass_through_entry(domain, self.levels).ok_or("unsupported depth")?;
        // SAFETY: as above; the high half first, the present bit last.
        unsafe {
            at.add(1).write_volatile(entry[1]);
            at.write_volatile(entry[0]);
        }
        self.sync(at as *const u8, 16);
        // The unit may have cached the not-present entry (caching mode):
        // drop it before the device is used.
        self.invalidate()
            .map_err(|()| "the invalidation did not finish")?;
        Ok(Some(domain))
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
/// records; the kernel polls them when a device is claimed or released
/// and when a process ends, as no fault interrupt is programmed).
pub fn report_faults() {
    for r in REMAPPERS.lock().iter() {
        r.report_faults();
    }
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
                    "[exo] IOMMU: unit at {:#x}: translation on, root table at {:#x}: every function it serves is blocked until a driver claims it",
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
            "[exo] IOMMU: DMA remapping on: a function nobody claimed cannot DMA; a claimed function's DMA passes through untranslated (no iomap yet): DMA is not yet confined; only designated drivers may claim devices"
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

/// A driver was just granted device page `phys`: if it is the
/// configuration page of a PCI function behind a unit with translation
/// on, the function may DMA from now on (pass-through, see the module
/// docs). Anything else is left as it is.
pub fn device_claimed(phys: u64) {
    report_faults();
    with_function(phys, |r, bus, device, function| {
        match r.allow(bus, device << 3 | function) {
            Ok(Some(domain)) => crate::kprintln!(
                "[exo] IOMMU: {bus:02x}:{device:02x}.{function} claimed: its DMA passes through (domain {domain})"
            ),
            Ok(None) => {}
            Err(why) => crate::kprintln!(
                "[exo] IOMMU: {bus:02x}:{device:02x}.{function} claimed, but stays blocked from DMA: {why}"
            ),
        }
    });
}

/// A process holding device page `phys` is ending, and nothing it held
/// has been freed yet: if `phys` is a PCI function's configuration page,
/// the function is blocked from DMA again (and the IOTLB invalidated)
/// before its frames can go to anyone else. A function shared with
/// another holder is blocked too, until someone claims it again.
pub fn device_released(phys: u64) {
    report_faults();
    with_function(phys, |r, bus, device, function| {
        match r.block(bus, device << 3 | function) {
            Ok(true) => crate::kprintln!(
                "[exo] IOMMU: {bus:02x}:{device:02x}.{function} released: blocked from DMA again"
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
