//! The physical-frame allocator: a hierarchical bitmap over every frame below
//! the end of RAM, in storage the caller provides.
//!
//! This module owns the free/allocated state of every RAM frame, and the
//! counters `total = free + allocated + reserved`. It does not own the
//! storage (the kernel places it with [`find_storage`] and passes it in) nor
//! know who holds an allocated frame (the capability tables do).
//!
//! # Data structure
//! All levels live in one caller-provided `[u64]` (see [`storage_words`]):
//!
//! - **level 0**: one bit per frame of `[0, end_frame)`, set when the frame
//!   is free. Reserved frames, holes and the tail beyond the end are never
//!   set, so they can never be handed out.
//! - **"any" summaries**: bit `i` of level `k + 1` is set when word `i` of
//!   level `k` is non-zero, up to a single top word. For 16 GiB of frames
//!   that is 65 536 + 1 024 + 16 + 1 words.
//! - **order summaries**: for each order `k` of 1 to 6, bit `w` is set when
//!   the largest free aligned block in level-0 word `w` has exactly `2^k`
//!   frames (2, 4, 8, 16, 32, or 64: the word is all free), each with its
//!   own "any" levels above it. A word is in at most one of them, so a
//!   word whose largest block changes (a run freed or taken) updates two
//!   summaries, not one per order in between. The lowest free aligned
//!   block of order `k` or more is the lowest of the descents of orders
//!   `k` to 6 (most of them empty or above the first hit), a few word reads
//!   at any fill level.
//! - **uniform bits**: bit `w` is set when all 64 frames of level-0 word `w`
//!   are usable RAM, so freeing such a frame needs no look-up in the map.
//! - **the region table**: a copy of the map's regions (2 words each), for
//!   [`FrameAllocator::classify`] near region edges and on error paths.
//!
//! # Cost and policy
//! `alloc` returns the lowest free frame and
//! [`FrameAllocator::alloc_contiguous`] the lowest fitting run: results are
//! deterministic, and the reference model in the tests checks them exactly.
//! Every operation on one frame costs a few word operations at any fill
//! level and RAM size: one word per level, and only while a word turns
//! empty/non-empty (or full/not full) does the update climb a level.
//!
//! Two things make the common cases cheaper without changing any result:
//!
//! - **cursors**: no free frame (no word whose largest free block has each
//!   order) lies below a cursor, so searches start there, and `alloc`
//!   usually reads one word.
//! - **the hot frame**: the last frame (or run) freed is set in level 0 at
//!   once but published to the summaries only when the next operation
//!   needs it. If the next `alloc` (or an `alloc_contiguous` that fits at
//!   its start) finds it is the lowest fit anyway (nothing that could hold
//!   a fit lies below it), it takes it back from level 0 alone. So a free
//!   followed by an alloc of the same size, the most common pattern, never
//!   touches the summaries.
//! - **parked runs**: when a run is freed while the hot one is a run too,
//!   the older one is parked, also unpublished (up to 8 of them;
//!   a single-frame operation, any other search, or a full park publishes
//!   them all). A contiguous allocation takes the lowest unpublished run
//!   from level 0 under the same test as the hot run, so a driver that
//!   frees a few buffers and allocates them again touches no summary.
//!
//! Contiguous allocation looks for the lowest *witness*: a free aligned
//! block that every fitting run must contain (a run of `count` frames
//! holds an aligned block of the largest order `k` with `2^(k+1) - 1 <=
//! count`, or of `min(align, count)` rounded down to a power of two when
//! its start is aligned). It finds witnesses through the order summaries,
//! and checks only the frames around each one: first the free frames just
//! below it (a fit that starts below the witness holds them all), then the
//! run. So a power-of-two run aligned to its size (up to 64 frames) costs
//! one summary descent, and any other request costs one descent per free
//! block of the witness's order that turns out too short (a witness with
//! enough free frames around it is taken at once, without a second
//! descent): never a walk over single free frames,
//! whatever the fill level or memory size. Every error is a value; no input
//! can make the allocator panic, and a call that fails changes nothing.

use crate::memmap::{FrameClass, MemoryMap, RegionKind, FRAME_LIMIT, FRAME_SHIFT, FRAME_SIZE};
use core::fmt;

/// Why an allocator operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AllocError {
    /// No free frame (or no fitting free run) is left.
    OutOfMemory,
    /// The frame is usable RAM, but already allocated.
    InUse,
    /// The frame is RAM reserved by the map (kernel, bootloader, firmware).
    Reserved,
    /// The frame is not RAM: a hole in the map (device space) or beyond the
    /// end of RAM, but below [`FRAME_LIMIT`].
    NotRam,
    /// The frame (or range) reaches [`FRAME_LIMIT`] or beyond: no physical
    /// address on x86_64 is there.
    OutOfRange,
    /// Freeing a frame that is free already (a double free).
    NotAllocated,
    /// A bad argument: a count of 0, an alignment that is not a power of two.
    InvalidArgument,
    /// [`FrameAllocator::new`] was given less than [`storage_words`] words.
    StorageTooSmall,
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AllocError::OutOfMemory => "out of memory",
            AllocError::InUse => "frame in use",
            AllocError::Reserved => "frame reserved",
            AllocError::NotRam => "frame is not RAM",
            AllocError::OutOfRange => "frame beyond the physical address space",
            AllocError::NotAllocated => "frame not allocated",
            AllocError::InvalidArgument => "invalid argument",
            AllocError::StorageTooSmall => "allocator storage too small",
        })
    }
}

/// Enough levels for [`FRAME_LIMIT`] frames: 2^40 bits need
/// 2^34, 2^28, 2^22, 2^16, 2^10, 2^4 and 1 words.
const MAX_LEVELS: usize = 8;

/// Storage words per region-table entry: start frame, end frame with the
/// kind in the top bit.
const REGION_WORDS: usize = 2;

/// Top bit of a region table end word: the region is reserved.
const RESERVED_BIT: u64 = 1 << 63;

/// How many runs freed before the last one can stay unpublished besides
/// it (see [`FrameAllocator::free_range`]).
const PARKED: usize = 8;

/// The orders with a summary of their own: blocks of 2 to 64 frames (order
/// 0 is the "any" summary).
const ORDERS: usize = 6;

/// The order of the largest free aligned block in level-0 word `x`: 6 when
/// it is all free, 0 when it has no free aligned pair. It depends on
/// `pairs(x)` alone.
#[inline]
fn max_order(x: u64) -> usize {
    // The blocks nest (one of order `k` holds two of order `k - 1`): stop
    // at the first order missing, as most words have no large block.
    let m1 = pairs(x);
    if m1 == 0 {
        return 0;
    }
    let m2 = m1 & (m1 >> 2) & 0x1111_1111_1111_1111;
    if m2 == 0 {
        return 1;
    }
    let m3 = m2 & (m2 >> 4) & 0x0101_0101_0101_0101;
    if m3 == 0 {
        return 2;
    }
    let m4 = m3 & (m3 >> 8) & 0x0001_0001_0001_0001;
    if m4 == 0 {
        return 3;
    }
    let m5 = m4 & (m4 >> 16) & 0x0000_0001_0000_0001;
    match (m5 != 0, x == !0) {
        (false, _) => 4,
        (true, false) => 5,
        (true, true) => 6,
    }
}

/// Bit `i` of `block_starts(x, k)` is set when bits `i .. i + 2^k` of `x`
/// are all set and `i` is a multiple of `2^k` (`k <= 6`).
#[inline]
fn block_starts(x: u64, k: u32) -> u64 {
    const MASKS: [u64; 6] = [
        0x5555_5555_5555_5555,
        0x1111_1111_1111_1111,
        0x0101_0101_0101_0101,
        0x0001_0001_0001_0001,
        0x0000_0001_0000_0001,
        0x0000_0000_0000_0001,
    ];
    let mut m = x;
    for (i, mask) in MASKS.iter().enumerate().take(k as usize) {
        m = m & (m >> (1 << i)) & mask;
    }
    m
}

/// The free aligned pairs of level-0 word `x` (bit `2i` set when bits
/// `2i` and `2i + 1` are).
#[inline(always)]
fn pairs(x: u64) -> u64 {
    x & (x >> 1) & 0x5555_5555_5555_5555
}

/// The order of the witness block for a run of `count` frames starting at
/// a multiple of `align` (both powers of two or counts >= 1): the largest
/// `k <= 6` such that every such run holds a free block of `2^k` frames
/// aligned to `2^k`. An unaligned run of `2^(k+1) - 1` frames holds one;
/// an aligned run holds one of order `min(log2 align, log2 count)`.
#[inline]
fn witness_order(count: u64, align: u64) -> u32 {
    let unaligned = (count + 1).ilog2() - 1;
    let aligned = align.trailing_zeros().min(count.ilog2());
    unaligned.max(aligned).min(6)
}

/// A bitmap with its summary levels: `off[k]` and `len[k]` place level `k`
/// in the storage; bit `i` of level `k + 1` is set iff word `i` of level `k`
/// is non-zero; the top level is one word.
#[derive(Clone, Copy, Debug)]
struct Levels {
    off: [usize; MAX_LEVELS],
    len: [usize; MAX_LEVELS],
    count: usize,
}

impl Levels {
    /// Levels for a base bitmap of `bits` bits starting at word `start`;
    /// returns them and the word after the last one.
    fn new(bits: u64, start: usize) -> Option<(Levels, usize)> {
        let mut levels = Levels {
            off: [0; MAX_LEVELS],
            len: [0; MAX_LEVELS],
            count: 0,
        };
        let mut len = usize::try_from(bits.div_ceil(64)).ok()?.max(1);
        let mut off = start;
        loop {
            *levels.off.get_mut(levels.count)? = off;
            levels.len[levels.count] = len;
            levels.count += 1;
            off = off.checked_add(len)?;
            // At least one summary level, even over a single word, so that
            // level 1 always exists.
            if len == 1 && levels.count >= 2 {
                return Some((levels, off));
            }
            len = len.div_ceil(64);
        }
    }
}

/// Where everything lives in the storage.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// Frames covered by level 0: `map.end_frame()`.
    frames: u64,
    /// Level 0 (at offset 0) and its "any" summaries.
    any: Levels,
    /// The order summaries of orders 1 to 6 (index `k - 1`).
    orders: [Levels; ORDERS],
    /// The uniform bitmap.
    uniform: usize,
    /// The region table.
    regions: usize,
    /// Entries in the region table.
    region_count: usize,
    /// Words needed in all.
    words: usize,
}

