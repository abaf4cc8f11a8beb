//! The VT-d remapping units the DMAR lists: this module maps each unit's
//! register page (uncached, in the kernel half, at boot) and reads what the
//! unit says of itself (version, capabilities, whether translation is on),
//! decoded by [`exo_core::vtd::Unit`].
//!
//! It does not turn DMA remapping on: the kernel has no I/O address spaces
//! yet (drivers still give devices physical addresses), so DMA stays
//! unconfined and the boot log says so. The unit's register pages are
//! refused to device claims (`Platform::kernel_owned`), so no program can
//! program it either.
use exo_core::vtd::Unit;

/// Version register.
const VER: usize = 0x00;
/// Capability register.
const CAP: usize = 0x08;
/// Extended capability register.
const ECAP: usize = 0x10;
/// Global status register.
const GSTS: usize = 0x1c;
/// GSTS: translation enabled.
const GSTS_TES: u32 = 1 << 31;

/// One unit's register page, mapped.
struct Registers(u64);

impl Registers {
    fn read32(&self, offset: usize) -> u32 {
        // SAFETY: `self.0` maps the unit's register page uncached (made by
        // `report` with `map_kernel_device`); `offset` is one of the
        // register offsets above, inside the page and 4-byte aligned, and
        // reading these registers has no side effects.
        unsafe { ((self.0 as usize + offset) as *const u32).read_volatile() }
    }

    fn read64(&self, offset: usize) -> u64 {
        // SAFETY: as in `read32`, for an 8-byte aligned 64-bit register.
        unsafe { ((self.0 as usize + offset) as *const u64).read_volatile() }
    }
}

/// Reads and prints every unit of the DMAR, and what that means for DMA.
/// Runs at boot, before the first address space (it maps the registers).
pub fn report(platform: &exo_core::platform::Platform) {
    let Some(dmar) = &platform.dmar else {
        crate::kprintln!(
            "[exo] IOMMU: none (no ACPI DMAR table): DMA is unconfined; only designated drivers may claim devices"
        );
        return;
    };
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
        let on = regs.read32(GSTS) & GSTS_TES != 0;
        crate::kprintln!(
            "[exo] IOMMU: unit at {:#x}: {unit} (CAP {cap:#x}, ECAP {ecap:#x}); translation {}",
            u.base,
            if on {
                "on (left by the firmware)"
            } else {
                "off"
            }
        );
    }
    crate::kprintln!(
        "[exo] IOMMU: DMA remapping is not programmed yet: DMA is unconfined; only designated drivers may claim devices"
    );
}
