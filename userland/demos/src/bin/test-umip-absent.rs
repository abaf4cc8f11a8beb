//! test-umip-absent: what ring 3 reads with `sgdt`, `sidt`, `sldt`,
//! `smsw` and `str` on a CPU without UMIP (booted only with such a CPU,
//! where the kernel says UMIP is not available; with UMIP each of these
//! ends the program, see the `test-fault-*` programs). It prints the values
//! so that the test can show the kernel's boot line tells the truth.
#![no_std]
#![no_main]

use libos::{println, Error};

libos::entry!(main);

fn main() -> Result<(), Error> {
    let mut gdt = [0u8; 10];
    let mut idt = [0u8; 10];
    let (ldt, msw, tr): (u16, u16, u16);
    // SAFETY: on a CPU without UMIP these five only store descriptor-table
    // registers into our own buffers and registers.
    unsafe {
        core::arch::asm!("sgdt [{0}]", in(reg) gdt.as_mut_ptr(), options(nostack));
        core::arch::asm!("sidt [{0}]", in(reg) idt.as_mut_ptr(), options(nostack));
        core::arch::asm!("sldt {0:x}", out(reg) ldt, options(nomem, nostack));
        core::arch::asm!("smsw {0:x}", out(reg) msw, options(nomem, nostack));
        core::arch::asm!("str {0:x}", out(reg) tr, options(nomem, nostack));
    }
    let base = |d: &[u8; 10]| u64::from_le_bytes(d[2..10].try_into().unwrap_or([0; 8]));
    println!(
        "test-umip-absent: without UMIP ring 3 reads: gdt base={:#x} idt base={:#x} ldt={ldt:#x} msw={msw:#x} tr={tr:#x}",
        base(&gdt),
        base(&idt)
    );
    Ok(())
}