impl Layout {
    fn new(map: &MemoryMap) -> Option<Layout> {
        let frames = map.end_frame();
        let (any, end) = Levels::new(frames, 0)?;
        let words0 = any.len[0] as u64;
        let mut end = end;
        let mut orders = [any; ORDERS];
        for order in &mut orders {
            (*order, end) = Levels::new(words0, end)?;
        }
        let uniform = end;
        let end = end.checked_add(usize::try_from(words0.div_ceil(64)).ok()?)?;
        let regions = end;
        let region_count = map.regions().len();
        let words = region_count.checked_mul(REGION_WORDS)?.checked_add(end)?;
        Some(Layout {
            frames,
            any,
            orders,
            uniform,
            regions,
            region_count,
            words,
        })
    }
}

/// How many `u64` words of storage [`FrameAllocator::new`] needs for `map`:
/// one bit per frame below `map.end_frame()`, plus about 13% for the
/// summaries and uniform bits, plus two words per region (73 849 words,
/// 577 KiB or 36 KiB per GiB, for 16 GiB in one region). `usize::MAX` if that does not fit
/// in the address space.
pub fn storage_words(map: &MemoryMap) -> usize {
    Layout::new(map).map_or(usize::MAX, |layout| layout.words)
}

/// The physical address of a frame-aligned range of usable RAM that can hold
/// `words` words of allocator storage (at least one frame), or `None`.
///
/// It picks the highest such range, keeping low memory for devices that
/// can only reach low addresses. The caller then marks those frames
/// allocated with [`FrameAllocator::alloc_at`] once the allocator exists.
pub fn find_storage(map: &MemoryMap, words: usize) -> Option<u64> {
    let bytes = u64::try_from(words).ok()?.checked_mul(8)?;
    let need = bytes.div_ceil(FRAME_SIZE).max(1).checked_mul(FRAME_SIZE)?;
    map.regions()
        .iter()
        .rev()
        .find(|r| r.kind == RegionKind::Usable && r.len() >= need)
        .map(|r| r.end - need)
}

/// Clears bit `idx` of level `level` and, for every level whose word
/// becomes zero, the bit for it one level up.
#[inline]
fn clear_up(words: &mut [u64], lv: &Levels, mut level: usize, mut idx: usize) {
    while level < lv.count {
        let i = lv.off[level] + (idx >> 6);
        let word = words[i] & !(1u64 << (idx & 63));
        words[i] = word;
        if word != 0 {
            return;
        }
        idx >>= 6;
        level += 1;
    }
}

/// Sets bit `idx` of level `level` and, for every level whose word was
/// zero, the bit for it one level up.
#[inline]
fn set_up(words: &mut [u64], lv: &Levels, mut level: usize, mut idx: usize) {
    while level < lv.count {
        let i = lv.off[level] + (idx >> 6);
        let old = words[i];
        words[i] = old | (1u64 << (idx & 63));
        if old != 0 {
            return;
        }
        idx >>= 6;
        level += 1;
    }
}

/// The lowest set bit at level `level` whose index is `from` or more, found
/// by climbing the summaries to the next non-zero word and descending.
#[inline]
fn next_set(words: &[u64], lv: &Levels, level: usize, from: usize) -> Option<usize> {
    let mut l = level;
    let mut idx = from;
    loop {
        if l >= lv.count {
            return None;
        }
        let wi = idx >> 6;
        if wi >= lv.len[l] {
            return None;
        }
        let word = words[lv.off[l] + wi] & (!0u64 << (idx & 63));
        if word != 0 {
            idx = (wi << 6) | word.trailing_zeros() as usize;
            break;
        }
        l += 1;
        idx = wi + 1;
    }
    while l > level {
        l -= 1;
        // Non-zero: its bit one level up is set.
        let word = words[lv.off[l] + idx];
        idx = (idx << 6) | word.trailing_zeros() as usize;
    }
    Some(idx)
}

/// The physical-frame allocator (see the module documentation).
pub struct FrameAllocator<'a> {
    words: &'a mut [u64],
    layout: Layout,
    /// No published level-0 word below this one has a free frame.
    cursor: usize,
    /// No published level-0 word below `order_cursor[k - 1]` has a largest
    /// free aligned block of order `k` (1 to 6).
    order_cursor: [usize; ORDERS],
    /// The last frame or run freed, free in level 0 but not yet published
    /// to the summaries: `hot_count` frames from `hot_first` (none when 0).
    hot_first: u64,
    hot_count: u64,
    /// Runs freed before the hot one, also free in level 0 but not yet
    /// published (`(first, count)`, each count non-zero; the first
    /// `parked_len` entries): disjoint from each other and the hot run.
    parked: [(u64, u64); PARKED],
    parked_len: usize,
    /// The usable region (frames `[start, end)`) a frame in a mixed word
    /// was last found in: frees near a region's ragged edge skip the
    /// region-table search. Empty at first.
    near: (u64, u64),
    total: u64,
    free: u64,
    reserved: u64,
}

impl fmt::Debug for FrameAllocator<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameAllocator")
            .field("frames", &self.layout.frames)
            .field("total", &self.total)
            .field("free", &self.free)
            .field("reserved", &self.reserved)
            .field("allocated", &self.allocated())
            .finish_non_exhaustive()
    }
}

impl<'a> FrameAllocator<'a> {
    /// Builds the allocator for `map` in `storage` (at least
    /// [`storage_words`] words; its contents do not matter, any extra is
    /// left alone). Usable frames start free; reserved frames count as
    /// reserved and are never handed out; holes are never handed out and
    /// not counted.
    ///
    /// # Errors
    /// [`AllocError::StorageTooSmall`].
    pub fn new(map: &MemoryMap, storage: &'a mut [u64]) -> Result<Self, AllocError> {
        let layout = Layout::new(map).ok_or(AllocError::StorageTooSmall)?;
        let words = storage
            .get_mut(..layout.words)
            .ok_or(AllocError::StorageTooSmall)?;
        words.fill(0);
        let mut usable = 0;
        let mut reserved = 0;
        for (i, r) in map.regions().iter().enumerate() {
            let (first, end) = (r.start >> FRAME_SHIFT, r.end >> FRAME_SHIFT);
            let entry = layout.regions + i * REGION_WORDS;
            words[entry] = first;
            match r.kind {
                RegionKind::Usable => {
                    usable += end - first;
                    words[entry + 1] = end;
                    set_bits(words, first, end);
                    // Uniform: level-0 words wholly inside the region.
                    let (w0, w1) = (first.div_ceil(64), end / 64);
                    if w0 < w1 {
                        set_bits(&mut words[layout.uniform..], w0, w1);
                    }
                }
                RegionKind::Reserved => {
                    reserved += end - first;
                    words[entry + 1] = end | RESERVED_BIT;
                }
            }
        }
        // The summaries, bottom up.
        let any = layout.any;
        for w in 0..any.len[0] {
            if let Some(order) = max_order(words[w]).checked_sub(1) {
                words[layout.orders[order].off[0] + (w >> 6)] |= 1 << (w & 63);
            }
        }
        for lv in [any].iter().chain(&layout.orders) {
            for level in 1..lv.count {
                for i in 0..lv.len[level - 1] {
                    if words[lv.off[level - 1] + i] != 0 {
                        words[lv.off[level] + (i >> 6)] |= 1 << (i & 63);
                    }
                }
            }
        }
        Ok(FrameAllocator {
            words,
            layout,
            cursor: 0,
            order_cursor: [0; ORDERS],
            hot_first: 0,
            hot_count: 0,
            parked: [(0, 0); PARKED],
            parked_len: 0,
            near: (0, 0),
            total: usable + reserved,
            free: usable,
            reserved,
        })
    }

    /// Allocates the lowest free frame and returns its number.
    ///
    /// # Errors
    /// [`AllocError::OutOfMemory`].
    #[inline]
    pub fn alloc(&mut self) -> Result<u64, AllocError> {
        if self.hot_count == 1 && self.parked_len == 0 {
            // The frame just freed, if it is the lowest free one: it is, if
            // every published free frame lies in a higher word, or in its
            // own word but above it (nothing is free below the cursor).
            // Taking it back from level 0 leaves the published state, which
            // the summaries describe, as it was.
            let frame = self.hot_first;
            let w = (frame >> 6) as usize;
            let below = (1u64 << (frame & 63)) - 1;
            let lowest_from =
                |cursor: usize, word: u64| w < cursor || (w == cursor && word & below == 0);
            if lowest_from(self.cursor, self.words[w]) || {
                let cursor = self.tighten_cursor();
                lowest_from(cursor, self.words[w])
            } {
                self.words[w] &= !(1u64 << (frame & 63));
                self.hot_count = 0;
                self.free -= 1;
                return Ok(frame);
            }
        }
        self.publish();
        let mut w = self.cursor;
        if w >= self.layout.any.len[0] || self.words[w] == 0 {
            w = self.tighten_cursor();
            if w >= self.layout.any.len[0] {
                return Err(AllocError::OutOfMemory);
            }
        }
        let word = self.words[w];
        self.take_bits(w, word, word & word.wrapping_sub(1));
        self.free -= 1;
        Ok(((w as u64) << 6) | u64::from(word.trailing_zeros()))
    }

    /// Allocates frame `frame`.
    ///
    /// # Errors
    /// [`AllocError::InUse`] if it is allocated already,
    /// [`AllocError::Reserved`], [`AllocError::NotRam`] or
    /// [`AllocError::OutOfRange`] after what it is.
    #[inline]
    pub fn alloc_at(&mut self, frame: u64) -> Result<(), AllocError> {
        if self.is_free(frame) {
            let w = (frame >> 6) as usize;
            let bit = 1u64 << (frame & 63);
            if self.hot_count == 1 && self.hot_first == frame {
                // Unpublished: level 0 only.
                self.words[w] &= !bit;
                self.hot_count = 0;
            } else {
                self.publish();
                let word = self.words[w];
                self.take_bits(w, word, word & !bit);
            }
            self.free -= 1;
            return Ok(());
        }
        // Not free: in use if usable, else what it is.
        self.class_error(frame)?;
        Err(AllocError::InUse)
    }

