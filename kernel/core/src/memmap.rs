//! The boot memory map, normalised: what every physical frame is.
//!
//! This module owns the translation from the loose list of regions a
//! bootloader hands over (unsorted, overlapping, duplicated, not
//! frame-aligned) to one canonical [`MemoryMap`]:
//!
//! - sorted by address, with no two regions overlapping, so no byte is
//!   counted twice;
//! - where a [`Reserved`](RegionKind::Reserved) and a
//!   [`Usable`](RegionKind::Usable) region overlap, the reserved one wins
//!   (handing out a frame the firmware or the kernel image still uses is a
//!   far worse bug than wasting one);
//! - usable regions are shrunk inward to whole 4 KiB frames (a partial frame
//!   is not usable), reserved ones are grown outward (a frame that is partly
//!   reserved is reserved);
//! - adjacent regions of the same kind are merged.
//!
//! Every frame is then in exactly one [`FrameClass`]: usable RAM, reserved
//! RAM, or not RAM at all (a hole in the map: device space, or beyond the
//! end of RAM). The map only covers physical addresses below
//! [`PHYS_ADDR_LIMIT`], the x86_64 architectural limit; input beyond it is
//! clipped.

use alloc::vec::Vec;

/// Size of a physical frame, in bytes.
pub const FRAME_SIZE: u64 = 4096;

/// log2 of [`FRAME_SIZE`].
pub const FRAME_SHIFT: u32 = 12;

/// One past the highest physical address an x86_64 CPU can have (52 bits,
/// the architectural maximum of MAXPHYADDR).
pub const PHYS_ADDR_LIMIT: u64 = 1 << 52;

/// One past the highest frame number: the frame of [`PHYS_ADDR_LIMIT`].
pub const FRAME_LIMIT: u64 = PHYS_ADDR_LIMIT >> FRAME_SHIFT;

/// What the boot map says a range of RAM is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegionKind {
    /// Free RAM, the allocator's to hand out.
    Usable,
    /// RAM that is not free: the kernel image, the bootloader's data and
    /// page tables, the ramdisk, ACPI tables, firmware memory.
    Reserved,
}

/// A range of physical memory, `[start, end)` in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Region {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// What it is.
    pub kind: RegionKind,
}

impl Region {
    /// Usable RAM `[start, end)`.
    pub const fn usable(start: u64, end: u64) -> Region {
        Region {
            start,
            end,
            kind: RegionKind::Usable,
        }
    }

    /// Reserved RAM `[start, end)`.
    pub const fn reserved(start: u64, end: u64) -> Region {
        Region {
            start,
            end,
            kind: RegionKind::Reserved,
        }
    }

    /// Length in bytes (0 if `end <= start`).
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the region holds no byte.
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// What one physical frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameClass {
    /// Usable RAM.
    Usable,
    /// RAM, but reserved (kernel, bootloader, firmware, ...).
    Reserved,
    /// Not RAM: a hole in the map (device space) or beyond the end of RAM.
    NotRam,
}

/// The normalised memory map: sorted, disjoint, frame-aligned regions, with
/// adjacent regions of one kind merged (see the module documentation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryMap {
    regions: Vec<Region>,
}

/// A half-open range of frame numbers.
type FrameRange = (u64, u64);

