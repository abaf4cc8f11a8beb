//! What a VT-d remapping unit says of itself: the version, capability and
//! extended-capability registers decoded ([`Unit`]), per the Intel VT-d
//! specification, section 11.4. The kernel reads the registers
//! (`arch::x86_64::vtd`); everything about what their bits mean is here,
//! host-tested.
use core::fmt;

/// A remapping unit's version and capabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unit {
    /// Architecture version, major.
    pub major: u8,
    /// Architecture version, minor.
    pub minor: u8,
    /// Domain IDs it supports (2^(4 + 2·ND)).
    pub domains: u32,
    /// The IOTLB caches not-present entries, so mapping a page needs an
    /// invalidation too (caching mode, CAP.CM; set by emulators).
    pub caching_mode: bool,
    /// Writes to the tables must be flushed with the write-buffer flush
    /// command (CAP.RWBF).
    pub write_buffer_flush: bool,
    /// Page-table depths it walks for second-level translation: bit 1 =
    /// 3 levels (39-bit), bit 2 = 4 levels (48-bit), bit 3 = 5 levels
    /// (57-bit) (CAP.SAGAW).
    pub sagaw: u8,
    /// Largest guest (I/O) address width it translates, in bits (CAP.MGAW).
    pub mgaw: u8,
    /// Where the fault recording registers start, in bytes from the base
    /// (CAP.FRO × 16).
    pub fault_recording_offset: u32,
    /// How many fault recording registers there are (CAP.NFR + 1).
    pub fault_records: u32,
    /// Where the IOTLB registers start, in bytes from the base
    /// (ECAP.IRO × 16).
    pub iotlb_offset: u32,
    /// Its page walks snoop the CPU caches (ECAP.C); without it the kernel
    /// must flush the cache lines of each table it writes.
    pub coherent: bool,
    /// Queued invalidation (ECAP.QI).
    pub queued_invalidation: bool,
    /// Interrupt remapping (ECAP.IR).
    pub interrupt_remapping: bool,
    /// Pass-through translation type (ECAP.PT).
    pub pass_through: bool,
    /// Snoop control (ECAP.SC): a leaf's SNP bit makes the device's
    /// accesses through it snoop the CPU caches even if it asks not to.
    pub snoop_control: bool,
}

impl Unit {
    /// Decodes the version (offset 0x0), capability (0x8) and extended
    /// capability (0x10) registers.
    pub fn decode(version: u32, cap: u64, ecap: u64) -> Unit {
        let bits = |v: u64, lo: u32, n: u32| (v >> lo) & ((1 << n) - 1);
        Unit {
            major: bits(u64::from(version), 4, 4) as u8,
            minor: bits(u64::from(version), 0, 4) as u8,
            domains: 1 << (4 + 2 * bits(cap, 0, 3).min(6)),
            write_buffer_flush: bits(cap, 4, 1) == 1,
            caching_mode: bits(cap, 7, 1) == 1,
            sagaw: bits(cap, 8, 5) as u8,
            mgaw: bits(cap, 16, 6) as u8 + 1,
            fault_recording_offset: bits(cap, 24, 10) as u32 * 16,
            fault_records: bits(cap, 40, 8) as u32 + 1,
            coherent: bits(ecap, 0, 1) == 1,
            queued_invalidation: bits(ecap, 1, 1) == 1,
            interrupt_remapping: bits(ecap, 3, 1) == 1,
            pass_through: bits(ecap, 6, 1) == 1,
            snoop_control: bits(ecap, 7, 1) == 1,
            iotlb_offset: bits(ecap, 8, 10) as u32 * 16,
        }
    }

    /// The page-table depth to use: 4 levels (48-bit I/O addresses) where
    /// it can, else 3 (39-bit); `None` if it walks neither.
    pub fn levels(&self) -> Option<u8> {
        if self.sagaw & 0b100 != 0 {
            Some(4)
        } else if self.sagaw & 0b010 != 0 {
            Some(3)
        } else {
            None
        }
    }
}

