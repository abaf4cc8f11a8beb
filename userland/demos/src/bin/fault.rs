//! fault: touches an unmapped page; the kernel must kill it.
//!
//! A libOS has no page-fault handler of its own here: a fault on an
//! address nothing is mapped at ends the process, and the kernel reports
//! why. The boot expects this program to be killed, not to exit.
#![no_std]
#![no_main]

use libos::{println, sys};

libos::entry!(main);

/// In the user half, but nothing is ever mapped there (below the heap).
const UNMAPPED: u64 = 0x10_0000_0000;

fn main() -> Result<(), libos::Error> {
    println!("fault: about to touch an unmapped page");
    // SAFETY: none: this write is meant to fault, and the kernel ends the
    // process before any code could observe its effects.
    unsafe { (UNMAPPED as *mut u64).write_volatile(0xdead) };
    // Not reached if the kernel did its job; exit code 1 marks the bug.
    sys::exit(1)
}