impl MemoryMap {
    /// Normalises `regions` (in any order, overlapping or not, aligned or
    /// not). Empty and inverted regions are ignored; anything at or above
    /// [`PHYS_ADDR_LIMIT`] is clipped.
    pub fn new(regions: impl IntoIterator<Item = Region>) -> MemoryMap {
        // Reserved ranges grow outward to whole frames; usable ranges stay in
        // bytes until they are merged, so that two usable halves of a frame
        // still make a usable frame.
        let mut reserved: Vec<FrameRange> = Vec::new();
        let mut usable: Vec<(u64, u64)> = Vec::new();
        for r in regions {
            let start = r.start.min(PHYS_ADDR_LIMIT);
            let end = r.end.min(PHYS_ADDR_LIMIT);
            if start >= end {
                continue;
            }
            match r.kind {
                RegionKind::Reserved => reserved.push((
                    start >> FRAME_SHIFT,
                    end.div_ceil(FRAME_SIZE), // end <= 2^52: no overflow
                )),
                RegionKind::Usable => usable.push((start, end)),
            }
        }
        let reserved = merge_sorted(reserved);
        let usable = merge_sorted(usable);

        // Usable: shrink inward to frames, then cut the reserved frames out.
        // Both lists are sorted and disjoint, so one pass over each does it.
        let mut pieces: Vec<FrameRange> = Vec::new();
        let mut next_reserved = 0;
        for &(start, end) in &usable {
            let mut first = start.div_ceil(FRAME_SIZE);
            let last = end >> FRAME_SHIFT;
            // Skip reserved ranges wholly below this one.
            while next_reserved < reserved.len() && reserved[next_reserved].1 <= first {
                next_reserved += 1;
            }
            let mut i = next_reserved;
            while first < last {
                match reserved.get(i) {
                    Some(&(rs, re)) if rs < last => {
                        if rs > first {
                            pieces.push((first, rs));
                        }
                        first = first.max(re);
                        i += 1;
                    }
                    _ => {
                        pieces.push((first, last));
                        first = last;
                    }
                }
            }
        }

        // Interleave the two disjoint sorted lists, merging neighbours of
        // one kind.
        let mut out: Vec<Region> = Vec::with_capacity(pieces.len() + reserved.len());
        let (mut i, mut j) = (0, 0);
        while i < pieces.len() || j < reserved.len() {
            let take_usable = match (pieces.get(i), reserved.get(j)) {
                (Some(a), Some(b)) => a.0 < b.0,
                (Some(_), None) => true,
                _ => false,
            };
            let (range, kind) = if take_usable {
                i += 1;
                (pieces[i - 1], RegionKind::Usable)
            } else {
                j += 1;
                (reserved[j - 1], RegionKind::Reserved)
            };
            let start = range.0 << FRAME_SHIFT;
            let end = range.1 << FRAME_SHIFT;
            match out.last_mut() {
                Some(last) if last.kind == kind && last.end == start => last.end = end,
                _ => out.push(Region { start, end, kind }),
            }
        }
        MemoryMap { regions: out }
    }

    /// The normalised regions, sorted by address.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Bytes of usable RAM (a multiple of [`FRAME_SIZE`]).
    pub fn usable_bytes(&self) -> u64 {
        self.bytes_of(RegionKind::Usable)
    }

    /// Bytes of reserved RAM (a multiple of [`FRAME_SIZE`]).
    pub fn reserved_bytes(&self) -> u64 {
        self.bytes_of(RegionKind::Reserved)
    }

    fn bytes_of(&self, kind: RegionKind) -> u64 {
        self.regions
            .iter()
            .filter(|r| r.kind == kind)
            .map(Region::len)
            .sum()
    }

    /// One past the highest RAM frame (usable or reserved); 0 for an empty
    /// map.
    pub fn end_frame(&self) -> u64 {
        self.regions.last().map_or(0, |r| r.end >> FRAME_SHIFT)
    }

    /// What frame number `frame` is.
    pub fn classify(&self, frame: u64) -> FrameClass {
        if frame >= FRAME_LIMIT {
            return FrameClass::NotRam;
        }
        let addr = frame << FRAME_SHIFT;
        // The first region that ends above `addr`.
        let i = self.regions.partition_point(|r| r.end <= addr);
        match self.regions.get(i) {
            Some(r) if r.start <= addr => match r.kind {
                RegionKind::Usable => FrameClass::Usable,
                RegionKind::Reserved => FrameClass::Reserved,
            },
            _ => FrameClass::NotRam,
        }
    }
}

