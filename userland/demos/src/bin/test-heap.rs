//! test-heap: the libos heap gives back what a failed allocation took, and
//! what a large allocation held once it is freed.
//!
//! The machine has 1 GiB, so `try_reserve_exact(2 GiB)` must fail; before
//! the heap was fixed it failed only after mapping every free frame of the
//! machine, and kept them. Checked here, each against `frame_stats`:
//! - a failed 2 GiB reserve leaves the caller's (and everybody's) held
//!   frames where they were;
//! - an 8 MiB `Vec` holds its frames while alive and gives every one back
//!   when dropped;
//! - with all but a few frames of the machine taken, a small-heap growth
//!   that cannot get what it needs (a 100 KiB reserve) and a large one
//!   (1 MiB) both fail and leave the caller's frames where they were;
//! - the small heap works afterwards.
//!
//! Exits 1 with the reason on any failure.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use libos::{println, sys, Error, Frame};

libos::entry!(main);

/// Frames left free while the machine is otherwise full: fewer than a
/// 100 KiB allocation needs.
const LEFT_FREE: u64 = 8;

fn failed(why: core::fmt::Arguments<'_>) -> Error {
    println!("test-heap: FAILED: {why}");
    Error::InvalidArgument
}

/// Checks that the caller holds `held` frames and everybody `all`.
fn held_is(held: u64, all: u64, what: &str) -> Result<(), Error> {
    let now = sys::frame_stats();
    if now.held_by_caller != held || now.held_by_all != all {
        return Err(failed(format_args!(
            "{what}: held {} (all {}), expected {held} (all {all})",
            now.held_by_caller, now.held_by_all
        )));
    }
    Ok(())
}

/// Takes frames until only `LEFT_FREE` are free, into `keep`.
fn take_all_but_a_few(keep: &mut Vec<Frame>) -> Result<(), Error> {
    let mut run = abi::MAX_CONTIGUOUS_FRAMES;
    loop {
        let free = sys::frame_stats().free;
        if free <= LEFT_FREE {
            return Ok(());
        }
        run = run.min(free - LEFT_FREE);
        if keep.len() == keep.capacity() {
            return Err(failed(format_args!("more runs than room for them")));
        }
        match Frame::alloc_contiguous(run, 1, 0) {
            Ok(f) => keep.push(f),
            Err(_) if run > 1 => run /= 2,
            Err(e) => return Err(failed(format_args!("taking single frames: {e}"))),
        }
    }
}

fn main() -> Result<(), Error> {
    // The small heap's first growth, and the room for the frames taken
    // below, before the baseline.
    let mut keep: Vec<Frame> = Vec::with_capacity(512);
    let base = sys::frame_stats();
    println!(
        "test-heap: baseline: held {} frames, {} free",
        base.held_by_caller, base.free
    );

    // `black_box`: an allocation nothing uses may be optimised away.
    let mut huge: Vec<u8> = Vec::new();
    let reserved = huge.try_reserve_exact(2 << 30);
    core::hint::black_box(huge.as_mut_ptr());
    if reserved.is_ok() {
        return Err(failed(format_args!("2 GiB reserved on a 1 GiB machine")));
    }
    let after = sys::frame_stats();
    println!(
        "test-heap: try_reserve_exact(2 GiB) failed; held {} -> {} frames, free {} -> {}",
        base.held_by_caller, after.held_by_caller, base.free, after.free
    );
    held_is(
        base.held_by_caller,
        base.held_by_all,
        "after the failed 2 GiB",
    )?;

    let pages = (8 << 20) / abi::PAGE_SIZE;
    let mut big: Vec<u8> = Vec::new();
    big.try_reserve_exact(8 << 20)
        .map_err(|_| failed(format_args!("8 MiB refused")))?;
    big.resize(8 << 20, 0x5a);
    let holding = sys::frame_stats().held_by_caller - base.held_by_caller;
    if holding < pages || big.iter().any(|&b| b != 0x5a) {
        return Err(failed(format_args!("an 8 MiB Vec holds {holding} frames")));
    }
    drop(big);
    println!("test-heap: an 8 MiB Vec held {holding} frames and gave them all back");
    held_is(base.held_by_caller, base.held_by_all, "after the 8 MiB Vec")?;

    take_all_but_a_few(&mut keep)?;
    let full = sys::frame_stats();
    let mut small: Vec<u8> = Vec::new();
    let mut large: Vec<u8> = Vec::new();
    let refused = small.try_reserve_exact(100 * 1024).is_err();
    core::hint::black_box(small.as_mut_ptr());
    let refused = large.try_reserve_exact(1 << 20).is_err() && refused;
    core::hint::black_box(large.as_mut_ptr());
    let now = sys::frame_stats();
    println!(
        "test-heap: machine full ({} free): 100 KiB and 1 MiB reserves {}; held {} -> {}, free {} -> {}",
        full.free,
        if refused { "failed" } else { "succeeded" },
        full.held_by_caller,
        now.held_by_caller,
        full.free,
        now.free
    );
    if !refused {
        return Err(failed(format_args!(
            "a reserve succeeded with {LEFT_FREE} frames free"
        )));
    }
    held_is(
        full.held_by_caller,
        full.held_by_all,
        "after the failed growths",
    )?;
    keep.clear();
    held_is(
        base.held_by_caller,
        base.held_by_all,
        "after giving the machine back",
    )?;

    let squares: Vec<u64> = (0..1000).map(|i| i * i).collect();
    if squares.iter().sum::<u64>() != 332_833_500 {
        return Err(failed(format_args!("the small heap lost data")));
    }
    println!("test-heap: ok");
    Ok(())
}
