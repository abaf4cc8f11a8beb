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
//! Accounting, in the allocator's view: a pooled frame is allocated, and
//! nobody's (neither the kernel's nor a process's). So `allocator free +
//! pool = free to programs`, and conservation reads `total = free +
//! reserved + kernel + held` with `free` counting the pool.

use crate::frame_alloc::{AllocError, FrameAllocator};

/// How many zeroed frames the pool holds at most.
pub const CAPACITY: usize = 32;

/// Zeroed frames, allocated from the allocator, held by nobody.
#[derive(Debug, Clone)]
pub struct ZeroPool {
    frames: [u64; CAPACITY],
    len: usize,
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
        }
    }

    /// Zeroed frames in the pool.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `frame` is in the pool.
    pub fn contains(&self, frame: u64) -> bool {
        self.frames[..self.len].contains(&frame)
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
        alloc.alloc().map(|frame| (frame, false))
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
                match self.frames[..self.len].iter().position(|&f| f == frame) {
                    Some(i) => {
                        self.len -= 1;
                        self.frames[i] = self.frames[self.len];
                        Ok(true)
                    }
                    None => Err(AllocError::InUse),
                }
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
    fn conservation_counts_the_pool_as_free_to_programs() {
        let map = map(200);
        let mut storage = vec![0; storage_words(&map)];
        let mut a = FrameAllocator::new(&map, &mut storage).unwrap();
        let mut pool = ZeroPool::new();
        let mut held = 0u64;
        for step in 0..300u64 {
            match step % 5 {
                0 => drop(pool.refill(&mut a, 3, |_| {})),
                1 | 2 => held += u64::from(pool.alloc(&mut a).is_ok()),
                3 => held += pool.alloc_contiguous(&mut a, 4, 4, None).map_or(0, |_| 4),
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
