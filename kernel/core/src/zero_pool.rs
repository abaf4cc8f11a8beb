//! The pool of pre-zeroed frames: frames taken from the allocator while
//! the CPU has nothing better to do, zeroed then, and handed out later
//! without zeroing on the call path.
//!
//! This module owns the pool's frame numbers and the rules that keep it
//! invisible to programs: every free frame stays reachable by every call
//! (an allocate-at-address of a pooled frame takes it out of the pool, a
//! contiguous request gives the pool back first, so runs land where they
//! would without a pool), and the counters call pooled frames free, with
//! [`ZeroPool::len`] saying how many of them are zeroed already. It does
//! not zero anything itself: the caller passes the zeroing (the kernel's
//! `rep stos`) to [`ZeroPool::refill`] and zeroes what [`ZeroPool::alloc`]
//! says is not zeroed.
//!
//! It holds two kinds: single frames (up to [`CAPACITY`], for
//! `frame_alloc` and page tables) and blocks of [`BLOCK`] frames aligned to
//! their size (up to [`BLOCKS`], for the bulk call `frame_alloc_many`, which
//! hands a heap growing by a megabyte four zeroed blocks instead of zeroing
//! them on the call path). A frame of a pooled block that allocate-at asks
//! for splits the block: that frame is handed out, the rest goes back.
//!
//! Accounting, in the allocator's view: a pooled frame is allocated, and
//! nobody's (neither the kernel's nor a process's). So `allocator free +
//! pool = free to programs`, and conservation reads `total = free +
//! reserved + kernel + held` with `free` counting the pool.

use crate::frame_alloc::{AllocError, FrameAllocator};

/// How many zeroed frames the pool holds at most.
pub const CAPACITY: usize = 32;

/// Frames in one pooled block (aligned to its size).
pub const BLOCK: u64 = 64;

/// How many zeroed blocks the pool holds at most (2 MiB).
pub const BLOCKS: usize = 8;

/// Zeroed frames, allocated from the allocator, held by nobody.
#[derive(Debug, Clone)]
pub struct ZeroPool {
    frames: [u64; CAPACITY],
    len: usize,
    /// First frames of zeroed blocks.
    blocks: [u64; BLOCKS],
    nblocks: usize,
}

impl Default for ZeroPool {
    fn default() -> Self {
        Self::new()
    }
}

impl ZeroPool {
    /// An empty pool.
    pub const fn new() -> Self {
        ZeroPool {
            frames: [0; CAPACITY],
            len: 0,
            blocks: [0; BLOCKS],
            nblocks: 0,
        }
    }

    /// Zeroed frames in the pool, single frames and blocks' frames.
    pub fn len(&self) -> usize {
        self.len + self.nblocks * BLOCK as usize
    }

    /// Zeroed blocks in the pool.
    pub fn blocks(&self) -> usize {
        self.nblocks
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0 && self.nblocks == 0
    }

    /// Whether `frame` is in the pool (alone or in a block).
    pub fn contains(&self, frame: u64) -> bool {
        self.frames[..self.len].contains(&frame) || self.block_of(frame).is_some()
    }

    /// The index of the pooled block holding `frame`.
    fn block_of(&self, frame: u64) -> Option<usize> {
        self.blocks[..self.nblocks]
            .iter()
            .position(|&b| (b..b + BLOCK).contains(&frame))
    }

    /// One block of [`BLOCK`] frames aligned to its size, and whether it is
    /// zeroed already: a pooled block if there is one, else the
    /// allocator's lowest free aligned block (the caller must zero it).
    ///
    /// # Errors
    /// [`AllocError::OutOfMemory`] when the pool has no block and the
    /// allocator no free aligned block.
    pub fn alloc_block(
        &mut self,
        alloc: &mut FrameAllocator<'_>,
    ) -> Result<(u64, bool), AllocError> {
        if let Some(i) = self.nblocks.checked_sub(1) {
            self.nblocks = i;
            return Ok((self.blocks[i], true));
        }
        alloc
            .alloc_contiguous(BLOCK, BLOCK, None)
            .map(|first| (first, false))
    }

