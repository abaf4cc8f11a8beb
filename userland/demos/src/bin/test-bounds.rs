//! test-bounds: takes every per-process bound at once, to be booted as many
//! copies (`--copies test-bounds=64`, the kernel's process limit): 1024
//! capabilities (half of them copies of the other half, so the sharing
//! ledger has an entry per frame), 2048 mappings, 64 inbox entries. Then it
//! keeps making syscalls while the others are full too, so that the
//! kernel's periodic invariant check runs with the kernel heap at its
//! worst case. The kernel must refuse at each bound with the documented
//! error and survive; the program exits 0 if every refusal was the
//! expected one.
#![no_std]
#![no_main]

use abi::{Rights, Sysnum};
use libos::{println, sys, Error};

libos::entry!(main);

/// Where the mappings go (one page each, consecutive).
const VA: u64 = 0x0000_4000_0000_0000;
/// Yields after filling up: with 64 copies, several periodic checks.
const ROUNDS: u32 = 4096;

fn sc(num: Sysnum, a: [u64; 6]) -> Result<u64, Error> {
    // SAFETY: only allocation, transfer, receive and map at VA (which
    // nothing else uses): no memory Rust relies on changes.
    let (rax, rdx) = unsafe { abi::raw::syscall6(num as u64, a) };
    Error::check(rax).map(|()| rdx)
}

fn main() -> Result<(), Error> {
    let me = sys::getpid();
    let mut ok = true;
    // Pairs of capabilities naming one frame, until the table is full.
    let mut first = 0;
    let mut caps = 0u64;
    let table_full = loop {
        let h = match sc(Sysnum::FrameAlloc, [0; 6]) {
            Ok(h) => h,
            Err(e) => break e,
        };
        caps += 1;
        if first == 0 {
            first = h;
        }
        let all = Rights::WRITABLE.bits();
        if let Err(e) = sc(Sysnum::CapTransfer, [h, me, all, 0, 0, 0]) {
            break e;
        }
        match sc(Sysnum::CapRecv, [0; 6]) {
            Ok(_) => caps += 1,
            Err(e) => break e,
        }
    };
    if table_full != Error::CapTableFull {
        println!("bounds: filling the table ended with {table_full}");
        ok = false;
    }
    // Mappings of one frame, until the bound.
    let mut maps = 0u64;
    let map_bound = loop {
        match sc(Sysnum::Map, [first, VA + maps * 4096, 0, 0, 0, 0]) {
            Ok(_) => maps += 1,
            Err(e) => break e,
        }
    };
    if map_bound != Error::OutOfMemory {
        println!("bounds: mapping ended with {map_bound}");
        ok = false;
    }
    // Copies into our own inbox, until it is full.
    let mut queued = 0u64;
    let inbox_full = loop {
        match sc(
            Sysnum::CapTransfer,
            [first, me, Rights::READ.bits(), 0, 0, 0],
        ) {
            Ok(_) => queued += 1,
            Err(e) => break e,
        }
    };
    if inbox_full != Error::CapTableFull {
        println!("bounds: filling the inbox ended with {inbox_full}");
        ok = false;
    }
    for _ in 0..ROUNDS {
        sys::yield_now();
    }
    let held = sys::frame_stats().held_by_caller;
    println!(
        "bounds: pid {me}: {caps} capabilities, {maps} mappings, {queued} queued, {held} frames held: {}",
        if ok { "ok" } else { "FAILED" }
    );
    // Everything goes back at exit.
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument)
    }
}
