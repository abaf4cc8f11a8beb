//! Reads the firmware's ACPI tables once, at boot, into an
//! [`exo_core::platform::Platform`], which this module owns: the MADT (local
//! APIC, IOAPICs), the MCFG (ECAM), the HPET and the DMAR through the `acpi`
//! crate's table lookup, decoded by the crate (MADT, MCFG) or by exo-core
//! (HPET, DMAR, whose fields the crate does not expose or decode).
//!
//! The tables lie in RAM the memory map keeps reserved (ACPI data or
//! firmware-reserved), which the bootloader maps with the rest of physical
//! memory, so reading them needs no mapping of its own.
use crate::memory::phys_to_virt;
use acpi::madt::{Madt, MadtEntry};
use acpi::mcfg::Mcfg;
use acpi::sdt::{SdtHeader, Signature};
use acpi::{AcpiHandler, AcpiTable, AcpiTables, PhysicalMapping};
use core::ptr::NonNull;
use exo_core::platform::{Dmar, EcamRegion, IoApic, Platform};
use spin::Once;

static PLATFORM: Once<Platform> = Once::new();

/// What [`init`] found (an empty record before it ran or without ACPI).
pub fn platform() -> &'static Platform {
    PLATFORM.call_once(Platform::default)
}

/// Table access through the bootloader's mapping of all physical memory.
#[derive(Clone, Copy)]
struct Handler;

