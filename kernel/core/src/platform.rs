//! The platform as the firmware's ACPI tables describe it: a plain record
//! ([`Platform`]) of what the kernel used to hard-code for q35 (where the
//! local APIC, the IOAPICs and the HPET are, where PCI configuration space
//! lies under ECAM) and of the VT-d DMA remapping units ([`Dmar`]).
//!
//! The kernel fills the record from the `acpi` crate for the MADT, MCFG
//! and HPET. That crate does not decode the DMAR, so [`Dmar::parse`] does,
//! from the table's bytes, checking every length against the bytes there
//! are (a table the firmware got wrong is refused with a reason, never read
//! past its end).
use alloc::vec::Vec;
use core::fmt;

/// What the kernel learnt from ACPI.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Platform {
    /// The local APIC's register page (the MADT's, or its 64-bit override).
    pub local_apic: u64,
    /// The IOAPICs the MADT lists.
    pub io_apics: Vec<IoApic>,
    /// PCI segment group 0's configuration space (the MCFG's first entry
    /// for segment 0), if the machine has ECAM.
    pub ecam: Option<EcamRegion>,
    /// The HPET's register block, if there is one.
    pub hpet: Option<u64>,
    /// The DMA remapping units, if the firmware reports any (no DMAR
    /// table: no IOMMU, DMA is unconfined).
    pub dmar: Option<Dmar>,
}

impl Platform {
    /// Whether the page at `phys` holds registers the kernel keeps to
    /// itself: the local APIC's, an IOAPIC's (whoever programs them can
    /// inject any vector or silence the timer) or a DMA remapping unit's
    /// (whoever programs it decides what every device may reach).
    pub fn kernel_owned(&self, phys: u64) -> bool {
        let page = phys & !0xfff;
        page == self.local_apic & !0xfff
            || self.io_apics.iter().any(|a| a.address & !0xfff == page)
            || self
                .dmar
                .iter()
                .flat_map(|d| &d.units)
                .any(|u| (u.base..u.base.saturating_add(u.pages * 4096)).contains(&page))
    }
}

/// An IOAPIC of the MADT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApic {
    /// Its APIC ID.
    pub id: u8,
    /// Its register page.
    pub address: u64,
    /// The first global system interrupt it serves.
    pub gsi_base: u32,
}

/// A range of buses' configuration space under ECAM (an MCFG entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EcamRegion {
    /// Physical address of bus 0's space (bus `b` starts `b << 20` above).
    pub base: u64,
    /// PCI segment group.
    pub segment: u16,
    /// First bus decoded.
    pub bus_start: u8,
    /// Last bus decoded (inclusive).
    pub bus_end: u8,
}

impl EcamRegion {
    /// Physical address of the configuration page of `bus:device.function`,
    /// or `None` if the bus is outside the range or the numbers are out of
    /// range (32 devices, 8 functions).
    pub fn config_page(&self, bus: u8, device: u8, function: u8) -> Option<u64> {
        ((self.bus_start..=self.bus_end).contains(&bus) && device < 32 && function < 8).then(|| {
            self.base + (u64::from(bus) << 20 | u64::from(device) << 15 | u64::from(function) << 12)
        })
    }

    /// The function `(bus, device, function)` whose configuration page
    /// holds physical address `phys`, or `None` if `phys` is outside the
    /// range's buses (the inverse of [`EcamRegion::config_page`]).
    pub fn function_at(&self, phys: u64) -> Option<(u8, u8, u8)> {
        let offset = phys.checked_sub(self.base)?;
        let bus = u8::try_from(offset >> 20).ok()?;
        (self.bus_start..=self.bus_end).contains(&bus).then_some((
            bus,
            (offset >> 15 & 31) as u8,
            (offset >> 12 & 7) as u8,
        ))
    }
}

/// The HPET's register block from the HPET table's bytes (header
/// included): its generic address at offset 40, `None` if the table is too
/// short or the block is not in memory space (address space 0).
pub fn hpet_base(table: &[u8]) -> Option<u64> {
    (table.len() >= 52 && table[40] == 0).then(|| u64_at(table, 44))
}

