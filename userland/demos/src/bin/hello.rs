//! hello: the smallest libos program.
//!
//! Prints a greeting with its pid, then shows that `alloc` works: the
//! first allocation makes libos map heap frames on its own. With the
//! argument `fail` it fails with an error of its own (`main` may return
//! any error that implements `Display`; `entry!` prints it and exits 1).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use libos::{println, sys};

libos::entry!(main);

fn main() -> Result<(), &'static str> {
    println!("hello: hello from a library OS (pid {})", sys::getpid());
    if libos::args() == "fail" {
        println!("hello: failing as asked: --args hello=fail");
        return Err("asked to fail");
    }
    // `black_box` keeps the compiler from computing this without a heap.
    let count = core::hint::black_box(1000u64);
    let squares: Vec<u64> = (1..=count).map(|n| n * n).collect();
    let sum: u64 = squares.iter().sum();
    println!(
        "hello: the heap holds {} squares summing to {sum}",
        squares.len()
    );
    Ok(())
}
