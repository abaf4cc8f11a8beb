//! mine: an exo program on libos (made by `cargo xtask new`).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use libos::{Error, Frame, MapFlags, Mapping, println};

libos::entry!(main);

fn main() -> Result<(), Error> {
    println!("mine: hello from pid {}", libos::sys::getpid());
    let mut frame = Frame::alloc()?; // a zeroed RAM frame, freed on drop
    let phys = frame.phys()?;
    let mut page = Mapping::new(&mut frame, MapFlags::WRITE)?; // unmapped on drop
    page.as_mut_slice()[0] = 42;
    println!("mine: frame at {phys:#x} holds {}", page.as_slice()[0]);
    let squares: Vec<u64> = (1..=4).map(|n| n * n).collect(); // on the libos heap
    println!("mine: squares {squares:?}");
    Ok(())
}