    /// Frees frame `frame`.
    ///
    /// # Errors
    /// [`AllocError::NotAllocated`] if it is free already,
    /// [`AllocError::Reserved`], [`AllocError::NotRam`] or
    /// [`AllocError::OutOfRange`] after what it is.
    #[inline]
    pub fn free(&mut self, frame: u64) -> Result<(), AllocError> {
        if frame >= self.layout.frames {
            return Err(Self::beyond_error(frame));
        }
        let w = (frame >> 6) as usize;
        if !self.is_uniform(w) && !(self.near.0..self.near.1).contains(&frame) {
            match self.region_of(frame) {
                Some((start, end, RegionKind::Usable)) => self.near = (start, end),
                _ => self.class_error(frame)?,
            }
        }
        let bit = 1u64 << (frame & 63);
        if self.words[w] & bit != 0 {
            return Err(AllocError::NotAllocated);
        }
        // Level 0 now; the summaries when the next operation needs them.
        self.publish();
        self.words[w] |= bit;
        self.hot_first = frame;
        self.hot_count = 1;
        self.free += 1;
        Ok(())
    }

    /// Allocates `count` contiguous frames whose first frame is a multiple
    /// of `align` (in frames, a power of two) and whose every frame is below
    /// frame `limit` (for a device that reaches only part of memory), and
    /// returns the first. It picks the lowest such run.
    ///
    /// It looks for the free aligned blocks every fit must contain (see the
    /// module documentation), so its cost grows with the number of such
    /// blocks too short to hold the run, not with the number of free
    /// frames or memory size: a power-of-two run aligned to its size, up to
    /// 64 frames, costs one descent of the summaries.
    ///
    /// # Errors
    /// [`AllocError::InvalidArgument`] if `count` is 0 or `align` is not a
    /// power of two; [`AllocError::OutOfMemory`] if no run fits.
    pub fn alloc_contiguous(
        &mut self,
        count: u64,
        align: u64,
        limit: Option<u64>,
    ) -> Result<u64, AllocError> {
        if count == 0 || !align.is_power_of_two() {
            return Err(AllocError::InvalidArgument);
        }
        let end = limit.map_or(self.layout.frames, |l| l.min(self.layout.frames));
        let last_start = end.checked_sub(count).ok_or(AllocError::OutOfMemory)?;
        // The lowest unpublished run (hot or parked), if it is the lowest
        // fit (see `hot_is_lowest`; no other unpublished frame lies below
        // it): taken back from level 0 alone. The rest stays unpublished.
        let (mut slot, mut first, mut avail) = (PARKED, self.hot_first, self.hot_count);
        for (i, &(f, c)) in self.parked[..self.parked_len].iter().enumerate() {
            if avail == 0 || f < first {
                (slot, first, avail) = (i, f, c);
            }
        }
        if avail >= count
            && first & (align - 1) == 0
            && first <= last_start
            && self.hot_is_lowest(witness_order(count, align), first)
        {
            for_words(first, first + count, |w, mask| self.words[w] &= !mask);
            if slot == PARKED {
                self.hot_first += count;
                self.hot_count -= count;
            } else if avail == count {
                self.parked_len -= 1;
                self.parked[slot] = self.parked[self.parked_len];
            } else {
                self.parked[slot] = (first + count, avail - count);
            }
            self.free -= count;
            return Ok(first);
        }
        self.publish();
        let start = self
            .find_run(count, align, last_start)
            .ok_or(AllocError::OutOfMemory)?;
        self.take_range(start, start + count);
        self.free -= count;
        Ok(start)
    }

    /// Frees the `count` frames from `first`: all of them, or (if any
    /// cannot be freed) none.
    ///
    /// # Errors
    /// [`AllocError::InvalidArgument`] if `count` is 0;
    /// [`AllocError::OutOfRange`] if the range reaches [`FRAME_LIMIT`];
    /// otherwise the error [`free`](Self::free) gives for the lowest frame
    /// of the range that cannot be freed.
    pub fn free_range(&mut self, first: u64, count: u64) -> Result<(), AllocError> {
        if count == 1 {
            // One frame (every `frame_alloc` capability): the cheap path.
            return self.free(first);
        }
        if count == 0 {
            return Err(AllocError::InvalidArgument);
        }
        let end = first
            .checked_add(count)
            .filter(|&end| end <= FRAME_LIMIT)
            .ok_or(AllocError::OutOfRange)?;
        // The lowest frame that is not usable RAM, if any.
        let not_usable = self.first_not_usable(first, end);
        let usable_end = not_usable.unwrap_or(end);
        if first < usable_end && self.find_in(first, usable_end, true).is_some() {
            return Err(AllocError::NotAllocated);
        }
        if let Some(frame) = not_usable {
            self.class_error(frame)?;
        }
        // Level 0 now, the summaries when the next operation needs them:
        // the run freed before is parked, unpublished too, while there is
        // room (a driver that frees several buffers and allocates them
        // again touches no summary). A single hot frame or a full park
        // publishes everything.
        match self.hot_count {
            0 => {}
            1 => self.publish(),
            _ if self.parked_len < PARKED => {
                self.parked[self.parked_len] = (self.hot_first, self.hot_count);
                self.parked_len += 1;
            }
            _ => self.publish(),
        }
        for_words(first, end, |w, mask| self.words[w] |= mask);
        self.hot_first = first;
        self.hot_count = count;
        self.free += count;
        Ok(())
    }

    /// What frame `frame` is.
    #[inline]
    pub fn classify(&self, frame: u64) -> FrameClass {
        if frame < self.layout.frames && self.is_uniform((frame >> 6) as usize) {
            return FrameClass::Usable;
        }
        self.classify_in_table(frame)
    }

    /// Whether frame `frame` is free (and so usable RAM).
    #[inline]
    pub fn is_free(&self, frame: u64) -> bool {
        frame < self.layout.frames && self.words[(frame >> 6) as usize] & (1 << (frame & 63)) != 0
    }

    /// RAM frames: usable plus reserved.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Free frames.
    pub fn free_frames(&self) -> u64 {
        self.free
    }

    /// Reserved frames.
    pub fn reserved(&self) -> u64 {
        self.reserved
    }

    /// Allocated frames: `total() - free_frames() - reserved()`.
    pub fn allocated(&self) -> u64 {
        self.total - self.free - self.reserved
    }

    // ---- internals ----

    /// Publishes the hot frames (and the parked runs) to the summaries.
    #[inline(always)]
    fn publish(&mut self) {
        if self.parked_len != 0 {
            self.publish_all();
            return;
        }
        match self.hot_count {
            0 => {}
            1 => {
                self.hot_count = 0;
                let frame = self.hot_first;
                let w = (frame >> 6) as usize;
                let new = self.words[w];
                self.published(w, new & !(1u64 << (frame & 63)), new);
            }
            _ => self.publish_run(),
        }
    }

    /// [`publish`](Self::publish) with parked runs: the unpublished runs
    /// may share level-0 words, so all of them are first taken out of
    /// level 0 (leaving the published state) and then put back one by one.
    #[inline(never)]
    fn publish_all(&mut self) {
        let mut runs = [(0, 0); PARKED + 1];
        let mut n = self.parked_len;
        runs[..n].copy_from_slice(&self.parked[..n]);
        if self.hot_count != 0 {
            runs[n] = (self.hot_first, self.hot_count);
            n += 1;
        }
        self.parked_len = 0;
        self.hot_count = 0;
        for &(first, count) in &runs[..n] {
            for_words(first, first + count, |w, mask| self.words[w] &= !mask);
        }
        for &(first, count) in &runs[..n] {
            for_words(first, first + count, |w, mask| {
                let old = self.words[w];
                self.words[w] = old | mask;
                self.published(w, old, old | mask);
            });
        }
    }

    /// [`publish`](Self::publish) for a run.
    #[inline(never)]
    fn publish_run(&mut self) {
        let (first, end) = (self.hot_first, self.hot_first + self.hot_count);
        self.hot_count = 0;
        for_words(first, end, |w, mask| {
            let new = self.words[w];
            self.published(w, new & !mask, new);
        });
    }

    /// Moves the cursor up to the lowest published level-0 word with a free
    /// frame (the number of level-0 words if none) and returns it.
    #[inline]
    fn tighten_cursor(&mut self) -> usize {
        let lowest = next_set(self.words, &self.layout.any, 1, self.cursor);
        self.cursor = lowest.unwrap_or(self.layout.any.len[0]);
        self.cursor
    }

    /// Moves the cursor of order `k` (1 to 6) up to the lowest published
    /// level-0 word whose largest free block has that order (the number of
    /// level-0 words if none) and returns it.
    #[inline]
    fn tighten_order_cursor(&mut self, k: usize) -> usize {
        let i = k - 1;
        let lowest = next_set(self.words, &self.layout.orders[i], 0, self.order_cursor[i]);
        self.order_cursor[i] = lowest.unwrap_or(self.layout.any.len[0]);
        self.order_cursor[i]
    }

    /// No published level-0 word below the one returned holds a free
    /// aligned block of order `k` (1 to 6) or more.
    #[inline]
    fn order_floor(&self, k: u32) -> usize {
        self.order_cursor[k as usize - 1..]
            .iter()
            .copied()
            .min()
            .unwrap_or(0)
    }

    /// Whether no run of a witness order `k` (see [`witness_order`]) fits
    /// below the hot frame `first`, so that a fit starting there is the
    /// lowest. It holds when frame `first - 1` is taken (then a fit below
    /// `first` lies wholly below it, in published frames) and no published
    /// free block of order `k` lies in `first`'s word or below (every fit
    /// holds one).
    #[inline]
    fn hot_is_lowest(&mut self, k: u32, first: u64) -> bool {
        if first != 0 && self.is_free(first - 1) {
            return false;
        }
        let w = (first >> 6) as usize;
        if k == 0 {
            return w < self.cursor || w < self.tighten_cursor();
        }
        (k as usize..=ORDERS)
            .all(|j| w < self.order_cursor[j - 1] || w < self.tighten_order_cursor(j))
    }

    /// Level-0 word `w` goes from `old` to `new` by clearing free bits:
    /// updates the summaries.
    #[inline]
    fn take_bits(&mut self, w: usize, old: u64, new: u64) {
        self.words[w] = new;
        if new == 0 {
            clear_up(self.words, &self.layout.any, 1, w);
        }
        // The largest block depends on the aligned pairs alone.
        if pairs(old) != pairs(new) {
            self.order_changed(w, max_order(old), max_order(new));
        }
    }