/// Global command register (GCMD) bits, and the matching global status
/// (GSTS) bits at the same positions.
pub mod gcmd {
    /// Translation enable.
    pub const TE: u32 = 1 << 31;
    /// Set root table pointer (one-shot).
    pub const SRTP: u32 = 1 << 30;
    /// The status bits that are not one-shot (section 10.4.4: software
    /// writes GCMD as GSTS masked with this, plus the command bit).
    pub const PERSISTENT: u32 = 0x96ff_ffff;

    /// The GCMD value that issues `command` given the current `gsts`,
    /// keeping every persistent setting as it is.
    pub fn issue(gsts: u32, command: u32) -> u32 {
        (gsts & PERSISTENT) | command
    }
}

/// Context-command register (CCMD) value for a global context-cache
/// invalidation: ICC (bit 63) with CIRG = 01 (global). The unit clears
/// ICC when done.
pub const CCMD_GLOBAL: u64 = 1 << 63 | 1 << 61;
/// CCMD: invalidation still in progress.
pub const CCMD_ICC: u64 = 1 << 63;
/// IOTLB invalidate register value for a global IOTLB invalidation: IVT
/// (bit 63) with IIRG = 01 (global), draining reads and writes (DR, DW).
pub const IOTLB_GLOBAL: u64 = 1 << 63 | 1 << 60 | 1 << 49 | 1 << 48;
/// IOTLB invalidate register: invalidation still in progress.
pub const IOTLB_IVT: u64 = 1 << 63;

/// A present root entry (legacy mode, 128 bits as `[low, high]`) pointing
/// at the context table for its bus at physical address `context_table`.
pub fn root_entry(context_table: u64) -> [u64; 2] {
    debug_assert!(context_table.is_multiple_of(4096));
    [context_table | 1, 0]
}

/// The context entry's address-width (AW) code for a `levels`-deep
/// second-level table: 1 = 39 bits (3 levels), 2 = 48 (4), 3 = 57 (5).
fn address_width(levels: u8) -> Option<u64> {
    match levels {
        3 => Some(1),
        4 => Some(2),
        5 => Some(3),
        _ => None,
    }
}

/// A present context entry (legacy mode, `[low, high]`) of translation
/// type 00b: the function's DMA addresses are I/O addresses, translated by
/// the second-level page table at physical address `table` (`levels`
/// deep); an address it does not map is blocked and recorded as a fault.
/// `domain` tags the IOTLB entries. `None` for a depth the entry cannot
/// express.
pub fn translated_entry(domain: u16, levels: u8, table: u64) -> Option<[u64; 2]> {
    debug_assert!(table.is_multiple_of(4096));
    let aw = address_width(levels)?;
    Some([table | 1, u64::from(domain) << 8 | aw])
}

/// Second-level page-table entry bits (VT-d section 9.8): read (R),
/// write (W), and the address of the frame or next table.
pub mod sl {
    /// The device may read (DMA from memory) through this entry.
    pub const READ: u64 = 1 << 0;
    /// The device may write (DMA to memory) through this entry.
    pub const WRITE: u64 = 1 << 1;
    /// The frame or next-level table, bits 51:12.
    pub const ADDRESS: u64 = 0x000f_ffff_ffff_f000;
    /// Snoop (leaf only, with ECAP.SC): accesses snoop the CPU caches
    /// whatever the device asks.
    pub const SNOOP: u64 = 1 << 11;

    /// A leaf mapping frame `phys` for what `read`/`write` allow.
    pub fn leaf(phys: u64, read: bool, write: bool) -> u64 {
        phys & ADDRESS | if read { READ } else { 0 } | if write { WRITE } else { 0 }
    }

    /// An entry pointing at the next-level table at `phys`: both accesses
    /// may go on to the leaf, which decides.
    pub fn table(phys: u64) -> u64 {
        phys & ADDRESS | READ | WRITE
    }

