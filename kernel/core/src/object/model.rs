//! A [`Platform`] for host tests: the real frame allocator over a made-up
//! memory map, [`ModelSpace`] address spaces, no registers. There is no
//! memory behind the frames, so there is nothing to zero.
use super::space::ModelSpace;
use super::Platform;
use crate::frame_alloc::{self, AllocError, FrameAllocator};
use crate::memmap::{FrameClass, MemoryMap, Region};
use abi::FrameStats;
use alloc::boxed::Box;
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
}

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
        self.released.push(phys);
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