    /// The largest free block of published level-0 word `w` went from
    /// order `had` to order `has`: moves the word from one order summary
    /// to the other.
    #[inline]
    fn order_changed(&mut self, w: usize, had: usize, has: usize) {
        if had == has {
            return;
        }
        if let Some(i) = had.checked_sub(1) {
            clear_up(self.words, &self.layout.orders[i], 0, w);
        }
        if let Some(i) = has.checked_sub(1) {
            set_up(self.words, &self.layout.orders[i], 0, w);
            self.order_cursor[i] = self.order_cursor[i].min(w);
        }
    }

    /// Level-0 word `w` went from `old` to `new` by setting free bits:
    /// updates the summaries and the cursors.
    #[inline(always)]
    fn published(&mut self, w: usize, old: u64, new: u64) {
        if old == 0 {
            set_up(self.words, &self.layout.any, 1, w);
            self.cursor = self.cursor.min(w);
        }
        // The largest block depends on the aligned pairs alone.
        if pairs(old) != pairs(new) {
            self.order_changed(w, max_order(old), max_order(new));
        }
    }

    /// Marks the free frames `[first, end)` allocated.
    fn take_range(&mut self, first: u64, end: u64) {
        for_words(first, end, |w, mask| {
            let old = self.words[w];
            self.take_bits(w, old, old & !mask);
        });
    }

    /// The lowest frame of `[first, end)` (within level 0) that is free
    /// (`free == true`) or not free (`free == false`).
    #[inline]
    fn find_in(&self, first: u64, end: u64, free: bool) -> Option<u64> {
        let mut found = None;
        for_words_until(first, end, |w, mask| {
            let word = if free { self.words[w] } else { !self.words[w] };
            let hits = word & mask;
            if hits != 0 {
                found = Some(((w as u64) << 6) | u64::from(hits.trailing_zeros()));
                return true;
            }
            false
        });
        found
    }

    /// The highest frame of `[first, end)` (within level 0) that is not
    /// free, if any.
    #[inline]
    fn find_last_taken(&self, first: u64, end: u64) -> Option<u64> {
        if first >= end {
            return None;
        }
        let (w0, w1) = (first >> 6, (end - 1) >> 6);
        let head = !0u64 << (first & 63);
        let tail = !0u64 >> (63 - ((end - 1) & 63));
        let mut w = w1;
        let mut mask = tail;
        loop {
            if w == w0 {
                mask &= head;
            }
            let taken = !self.words[w as usize] & mask;
            if taken != 0 {
                return Some((w << 6) | u64::from(63 - taken.leading_zeros()));
            }
            if w == w0 {
                return None;
            }
            w -= 1;
            mask = !0;
        }
    }

    /// The lowest free aligned block of order `k` (`2^k` frames, `k <= 6`)
    /// starting at frame `from` or later, through the summaries.
    #[inline]
    fn next_block(&mut self, k: u32, from: u64) -> Option<u64> {
        if k == 0 {
            let frame = next_set(self.words, &self.layout.any, 0, usize::try_from(from).ok()?)?;
            return Some(frame as u64);
        }
        let size = 1u64 << k;
        let from = from.checked_add(size - 1)? & !(size - 1);
        let w = usize::try_from(from >> 6).ok()?;
        if w < self.layout.any.len[0] {
            let here = block_starts(self.words[w], k) & (!0u64 << (from & 63));
            if here != 0 {
                return Some(from & !63 | u64::from(here.trailing_zeros()));
            }
        }
        // The lowest word above whose largest block has order `k` or more.
        let len0 = self.layout.any.len[0];
        let mut best: Option<usize> = None;
        for i in k as usize - 1..ORDERS {
            let cursor = self.order_cursor[i];
            let from = (w + 1).max(cursor);
            if best.is_some_and(|b| b <= from) {
                continue;
            }
            let found = next_set(self.words, &self.layout.orders[i], 0, from);
            if from == cursor {
                // Searched from the cursor: the lowest of its order.
                self.order_cursor[i] = found.unwrap_or(len0);
            }
            if let Some(found) = found {
                best = Some(best.map_or(found, |b| b.min(found)));
            }
        }
        let w = best?;
        let here = block_starts(self.words[w], k);
        Some((w as u64) << 6 | u64::from(here.trailing_zeros()))
    }

    /// The lowest start `s <= last_start`, a multiple of `align`, with
    /// `[s, s + count)` all free. Everything must be published.
    ///
    /// Every fitting run holds a free block of order `k` =
    /// [`witness_order`] that starts less than `2^k` frames after the
    /// run's start (and ends inside it), so the lowest fit starting at
    /// `pos` or later starts at `b - lead` or later, where `b` is the lowest
    /// such block at `pos` or later. A fit starting below `b` holds a block
    /// at `b` or above, so every frame between its start and `b`: it starts
    /// after the last taken frame below `b`. Each candidate is then checked
    /// from its end down: if some frame `t` in it is taken, no fit starts at
    /// or below `t`, so the search goes on from `t + 1`.
    fn find_run(&mut self, count: u64, align: u64, last_start: u64) -> Option<u64> {
        let k = witness_order(count, align);
        let size = 1u64 << k;
        let lead = (count - size).min(size - 1);
        // Nothing is free below the cursor, and no block of order `k` or
        // more lies below the lowest cursor of those orders.
        let block_floor = match k {
            0 => self.cursor,
            _ => self.order_floor(k),
        };
        let pos_cursor = self.cursor as u64 * 64;
        let mut pos = pos_cursor.max((block_floor as u64 * 64).saturating_sub(lead));
        let mut first_try = k == 0;
        loop {
            // (For `k > 0`, `next_block` moves the order cursors itself.)
            let block = self.next_block(k, pos)?;
            if first_try {
                self.cursor = (block >> 6) as usize;
                first_try = false;
            }
            let low = block.saturating_sub(lead).max(pos);
            let low = self.find_last_taken(low, block).map_or(low, |t| t + 1);
            // `align` is a power of two: round up with a mask, not a divide.
            let start = low.checked_add(align - 1)? & !(align - 1);
            if start > last_start {
                return None;
            }
            match self.find_last_taken(start, start + count) {
                None => return Some(start),
                Some(taken) => pos = taken + 1,
            }
        }
    }

    /// The lowest frame of `[first, end)` that is not usable RAM, if any.
    fn first_not_usable(&self, first: u64, end: u64) -> Option<u64> {
        if first >= self.layout.frames {
            return Some(first);
        }
        // Fast path: the range lies in whole words of usable RAM.
        if end <= self.layout.frames {
            let (w0, w1) = (first >> 6, (end - 1) >> 6);
            let uniform = &self.words[self.layout.uniform..];
            let mut all = true;
            for_words_until(w0, w1 + 1, |i, mask| {
                all = uniform[i] & mask == mask;
                !all
            });
            if all {
                return None;
            }
        }
        match self.region_of(first) {
            Some((_, region_end, RegionKind::Usable)) => (region_end < end).then_some(region_end),
            _ => Some(first),
        }
    }

    /// Whether every frame of level-0 word `w` is usable RAM.
    #[inline]
    fn is_uniform(&self, w: usize) -> bool {
        self.words[self.layout.uniform + (w >> 6)] & (1 << (w & 63)) != 0
    }