/// Sorts half-open ranges and merges those that overlap or touch.
fn merge_sorted(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const GIB: u64 = 1024 * MIB;

    fn usable(start: u64, end: u64) -> Region {
        Region::usable(start, end)
    }

    fn reserved(start: u64, end: u64) -> Region {
        Region::reserved(start, end)
    }

    /// The obvious, slow definition of a frame's class, straight from the
    /// input regions (also the frame allocator's reference model).
    pub(crate) fn naive_class(input: &[Region], frame: u64) -> FrameClass {
        let (lo, hi) = (frame * FRAME_SIZE, (frame + 1) * FRAME_SIZE);
        let clip = |r: &Region| (r.start.min(PHYS_ADDR_LIMIT), r.end.min(PHYS_ADDR_LIMIT));
        let touches_reserved = input.iter().any(|r| {
            let (s, e) = clip(r);
            r.kind == RegionKind::Reserved && s < e && s < hi && e > lo
        });
        if touches_reserved {
            return FrameClass::Reserved;
        }
        // Is every byte of the frame inside some usable region?
        let mut covered = lo;
        loop {
            let next = input
                .iter()
                .filter(|r| r.kind == RegionKind::Usable)
                .map(clip)
                .filter(|&(s, e)| s <= covered && e > covered)
                .map(|(_, e)| e)
                .max();
            match next {
                Some(e) if e >= hi => return FrameClass::Usable,
                Some(e) => covered = e,
                None => return FrameClass::NotRam,
            }
        }
    }

    fn check_invariants(map: &MemoryMap) {
        let regions = map.regions();
        for r in regions {
            assert!(r.start < r.end, "empty region {r:?}");
            assert_eq!(r.start % FRAME_SIZE, 0, "unaligned {r:?}");
            assert_eq!(r.end % FRAME_SIZE, 0, "unaligned {r:?}");
            assert!(r.end <= PHYS_ADDR_LIMIT);
        }
        for pair in regions.windows(2) {
            assert!(
                pair[0].end <= pair[1].start,
                "unsorted or overlapping {pair:?}"
            );
            assert!(
                pair[0].end < pair[1].start || pair[0].kind != pair[1].kind,
                "unmerged {pair:?}"
            );
        }
    }

    #[test]
    fn empty_map() {
        let map = MemoryMap::new([]);
        assert!(map.regions().is_empty());
        assert_eq!(map.end_frame(), 0);
        assert_eq!(map.usable_bytes(), 0);
        assert_eq!(map.classify(0), FrameClass::NotRam);
        // Empty and inverted regions are ignored.
        let map = MemoryMap::new([usable(0x5000, 0x5000), reserved(0x9000, 0x1000)]);
        assert!(map.regions().is_empty());
    }

    #[test]
    fn unsorted_input_is_sorted() {
        let map = MemoryMap::new([
            usable(8 * MIB, 16 * MIB),
            reserved(MIB, 2 * MIB),
            usable(0, 640 * KIB),
            usable(2 * MIB, 4 * MIB),
        ]);
        check_invariants(&map);
        assert_eq!(
            map.regions(),
            &[
                usable(0, 640 * KIB),
                reserved(MIB, 2 * MIB),
                usable(2 * MIB, 4 * MIB),
                usable(8 * MIB, 16 * MIB),
            ]
        );
        assert_eq!(map.usable_bytes(), 640 * KIB + 2 * MIB + 8 * MIB);
        assert_eq!(map.reserved_bytes(), MIB);
        assert_eq!(map.end_frame(), 16 * MIB / FRAME_SIZE);
    }

    #[test]
    fn overlaps_reserved_wins_and_nothing_counts_twice() {
        // A usable region overlapped by another usable one and by a reserved
        // one in its middle.
        let map = MemoryMap::new([
            usable(0, 8 * MIB),
            usable(4 * MIB, 12 * MIB),
            reserved(2 * MIB, 3 * MIB),
            reserved(11 * MIB, 20 * MIB),
        ]);
        check_invariants(&map);
        assert_eq!(
            map.regions(),
            &[
                usable(0, 2 * MIB),
                reserved(2 * MIB, 3 * MIB),
                usable(3 * MIB, 11 * MIB),
                reserved(11 * MIB, 20 * MIB),
            ]
        );
        assert_eq!(map.usable_bytes(), 10 * MIB);
        assert_eq!(map.reserved_bytes(), 10 * MIB);
        // A reserved region wholly covering a usable one removes it.
        let map = MemoryMap::new([usable(MIB, 2 * MIB), reserved(0, 4 * MIB)]);
        assert_eq!(map.regions(), &[reserved(0, 4 * MIB)]);
    }

    #[test]
    fn duplicates_are_counted_once() {
        let map = MemoryMap::new([
            usable(MIB, 2 * MIB),
            usable(MIB, 2 * MIB),
            reserved(0, 4096),
            reserved(0, 4096),
            usable(MIB, 2 * MIB),
        ]);
        check_invariants(&map);
        assert_eq!(map.regions(), &[reserved(0, 4096), usable(MIB, 2 * MIB)]);
        assert_eq!(map.usable_bytes(), MIB);
    }

    #[test]
    fn adjacent_same_kind_merge() {
        let map = MemoryMap::new([
            usable(0, 0x1000),
            usable(0x1000, 0x3000),
            reserved(0x3000, 0x4000),
            reserved(0x4000, 0x6000),
            usable(0x6000, 0x7000),
        ]);
        assert_eq!(
            map.regions(),
            &[
                usable(0, 0x3000),
                reserved(0x3000, 0x6000),
                usable(0x6000, 0x7000)
            ]
        );
    }

    #[test]
    fn unaligned_edges() {
        // Usable shrinks inward.
        let map = MemoryMap::new([usable(0x1234, 0x5678)]);
        assert_eq!(map.regions(), &[usable(0x2000, 0x5000)]);
        // Less than a frame: nothing usable.
        let map = MemoryMap::new([usable(0x1001, 0x1fff)]);
        assert!(map.regions().is_empty());
        // Reserved grows outward, and wins over the partial usable frames.
        let map = MemoryMap::new([usable(0, 0x10_000), reserved(0x3800, 0x4001)]);
        assert_eq!(
            map.regions(),
            &[
                usable(0, 0x3000),
                reserved(0x3000, 0x5000),
                usable(0x5000, 0x10_000)
            ]
        );
        // Two usable halves of one frame make a usable frame.
        let map = MemoryMap::new([usable(0, 0x1800), usable(0x1800, 0x3000)]);
        assert_eq!(map.regions(), &[usable(0, 0x3000)]);
        // A usable frame half-covered by a hole is not RAM.
        let map = MemoryMap::new([usable(0, 0x1800), usable(0x1900, 0x3000)]);
        assert_eq!(map.regions(), &[usable(0, 0x1000), usable(0x2000, 0x3000)]);
        assert_eq!(map.classify(1), FrameClass::NotRam);
    }

    #[test]
    fn holes_are_not_ram() {
        let map = MemoryMap::new([
            usable(0, 640 * KIB),
            reserved(0xF_0000, MIB),
            usable(MIB, 3 * GIB),
            usable(4 * GIB, 6 * GIB),
        ]);
        check_invariants(&map);
        assert_eq!(map.classify(0), FrameClass::Usable);
        assert_eq!(map.classify(640 * KIB / FRAME_SIZE), FrameClass::NotRam); // VGA
        assert_eq!(map.classify(0xF_0000 / FRAME_SIZE), FrameClass::Reserved);
        assert_eq!(map.classify(MIB / FRAME_SIZE), FrameClass::Usable);
        assert_eq!(map.classify(3 * GIB / FRAME_SIZE), FrameClass::NotRam); // PCI hole
        assert_eq!(map.classify(0xFEE0_0000 / FRAME_SIZE), FrameClass::NotRam); // LAPIC
        assert_eq!(map.classify(4 * GIB / FRAME_SIZE), FrameClass::Usable);
        assert_eq!(map.classify(6 * GIB / FRAME_SIZE - 1), FrameClass::Usable);
        assert_eq!(map.classify(6 * GIB / FRAME_SIZE), FrameClass::NotRam); // beyond
        assert_eq!(map.classify(u64::MAX), FrameClass::NotRam);
        assert_eq!(map.classify(FRAME_LIMIT), FrameClass::NotRam);
        assert_eq!(map.end_frame(), 6 * GIB / FRAME_SIZE);
    }

    #[test]
    fn frames_above_4_gib() {
        let map = MemoryMap::new([
            reserved(0, 16 * MIB),
            usable(16 * MIB, 2 * GIB),
            usable(4 * GIB, 68 * GIB),
            reserved(68 * GIB, 68 * GIB + 0x1000),
            usable(1024 * GIB, 1025 * GIB),
        ]);
        check_invariants(&map);
        assert_eq!(map.usable_bytes(), 2 * GIB - 16 * MIB + 64 * GIB + GIB);
        assert_eq!(map.reserved_bytes(), 16 * MIB + 0x1000);
        assert_eq!(map.end_frame(), 1025 * GIB / FRAME_SIZE);
        assert_eq!(map.classify(68 * GIB / FRAME_SIZE), FrameClass::Reserved);
        assert_eq!(map.classify(68 * GIB / FRAME_SIZE + 1), FrameClass::NotRam);
        assert_eq!(map.classify(1024 * GIB / FRAME_SIZE), FrameClass::Usable);
    }

    #[test]
    fn beyond_the_physical_limit_is_clipped() {
        let map = MemoryMap::new([
            usable(PHYS_ADDR_LIMIT - 0x2000, u64::MAX),
            reserved(u64::MAX - 5, u64::MAX),
        ]);
        check_invariants(&map);
        assert_eq!(
            map.regions(),
            &[usable(PHYS_ADDR_LIMIT - 0x2000, PHYS_ADDR_LIMIT)]
        );
        assert_eq!(map.end_frame(), FRAME_LIMIT);
        assert_eq!(map.classify(FRAME_LIMIT - 1), FrameClass::Usable);
        assert_eq!(map.classify(FRAME_LIMIT), FrameClass::NotRam);
        let map = MemoryMap::new([reserved(PHYS_ADDR_LIMIT - 1, u64::MAX)]);
        assert_eq!(
            map.regions(),
            &[reserved(PHYS_ADDR_LIMIT - 0x1000, PHYS_ADDR_LIMIT)]
        );
    }

    fn arb_region() -> impl Strategy<Value = Region> {
        // Addresses within 64 frames, often unaligned, to make overlaps and
        // shared frames common.
        (
            0u64..64 * FRAME_SIZE,
            0u64..16 * FRAME_SIZE,
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(start, len, is_usable, aligned)| {
                let (start, len) = if aligned {
                    (start & !(FRAME_SIZE - 1), len & !(FRAME_SIZE - 1))
                } else {
                    (start, len)
                };
                Region {
                    start,
                    end: start + len,
                    kind: if is_usable {
                        RegionKind::Usable
                    } else {
                        RegionKind::Reserved
                    },
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

        /// Normalisation agrees frame by frame with the naive definition,
        /// and the result is canonical whatever the input order.
        #[test]
        fn normalisation_matches_naive(input in proptest::collection::vec(arb_region(), 0..12)) {
            let map = MemoryMap::new(input.iter().copied());
            check_invariants(&map);
            let mut usable_frames = 0;
            let mut reserved_frames = 0;
            for frame in 0..90 {
                let class = naive_class(&input, frame);
                prop_assert_eq!(map.classify(frame), class, "frame {}", frame);
                match class {
                    FrameClass::Usable => usable_frames += 1,
                    FrameClass::Reserved => reserved_frames += 1,
                    FrameClass::NotRam => {}
                }
            }
            prop_assert_eq!(map.usable_bytes(), usable_frames * FRAME_SIZE);
            prop_assert_eq!(map.reserved_bytes(), reserved_frames * FRAME_SIZE);
            let mut reversed = input.clone();
            reversed.reverse();
            prop_assert_eq!(MemoryMap::new(reversed), map.clone());
            // Normalising a normal map changes nothing.
            prop_assert_eq!(MemoryMap::new(map.regions().iter().copied()), map);
        }
    }
}