/// The DMAR table: the VT-d remapping hardware (Intel VT-d specification,
/// chapter 8).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dmar {
    /// DMA addresses the platform supports, in bits (the table's N + 1).
    pub host_address_width: u8,
    /// Interrupt remapping is supported (flag bit 0).
    pub interrupt_remapping: bool,
    /// The firmware asks the OS not to turn on x2APIC mode (flag bit 1).
    pub x2apic_opt_out: bool,
    /// The DMA remapping hardware units (DRHD structures).
    pub units: Vec<RemappingUnit>,
    /// Memory the firmware needs devices to keep reaching (RMRR).
    pub reserved: Vec<ReservedRegion>,
    /// Remapping structures of other types (ATSR, RHSA, ANDD, SATC, ...),
    /// skipped.
    pub other: usize,
}

/// A DMA remapping hardware unit (DRHD).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemappingUnit {
    /// Its register page.
    pub base: u64,
    /// Pages of registers (2^size from the DRHD's size field; 1 where
    /// the firmware leaves the field 0, as VT-d before 3.x does).
    pub pages: u64,
    /// The PCI segment it serves.
    pub segment: u16,
    /// It serves every PCI device of the segment not listed under another
    /// unit (flag INCLUDE_PCI_ALL).
    pub include_pci_all: bool,
    /// The devices listed (with `include_pci_all`, the IOAPICs and HPETs
    /// in its scope).
    pub scopes: Vec<DeviceScope>,
}

/// A reserved memory region (RMRR).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservedRegion {
    /// PCI segment.
    pub segment: u16,
    /// First byte.
    pub base: u64,
    /// Last byte (inclusive).
    pub limit: u64,
    /// The devices that use it.
    pub scopes: Vec<DeviceScope>,
}

/// What a device scope names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeKind {
    /// A PCI endpoint device (1).
    PciEndpoint,
    /// A PCI bridge and everything behind it (2).
    PciSubHierarchy,
    /// An IOAPIC (3).
    IoApic,
    /// An HPET (MSI capable; 4).
    Hpet,
    /// An ACPI namespace device (5).
    AcpiNamespace,
    /// A type this decoder does not know.
    Other(u8),
}

impl ScopeKind {
    fn from_code(code: u8) -> ScopeKind {
        match code {
            1 => ScopeKind::PciEndpoint,
            2 => ScopeKind::PciSubHierarchy,
            3 => ScopeKind::IoApic,
            4 => ScopeKind::Hpet,
            5 => ScopeKind::AcpiNamespace,
            other => ScopeKind::Other(other),
        }
    }
}

/// A device scope entry: which device, found by walking `path` from
/// `start_bus`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceScope {
    /// What it names.
    pub kind: ScopeKind,
    /// IOAPIC ID, HPET number or ACPI device number (0 for PCI).
    pub enumeration_id: u8,
    /// The bus the path starts on.
    pub start_bus: u8,
    /// (device, function) hops, through bridges.
    pub path: Vec<(u8, u8)>,
}

impl fmt::Display for DeviceScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ScopeKind::PciEndpoint => f.write_str("PCI endpoint")?,
            ScopeKind::PciSubHierarchy => f.write_str("PCI bridge")?,
            ScopeKind::IoApic => write!(f, "IOAPIC {}", self.enumeration_id)?,
            ScopeKind::Hpet => write!(f, "HPET {}", self.enumeration_id)?,
            ScopeKind::AcpiNamespace => write!(f, "ACPI device {}", self.enumeration_id)?,
            ScopeKind::Other(code) => write!(f, "scope type {code}")?,
        }
        write!(f, " at {:02x}", self.start_bus)?;
        for (device, function) in &self.path {
            write!(f, ":{device:02x}.{function}")?;
        }
        Ok(())
    }
}