    /// The region-table entry holding `frame`: (start, end, kind).
    fn region_of(&self, frame: u64) -> Option<(u64, u64, RegionKind)> {
        let table = &self.words[self.layout.regions..][..self.layout.region_count * REGION_WORDS];
        // The first region ending above `frame`.
        let (mut lo, mut hi) = (0, self.layout.region_count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if table[mid * REGION_WORDS + 1] & !RESERVED_BIT <= frame {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let start = *table.get(lo * REGION_WORDS)?;
        let end_word = table[lo * REGION_WORDS + 1];
        let kind = if end_word & RESERVED_BIT != 0 {
            RegionKind::Reserved
        } else {
            RegionKind::Usable
        };
        (start <= frame).then_some((start, end_word & !RESERVED_BIT, kind))
    }

    fn classify_in_table(&self, frame: u64) -> FrameClass {
        match self.region_of(frame) {
            Some((_, _, RegionKind::Usable)) => FrameClass::Usable,
            Some((_, _, RegionKind::Reserved)) => FrameClass::Reserved,
            None => FrameClass::NotRam,
        }
    }

    /// `Ok` for a usable frame, else the error naming what it is.
    fn class_error(&self, frame: u64) -> Result<(), AllocError> {
        if frame >= self.layout.frames {
            return Err(Self::beyond_error(frame));
        }
        match self.classify_in_table(frame) {
            FrameClass::Usable => Ok(()),
            FrameClass::Reserved => Err(AllocError::Reserved),
            FrameClass::NotRam => Err(AllocError::NotRam),
        }
    }

    /// The error for a frame at or beyond the end of RAM.
    fn beyond_error(frame: u64) -> AllocError {
        if frame >= FRAME_LIMIT {
            AllocError::OutOfRange
        } else {
            AllocError::NotRam
        }
    }
}

/// Calls `f(word index, mask)` for each level-0 word overlapping frames
/// `[first, end)`, with the mask of the frames inside.
#[inline(always)]
fn for_words(first: u64, end: u64, mut f: impl FnMut(usize, u64)) {
    for_words_until(first, end, |w, mask| {
        f(w, mask);
        false
    });
}

/// Like [`for_words`], stopping early once `f` returns true.
#[inline(always)]
fn for_words_until(first: u64, end: u64, mut f: impl FnMut(usize, u64) -> bool) {
    if first >= end {
        return;
    }
    let (w0, w1) = (first >> 6, (end - 1) >> 6);
    let head = !0u64 << (first & 63);
    let tail = !0u64 >> (63 - ((end - 1) & 63));
    if w0 == w1 {
        f(w0 as usize, head & tail);
        return;
    }
    if f(w0 as usize, head) {
        return;
    }
    for w in w0 + 1..w1 {
        if f(w as usize, !0) {
            return;
        }
    }
    f(w1 as usize, tail);
}

/// Sets bits `[first, end)` of the bitmap `words`.
fn set_bits(words: &mut [u64], first: u64, end: u64) {
    for_words(first, end, |w, mask| words[w] |= mask);
}

#[cfg(test)]
impl FrameAllocator<'_> {
    /// Checks every summary, the cursors and the free count against level 0
    /// as published (without the hot frames).
    fn check_invariants(&self) {
        let any = &self.layout.any;
        let mut published: Vec<u64> = self.words[..any.len[0]].to_vec();
        let parked = &self.parked[..self.parked_len];
        assert!(parked.iter().all(|&(_, count)| count != 0), "parked counts");
        let hot = (self.hot_first, self.hot_count);
        for &(first, count) in parked.iter().chain(core::iter::once(&hot)) {
            for_words(first, first + count, |w, mask| {
                assert_eq!(published[w] & mask, mask, "hot frames are free, once");
                published[w] &= !mask;
            });
        }
        let bit = |off: usize, i: usize| self.words[off + (i >> 6)] & (1 << (i & 63)) != 0;
        for (w, &word) in published.iter().enumerate() {
            assert_eq!(bit(any.off[1], w), word != 0, "any bit {w}");
            // The reference: the largest k with an aligned block of 2^k.
            let largest = (1..=6u32)
                .filter(|&k| block_starts(word, k) != 0)
                .max()
                .unwrap_or(0);
            for (i, order) in self.layout.orders.iter().enumerate() {
                let has = largest == i as u32 + 1;
                assert_eq!(bit(order.off[0], w), has, "order {} bit {w}", i + 1);
            }
        }
        for lv in [*any].iter().chain(&self.layout.orders) {
            for level in 2..lv.count {
                for i in 0..lv.len[level - 1] {
                    let nonzero = self.words[lv.off[level - 1] + i] != 0;
                    assert_eq!(
                        bit(lv.off[level], i),
                        nonzero,
                        "summary level {level} bit {i}"
                    );
                }
            }
        }
        assert!(
            published[..self.cursor.min(published.len())]
                .iter()
                .all(|&w| w == 0),
            "cursor"
        );
        for (i, &cursor) in self.order_cursor.iter().enumerate() {
            assert!(
                published[..cursor.min(published.len())]
                    .iter()
                    .all(|&w| max_order(w) != i + 1),
                "order {} cursor",
                i + 1
            );
        }
        let free: u64 = self.words[..any.len[0]]
            .iter()
            .map(|w| u64::from(w.count_ones()))
            .sum();
        assert_eq!(free, self.free, "free count");
        assert_eq!(self.free + self.allocated() + self.reserved, self.total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memmap::{Region, FRAME_LIMIT};
    use alloc::vec;
    use alloc::vec::Vec;

    const MIB: u64 = 1024 * 1024;
    const GIB: u64 = 1024 * MIB;
    const F: u64 = FRAME_SIZE;

    fn usable(start: u64, end: u64) -> Region {
        Region::usable(start, end)
    }

    fn reserved(start: u64, end: u64) -> Region {
        Region::reserved(start, end)
    }

    fn storage_for(map: &MemoryMap) -> Vec<u64> {
        // Garbage in the storage must not matter.
        vec![0xDEAD_BEEF_5A5A_A5A5; storage_words(map)]
    }

    /// A PC-like map: low memory, a reserved kernel, a PCI hole below
    /// 4 GiB, and `high_gib` GiB above 4 GiB.
    fn pc_map(high_gib: u64) -> MemoryMap {
        MemoryMap::new([
            usable(0x1000, 0x9_F000),
            reserved(0xF_0000, 0x10_0000),
            reserved(0x10_0000, 0x20_0000), // kernel image
            usable(0x20_0000, 3 * GIB),
            usable(4 * GIB, (4 + high_gib) * GIB),
        ])
    }

    #[test]
    fn small_map_basics() {
        let map = MemoryMap::new([reserved(0, 2 * F), usable(2 * F, 10 * F)]);
        let mut storage = storage_for(&map);
        let mut a = FrameAllocator::new(&map, &mut storage).unwrap();
        assert_eq!(
            (a.total(), a.free_frames(), a.reserved(), a.allocated()),
            (10, 8, 2, 0)
        );
        assert_eq!(a.alloc(), Ok(2));
        assert_eq!(a.alloc(), Ok(3));
        assert_eq!(a.alloc_at(5), Ok(()));
        assert_eq!(a.alloc(), Ok(4));
        assert_eq!(a.alloc(), Ok(6));
        assert_eq!(a.allocated(), 5);
        assert_eq!(a.free(3), Ok(()));
        assert_eq!(a.alloc(), Ok(3)); // lowest first
        for f in 7..10 {
            assert_eq!(a.alloc(), Ok(f));
        }
        assert_eq!(a.alloc(), Err(AllocError::OutOfMemory));
        assert_eq!(a.free_frames(), 0);
        assert_eq!(a.allocated(), 8);
        a.check_invariants();
    }

    #[test]
    fn errors_per_class() {
        let map = MemoryMap::new([
            reserved(0, F),
            usable(F, 4 * F),
            // hole at 4..8
            usable(8 * F, 10 * F),
        ]);
        let mut storage = storage_for(&map);
        let mut a = FrameAllocator::new(&map, &mut storage).unwrap();
        assert_eq!(a.alloc_at(0), Err(AllocError::Reserved));
        assert_eq!(a.free(0), Err(AllocError::Reserved));
        assert_eq!(a.alloc_at(5), Err(AllocError::NotRam));
        assert_eq!(a.free(5), Err(AllocError::NotRam));
        assert_eq!(a.alloc_at(10), Err(AllocError::NotRam)); // beyond the end
        assert_eq!(a.free(1000), Err(AllocError::NotRam));
        assert_eq!(a.alloc_at(FRAME_LIMIT - 1), Err(AllocError::NotRam));
        assert_eq!(a.alloc_at(FRAME_LIMIT), Err(AllocError::OutOfRange));
        assert_eq!(a.free(u64::MAX), Err(AllocError::OutOfRange));
        assert_eq!(a.free(1), Err(AllocError::NotAllocated));
        assert_eq!(a.alloc_at(1), Ok(()));
        assert_eq!(a.alloc_at(1), Err(AllocError::InUse));
        assert_eq!(a.free(1), Ok(()));
        assert_eq!(a.free(1), Err(AllocError::NotAllocated)); // double free
        assert_eq!(a.classify(0), FrameClass::Reserved);
        assert_eq!(a.classify(1), FrameClass::Usable);
        assert_eq!(a.classify(4), FrameClass::NotRam);
        assert_eq!(a.classify(9), FrameClass::Usable);
        assert_eq!(a.classify(10), FrameClass::NotRam);
        assert_eq!(a.classify(u64::MAX), FrameClass::NotRam);
        assert!(!a.is_free(0) && a.is_free(1) && !a.is_free(4) && !a.is_free(u64::MAX));
        // Only usable frames come out.
        let mut got = Vec::new();
        while let Ok(f) = a.alloc() {
            got.push(f);
        }
        assert_eq!(got, [1, 2, 3, 8, 9]);
        assert_eq!((a.total(), a.reserved(), a.allocated()), (6, 1, 5));
        a.check_invariants();
    }

    #[test]
    fn storage_too_small_and_extra_storage() {
        let map = pc_map(1);
        let words = storage_words(&map);
        let mut small = vec![0; words - 1];
        assert_eq!(
            FrameAllocator::new(&map, &mut small).unwrap_err(),
            AllocError::StorageTooSmall
        );
        let mut big = vec![7; words + 10];
        FrameAllocator::new(&map, &mut big)
            .unwrap()
            .check_invariants();
        assert!(
            big[words..].iter().all(|&w| w == 7),
            "extra storage untouched"
        );
    }

    #[test]
    fn empty_map() {
        let map = MemoryMap::new([]);
        let mut storage = storage_for(&map);
        let mut a = FrameAllocator::new(&map, &mut storage).unwrap();
        assert_eq!(a.total(), 0);
        assert_eq!(a.alloc(), Err(AllocError::OutOfMemory));
        assert_eq!(a.alloc_at(0), Err(AllocError::NotRam));
        assert_eq!(a.alloc_contiguous(1, 1, None), Err(AllocError::OutOfMemory));
        assert_eq!(a.free_range(0, 1), Err(AllocError::NotRam));
        assert_eq!(find_storage(&map, 1), None);
        a.check_invariants();
    }

    #[test]
    fn storage_size_is_about_a_bit_per_frame() {
        let map = MemoryMap::new([usable(0, 16 * GIB)]);
        let words = storage_words(&map);
        // 4 Mi frames: 65536 level-0 words, its "any" levels (1024 + 16 +
        // 1), the six order summaries (1041 each), uniform bits
        // and one region: 36 KiB per GiB.
        assert_eq!(words, 65536 + 1041 + 6 * 1041 + 1024 + 2);
        assert_eq!(words, 73_849);
        assert!(words * 8 < 578 * 1024);
    }

    #[test]
    fn find_storage_then_claim_it() {
        let map = pc_map(2);
        let words = storage_words(&map);
        let phys = find_storage(&map, words).unwrap();
        let frames = (words as u64 * 8).div_ceil(F);
        assert_eq!(phys % F, 0);
        // Highest fit: the top of the region above 4 GiB.
        assert_eq!(phys + frames * F, 6 * GIB);
        let mut storage = storage_for(&map);
        let mut a = FrameAllocator::new(&map, &mut storage).unwrap();
        for i in 0..frames {
            assert_eq!(a.classify(phys / F + i), FrameClass::Usable);
            a.alloc_at(phys / F + i).unwrap();
        }
        assert_eq!(a.allocated(), frames);
        // Too big for any region.
        assert_eq!(find_storage(&map, usize::MAX), None);
        assert_eq!(find_storage(&map, (3 * GIB / 8) as usize), None);
        // A small request fits (at least one frame).
        assert_eq!(find_storage(&map, 0), Some(6 * GIB - F));
        a.check_invariants();
    }

    #[test]
    fn big_map_with_holes_above_4_gib() {
        // 68 GiB of RAM reaching 130 GiB, with a PCI hole, a reserved
        // frame above 4 GiB and a hole from 68 to 128 GiB.
        let map = MemoryMap::new([
            usable(0x1000, 0x9_F000),
            reserved(0x10_0000, 0x20_0000),
            usable(0x20_0000, 3 * GIB),
            usable(4 * GIB, 68 * GIB),
            reserved(5 * GIB, 5 * GIB + F),
            usable(128 * GIB, 130 * GIB),
        ]);
        let mut storage = storage_for(&map);
        let mut a = FrameAllocator::new(&map, &mut storage).unwrap();
        let total_usable = map.usable_bytes() / F;
        assert_eq!(a.free_frames(), total_usable);
        assert_eq!(a.reserved(), 256 + 1);
        assert_eq!(a.alloc(), Ok(1));
        // Above 4 GiB: alloc_at, free, classify.
        let high = 64 * GIB / F + 12345;
        assert_eq!(a.alloc_at(high), Ok(()));
        assert_eq!(a.alloc_at(high), Err(AllocError::InUse));
        assert_eq!(a.alloc_at(5 * GIB / F), Err(AllocError::Reserved));
        assert_eq!(a.alloc_at(100 * GIB / F), Err(AllocError::NotRam));
        assert_eq!(a.alloc_at(3 * GIB / F + 7), Err(AllocError::NotRam));
        assert_eq!(a.classify(129 * GIB / F), FrameClass::Usable);
        assert_eq!(a.classify(130 * GIB / F), FrameClass::NotRam);
        assert_eq!(a.free(high), Ok(()));
        // A huge run: 60 GiB, which must go above 5 GiB.
        let count = 60 * GIB / F;
        let run = a.alloc_contiguous(count, 512, None).unwrap();
        assert_eq!(run, (5 * GIB + 2 * MIB) / F);
        assert_eq!(a.allocated(), 1 + count);
        // A DMA32 run stays below 4 GiB; a 28-bit one below 256 MiB.
        let dma32 = a.alloc_contiguous(1024, 1024, Some(4 * GIB / F)).unwrap();
        assert!(dma32 + 1024 <= 4 * GIB / F && dma32.is_multiple_of(1024));
        let dma28 = a.alloc_contiguous(16, 16, Some((1 << 28) / F)).unwrap();
        assert!(dma28 + 16 <= (1 << 28) / F);
        // Nothing of 61 GiB fits any more. 2 GiB runs go lowest first: above
        // the DMA runs below 3 GiB, then above the big run, then at 128 GiB.
        assert_eq!(
            a.alloc_contiguous(61 * GIB / F, 1, None),
            Err(AllocError::OutOfMemory)
        );
        let two = 2 * GIB / F;
        assert_eq!(a.alloc_contiguous(two, 1, None), Ok(8 * MIB / F));
        assert_eq!(a.alloc_contiguous(two, 1, None), Ok(run + count));
        assert_eq!(a.alloc_contiguous(two, 1, None), Ok(128 * GIB / F));
        assert_eq!(
            a.alloc_contiguous(two, 1, None),
            Err(AllocError::OutOfMemory)
        );
        // Freeing a range reaching into a hole or over a free frame fails
        // whole.
        assert_eq!(
            a.free_range(128 * GIB / F, two + 1),
            Err(AllocError::NotRam)
        );
        assert_eq!(a.free_range(run - 1, count), Err(AllocError::NotAllocated));
        assert_eq!(a.free_range(run, count), Ok(()));
        assert_eq!(a.free_range(128 * GIB / F, two), Ok(()));
        a.check_invariants();
        // Once everything below 4 GiB is taken, frames above it come out.
        let below_4g = Some(4 * GIB / F);
        while a.alloc_contiguous(1024, 1, below_4g).is_ok() {}
        while a.alloc_contiguous(1, 1, below_4g).is_ok() {}
        let next = a.alloc().unwrap();
        assert!(next >= 4 * GIB / F, "{next:#x}");
        a.check_invariants();
    }

    #[test]
    fn contiguous_alignment_limit_and_arguments() {
        let map = MemoryMap::new([usable(0, 1024 * F)]);
        let mut storage = storage_for(&map);
        let mut a = FrameAllocator::new(&map, &mut storage).unwrap();
        assert_eq!(
            a.alloc_contiguous(0, 1, None),
            Err(AllocError::InvalidArgument)
        );
        assert_eq!(
            a.alloc_contiguous(1, 0, None),
            Err(AllocError::InvalidArgument)
        );
        assert_eq!(
            a.alloc_contiguous(1, 3, None),
            Err(AllocError::InvalidArgument)
        );
        assert_eq!(
            a.alloc_contiguous(u64::MAX, 1 << 63, None),
            Err(AllocError::OutOfMemory)
        );
        assert_eq!(a.alloc_contiguous(1, 1 << 63, None), Ok(0));
        assert_eq!(
            a.alloc_contiguous(1, 1 << 63, None),
            Err(AllocError::OutOfMemory)
        );
        assert_eq!(
            a.alloc_contiguous(1, 1, Some(0)),
            Err(AllocError::OutOfMemory)
        );
        assert_eq!(
            a.alloc_contiguous(1, 1, Some(1)),
            Err(AllocError::OutOfMemory)
        );
        assert_eq!(a.alloc_contiguous(1, 1, Some(2)), Ok(1));
        assert_eq!(a.alloc_contiguous(3, 4, None), Ok(4));
        assert_eq!(a.alloc_contiguous(2, 1, None), Ok(2));
        assert_eq!(a.alloc_contiguous(64, 64, None), Ok(64));
        assert_eq!(a.alloc_contiguous(57, 1, None), Ok(7)); // exactly fits
        assert_eq!(a.alloc_contiguous(100, 1, None), Ok(128));
        assert_eq!(a.alloc_contiguous(130, 4, Some(u64::MAX)), Ok(228));
        assert_eq!(
            a.alloc_contiguous(1024, 1, None),
            Err(AllocError::OutOfMemory)
        );
        assert_eq!(a.free_range(0, 0), Err(AllocError::InvalidArgument));
        assert_eq!(a.free_range(u64::MAX, 2), Err(AllocError::OutOfRange));
        assert_eq!(
            a.free_range(FRAME_LIMIT - 1, 2),
            Err(AllocError::OutOfRange)
        );
        assert_eq!(a.free_range(FRAME_LIMIT - 1, 1), Err(AllocError::NotRam));
        // All or nothing: frames 358.. are free, so nothing is freed.
        assert_eq!(a.free_range(350, 10), Err(AllocError::NotAllocated));
        assert!(!a.is_free(350));
        assert_eq!(a.free_range(4, 3), Ok(()));
        assert!(a.is_free(4) && a.is_free(6));
        a.check_invariants();
    }

    #[test]
    fn hot_frames_never_change_results() {
        let map = MemoryMap::new([usable(0, 1024 * F)]);
        let mut storage = storage_for(&map);
        let mut a = FrameAllocator::new(&map, &mut storage).unwrap();
        // Free then alloc: the hot frame comes back only when lowest.
        assert_eq!(a.alloc_contiguous(100, 1, None), Ok(0));
        assert_eq!(a.free(50), Ok(()));
        assert_eq!(a.alloc(), Ok(50));
        assert_eq!(a.free(40), Ok(()));
        assert_eq!(a.free(30), Ok(())); // publishes 40
        assert_eq!(a.alloc(), Ok(30));
        assert_eq!(a.alloc(), Ok(40));
        assert_eq!(a.free(99), Ok(()));
        assert_eq!(a.alloc_at(99), Ok(())); // the hot frame, by address
        assert_eq!(a.alloc(), Ok(100));
        a.check_invariants();
        // A whole-word run: taken back when it is the lowest all-free word.
        assert_eq!(a.alloc_contiguous(64, 64, None), Ok(128));
        assert_eq!(a.free_range(128, 64), Ok(()));
        assert_eq!(a.alloc_contiguous(64, 64, None), Ok(128));
        assert_eq!(a.free_range(128, 64), Ok(()));
        a.check_invariants();
        // A run that starts in the partly free word below it (101..128)
        // is lower than one starting at the hot word.
        assert_eq!(a.alloc_contiguous(150, 1, None), Ok(101));
        assert_eq!(a.free_range(101, 150), Ok(()));
        // Part of a hot run, then the rest published.
        assert_eq!(a.alloc_contiguous(128, 64, None), Ok(128));
        assert_eq!(a.free_range(128, 128), Ok(()));
        assert_eq!(a.alloc_contiguous(100, 64, None), Ok(128));
        a.check_invariants();
        assert_eq!(a.alloc_contiguous(28, 1, None), Ok(228)); // 101..128 is 27
        assert_eq!(a.alloc_contiguous(27, 1, None), Ok(101));
        assert_eq!(a.alloc(), Ok(256));
        a.check_invariants();

        // A short aligned run fits in a partly free word below a hot run.
        let mut storage = storage_for(&map);
        let mut a = FrameAllocator::new(&map, &mut storage).unwrap();
        assert_eq!(a.alloc_at(100), Ok(()));
        assert_eq!(a.alloc_contiguous(64, 64, None), Ok(0));
        assert_eq!(a.alloc_contiguous(64, 64, None), Ok(128));
        assert_eq!(a.free_range(128, 64), Ok(()));
        assert_eq!(a.alloc_contiguous(8, 64, None), Ok(64));
        assert_eq!(a.alloc_contiguous(64, 64, None), Ok(128));
        a.check_invariants();
    }

    #[test]
    fn a_word_moves_between_order_summaries() {
        // A word is in the summary of its largest free block only: freeing
        // and taking runs in it moves it from one order to another, and a
        // search for order `k` finds words of every larger order too.
        let map = MemoryMap::new([usable(0, 4096 * F)]);
        let mut storage = storage_for(&map);
        let mut a = FrameAllocator::new(&map, &mut storage).unwrap();
        for _ in 0..4096 {
            a.alloc().unwrap();
        }
        a.check_invariants();
        // Word 10 gets a block of 4, then of 16, then is all free.
        let base = 10 * 64;
        a.free_range(base + 4, 4).unwrap();
        a.free(base + 40).unwrap();
        a.check_invariants();
        a.free_range(base + 16, 16).unwrap();
        a.free(base + 41).unwrap();
        a.check_invariants();
        // Lower blocks of 2 (word 3) do not hide the larger block above.
        a.free_range(3 * 64 + 2, 2).unwrap();
        a.free(base + 42).unwrap();
        a.check_invariants();
        assert_eq!(a.alloc_contiguous(8, 8, None), Ok(base + 16));
        a.check_invariants();
        assert_eq!(a.alloc_contiguous(2, 2, None), Ok(3 * 64 + 2));
        a.check_invariants();
        // The rest of word 10 freed: it is all free (order 6).
        for f in base..base + 64 {
            if !a.is_free(f) {
                a.free(f).unwrap();
            }
        }
        a.check_invariants();
        assert_eq!(a.alloc_contiguous(32, 32, None), Ok(base));
        a.check_invariants();
        assert_eq!(a.alloc_contiguous(32, 1, None), Ok(base + 32));
        a.check_invariants();
        assert_eq!(a.alloc_contiguous(2, 1, None), Err(AllocError::OutOfMemory));
    }

    #[test]
    fn a_fit_starting_below_its_witness() {
        // Free frames [60, 124) with 59 and 124 taken: an unaligned run of
        // 64 holds the block of 32 at 64, and starts 4 frames below it.
        let map = MemoryMap::new([usable(0, 1024 * F)]);
        let mut storage = storage_for(&map);
        let mut a = FrameAllocator::new(&map, &mut storage).unwrap();
        for _ in 0..1024 {
            a.alloc().unwrap();
        }
        a.free_range(60, 64).unwrap();
        a.free_range(300, 40).unwrap();
        a.check_invariants();
        assert_eq!(a.alloc_contiguous(64, 1, None), Ok(60));
        a.check_invariants();
        // [300, 340): the witness for 33 frames is a block of 16, the lowest
        // at 304; the fit starts at 300, just after the taken frame 299.
        assert_eq!(a.alloc_contiguous(33, 1, None), Ok(300));
        a.check_invariants();
        assert_eq!(a.alloc_contiguous(7, 1, None), Ok(333));
        assert_eq!(a.alloc_contiguous(1, 1, None), Err(AllocError::OutOfMemory));
    }

    #[test]
    fn fragmented_contiguous_search() {
        // Every other frame taken: no run of 2, but single frames fit.
        let map = MemoryMap::new([usable(0, 8192 * F)]);
        let mut storage = storage_for(&map);
        let mut a = FrameAllocator::new(&map, &mut storage).unwrap();
        for f in (0..8192).step_by(2) {
            a.alloc_at(f).unwrap();
        }
        assert_eq!(a.alloc_contiguous(2, 1, None), Err(AllocError::OutOfMemory));
        assert_eq!(
            a.alloc_contiguous(200, 1, None),
            Err(AllocError::OutOfMemory)
        );
        assert_eq!(a.alloc_contiguous(1, 2, None), Err(AllocError::OutOfMemory));
        assert_eq!(a.alloc_contiguous(1, 1, None), Ok(1));
        // Open a gap not aligned to words: 999..1201.
        for f in (1002..1201).step_by(2) {
            a.free(f).unwrap();
        }
        assert_eq!(a.free(1000), Ok(()));
        assert_eq!(a.alloc_contiguous(200, 1, None), Ok(999)); // 999 was free too
        a.check_invariants();
    }

    #[test]
    fn nothing_panics_on_extreme_arguments() {
        let map = pc_map(1);
        let mut storage = storage_for(&map);
        let mut a = FrameAllocator::new(&map, &mut storage).unwrap();
        let values = [
            0,
            1,
            63,
            64,
            65,
            FRAME_LIMIT - 1,
            FRAME_LIMIT,
            u64::MAX / 2,
            u64::MAX - 1,
            u64::MAX,
        ];
        for &x in &values {
            let _ = a.alloc_at(x);
            let _ = a.free(x);
            let _ = a.classify(x);
            let _ = a.is_free(x);
            for &y in &values {
                let _ = a.free_range(x, y);
                let _ = a.alloc_contiguous(x, y, None);
                for &z in &values {
                    let _ = a.alloc_contiguous(x, y, Some(z));
                }
            }
        }
        a.check_invariants();
    }

    #[test]
    fn classify_agrees_with_the_map() {
        let map = pc_map(1);
        let mut storage = storage_for(&map);
        let a = FrameAllocator::new(&map, &mut storage).unwrap();
        let edges = map
            .regions()
            .iter()
            .flat_map(|r| [r.start / F, r.end / F])
            .flat_map(|f| f.saturating_sub(70)..f + 70);
        for f in edges.chain([u64::MAX, FRAME_LIMIT]) {
            assert_eq!(a.classify(f), map.classify(f), "frame {f:#x}");
        }
    }
}

/// Property tests: random operation sequences on random maps, against a
/// reference model that knows nothing of bitmaps.
#[cfg(test)]
mod model_tests {
    use super::*;
    use crate::memmap::tests::naive_class;
    use crate::memmap::{Region, FRAME_LIMIT};
    use alloc::vec;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    /// One frame, as the model sees it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum State {
        Free,
        Allocated,
        Reserved,
        NotRam,
    }

    /// The reference: a vector of states over the window of frames the map
    /// was drawn in; everything outside is not RAM.
    struct Model {
        base: u64,
        states: Vec<State>,
    }

    impl Model {
        fn state(&self, frame: u64) -> State {
            frame
                .checked_sub(self.base)
                .and_then(|i| self.states.get(usize::try_from(i).ok()?))
                .copied()
                .unwrap_or(State::NotRam)
        }

        fn set(&mut self, frame: u64, state: State) {
            self.states[(frame - self.base) as usize] = state;
        }

        fn count(&self, state: State) -> u64 {
            self.states.iter().filter(|&&s| s == state).count() as u64
        }

        /// The error freeing (or, with `alloc`, allocating) one frame gives.
        fn frame_error(&self, frame: u64, alloc: bool) -> Option<AllocError> {
            if frame >= FRAME_LIMIT {
                return Some(AllocError::OutOfRange);
            }
            match (self.state(frame), alloc) {
                (State::Free, true) | (State::Allocated, false) => None,
                (State::Free, false) => Some(AllocError::NotAllocated),
                (State::Allocated, true) => Some(AllocError::InUse),
                (State::Reserved, _) => Some(AllocError::Reserved),
                (State::NotRam, _) => Some(AllocError::NotRam),
            }
        }

        fn alloc(&self) -> Result<u64, AllocError> {
            self.states
                .iter()
                .position(|&s| s == State::Free)
                .map(|i| self.base + i as u64)
                .ok_or(AllocError::OutOfMemory)
        }

        fn alloc_contiguous(
            &self,
            count: u64,
            align: u64,
            limit: Option<u64>,
        ) -> Result<u64, AllocError> {
            if count == 0 || !align.is_power_of_two() {
                return Err(AllocError::InvalidArgument);
            }
            // run[i]: free frames in a row from window index i.
            let mut run = vec![0u64; self.states.len() + 1];
            for i in (0..self.states.len()).rev() {
                run[i] = if self.states[i] == State::Free {
                    run[i + 1] + 1
                } else {
                    0
                };
            }
            (0..self.states.len())
                .map(|i| (i, self.base + i as u64))
                .find(|&(i, start)| {
                    start % align == 0
                        && run[i] >= count
                        && limit
                            .is_none_or(|l| u128::from(start) + u128::from(count) <= u128::from(l))
                })
                .map(|(_, start)| start)
                .ok_or(AllocError::OutOfMemory)
        }

        fn free_range(&self, first: u64, count: u64) -> Result<(), AllocError> {
            if count == 0 {
                return Err(AllocError::InvalidArgument);
            }
            match first.checked_add(count) {
                Some(end) if end <= FRAME_LIMIT => {}
                _ => return Err(AllocError::OutOfRange),
            }
            // Frame by frame; beyond the window everything is not RAM.
            let window_end = self.base + self.states.len() as u64;
            let mut frame = first;
            while frame - first < count {
                if let Some(e) = self.frame_error(frame, false) {
                    return Err(e);
                }
                if frame >= window_end {
                    return Err(AllocError::NotRam);
                }
                frame += 1;
            }
            Ok(())
        }
    }

    /// One step of a sequence. Frames are drawn as selectors and turned
    /// into frame numbers near the map (or extreme values) at run time.
    #[derive(Clone, Debug)]
    enum Op {
        Alloc,
        AllocAt(Sel),
        Free(Sel),
        /// Free a frame the model says is allocated (picked by index).
        FreeHeld(usize),
        AllocContiguous {
            count: u64,
            align: u64,
            limit: Option<Sel>,
        },
        FreeRange {
            first: Sel,
            count: u64,
        },
        /// Free a run that `alloc_contiguous` returned (perhaps partly freed
        /// since, or shifted by one frame).
        FreeRun {
            index: usize,
            shift: i8,
        },
    }

    /// A frame selector: mostly a frame of the window or just past it.
    #[derive(Clone, Copy, Debug)]
    struct Sel(u8, u32);

    const EXTREMES: [u64; 6] = [0, 1, FRAME_LIMIT - 1, FRAME_LIMIT, u64::MAX - 1, u64::MAX];

    impl Sel {
        fn frame(self, model: &Model) -> u64 {
            if self.0 < 240 {
                model.base + u64::from(self.1) % (model.states.len() as u64 + 70)
            } else {
                EXTREMES[self.1 as usize % EXTREMES.len()]
            }
        }
    }

    fn arb_sel() -> impl Strategy<Value = Sel> {
        (any::<u8>(), any::<u32>()).prop_map(|(k, v)| Sel(k, v))
    }

    fn arb_count() -> impl Strategy<Value = u64> {
        prop_oneof![
            8 => 1u64..=8,
            4 => 9u64..=140,
            1 => 141u64..=400,
            4 => prop_oneof![Just(64u64), Just(128), Just(192), Just(65), Just(100), Just(127), Just(150)],
            1 => Just(0u64),
            1 => prop_oneof![Just(u64::MAX), Just(FRAME_LIMIT), Just(1u64 << 32)],
        ]
    }

    /// Mostly runs freed and allocated in bursts, so that many runs are
    /// parked unpublished at once (and the park overflows).
    fn arb_run_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => Just(Op::Alloc),
            1 => any::<usize>().prop_map(Op::FreeHeld),
            5 => arb_op(),
            6 => (any::<usize>(), prop_oneof![6 => Just(0i8), 1 => -1i8..=1]).prop_map(|(index, shift)| Op::FreeRun { index, shift }),
            6 => (prop_oneof![1u64..=20, Just(32), Just(64), 65u64..=140], (0u32..7).prop_map(|s| 1u64 << s), proptest::option::of(arb_sel()))
                .prop_map(|(count, align, limit)| Op::AllocContiguous { count, align, limit }),
        ]
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        let align = prop_oneof![
            6 => (0u32..8).prop_map(|s| 1u64 << s),
            2 => Just(64u64),
            1 => prop_oneof![Just(128u64), Just(256), Just(512)],
            1 => prop_oneof![Just(0u64), Just(3u64), Just(96u64), Just(1u64 << 63), Just(u64::MAX)],
        ];
        prop_oneof![
            6 => Just(Op::Alloc),
            3 => arb_sel().prop_map(Op::AllocAt),
            2 => arb_sel().prop_map(Op::Free),
            5 => any::<usize>().prop_map(Op::FreeHeld),
            3 => (arb_count(), align, proptest::option::of(arb_sel()))
                .prop_map(|(count, align, limit)| Op::AllocContiguous { count, align, limit }),
            1 => (arb_sel(), arb_count()).prop_map(|(first, count)| Op::FreeRange { first, count }),
            2 => (any::<usize>(), prop_oneof![4 => Just(0i8), 1 => -1i8..=1]).prop_map(|(index, shift)| Op::FreeRun { index, shift }),
        ]
    }

