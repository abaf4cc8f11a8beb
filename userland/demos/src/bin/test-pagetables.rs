//! test-pagetables: page tables that unmaps leave empty go back while the
//! process lives.
//!
//! libos never reuses an address ([`Mapping::new`] takes fresh address
//! space every time), so before the kernel reclaimed tables, 259,584
//! map/unmap cycles spent the 1,024-table quota and `map` said
//! `OutOfMemory` with nothing mapped. Three phases, each ending with the
//! kernel's frame count exactly where it started:
//! - `fresh`: [`CYCLES`] `Mapping::new` + drop of one frame (a new address
//!   each time, 8 KiB apart with the guard page: 8 GiB of address space,
//!   thousands of level-1 tables and several level-2 ones);
//! - `far`: [`FAR_CYCLES`] map/unmap cycles each in a new 512 GiB, 1 GiB and
//!   2 MiB slot, so every map builds three tables and the next cycle frees
//!   them;
//! - `wide`: [`WIDE`] frames mapped at once, each in its own level-1 table,
//!   then all unmapped.
//!
//! The kernel keeps one emptied level-1 table (and its empty parents) for
//! reuse; so that each phase starts and ends in the same state, the
//! program maps and unmaps one page at [`SETTLE`] (its own tables) before
//! the baseline and after each phase: that frees whatever the phase left
//! idle and leaves `SETTLE`'s tables idle, as at the start. During `fresh`
//! the count is sampled and must never exceed the baseline by more than
//! the tables one mapping needs. Exits 1 with the reason on any failure.
#![no_std]
#![no_main]

use alloc::vec::Vec;
use libos::{println, sys, Error, Frame, MapFlags, Mapping};

libos::entry!(main);

/// Map/unmap cycles at fresh addresses (`fresh`).
const CYCLES: u64 = 1_000_000;
/// Cycles that each need three new tables (`far`).
const FAR_CYCLES: u64 = 20_000;
/// Mappings held at once, each in its own level-1 table (`wide`).
const WIDE: u64 = 600;
/// Where the settling page goes: a 512 GiB slot of its own, outside
/// libos's areas.
const SETTLE: u64 = 0x6000_0000_0000;
/// Base of the `far` and `wide` slots (outside libos's areas, below
/// `SETTLE`'s slot).
const FAR_BASE: u64 = 0x4000_0000_0000;
/// Tables one mapping can need below the PML4.
const PATH: u64 = 3;

fn kernel_frames() -> u64 {
    sys::frame_stats().kernel
}

/// Maps and unmaps one page at `SETTLE`.
fn settle(frame: &mut Frame) -> Result<(), Error> {
    drop(Mapping::new_at(frame, SETTLE, MapFlags::NONE)?);
    Ok(())
}

/// Settles and checks that the kernel holds `baseline` frames again.
fn back_at(frame: &mut Frame, baseline: u64, phase: &str) -> Result<(), Error> {
    settle(frame)?;
    let now = kernel_frames();
    println!("test-pagetables: {phase}: kernel frames {now} (baseline {baseline})");
    if now != baseline {
        println!("test-pagetables: FAILED: {phase} left {now} kernel frames, not {baseline}");
        return Err(Error::OutOfMemory);
    }
    Ok(())
}

/// The `far` slot of cycle `i`: a new 512 GiB, 1 GiB and 2 MiB slot each
/// time (64 x 512 x 512 of them).
fn far_address(i: u64) -> u64 {
    FAR_BASE + (i % 64) * (512 << 30) + ((i / 64) % 512) * (1 << 30) + (i / 64 / 512) * (2 << 20)
}

fn main() -> Result<(), Error> {
    // `wide`'s lists, on the heap before the baseline: heap growth maps
    // pages (and their tables) that are no business of this test.
    let mut frames = Vec::with_capacity(WIDE as usize);
    let mut frame = Frame::alloc()?;
    settle(&mut frame)?;
    let baseline = kernel_frames();
    let held = sys::frame_stats().held_by_caller;
    println!("test-pagetables: baseline: {baseline} kernel frames");

    let mut peak = baseline;
    for i in 0..CYCLES {
        let mapping = match Mapping::new(&mut frame, MapFlags::NONE) {
            Ok(m) => m,
            Err(e) => {
                println!("test-pagetables: FAILED: Mapping::new after {i} cycles: {e}");
                return Err(e);
            }
        };
        drop(mapping);
        if i % 4096 == 0 {
            peak = peak.max(kernel_frames());
        }
    }
    println!(
        "test-pagetables: fresh: {CYCLES} map/unmap cycles at fresh addresses, peak {} kernel frames over the baseline",
        peak - baseline
    );
    if peak > baseline + PATH {
        println!("test-pagetables: FAILED: empty tables piled up");
        return Err(Error::OutOfMemory);
    }
    back_at(&mut frame, baseline, "fresh")?;

    for i in 0..FAR_CYCLES {
        let at = far_address(i);
        match Mapping::new_at(&mut frame, at, MapFlags::NONE) {
            Ok(m) => drop(m),
            Err(e) => {
                println!("test-pagetables: FAILED: map at {at:#x} after {i} cycles: {e}");
                return Err(e);
            }
        }
    }
    println!("test-pagetables: far: {FAR_CYCLES} cycles, three new tables each");
    back_at(&mut frame, baseline, "far")?;

    // `wide`: one capability per page (a mapping borrows its frame).
    for _ in 0..WIDE {
        frames.push(Frame::alloc()?);
    }
    let wide = |i: usize| FAR_BASE + i as u64 * (2 << 20);
    for (i, f) in frames.iter().enumerate() {
        sys::map(f.handle(), wide(i), MapFlags::NONE)?;
    }
    let grown = kernel_frames() - baseline;
    println!(
        "test-pagetables: wide: {WIDE} mappings in {WIDE} level-1 tables: {grown} more kernel frames"
    );
    if grown < WIDE {
        println!("test-pagetables: FAILED: {WIDE} tables should cost at least {WIDE} frames");
        return Err(Error::InvalidArgument);
    }
    for i in 0..frames.len() {
        // SAFETY: nothing refers into these pages (mapped above, never
        // read).
        unsafe { sys::unmap(wide(i)) }?;
    }
    frames.clear();
    back_at(&mut frame, baseline, "wide")?;

    drop(frame);
    if sys::frame_stats().held_by_caller != held - 1 {
        println!("test-pagetables: FAILED: frames leaked");
        return Err(Error::InvalidArgument);
    }
    println!("test-pagetables: ok");
    Ok(())
}

extern crate alloc;