/// Why a DMAR table was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmarError {
    /// Fewer bytes than the fixed part (48).
    TooShort(usize),
    /// The signature is not `DMAR`.
    Signature([u8; 4]),
    /// The header's length is below the fixed part or beyond the bytes.
    Length {
        /// What the header says.
        claimed: u32,
        /// The bytes there are.
        available: usize,
    },
    /// The bytes do not sum to 0 (mod 256).
    Checksum(u8),
    /// A remapping structure at this offset has a length below its fixed
    /// part or running past the table's end.
    Structure {
        /// Its offset in the table.
        offset: usize,
        /// Its type.
        kind: u16,
        /// Its length field.
        length: u16,
    },
    /// A device scope at this offset has a length below 6, an odd path or
    /// one running past its structure.
    Scope {
        /// Its offset in the table.
        offset: usize,
        /// Its length field.
        length: u8,
    },
}

impl fmt::Display for DmarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DmarError::TooShort(n) => write!(f, "{n} bytes, fewer than the 48 of the fixed part"),
            DmarError::Signature(s) => write!(f, "signature {s:?}, not \"DMAR\""),
            DmarError::Length { claimed, available } => write!(
                f,
                "header length {claimed} with {available} bytes there (the fixed part is 48)"
            ),
            DmarError::Checksum(sum) => write!(f, "checksum: the bytes sum to {sum}, not 0"),
            DmarError::Structure {
                offset,
                kind,
                length,
            } => write!(
                f,
                "remapping structure of type {kind} at offset {offset}: length {length} is too short or runs past the table"
            ),
            DmarError::Scope { offset, length } => write!(
                f,
                "device scope at offset {offset}: length {length} is not 6 + 2n within its structure"
            ),
        }
    }
}

/// The fixed part: the 36-byte ACPI header, host address width, flags and
/// 10 reserved bytes.
const FIXED: usize = 48;
/// DRHD: type, length, flags, size, segment, register base.
const DRHD_FIXED: usize = 16;
/// RMRR: type, length, reserved, segment, base, limit.
const RMRR_FIXED: usize = 24;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | u64::from(u32_at(b, at + 4)) << 32
}

impl Dmar {
    /// Decodes a DMAR table from its bytes (header included; bytes past
    /// the header's length are ignored).
    pub fn parse(bytes: &[u8]) -> Result<Dmar, DmarError> {
        if bytes.len() < FIXED {
            return Err(DmarError::TooShort(bytes.len()));
        }
        let signature = [bytes[0], bytes[1], bytes[2], bytes[3]];
        if &signature != b"DMAR" {
            return Err(DmarError::Signature(signature));
        }
        let claimed = u32_at(bytes, 4);
        let len = claimed as usize;
        if len < FIXED || len > bytes.len() {
            return Err(DmarError::Length {
                claimed,
                available: bytes.len(),
            });
        }
        let table = &bytes[..len];
        let sum = table.iter().fold(0u8, |s, b| s.wrapping_add(*b));
        if sum != 0 {
            return Err(DmarError::Checksum(sum));
        }
        let flags = table[37];
        let mut dmar = Dmar {
            host_address_width: table[36].saturating_add(1),
            interrupt_remapping: flags & 1 != 0,
            x2apic_opt_out: flags & 2 != 0,
            ..Dmar::default()
        };
        let mut at = FIXED;
        while at < len {
            if len - at < 4 {
                return Err(DmarError::Structure {
                    offset: at,
                    kind: 0,
                    length: 0,
                });
            }
            let kind = u16_at(table, at);
            let length = u16_at(table, at + 2);
            let fixed = match kind {
                0 => DRHD_FIXED,
                1 => RMRR_FIXED,
                _ => 4,
            };
            let end = at + length as usize;
            if (length as usize) < fixed || end > len {
                return Err(DmarError::Structure {
                    offset: at,
                    kind,
                    length,
                });
            }
            match kind {
                0 => dmar.units.push(RemappingUnit {
                    include_pci_all: table[at + 4] & 1 != 0,
                    pages: 1 << (table[at + 5] & 0xf),
                    segment: u16_at(table, at + 6),
                    base: u64_at(table, at + 8),
                    scopes: scopes(table, at + DRHD_FIXED, end)?,
                }),
                1 => dmar.reserved.push(ReservedRegion {
                    segment: u16_at(table, at + 6),
                    base: u64_at(table, at + 8),
                    limit: u64_at(table, at + 16),
                    scopes: scopes(table, at + RMRR_FIXED, end)?,
                }),
                _ => dmar.other += 1,
            }
            at = end;
        }
        Ok(dmar)
    }