    /// A random map: regions drawn in a window of frames starting at `base`
    /// (0, or anywhere up to 8 GiB so that frames above 4 GiB are common),
    /// with unaligned edges, overlaps, reserved regions and holes.
    #[derive(Clone, Debug)]
    struct MapSpec {
        base: u64,
        window: u64,
        regions: Vec<Region>,
    }

    fn arb_map() -> impl Strategy<Value = MapSpec> {
        let base = prop_oneof![Just(0u64), 1u64..(1 << 21), Just((1 << 20) - 37)];
        let window = prop_oneof![3 => 16u64..400, 2 => 400u64..1500];
        let raw_region = (any::<u64>(), any::<u64>(), 0u8..10, any::<bool>());
        (base, window, proptest::collection::vec(raw_region, 0..8)).prop_map(
            |(base, window, raw)| {
                let bytes = window * FRAME_SIZE;
                let regions = raw
                    .into_iter()
                    .map(|(start, len, kind, aligned)| {
                        let kind = if kind < 6 {
                            RegionKind::Usable
                        } else {
                            RegionKind::Reserved
                        };
                        // Reserved regions are short; usable ones up to the
                        // whole window.
                        let max_len = match kind {
                            RegionKind::Usable => bytes,
                            RegionKind::Reserved => (bytes / 4).min(80 * FRAME_SIZE),
                        };
                        let mut start = start % bytes;
                        let mut len = len % (max_len + 1);
                        if aligned {
                            start &= !(FRAME_SIZE - 1);
                            len &= !(FRAME_SIZE - 1);
                        }
                        let start = base * FRAME_SIZE + start;
                        let end = (start + len).min((base + window) * FRAME_SIZE);
                        Region { start, end, kind }
                    })
                    .collect();
                MapSpec {
                    base,
                    window,
                    regions,
                }
            },
        )
    }