impl AcpiHandler for Handler {
    unsafe fn map_physical_region<T>(
        &self,
        physical_address: usize,
        size: usize,
    ) -> PhysicalMapping<Self, T> {
        let virt = phys_to_virt(physical_address as u64).cast::<T>();
        // SAFETY: the bootloader maps every physical address below the end
        // of the memory map (and all of the first 4 GiB) at the offset
        // `phys_to_virt` adds, so `size` bytes from `virt` are mapped; the
        // pointer is not null (the offset is in the upper half).
        unsafe {
            PhysicalMapping::new(
                physical_address,
                NonNull::new_unchecked(virt),
                size,
                size,
                *self,
            )
        }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// A table known by its header alone, whose bytes exo-core decodes.
#[repr(C, packed)]
struct Raw<const DMAR: bool> {
    header: SdtHeader,
}

// SAFETY: `Raw` is exactly an SDT header, which every ACPI table starts
// with; the signature says which table it is.
unsafe impl<const DMAR: bool> AcpiTable for Raw<DMAR> {
    const SIGNATURE: Signature = if DMAR {
        Signature::DMAR
    } else {
        Signature::HPET
    };

    fn header(&self) -> &SdtHeader {
        &self.header
    }
}

/// The bytes of the table `T`, as long as its header says (the crate has
/// checked its signature and checksum).
fn bytes<T: AcpiTable>(tables: &AcpiTables<Handler>) -> Option<&'static [u8]> {
    let table = tables.find_table::<T>().ok()?;
    let len = table.get().header().length as usize;
    // SAFETY: the table lies in reserved RAM (never allocated, never
    // written by the kernel) mapped at `phys_to_virt` (see `Handler`), and
    // the crate checked that all `len` bytes of it sum to zero, which it
    // could only do by reading them.
    Some(unsafe { core::slice::from_raw_parts(phys_to_virt(table.physical_start() as u64), len) })
}

/// Reads the tables from the RSDP at `rsdp` (physical) and prints what it
/// found. Without ACPI (no RSDP, or tables the crate refuses) the record
/// stays empty and the kernel runs on its defaults, as it did before.
///
/// # Safety
/// `rsdp` is the bootloader's RSDP address for this machine; [`crate::memory::init`]
/// has run.
pub unsafe fn init(rsdp: Option<u64>) {
    let Some(rsdp) = rsdp else {
        crate::kprintln!("[exo] ACPI: the bootloader found no RSDP; using q35's defaults");
        platform();
        return;
    };
    // SAFETY: the caller's guarantee: a real RSDP, in mapped memory.
    let tables = match unsafe { AcpiTables::from_rsdp(Handler, rsdp as usize) } {
        Ok(tables) => tables,
        Err(e) => {
            crate::kprintln!("[exo] ACPI: RSDP at {rsdp:#x} refused ({e:?}); using q35's defaults");
            platform();
            return;
        }
    };
    let mut p = Platform {
        local_apic: crate::arch::local_apic_page(),
        ..Platform::default()
    };
    if let Ok(madt) = tables.find_table::<Madt>() {
        let madt = madt.get();
        p.local_apic = u64::from(madt.local_apic_address);
        for entry in madt.entries() {
            match entry {
                MadtEntry::IoApic(e) => p.io_apics.push(IoApic {
                    id: e.io_apic_id,
                    address: u64::from(e.io_apic_address),
                    gsi_base: e.global_system_interrupt_base,
                }),
                MadtEntry::LocalApicAddressOverride(e) => p.local_apic = e.local_apic_address,
                _ => {}
            }
        }
    }
    if let Ok(mcfg) = tables.find_table::<Mcfg>() {
        p.ecam = mcfg
            .entries()
            .iter()
            .find(|e| e.pci_segment_group == 0)
            .map(|e| EcamRegion {
                base: e.base_address,
                segment: e.pci_segment_group,
                bus_start: e.bus_number_start,
                bus_end: e.bus_number_end,
            });
    }
    p.hpet = bytes::<Raw<false>>(&tables).and_then(exo_core::platform::hpet_base);
    p.dmar = match bytes::<Raw<true>>(&tables).map(Dmar::parse) {
        None => None,
        Some(Ok(dmar)) => Some(dmar),
        Some(Err(why)) => {
            crate::kprintln!(
                "[exo] ACPI: DMAR refused: {why}; treating the machine as having no IOMMU"
            );
            None
        }
    };
    report(rsdp, &p);
    PLATFORM.call_once(|| p);
}

/// The boot log's account of the tables.
fn report(rsdp: u64, p: &Platform) {
    crate::kprintln!(
        "[exo] ACPI: RSDP at {rsdp:#x}; MADT: local APIC at {:#x}, {} IOAPIC(s){}",
        p.local_apic,
        p.io_apics.len(),
        IoApicList(&p.io_apics)
    );
    match p.ecam {
        Some(e) => crate::kprintln!(
            "[exo] ACPI: MCFG: ECAM at {:#x}, segment {}, buses {:#04x}..={:#04x}",
            e.base,
            e.segment,
            e.bus_start,
            e.bus_end
        ),
        None => crate::kprintln!("[exo] ACPI: no MCFG: no PCI configuration space for user space"),
    }
    match p.hpet {
        Some(base) => crate::kprintln!("[exo] ACPI: HPET at {base:#x}"),
        None => crate::kprintln!("[exo] ACPI: no HPET"),
    }
    match &p.dmar {
        None => crate::kprintln!("[exo] ACPI: no DMAR: the machine reports no IOMMU"),
        Some(d) => {
            crate::kprintln!(
                "[exo] ACPI: DMAR: host address width {} bits, interrupt remapping {}, {} remapping unit(s), {} reserved region(s)",
                d.host_address_width,
                if d.interrupt_remapping { "supported" } else { "not supported" },
                d.units.len(),
                d.reserved.len()
            );
            for u in &d.units {
                crate::kprintln!(
                    "[exo] ACPI: DMAR unit at {:#x}, segment {}{}{}",
                    u.base,
                    u.segment,
                    if u.include_pci_all {
                        ", all PCI devices (INCLUDE_PCI_ALL)"
                    } else {
                        ""
                    },
                    ScopeList(&u.scopes)
                );
            }
        }
    }
}

/// ` at A, B` (nothing if empty).
struct IoApicList<'a>(&'a [IoApic]);

impl core::fmt::Display for IoApicList<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            f.write_str(if i == 0 { " at " } else { ", " })?;
            write!(f, "{:#x} (id {}, GSI {})", a.address, a.id, a.gsi_base)?;
        }
        Ok(())
    }
}

/// `; scope: A, B` (nothing if empty).
struct ScopeList<'a>(&'a [exo_core::platform::DeviceScope]);

impl core::fmt::Display for ScopeList<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            f.write_str(if i == 0 { "; scope: " } else { ", " })?;
            write!(f, "{s}")?;
        }
        Ok(())
    }
}
