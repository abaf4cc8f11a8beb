//! demandheap: the global heap over a demand-paged region. Reserves
//! 4096 pages (16 MiB) for the heap with a limit of 512 frames, then makes
//! 2000 small allocations (512 bytes each, about 1 MiB in all) and checks
//! every one: the region's pages got frames only as allocations first
//! touched them (the library OS's exception entry maps them), one frame
//! per page, far fewer than were reserved.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use libos::{demand, heap, println, sys, Error};

libos::entry!(main);

const PAGES: u64 = 4096;
const LIMIT: u64 = 512;
const COUNT: u64 = 2000;

fn main() -> Result<(), Error> {
    let before = sys::frame_stats().held_by_caller;
    let base = heap::use_demand_region(PAGES, LIMIT)?;
    let region = base..base + PAGES * 4096;
    let mut boxes: Vec<Box<[u64; 64]>> = Vec::with_capacity(COUNT as usize);
    let mut inside = 0;
    for i in 0..COUNT {
        let b = Box::new([i; 64]);
        inside += u64::from(region.contains(&(b.as_ptr() as u64)));
        boxes.push(b);
    }
    let kept = boxes
        .iter()
        .enumerate()
        .all(|(i, b)| b.iter().all(|&w| w == i as u64));
    let mapped = demand::mapped();
    let held = sys::frame_stats().held_by_caller - before;
    println!(
        "demandheap: {COUNT} allocations of 512 bytes, {inside} in the region; {mapped} frames mapped on first touch of {PAGES} pages reserved (limit {LIMIT}), {held} held"
    );
    let line =
        |what: &str, ok: bool| println!("demandheap: {what}: {}", if ok { "ok" } else { "FAILED" });
    line("every allocation kept its contents", kept);
    let used = inside > COUNT / 2 && mapped > 0 && mapped <= LIMIT && mapped < PAGES / 4;
    line("the heap grew over the region, page by page", used);
    let counted = held == mapped;
    line("one frame per touched page", counted);
    drop(boxes);
    if kept && used && counted {
        println!("demandheap: ok");
        Ok(())
    } else {
        Err(Error::InvalidArgument)
    }
}
