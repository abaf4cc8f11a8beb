//! A [`Platform`] for host tests: the real frame allocator over a made-up
//! memory map, [`ModelSpace`] address spaces, no registers. There is no
//! memory behind the frames, so there is nothing to zero.
use super::space::ModelSpace;
use super::Platform;
use crate::frame_alloc::{self, AllocError, FrameAllocator};
use crate::memmap::{FrameClass, MemoryMap, Region};
use abi::{FrameStats, IoFlags};
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// The model machine.
pub struct ModelPlatform {
    /// The allocator over the made-up map.
    pub alloc: FrameAllocator<'static>,
    /// `bug` reports.
    pub bugs: Vec<String>,
    /// Device pages released (`device_released`), oldest first.
    pub released: Vec<u64>,
    /// The model IOMMU's translations: (function, I/O page) -> (frame,
    /// flags).
    pub io: BTreeMap<(u64, u64), (u64, IoFlags)>,
    /// Translations unmapped but not yet flushed: (function, frame). A
    /// device may still reach these frames; freeing one is a `bug`.
    pub io_stale: BTreeSet<(u64, u64)>,
    /// Every this many `io_map` calls, one fails (no frame for a table),
    /// so that `iomap`'s undo runs; 0: never.
    pub io_fail_every: u64,
    /// `io_map` calls so far, and how many of them failed.
    pub io_maps: u64,
    /// Failed `io_map` calls so far.
    pub io_failures: u64,
}

/// The functions (configuration pages) the model IOMMU translates: device
/// frames 0x10 to 0x12; frame 0x13 is a function no unit serves.
pub const TRANSLATED_FUNCTIONS: core::ops::Range<u64> = 0x10_000..0x13_000;

/// Device page the model keeps for itself (like the kernel's APIC).
pub const KEPT_DEVICE_PAGE: u64 = 0xfee0_0000;

impl ModelPlatform {
    /// `frames` frames of usable RAM from 1 MiB, a reserved page below it,
    /// and a device hole between.
    pub fn new(frames: u64) -> Self {
        let map = MemoryMap::new([
            Region::reserved(0xf_f000, 0x10_0000),
            Region::usable(0x10_0000, 0x10_0000 + frames * abi::PAGE_SIZE),
        ]);
        let words = frame_alloc::storage_words(&map);
        let storage: &'static mut [u64] = Box::leak(vec![0u64; words].into_boxed_slice());
        ModelPlatform {
            alloc: FrameAllocator::new(&map, storage).expect("allocator"),
            bugs: Vec::new(),
            released: Vec::new(),
            io: BTreeMap::new(),
            io_stale: BTreeSet::new(),
            io_fail_every: 0,
            io_maps: 0,
            io_failures: 0,
        }
    }
}

/// Saved registers in the model: what a woken process was given back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelRegs {
    /// 0 or the error code.
    pub rax: u64,
    /// Badge, words, capability handle, flags.
    pub values: [u64; 5],
}

impl super::SetResult for ModelRegs {
    fn set_result(&mut self, rax: u64, values: [u64; 5]) {
        *self = ModelRegs { rax, values };
    }
    fn set_status(&mut self, rax: u64) {
        self.rax = rax;
        self.values[0] = 0;
    }
}

impl Platform for ModelPlatform {
    type Space = ModelSpace;
    type Regs = ModelRegs;
    fn alloc(&mut self) -> Result<u64, AllocError> {
        self.alloc.alloc()
    }
    fn alloc_at(&mut self, frame: u64) -> Result<(), AllocError> {
        self.alloc.alloc_at(frame)
    }
    fn alloc_contiguous(
        &mut self,
        count: u64,
        align: u64,
        limit: Option<u64>,
    ) -> Result<u64, AllocError> {
        self.alloc.alloc_contiguous(count, align, limit)
    }
    fn alloc_block(&mut self) -> Result<u64, AllocError> {
        let block = crate::zero_pool::BLOCK;
        self.alloc.alloc_contiguous(block, block, None)
    }
    fn free_range(&mut self, first: u64, count: u64) -> Result<(), AllocError> {
        let frames = first..first + count;
        let reachable = self.io.iter().find(|(_, (f, _))| frames.contains(f));
        if let Some(((function, iova), (frame, _))) = reachable {
            let what = alloc::format!(
                "frame {frame:#x} freed while function {function:#x} maps it at {iova:#x}"
            );
            self.bugs.push(what);
        }
        if let Some((function, frame)) = self.io_stale.iter().find(|(_, f)| frames.contains(f)) {
            let what = alloc::format!(
                "frame {frame:#x} freed before function {function:#x}'s IOTLB was flushed"
            );
            self.bugs.push(what);
        }
        self.alloc.free_range(first, count)
    }
    fn is_free(&self, frame: u64) -> bool {
        self.alloc.is_free(frame)
    }
    fn classify(&self, frame: u64) -> FrameClass {
        self.alloc.classify(frame)
    }
    fn phys_addr_bits(&self) -> u32 {
        40
    }
    fn device_claimable(&self, phys: u64) -> bool {
        phys != KEPT_DEVICE_PAGE
    }
    fn device_released(&mut self, phys: u64) {
        if self.io.keys().any(|&(f, _)| f == phys) {
            let what = alloc::format!("function {phys:#x} released with pages still mapped");
            self.bugs.push(what);
        }
        self.released.push(phys);
    }
    fn io_translated(&self, function: u64) -> bool {
        TRANSLATED_FUNCTIONS.contains(&function)
    }
    fn io_map(
        &mut self,
        function: u64,
        iova: u64,
        frame: u64,
        flags: IoFlags,
    ) -> Result<(), super::MapError> {
        self.io_maps += 1;
        if self.io_fail_every != 0 && self.io_maps.is_multiple_of(self.io_fail_every) {
            self.io_failures += 1;
            return Err(super::MapError::OutOfMemory);
        }
        if self.io.insert((function, iova), (frame, flags)).is_some() {
            self.bugs
                .push(alloc::format!("io_map over a mapping at {iova:#x}"));
        }
        Ok(())
    }
    fn io_is_mapped(&self, function: u64, iova: u64) -> bool {
        self.io.contains_key(&(function, iova))
    }
    fn io_unmap(&mut self, function: u64, iova: u64) {
        if let Some((frame, _)) = self.io.remove(&(function, iova)) {
            self.io_stale.insert((function, frame));
        }
    }
    fn io_flush(&mut self, function: u64) {
        self.io_stale.retain(|&(f, _)| f != function);
    }
    fn counters(&self) -> FrameStats {
        FrameStats {
            total: self.alloc.total(),
            free: self.alloc.free_frames(),
            reserved: self.alloc.reserved(),
            // The model kernel keeps no frames of its own, and no pool of
            // zeroed frames (`zeroed` 0: the kernel's pool is tested on
            // its own in `zero_pool`).
            kernel: 0,
            ..Default::default()
        }
    }
    fn bug(&mut self, what: core::fmt::Arguments<'_>) {
        self.bugs.push(alloc::format!("{what}"));
    }
}
