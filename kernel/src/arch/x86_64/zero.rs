//! Page zeroing, the largest single cost of handing a frame out.
//!
//! Programs get no x87/MMX/SSE/AVX state (see [`super::disable_fpu`]), so
//! the vector unit belongs to the kernel alone: nothing of a program's lives
//! in it, and nothing need be saved to use it. Where the CPU has AVX, a page
//! is cleared with 128 unrolled 32-byte stores, with the vector unit turned
//! on (CR0.EM clear, CR4.OSFXSR and OSXSAVE set) only around them, with
//! interrupts off, and off again before the kernel goes on: 135
//! instructions a page instead of the 512 iterations of `rep stosq` (each
//! of which the CPU, and TCG's instruction counter, treats as an
//! instruction). The only vector register touched is ymm0, left all zero,
//! and no program can read it anyway.
//!
//! On hardware the two pairs of control-register writes are serialising
//! (tens to hundreds of cycles), about what the 512 iterations cost, so this
//! is a win in instructions retired, not necessarily in cycles.
//! Without AVX (or before [`init`]) it falls back to `write_bytes`.
use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};
use x86_64::registers::control::{Cr0Flags, Cr4, Cr4Flags};

static AVX: AtomicBool = AtomicBool::new(false);

/// XCR0 bits: x87, SSE and AVX state enabled for `xsave`-managed use.
const XCR0_X87_SSE_AVX: u64 = 0b111;

/// Enables AVX zeroing when CPUID reports XSAVE and AVX, and XCR0 may hold
/// x87, SSE and AVX state: programs XCR0 once (it keeps its value while
/// CR4.OSXSAVE is off again, and VEX instructions stay undefined for
/// programs because OSXSAVE is off).
pub fn init() {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    let leaf1 = __cpuid(1);
    let xsave = leaf1.ecx & (1 << 26) != 0;
    let avx = leaf1.ecx & (1 << 28) != 0;
    // CPUID.(0xd, 0).EAX: the XCR0 bits the CPU supports.
    let xcr0_ok = __cpuid(0).eax >= 0xd
        && u64::from(__cpuid_count(0xd, 0).eax) & XCR0_X87_SSE_AVX == XCR0_X87_SSE_AVX;
    if !(xsave && avx && xcr0_ok) {
        return;
    }
    // SAFETY: CPUID says XSAVE exists, so CR4.OSXSAVE may be set and XCR0
    // written, and that XCR0 supports bits 0-2 (x87, which must be set, SSE
    // and AVX, which need each other). Nothing uses the vector unit
    // meanwhile, and OSXSAVE is cleared again at once: only `zero_pages`
    // turns it on.
    unsafe {
        Cr4::update(|f| f.insert(Cr4Flags::OSXSAVE));
        asm!(
            "xsetbv",
            in("ecx") 0u32,
            in("eax") XCR0_X87_SSE_AVX as u32,
            in("edx") (XCR0_X87_SSE_AVX >> 32) as u32,
            options(nomem, nostack),
        );
        Cr4::update(|f| f.remove(Cr4Flags::OSXSAVE));
    }
    AVX.store(true, Ordering::Relaxed);
}

/// Whether pages are zeroed with AVX stores.
pub fn uses_avx() -> bool {
    AVX.load(Ordering::Relaxed)
}

/// Zeroes `pages` 4 KiB pages from `virt`.
///
/// # Safety
/// `virt` is 4 KiB aligned and the `pages` pages from it are kernel-mapped
/// memory the caller may overwrite.
#[inline]
pub unsafe fn zero_pages(virt: *mut u8, pages: u64) {
    if pages == 0 {
        return;
    }
    if !uses_avx() {
        // SAFETY: the caller's guarantee.
        unsafe { core::ptr::write_bytes(virt, 0, (pages * 4096) as usize) };
        return;
    }
    let on4 = (Cr4Flags::OSFXSR | Cr4Flags::OSXSAVE).bits();
    let off0 = !Cr0Flags::EMULATE_COPROCESSOR.bits();
    let end = virt as u64 + pages * 4096;
    // SAFETY: the caller's guarantee covers the stores (aligned 32-byte
    // stores inside the pages). Maskable interrupts are off for the whole
    // sequence (saved and restored with pushfq/popfq), so no program runs
    // with the vector unit on (an NMI or machine check would run only
    // kernel code, which uses no vector register); CR0 and CR4 get their
    // previous values back. The kernel is built without vector
    // instructions, so ymm0 holds nothing of the compiler's.
    unsafe {
        asm!(
            "pushfq",
            "cli",
            "mov {cr4}, cr4",
            "mov {t}, {cr4}",
            "or {t}, {on4}",
            "mov cr4, {t}",
            "mov {cr0}, cr0",
            "mov {t}, {cr0}",
            "and {t}, {off0}",
            "mov cr0, {t}",
            "vpxor xmm0, xmm0, xmm0",
            "2:",
            ".set exo_zero_off, 0",
            ".rept 128",
            "vmovdqa ymmword ptr [{p} + exo_zero_off], ymm0",
            ".set exo_zero_off, exo_zero_off + 32",
            ".endr",
            "add {p}, 4096",
            "cmp {p}, {end}",
            "jne 2b",
            "mov cr0, {cr0}",
            "mov cr4, {cr4}",
            "popfq",
            p = inout(reg) virt as u64 => _,
            end = in(reg) end,
            on4 = in(reg) on4,
            off0 = in(reg) off0,
            cr4 = out(reg) _,
            cr0 = out(reg) _,
            t = out(reg) _,
        );
    }
}