    /// Whether an entry maps anything (a present entry has R or W).
    pub fn present(entry: u64) -> bool {
        entry & (READ | WRITE) != 0
    }

    /// The index into a level-`level` table (1: the leaf table) of I/O
    /// address `iova`.
    pub fn index(iova: u64, level: u8) -> usize {
        (iova >> (12 + 9 * (u32::from(level) - 1)) & 511) as usize
    }
}

/// Fault status register (FSTS): a primary fault is pending (PPF).
pub const FSTS_PPF: u32 = 1 << 1;
/// FSTS: fault records overflowed (PFO); write 1 to clear.
pub const FSTS_PFO: u32 = 1 << 0;
/// A fault record's high half: the record holds a fault (F); write 1 to
/// clear it.
pub const FAULT_F: u64 = 1 << 63;

/// One primary fault record (section 10.4.14), decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Requester: bus.
    pub bus: u8,
    /// Requester: device.
    pub device: u8,
    /// Requester: function.
    pub function: u8,
    /// The page the request addressed (FI).
    pub address: u64,
    /// A read (T = 1) rather than a write.
    pub read: bool,
    /// The fault reason code (FR).
    pub reason: u8,
}

impl Fault {
    /// The record `[low, high]`, or `None` if it holds no fault (F = 0).
    pub fn decode(record: [u64; 2]) -> Option<Fault> {
        let [low, high] = record;
        (high & FAULT_F != 0).then(|| {
            let sid = high as u16;
            Fault {
                bus: (sid >> 8) as u8,
                device: (sid >> 3 & 31) as u8,
                function: (sid & 7) as u8,
                address: low & !0xfff,
                read: high >> 62 & 1 == 1,
                reason: (high >> 32) as u8,
            }
        })
    }

