//! Page zeroing on the call path, for when the pool of pre-zeroed frames
//! (`memory::refill_zero_pool`) is empty, and for refilling it.
//!
//! It is one `rep stosq` of 512 quadwords a page: no control-register
//! writes, no vector state, interrupts left as they are. With fast strings
//! (ERMSB/FSRM, every x86 CPU of the last decade) the CPU clears 4 KiB in
//! about 100-200 cycles, with wide internal stores; TCG's instruction
//! counter (`-icount`) counts each of the 512 iterations as an instruction,
//! which is why the instruction benchmarks show it as ~515 instructions.
//! The earlier AVX variant retired fewer instructions (135) but needed four
//! serialising control-register writes (CR0, CR4, on and off), each tens
//! to hundreds of cycles on hardware: more cycles for fewer instructions.
use core::arch::asm;

/// Zeroes `pages` 4 KiB pages from `virt`.
///
/// # Safety
/// `virt` is 4 KiB aligned and the `pages` pages from it are kernel-mapped
/// memory the caller may overwrite.
#[inline]
pub unsafe fn zero_pages(virt: *mut u8, pages: u64) {
    // SAFETY: the caller's guarantee covers the `pages * 512` quadword
    // stores from `virt` upwards (the direction flag is clear: the ABI
    // keeps it clear in the kernel, and every entry from ring 3 clears it:
    // SFMASK for `syscall`, `cld` in the interrupt stubs).
    unsafe {
        asm!(
            "rep stosq",
            inout("rdi") virt => _,
            inout("rcx") pages * 512 => _,
            in("rax") 0u64,
            options(nostack, preserves_flags),
        );
    }
}