    /// Runs one sequence, checking everything after every step.
    fn run(spec: &MapSpec, ops: &[Op]) -> Result<(), TestCaseError> {
        let map = MemoryMap::new(spec.regions.iter().copied());
        let mut model = Model {
            base: spec.base,
            states: (spec.base..spec.base + spec.window)
                .map(|f| match naive_class(&spec.regions, f) {
                    FrameClass::Usable => State::Free,
                    FrameClass::Reserved => State::Reserved,
                    FrameClass::NotRam => State::NotRam,
                })
                .collect(),
        };
        let mut storage = vec![!0u64; storage_words(&map)];
        let mut a = FrameAllocator::new(&map, &mut storage)
            .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let reserved = model.count(State::Reserved);
        let total = reserved + model.count(State::Free);
        prop_assert_eq!((a.total(), a.reserved()), (total, reserved));
        let mut runs: Vec<(u64, u64)> = Vec::new();

        for op in ops {
            // Frames whose state the step may change, checked afterwards.
            let mut touched: Vec<u64> = Vec::new();
            match *op {
                Op::Alloc => {
                    let expected = model.alloc();
                    let got = a.alloc();
                    prop_assert_eq!(got, expected, "{:?}", op);
                    if let Ok(frame) = got {
                        prop_assert_eq!(
                            model.state(frame),
                            State::Free,
                            "handed out twice or not usable"
                        );
                        model.set(frame, State::Allocated);
                        touched.push(frame);
                    }
                }
                Op::AllocAt(sel) => {
                    let frame = sel.frame(&model);
                    let expected = model.frame_error(frame, true).map_or(Ok(()), Err);
                    prop_assert_eq!(a.alloc_at(frame), expected, "{:?} frame {}", op, frame);
                    if expected.is_ok() {
                        model.set(frame, State::Allocated);
                    }
                    touched.push(frame);
                }
                Op::Free(sel) => {
                    let frame = sel.frame(&model);
                    free_step(&mut a, &mut model, frame)?;
                    touched.push(frame);
                }
                Op::FreeHeld(i) => {
                    let held: Vec<u64> = (0..model.states.len())
                        .filter(|&j| model.states[j] == State::Allocated)
                        .map(|j| model.base + j as u64)
                        .collect();
                    if !held.is_empty() {
                        let frame = held[i % held.len()];
                        free_step(&mut a, &mut model, frame)?;
                        touched.push(frame);
                    }
                }
                Op::AllocContiguous {
                    count,
                    align,
                    limit,
                } => {
                    let limit = limit.map(|s| s.frame(&model));
                    let expected = model.alloc_contiguous(count, align, limit);
                    let got = a.alloc_contiguous(count, align, limit);
                    prop_assert_eq!(got, expected, "{:?} limit {:?}", op, limit);
                    if let Ok(start) = got {
                        prop_assert_eq!(start % align, 0);
                        prop_assert!(limit.is_none_or(|l| start + count <= l));
                        for f in start..start + count {
                            prop_assert_eq!(
                                model.state(f),
                                State::Free,
                                "frame {} not free before",
                                f
                            );
                            model.set(f, State::Allocated);
                        }
                        touched.extend([start, start + count - 1, start + count]);
                        runs.push((start, count));
                    }
                }
                Op::FreeRange { first, count } => {
                    let first = first.frame(&model);
                    free_range_step(&mut a, &mut model, first, count, &mut touched)?;
                }
                Op::FreeRun { index, shift } => {
                    if !runs.is_empty() {
                        let (start, count) = runs[index % runs.len()];
                        let first = start.wrapping_add_signed(i64::from(shift));
                        free_range_step(&mut a, &mut model, first, count, &mut touched)?;
                    }
                }
            }
            // After every step: counters, conservation, touched frames.
            let free = model.count(State::Free);
            let allocated = model.count(State::Allocated);
            prop_assert_eq!(a.free_frames(), free);
            prop_assert_eq!(a.allocated(), allocated);
            prop_assert_eq!(a.reserved(), reserved);
            prop_assert_eq!(a.free_frames() + a.allocated() + a.reserved(), a.total());
            for f in touched {
                let state = model.state(f);
                prop_assert_eq!(a.is_free(f), state == State::Free, "is_free({})", f);
            }
            // Small maps (base 0): the internal invariants after every step.
            if a.layout.any.len[0] <= 64 {
                a.check_invariants();
            }
        }

        // At the end: every frame of the window and around it, and the
        // internal summaries.
        let lo = spec.base.saturating_sub(70);
        for f in lo..spec.base + spec.window + 70 {
            let state = model.state(f);
            prop_assert_eq!(a.is_free(f), state == State::Free, "is_free({})", f);
            let class = match state {
                State::Free | State::Allocated => FrameClass::Usable,
                State::Reserved => FrameClass::Reserved,
                State::NotRam => FrameClass::NotRam,
            };
            prop_assert_eq!(a.classify(f), class, "classify({})", f);
            prop_assert_eq!(map.classify(f), class, "map.classify({})", f);
        }
        a.check_invariants();
        Ok(())
    }