    /// Takes up to `budget` blocks from the allocator, zeroes each with
    /// `zero(first, BLOCK)` and adds it to the pool, until the pool has
    /// [`BLOCKS`] or the allocator no free aligned block; returns how many
    /// it added.
    pub fn refill_blocks(
        &mut self,
        alloc: &mut FrameAllocator<'_>,
        budget: usize,
        mut zero: impl FnMut(u64, u64),
    ) -> usize {
        let mut added = 0;
        while added < budget && self.nblocks < BLOCKS {
            let Ok(first) = alloc.alloc_contiguous(BLOCK, BLOCK, None) else {
                break;
            };
            zero(first, BLOCK);
            self.blocks[self.nblocks] = first;
            self.nblocks += 1;
            added += 1;
        }
        added
    }

    /// One frame for a program or the kernel, and whether it is zeroed
    /// already: a pooled frame if there is one (zeroed), else the
    /// allocator's lowest free frame (the caller must zero it).
    ///
    /// # Errors
    /// [`AllocError::OutOfMemory`] when the pool and the allocator are
    /// both empty.
    #[inline]
    pub fn alloc(&mut self, alloc: &mut FrameAllocator<'_>) -> Result<(u64, bool), AllocError> {
        if let Some(i) = self.len.checked_sub(1) {
            self.len = i;
            return Ok((self.frames[i], true));
        }
        match alloc.alloc() {
            Err(AllocError::OutOfMemory) if self.nblocks > 0 => Ok((self.split_block(alloc), true)),
            other => other.map(|frame| (frame, false)),
        }
    }

    /// With the allocator empty and no single frame pooled: a pooled
    /// block's first frame, its next frames as pooled single frames (they
    /// are zeroed), the rest back to the allocator, so every frame the
    /// counters call free can still be had one at a time.
    #[cold]
    fn split_block(&mut self, alloc: &mut FrameAllocator<'_>) -> u64 {
        self.nblocks -= 1;
        let first = self.blocks[self.nblocks];
        for frame in first + 1..first + BLOCK {
            if self.len < CAPACITY {
                self.frames[self.len] = frame;
                self.len += 1;
            } else {
                // Allocated (pooled), so this cannot fail.
                let freed = alloc.free(frame);
                debug_assert!(freed.is_ok());
            }
        }
        first
    }