    /// The unit that translates DMA from PCI function `bus:device.function`
    /// of segment `segment`: one whose scope lists it as an endpoint (only
    /// single-hop paths are matched: the kernel does not walk bridges), or
    /// else the segment's INCLUDE_PCI_ALL unit.
    pub fn unit_for(
        &self,
        segment: u16,
        bus: u8,
        device: u8,
        function: u8,
    ) -> Option<&RemappingUnit> {
        let listed = |u: &&RemappingUnit| {
            u.segment == segment
                && u.scopes.iter().any(|s| {
                    matches!(s.kind, ScopeKind::PciEndpoint | ScopeKind::PciSubHierarchy)
                        && s.start_bus == bus
                        && s.path.first() == Some(&(device, function))
                })
        };
        self.units.iter().find(listed).or_else(|| {
            self.units
                .iter()
                .find(|u| u.segment == segment && u.include_pci_all)
        })
    }
}

/// The device scopes in `table[at..end]`.
fn scopes(table: &[u8], mut at: usize, end: usize) -> Result<Vec<DeviceScope>, DmarError> {
    let mut out = Vec::new();
    while at < end {
        let length = if end - at >= 2 { table[at + 1] } else { 0 };
        let n = length as usize;
        if n < 6 || !(n - 6).is_multiple_of(2) || at + n > end {
            return Err(DmarError::Scope { offset: at, length });
        }
        out.push(DeviceScope {
            kind: ScopeKind::from_code(table[at]),
            enumeration_id: table[at + 4],
            start_bus: table[at + 5],
            path: table[at + 6..at + n]
                .chunks_exact(2)
                .map(|p| (p[0], p[1]))
                .collect(),
        });
        at += n;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// A DMAR table with `structures` after the fixed part, its length and
    /// checksum filled in.
    fn table(haw: u8, flags: u8, structures: &[Vec<u8>]) -> Vec<u8> {
        let mut t = vec![0u8; FIXED];
        t[..4].copy_from_slice(b"DMAR");
        t[8] = 1; // revision
        t[10..16].copy_from_slice(b"BOCHS ");
        t[36] = haw - 1;
        t[37] = flags;
        for s in structures {
            t.extend_from_slice(s);
        }
        let len = t.len() as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        let sum = t.iter().fold(0u8, |s, b| s.wrapping_add(*b));
        t[9] = 0u8.wrapping_sub(sum);
        t
    }

    fn drhd(flags: u8, segment: u16, base: u64, scopes: &[Vec<u8>]) -> Vec<u8> {
        let mut s = vec![0u8; DRHD_FIXED];
        s[4] = flags;
        s[6..8].copy_from_slice(&segment.to_le_bytes());
        s[8..16].copy_from_slice(&base.to_le_bytes());
        for sc in scopes {
            s.extend_from_slice(sc);
        }
        let len = s.len() as u16;
        s[2..4].copy_from_slice(&len.to_le_bytes());
        s
    }

    fn scope(kind: u8, id: u8, bus: u8, path: &[(u8, u8)]) -> Vec<u8> {
        let mut s = vec![kind, 6 + 2 * path.len() as u8, 0, 0, id, bus];
        for (d, f) in path {
            s.extend_from_slice(&[*d, *f]);
        }
        s
    }

    /// What QEMU's q35 with `-device intel-iommu` reports (read at boot):
    /// one unit at 0xfed90000 listing the IOAPIC and each endpoint of bus 0.
    #[test]
    fn qemu_q35_shape() {
        let endpoints = [
            (0, 0),
            (1, 0),
            (2, 0),
            (3, 0),
            (4, 0),
            (0x1f, 0),
            (0x1f, 2),
            (0x1f, 3),
        ];
        let mut scopes = vec![scope(3, 0, 0xff, &[(0, 0)])];
        scopes.extend(endpoints.iter().map(|p| scope(1, 0, 0, &[*p])));
        let t = table(39, 1, &[drhd(0, 0, 0xfed9_0000, &scopes)]);
        let d = Dmar::parse(&t).unwrap();
        assert_eq!(d.host_address_width, 39);
        assert!(d.interrupt_remapping && !d.x2apic_opt_out);
        assert_eq!(d.units.len(), 1);
        let u = &d.units[0];
        assert_eq!(
            (u.base, u.segment, u.include_pci_all, u.pages),
            (0xfed9_0000, 0, false, 1)
        );
        assert_eq!(u.scopes.len(), 9);
        assert_eq!(u.scopes[0].kind, ScopeKind::IoApic);
        assert_eq!(u.scopes[0].start_bus, 0xff);
        assert_eq!(u.scopes[0].path, vec![(0, 0)]);
        assert_eq!(alloc::format!("{}", u.scopes[0]), "IOAPIC 0 at ff:00.0");
        assert_eq!(alloc::format!("{}", u.scopes[7]), "PCI endpoint at 00:1f.2");
        assert_eq!(d.unit_for(0, 0, 4, 0).map(|u| u.base), Some(0xfed9_0000));
        // Not listed, and no INCLUDE_PCI_ALL unit: untranslated.
        assert_eq!(d.unit_for(0, 0, 5, 0), None);
        assert_eq!(d.unit_for(1, 0, 4, 0), None);
    }

    #[test]
    fn listed_endpoint_beats_include_all_and_other_structures_are_skipped() {
        let mut rmrr = vec![1u8, 0, 0, 0, 0, 0, 0, 0];
        rmrr.extend_from_slice(&0x7000u64.to_le_bytes());
        rmrr.extend_from_slice(&0x7fffu64.to_le_bytes());
        rmrr.extend_from_slice(&scope(1, 0, 0, &[(0x1d, 0)]));
        let len = rmrr.len() as u16;
        rmrr[2..4].copy_from_slice(&len.to_le_bytes());
        let atsr = vec![2u8, 0, 8, 0, 0, 0, 0, 0];
        let t = table(
            46,
            0,
            &[
                drhd(0, 0, 0x1000_0000, &[scope(1, 0, 0, &[(2, 0)])]),
                rmrr,
                atsr,
                drhd(1, 0, 0x2000_0000, &[]),
            ],
        );
        let d = Dmar::parse(&t).unwrap();
        assert_eq!(d.units.len(), 2);
        assert_eq!(d.other, 1);
        assert_eq!(d.reserved.len(), 1);
        assert_eq!((d.reserved[0].base, d.reserved[0].limit), (0x7000, 0x7fff));
        assert_eq!(d.unit_for(0, 0, 2, 0).map(|u| u.base), Some(0x1000_0000));
        assert_eq!(d.unit_for(0, 0, 3, 0).map(|u| u.base), Some(0x2000_0000));
    }

    #[test]
    fn refusals() {
        assert_eq!(Dmar::parse(&[0; 10]), Err(DmarError::TooShort(10)));
        let good = table(39, 0, &[drhd(1, 0, 0xfed9_0000, &[])]);
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(matches!(Dmar::parse(&bad), Err(DmarError::Signature(_))));
        let mut bad = good.clone();
        bad[4] = 200;
        assert!(matches!(Dmar::parse(&bad), Err(DmarError::Length { .. })));
        let mut bad = good.clone();
        bad[40] ^= 1;
        assert!(matches!(Dmar::parse(&bad), Err(DmarError::Checksum(_))));
        // A DRHD claiming to run past the table.
        let mut s = drhd(1, 0, 0, &[]);
        s[2] = 40;
        assert!(matches!(
            Dmar::parse(&table(39, 0, &[s])),
            Err(DmarError::Structure {
                offset: 48,
                kind: 0,
                length: 40
            })
        ));
        // A structure of length 0 (would loop forever if accepted).
        assert!(matches!(
            Dmar::parse(&table(39, 0, &[vec![5, 0, 0, 0]])),
            Err(DmarError::Structure { length: 0, .. })
        ));
        // A trailing fragment shorter than a structure header.
        assert!(matches!(
            Dmar::parse(&table(39, 0, &[vec![0, 0]])),
            Err(DmarError::Structure { .. })
        ));
        // A scope with an odd path, and one running past its DRHD.
        let mut odd = scope(1, 0, 0, &[(1, 0)]);
        odd[1] = 7;
        odd.push(0);
        assert!(matches!(
            Dmar::parse(&table(39, 0, &[drhd(0, 0, 0, &[odd])])),
            Err(DmarError::Scope { length: 7, .. })
        ));
        let mut long = drhd(0, 0, 0, &[scope(1, 0, 0, &[(1, 0)])]);
        long[DRHD_FIXED + 1] = 10;
        assert!(matches!(
            Dmar::parse(&table(39, 0, &[long])),
            Err(DmarError::Scope { length: 10, .. })
        ));
    }

    /// No input, however garbled, panics or is read past its end.
    #[test]
    fn garbage_never_panics() {
        use proptest::prelude::*;
        proptest!(|(structures in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..40), 0..6))| {
            let t = table(39, 0, &structures);
            let _ = Dmar::parse(&t);
            for cut in 0..t.len() {
                let _ = Dmar::parse(&t[..cut]);
            }
        });
    }

    #[test]
    fn kernel_owned_pages() {
        let mut two_pages = drhd(1, 0, 0xfed9_0000, &[]);
        two_pages[5] = 1;
        let p = Platform {
            local_apic: 0xfee0_0000,
            io_apics: vec![IoApic {
                id: 0,
                address: 0xfec0_0000,
                gsi_base: 0,
            }],
            ecam: None,
            hpet: Some(0xfed0_0000),
            dmar: Some(Dmar::parse(&table(39, 0, &[two_pages])).unwrap()),
        };
        for owned in [
            0xfee0_0000,
            0xfee0_0ff0,
            0xfec0_0000,
            0xfed9_0000,
            0xfed9_1000,
        ] {
            assert!(p.kernel_owned(owned), "{owned:#x}");
        }
        for free in [0xfed0_0000, 0xfed9_2000, 0xfed8_f000, 0xfee0_1000] {
            assert!(!p.kernel_owned(free), "{free:#x}");
        }
    }

    #[test]
    fn hpet_table() {
        let mut t = vec![0u8; 56];
        t[44..52].copy_from_slice(&0xfed0_0000u64.to_le_bytes());
        assert_eq!(hpet_base(&t), Some(0xfed0_0000));
        assert_eq!(hpet_base(&t[..51]), None);
        t[40] = 1; // I/O space
        assert_eq!(hpet_base(&t), None);
    }

    #[test]
    fn ecam_pages() {
        let e = EcamRegion {
            base: 0xb000_0000,
            segment: 0,
            bus_start: 0,
            bus_end: 0xff,
        };
        assert_eq!(e.config_page(0, 0, 0), Some(0xb000_0000));
        assert_eq!(
            e.config_page(0, 3, 1),
            Some(0xb000_0000 + (3 << 15) + (1 << 12))
        );
        assert_eq!(e.config_page(1, 0, 0), Some(0xb010_0000));
        assert_eq!(e.config_page(0, 32, 0), None);
        assert_eq!(e.config_page(0, 0, 8), None);
        let narrow = EcamRegion {
            bus_start: 2,
            bus_end: 3,
            ..e
        };
        assert_eq!(narrow.config_page(1, 0, 0), None);
        assert_eq!(narrow.config_page(4, 0, 0), None);
        for (bus, device, function) in [(0, 0, 0), (0, 3, 1), (0xff, 31, 7), (7, 16, 4)] {
            let page = e.config_page(bus, device, function).unwrap();
            assert_eq!(e.function_at(page), Some((bus, device, function)));
            assert_eq!(e.function_at(page + 0xffc), Some((bus, device, function)));
        }
        assert_eq!(e.function_at(0xafff_ffff), None);
        assert_eq!(e.function_at(0xc000_0000), None);
        assert_eq!(narrow.function_at(0xb010_0000), None);
        assert_eq!(narrow.function_at(0xb020_8000), Some((2, 1, 0)));
        assert_eq!(narrow.function_at(0xb040_0000), None);
    }
}