    fn free_step(
        a: &mut FrameAllocator<'_>,
        model: &mut Model,
        frame: u64,
    ) -> Result<(), TestCaseError> {
        let expected = model.frame_error(frame, false).map_or(Ok(()), Err);
        prop_assert_eq!(a.free(frame), expected, "free({})", frame);
        if expected.is_ok() {
            model.set(frame, State::Free);
        }
        Ok(())
    }

    fn free_range_step(
        a: &mut FrameAllocator<'_>,
        model: &mut Model,
        first: u64,
        count: u64,
        touched: &mut Vec<u64>,
    ) -> Result<(), TestCaseError> {
        let expected = model.free_range(first, count);
        prop_assert_eq!(
            a.free_range(first, count),
            expected,
            "free_range({}, {})",
            first,
            count
        );
        if expected.is_ok() {
            for f in first..first + count {
                model.set(f, State::Free);
            }
        }
        // All or nothing: the first frame changed only on success.
        touched.extend([
            first,
            first.saturating_add(count.min(1 << 20)).saturating_sub(1),
        ]);
        Ok(())
    }

    /// Every count from 1 to 200 and every alignment from 1 to 512 frames,
    /// with and without a limit, on fragmented memory at several fill
    /// levels (random single frames and random runs taken back), against
    /// the model.
    #[test]
    fn every_count_and_alignment_matches_model() {
        const FRAMES: u64 = 2048;
        let map = MemoryMap::new([Region::usable(0, FRAMES * FRAME_SIZE)]);
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for percent_free in [1u64, 10, 50, 90] {
            let mut storage = vec![0u64; storage_words(&map)];
            let mut a = FrameAllocator::new(&map, &mut storage).unwrap();
            let mut model = Model {
                base: 0,
                states: vec![State::Allocated; FRAMES as usize],
            };
            for _ in 0..FRAMES {
                a.alloc().unwrap();
            }
            // Free single frames and runs of 1 to 150 until the target.
            while model.count(State::Free) < FRAMES * percent_free / 100 {
                let first = next() % FRAMES;
                let len = if next() % 4 == 0 { 1 + next() % 150 } else { 1 };
                for f in first..(first + len).min(FRAMES) {
                    if model.state(f) == State::Allocated {
                        a.free(f).unwrap();
                        model.set(f, State::Free);
                    }
                }
            }
            for count in 1..=200u64 {
                for shift in 0..=9 {
                    let align = 1u64 << shift;
                    for limit in [None, Some(FRAMES / 2), Some(next() % FRAMES)] {
                        let expected = model.alloc_contiguous(count, align, limit);
                        let got = a.alloc_contiguous(count, align, limit);
                        assert_eq!(
                            got, expected,
                            "{count} frames aligned {align} below {limit:?}"
                        );
                        if let Ok(start) = got {
                            a.free_range(start, count).unwrap();
                        }
                    }
                }
            }
            a.check_invariants();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 10_000,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// 10,000 random sequences of up to 48 operations each.
        #[test]
        fn allocator_matches_model(spec in arb_map(), ops in proptest::collection::vec(arb_op(), 1..48)) {
            run(&spec, &ops)?;
        }

        /// 10,000 sequences of up to 96 operations, mostly bursts of runs
        /// freed and allocated (many unpublished runs at once).
        #[test]
        fn allocator_matches_model_with_parked_runs(spec in arb_map(), ops in proptest::collection::vec(arb_run_op(), 1..96)) {
            run(&spec, &ops)?;
        }
    }
}