    /// Allocates frame `frame`, and says whether it is zeroed already (it
    /// was in the pool).
    ///
    /// # Errors
    /// As [`FrameAllocator::alloc_at`], except that a pooled frame is not
    /// in use.
    pub fn alloc_at(
        &mut self,
        alloc: &mut FrameAllocator<'_>,
        frame: u64,
    ) -> Result<bool, AllocError> {
        match alloc.alloc_at(frame) {
            Ok(()) => Ok(false),
            Err(AllocError::InUse) => {
                if let Some(i) = self.frames[..self.len].iter().position(|&f| f == frame) {
                    self.len -= 1;
                    self.frames[i] = self.frames[self.len];
                    return Ok(true);
                }
                let Some(i) = self.block_of(frame) else {
                    return Err(AllocError::InUse);
                };
                // Split the block: `frame` is handed out, the rest goes
                // back (allocated, so the frees cannot fail).
                let first = self.blocks[i];
                self.nblocks -= 1;
                self.blocks[i] = self.blocks[self.nblocks];
                for f in (first..first + BLOCK).filter(|&f| f != frame) {
                    let freed = alloc.free(f);
                    debug_assert!(freed.is_ok());
                }
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    /// [`FrameAllocator::alloc_contiguous`], with every pooled frame given
    /// back to the allocator first, so that the pool changes no run's
    /// placement (the lowest fit, as if there were no pool) and never makes
    /// a run fail. The run is not zeroed. Giving back costs one `free` per
    /// pooled frame, little beside zeroing the run on the call path.
    ///
    /// # Errors
    /// As [`FrameAllocator::alloc_contiguous`].
    pub fn alloc_contiguous(
        &mut self,
        alloc: &mut FrameAllocator<'_>,
        count: u64,
        align: u64,
        limit: Option<u64>,
    ) -> Result<u64, AllocError> {
        self.drain(alloc);
        alloc.alloc_contiguous(count, align, limit)
    }

    /// Gives every pooled frame back to the allocator.
    pub fn drain(&mut self, alloc: &mut FrameAllocator<'_>) {
        for &frame in &self.frames[..self.len] {
            // Allocated (pooled frames are taken from the allocator and
            // leave the pool only here or when handed out), so this cannot
            // fail.
            let freed = alloc.free(frame);
            debug_assert!(freed.is_ok());
        }
        self.len = 0;
        for &first in &self.blocks[..self.nblocks] {
            let freed = alloc.free_range(first, BLOCK);
            debug_assert!(freed.is_ok());
        }
        self.nblocks = 0;
    }

    /// Takes up to `budget` frames from the allocator, zeroes each with
    /// `zero` and adds it to the pool, until the pool is full or the
    /// allocator empty; returns how many it added. Bounded: at most
    /// `budget` frames zeroed per call.
    pub fn refill(
        &mut self,
        alloc: &mut FrameAllocator<'_>,
        budget: usize,
        mut zero: impl FnMut(u64),
    ) -> usize {
        let mut added = 0;
        while added < budget && self.len < CAPACITY {
            let Ok(frame) = alloc.alloc() else { break };
            zero(frame);
            self.frames[self.len] = frame;
            self.len += 1;
            added += 1;
        }
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame_alloc::storage_words;
    use crate::memmap::{MemoryMap, Region, FRAME_SIZE};
    use alloc::vec;
    use alloc::vec::Vec;

    fn map(frames: u64) -> MemoryMap {
        MemoryMap::new([Region::usable(0, frames * FRAME_SIZE)])
    }

    #[test]
    fn refill_is_bounded_and_hands_out_zeroed_frames() {
        let map = map(100);
        let mut storage = vec![0; storage_words(&map)];
        let mut a = FrameAllocator::new(&map, &mut storage).unwrap();
        let mut pool = ZeroPool::new();
        let mut zeroed = Vec::new();
        assert_eq!(pool.refill(&mut a, 5, |f| zeroed.push(f)), 5);
        assert_eq!(zeroed, [0, 1, 2, 3, 4]);
        assert_eq!((pool.len(), a.free_frames()), (5, 95));
        // Up to the capacity, whatever the budget.
        assert_eq!(pool.refill(&mut a, 1000, |_| {}), CAPACITY - 5);
        assert_eq!(pool.refill(&mut a, 1000, |_| {}), 0);
        // Handed out zeroed, then from the allocator (not zeroed).
        for _ in 0..CAPACITY {
            let (frame, is_zeroed) = pool.alloc(&mut a).unwrap();
            assert!(is_zeroed && frame < CAPACITY as u64);
        }
        assert_eq!(pool.alloc(&mut a), Ok((CAPACITY as u64, false)));
    }

    #[test]
    fn pooled_frames_stay_reachable() {
        let map = map(64);
        let mut storage = vec![0; storage_words(&map)];
        let mut a = FrameAllocator::new(&map, &mut storage).unwrap();
        let mut pool = ZeroPool::new();
        pool.refill(&mut a, 8, |_| {});
        assert!(pool.contains(3));
        // Allocate-at a pooled frame: out of the pool, zeroed already.
        assert_eq!(pool.alloc_at(&mut a, 3), Ok(true));
        assert!(!pool.contains(3));
        assert_eq!(pool.alloc_at(&mut a, 3), Err(AllocError::InUse));
        assert_eq!(pool.alloc_at(&mut a, 20), Ok(false));
        assert_eq!(pool.alloc_at(&mut a, 64), Err(AllocError::NotRam));
        // A run: the pool gives its frames back first, so the run is the
        // lowest fit as if there were no pool (4..20, not 32..48).
        assert_eq!(pool.alloc_contiguous(&mut a, 16, 1, None), Ok(4));
        assert!(pool.is_empty());
        assert_eq!(pool.alloc_contiguous(&mut a, 16, 16, None), Ok(32));
        pool.refill(&mut a, 8, |_| {});
        assert_eq!(pool.alloc_contiguous(&mut a, 16, 1, None), Ok(48));
        assert_eq!(
            pool.alloc_contiguous(&mut a, 64, 1, None),
            Err(AllocError::OutOfMemory)
        );
        // Exhaustion: single frames come from the pool, then the
        // allocator, then nothing.
        let mut got = Vec::new();
        pool.refill(&mut a, 4, |_| {});
        while let Ok((frame, _)) = pool.alloc(&mut a) {
            got.push(frame);
        }
        // 64 frames: 3 (allocate-at), 20, three runs of 16 already taken.
        assert_eq!(got.len(), 64 - 2 - 48);
        assert!(got.iter().all(|&f| f < 4 || (21..32).contains(&f)));
        assert_eq!(a.free_frames(), 0);
    }

    #[test]
    fn blocks_are_aligned_zeroed_and_stay_reachable() {
        let map = map(4 * BLOCK + 10);
        let mut storage = vec![0; storage_words(&map)];
        let mut a = FrameAllocator::new(&map, &mut storage).unwrap();
        let mut pool = ZeroPool::new();
        let mut zeroed = Vec::new();
        // Bounded by the budget, then by what the allocator has.
        assert_eq!(pool.refill_blocks(&mut a, 2, |f, n| zeroed.push((f, n))), 2);
        assert_eq!(zeroed, [(0, BLOCK), (BLOCK, BLOCK)]);
        assert_eq!(pool.refill_blocks(&mut a, 100, |_, _| {}), 2);
        assert_eq!((pool.blocks(), pool.len()), (4, 4 * BLOCK as usize));
        assert_eq!(a.free_frames(), 10);
        // Handed out zeroed, then from the allocator (none left: 10 frames
        // are no aligned block).
        let (first, z) = pool.alloc_block(&mut a).unwrap();
        assert!(z && first % BLOCK == 0);
        // Allocate-at a frame of a pooled block splits it.
        let inside = BLOCK + 5;
        assert!(pool.contains(inside));
        assert_eq!(pool.alloc_at(&mut a, inside), Ok(true));
        assert!(!pool.contains(inside) && !pool.contains(BLOCK));
        assert_eq!(pool.blocks(), 2);
        assert_eq!(a.free_frames(), 10 + BLOCK - 1);
        // A contiguous request gives the blocks back first: the lowest fit
        // is the pooled block at 0 (the block at 3 * BLOCK was handed out,
        // frame BLOCK + 5 is allocated).
        assert_eq!(pool.alloc_contiguous(&mut a, BLOCK, BLOCK, None), Ok(0));
        assert_eq!(pool.alloc_contiguous(&mut a, 7, 1, None), Ok(BLOCK + 6));
        assert!(pool.is_empty());
        while pool.alloc_block(&mut a).is_ok() {}
        assert_eq!(pool.alloc_block(&mut a), Err(AllocError::OutOfMemory));
    }

    #[test]
    fn pooled_blocks_still_come_out_one_frame_at_a_time() {
        let map = map(2 * BLOCK);
        let mut storage = vec![0; storage_words(&map)];
        let mut a = FrameAllocator::new(&map, &mut storage).unwrap();
        let mut pool = ZeroPool::new();
        assert_eq!(pool.refill_blocks(&mut a, 2, |_, _| {}), 2);
        assert_eq!(a.free_frames(), 0);
        // Every frame the counters call free, one at a time: the first
        // through a split block (zeroed), then its frames the single pool
        // took (zeroed), then what went back to the allocator.
        let mut got = Vec::new();
        let mut zeroed = 0;
        while let Ok((frame, z)) = pool.alloc(&mut a) {
            zeroed += usize::from(z);
            got.push(frame);
            assert_eq!(
                a.free_frames() + pool.len() as u64 + got.len() as u64,
                2 * BLOCK
            );
        }
        got.sort_unstable();
        got.dedup();
        assert_eq!(got.len() as u64, 2 * BLOCK);
        assert_eq!(zeroed, 2 * (1 + CAPACITY));
        assert!(pool.is_empty());
    }

    #[test]
    fn conservation_counts_the_pool_as_free_to_programs() {
        let map = map(200);
        let mut storage = vec![0; storage_words(&map)];
        let mut a = FrameAllocator::new(&map, &mut storage).unwrap();
        let mut pool = ZeroPool::new();
        let mut held = 0u64;
        for step in 0..300u64 {
            match step % 7 {
                0 => drop(pool.refill(&mut a, 3, |_| {})),
                1 | 2 => held += u64::from(pool.alloc(&mut a).is_ok()),
                3 => held += pool.alloc_contiguous(&mut a, 4, 4, None).map_or(0, |_| 4),
                4 => drop(pool.refill_blocks(&mut a, 1, |_, _| {})),
                5 if step % 3 == 0 => held += pool.alloc_block(&mut a).map_or(0, |_| BLOCK),
                _ => drop(pool.alloc_at(&mut a, step % 200).map(|_| held += 1)),
            }
            let free_to_programs = a.free_frames() + pool.len() as u64;
            assert_eq!(free_to_programs + held, a.total());
            assert_eq!(a.allocated(), held + pool.len() as u64);
        }
        pool.drain(&mut a);
        assert_eq!(a.allocated(), held);
    }
}
