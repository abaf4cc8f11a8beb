//! The kernel's instance of the object model (`exo_core::object`): the
//! hardware [`Platform`] (the frame allocator behind `memory`, real page
//! tables, trap frames), the one kernel state behind its lock, and ending a
//! process on real hardware (print, free its page tables, record it for the
//! verdict). Loading lives in [`crate::loader`], the round robin in
//! [`crate::sched`], the expected outcomes in [`crate::verdict`].
//!
//! Everything here runs with the kernel lock held and interrupts off.
use crate::arch::paging::AddressSpace;
use crate::arch::trap::UserContext;
use crate::kprintln;
use crate::memory::{self, PAGE};
use exo_core::frame_alloc::AllocError;
use exo_core::memmap::FrameClass;
use spin::Mutex;

pub use exo_core::object::Ending;

/// The machine, as the object model sees it. Stateless: each call takes the
/// frame allocator's own lock. Allocation hands out a frame of the zeroed
/// pool, or zeroes what it took from the allocator in the same function, so
/// the (unsafe) zeroing only ever sees frames nobody else holds.
pub struct Hw;

impl exo_core::object::Platform for Hw {
    type Space = AddressSpace;
    /// Boxed: the IPC stub saves a caller's registers straight into its
    /// save area (see `arch::syscall::SAVE_TOP`), which must not move when
    /// the process table moves its records.
    type Regs = alloc::boxed::Box<UserContext>;
    #[inline]
    fn alloc(&mut self) -> Result<u64, AllocError> {
        memory::alloc_zeroed()
    }
    fn alloc_at(&mut self, frame: u64) -> Result<(), AllocError> {
        let zeroed = memory::frames(|f| f.pool.alloc_at(&mut f.alloc, frame))?;
        if !zeroed {
            // SAFETY: just taken from the allocator: RAM nobody else holds.
            unsafe { memory::zero_frames(frame * PAGE, 1) };
        }
        Ok(())
    }
    fn alloc_contiguous(
        &mut self,
        count: u64,
        align: u64,
        limit: Option<u64>,
    ) -> Result<u64, AllocError> {
        let first = memory::frames(|f| f.pool.alloc_contiguous(&mut f.alloc, count, align, limit))?;
        // SAFETY: as in `alloc`: the whole run was just taken.
        unsafe { memory::zero_frames(first * PAGE, count) };
        Ok(first)
    }
    fn alloc_block(&mut self) -> Result<u64, AllocError> {
        let (first, zeroed) = memory::frames(|f| f.pool.alloc_block(&mut f.alloc))?;
        if !zeroed {
            // SAFETY: as in `alloc`: the whole block was just taken.
            unsafe { memory::zero_frames(first * PAGE, exo_core::zero_pool::BLOCK) };
        }
        Ok(first)
    }
    #[inline]
    fn free_range(&mut self, first: u64, count: u64) -> Result<(), AllocError> {
        memory::frames(|f| f.alloc.free_range(first, count))
    }
    fn is_free(&self, frame: u64) -> bool {
        memory::frames(|f| f.alloc.is_free(frame))
    }
    fn classify(&self, frame: u64) -> FrameClass {
        memory::classify(frame)
    }
    fn phys_addr_bits(&self) -> u32 {
        crate::arch::phys_addr_bits()
    }
    fn device_claimable(&self, phys: u64) -> bool {
        // Whoever programs the interrupt controllers can inject any vector
        // or silence the timer; whoever programs a remapping unit decides
        // what every device may reach.
        phys != crate::arch::local_apic_page()
            && phys != crate::arch::IOAPIC_PAGE
            && !crate::acpi::platform().kernel_owned(phys)
    }
    fn device_released(&mut self, phys: u64) {
        crate::arch::vtd::device_released(phys);
    }
    fn io_translated(&self, function: u64) -> bool {
        crate::arch::vtd::translates(function)
    }
    fn io_map(
        &mut self,
        function: u64,
        iova: u64,
        frame: u64,
        flags: abi::IoFlags,
    ) -> Result<(), exo_core::object::MapError> {
        let (read, write) = (
            flags.contains(abi::IoFlags::READ),
            flags.contains(abi::IoFlags::WRITE),
        );
        crate::arch::vtd::io_map(function, iova, frame, read, write)
            .map_err(|()| exo_core::object::MapError::OutOfMemory)
    }
    fn io_is_mapped(&self, function: u64, iova: u64) -> bool {
        crate::arch::vtd::io_is_mapped(function, iova)
    }
    fn io_unmap(&mut self, function: u64, iova: u64) {
        crate::arch::vtd::io_unmap(function, iova);
    }
    fn io_flush(&mut self, function: u64) {
        crate::arch::vtd::io_flush(function);
    }
    fn counters(&self) -> abi::FrameStats {
        memory::counters()
    }
    fn bug(&mut self, what: core::fmt::Arguments<'_>) {
        kprintln!("BUG: {what}");
    }
}

/// The kernel's process state.
pub type Kernel = exo_core::object::Kernel<Hw>;
/// A library OS.
pub type Process = exo_core::object::Proc<Hw>;

/// The one kernel state.
pub static KERNEL: Mutex<Option<Kernel>> = Mutex::new(None);

/// Runs `f` on the kernel state.
pub fn with<R>(f: impl FnOnce(&mut Kernel) -> R) -> R {
    f(KERNEL.lock().as_mut().expect("process::init not called"))
}

/// Sets up the (empty) process table.
pub fn init(trace: bool) {
    crate::arch::syscall::TRACE_ON.store(trace, core::sync::atomic::Ordering::Relaxed);
    *KERNEL.lock() = Some(Kernel::new(Hw, crate::arch::rdtsc()));
}

/// Frees an address space the object model is done with.
pub fn destroy_space(space: AddressSpace) {
    space.destroy();
}

/// Tells the holders of functions whose DMA the IOMMU blocked (those who
/// asked, `iofault_bind`).
pub fn tell_faults(k: &mut Kernel) {
    for (function, f) in crate::arch::vtd::take_faults() {
        k.io_fault(function, f.address, !f.read, f.reason);
    }
}

/// Ends process `pid`: reports it, frees everything it held and records
/// how it ended for the verdict.
pub fn end(k: &mut Kernel, pid: u64, ending: Ending) {
    // The object model takes the process's frames out of every device's
    // DMA address space (and flushes the IOTLBs) before it frees any of
    // them (`exo_core::object::iomap`); a function it was the last holder
    // of is blocked when its capability goes (`vtd::device_released`).
    crate::arch::vtd::report_faults();
    let Some((ended, space)) = k.end(pid, ending) else {
        return;
    };
    tell_faults(k);
    destroy_space(space);
    match &ended.ending {
        Ending::Exited(code) => {
            kprintln!(
                "[exo] pid {} ({}) exited with code {}",
                pid,
                ended.name,
                code
            )
        }
        Ending::Faulted(why) => {
            kprintln!("[exo] pid {} ({}) killed: {}", pid, ended.name, why)
        }
    }
    crate::verdict::record(ended);
}