    /// What the reason code means (Appendix A, the ones legacy mode gives).
    pub fn reason_text(&self) -> &'static str {
        match self.reason {
            0x1 => "root entry not present",
            0x2 => "context entry not present",
            0x3 => "invalid context entry",
            0x4 => "address beyond the domain's width",
            0x5 => "not mapped for writing in its address space",
            0x6 => "not mapped for reading in its address space",
            0x7 => "page-table entry not readable",
            _ => "other",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} by {:02x}:{:02x}.{} at {:#x} ({:#x}: {})",
            if self.read { "read" } else { "write" },
            self.bus,
            self.device,
            self.function,
            self.address,
            self.reason,
            self.reason_text()
        )
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VT-d {}.{}, {} domains, {}-bit I/O addresses, page tables of {}, {} fault record(s), {}{}{}{}",
            self.major,
            self.minor,
            self.domains,
            self.mgaw,
            self.levels().unwrap_or_default(),
            self.fault_records,
            if self.coherent { "coherent" } else { "non-coherent" },
            if self.caching_mode { ", caching mode" } else { "" },
            if self.queued_invalidation { ", queued invalidation" } else { "" },
            if self.interrupt_remapping { ", interrupt remapping" } else { "" },
        )?;
        if self.levels().is_none() {
            f.write_str(" (no 3- or 4-level page tables)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What QEMU 10's `intel-iommu` on q35 reports (read at boot).
    #[test]
    fn qemu_intel_iommu() {
        let u = Unit::decode(0x10, 0xd2_008c_2226_0206, 0xf0_0f4a);
        assert_eq!((u.major, u.minor), (1, 0));
        assert_eq!(u.domains, 65536);
        assert_eq!(u.mgaw, 39);
        assert_eq!(u.levels(), Some(3));
        assert_eq!(u.fault_recording_offset, 0x220);
        assert_eq!(u.fault_records, 1);
        assert_eq!(u.iotlb_offset, 0xf0);
        assert!(u.queued_invalidation && u.interrupt_remapping && u.pass_through);
        assert!(!u.coherent && !u.caching_mode && !u.write_buffer_flush && !u.snoop_control);
        assert_eq!(
            alloc::format!("{u}"),
            "VT-d 1.0, 65536 domains, 39-bit I/O addresses, page tables of 3, 1 fault record(s), non-coherent, queued invalidation, interrupt remapping"
        );
        let other = Unit::decode(0x10, 1 << 7 | 0b110 << 8, 1);
        assert!(other.caching_mode && other.coherent && !other.queued_invalidation);
        assert_eq!(other.levels(), Some(4));
    }

    #[test]
    fn entries_and_commands() {
        assert_eq!(root_entry(0x1234_5000), [0x1234_5001, 0]);
        // P, TT = 10b; AW = 1 (39-bit) and domain 7 in the high half.
        assert_eq!(translated_entry(7, 3, 0x5000), Some([0x5001, 0x701]));
        assert_eq!(
            translated_entry(0xffff, 4, 0x1234_5000),
            Some([0x1234_5001, 0xff_ff02])
        );
        assert_eq!(translated_entry(1, 2, 0x5000), None);
        assert_eq!(sl::leaf(0x1234_5678, true, false), 0x1234_5001);
        assert_eq!(
            sl::leaf(0xfff0_0000_0000_3000, false, true),
            0x0000_0000_0000_3002
        );
        assert_eq!(sl::table(0x7000), 0x7003);
        assert!(sl::present(sl::leaf(0, false, true)) && !sl::present(0x7000));
        let iova = 0x7f_c020_3000u64; // 511, 1, 1, 3 from level 4 down
        assert_eq!([4, 3, 2, 1].map(|l| sl::index(iova, l)), [0, 511, 1, 3]);
        assert_eq!(sl::index(0x40_0000_0000, 4), 0);
        // Setting the root pointer with translation on keeps TE; the one-
        // shot status bits (RTPS 30, WBFS 27, IRTPS 24) are not echoed.
        assert_eq!(gcmd::issue(0, gcmd::SRTP), 1 << 30);
        assert_eq!(
            gcmd::issue(1 << 31 | 1 << 30 | 1 << 27 | 1 << 24, gcmd::SRTP),
            0xc000_0000
        );
        assert_eq!(gcmd::issue(1 << 30, gcmd::TE), 1 << 31);
        assert_eq!(CCMD_GLOBAL >> 61, 0b101);
        assert_eq!(IOTLB_GLOBAL >> 60, 0b1001);
    }

    #[test]
    fn fault_records() {
        assert_eq!(Fault::decode([0x43000, 0x18]), None);
        // QEMU's record of edu (00:03.0) writing 0x43000 with its context
        // entry not present: F, T = 0 (write), FR = 2, SID 0x18.
        let w = Fault::decode([0x43000, 1 << 63 | 2 << 32 | 0x18]).unwrap();
        assert_eq!(
            (w.bus, w.device, w.function, w.address, w.read),
            (0, 3, 0, 0x43000, false)
        );
        assert_eq!(
            alloc::format!("{w}"),
            "write by 00:03.0 at 0x43000 (0x2: context entry not present)"
        );
        let r = Fault::decode([0x1234_5678, 3 << 62 | 7 << 32 | 0xfffa]).unwrap();
        assert_eq!(
            (r.bus, r.device, r.function, r.address, r.read),
            (0xff, 0x1f, 2, 0x1234_5000, true)
        );
        assert_eq!(r.reason_text(), "page-table entry not readable");
    }

    #[test]
    fn depths() {
        let with = |sagaw: u64| Unit::decode(0x10, sagaw << 8, 0).levels();
        assert_eq!(with(0b010), Some(3));
        assert_eq!(with(0b110), Some(4));
        assert_eq!(with(0b1000), None);
        assert_eq!(with(0), None);
        // ND is 3 bits; the values above 6 are reserved, so clamp.
        assert_eq!(Unit::decode(0, 7, 0).domains, 1 << 16);
        assert!(
            alloc::format!("{}", Unit::decode(0, 0, 0)).ends_with("(no 3- or 4-level page tables)")
        );
    }
}
