//! test-fault-stack: recurses until its stack runs out; the kernel must
//! kill it and say that it hit the stack guard page.
//!
//! Each call keeps a 512-byte buffer alive across the recursive call, so
//! the 64 KiB stack ends after about a hundred calls. The boot expects
//! this program to be killed, not to exit.
#![no_std]
#![no_main]

use core::hint::black_box;
use libos::{println, sys};

libos::entry!(main);

/// Recurses without end; the buffer and the work after the call keep the
/// compiler from turning it into a loop.
fn deeper(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    let mut buf = [0u8; 512];
    buf[(depth % 512) as usize] = depth as u8;
    let below = deeper(black_box(depth + 1));
    black_box(&buf)[0] as u64 + below
}

fn main() -> Result<(), libos::Error> {
    println!("stack: recursing until the stack runs out");
    let n = deeper(0);
    // Not reached if the guard page did its job.
    println!("stack: NOT STOPPED ({n})");
    sys::exit(1)
}
