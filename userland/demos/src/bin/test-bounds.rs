//! test-bounds: takes every per-process bound at once, to be booted as many
//! copies (`--copies test-bounds=64`, the kernel's process limit): 1024
//! capabilities (half of them copies of the other half, so the sharing
//! ledger has an entry per frame), 2048 mappings, 16 endpoints with full
//! queues (16 messages each, a read-only copy in every one). Then it
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
    // SAFETY: only allocation, endpoints, sends of copies (nothing moves),
    // receives and maps at VA (which nothing else uses): no memory Rust
    // relies on changes. `syscall6_ipc`: `recv` writes every result
    // register.
    let [rax, rdx, ..] = unsafe { abi::raw::syscall6_ipc(num as u64, a) };
    Error::check(rax).map(|()| rdx)
}

fn main() -> Result<(), Error> {
    let me = sys::getpid();
    let mut ok = true;
    // Endpoints until the bound, each with a send capability to it (in an
    // array: a heap would take a frame and a mapping of the bounds).
    let mut eps = [(0, 0); abi::bounds::ENDPOINTS];
    let mut n = 0;
    let ep_bound = loop {
        let recv = match sc(Sysnum::EndpointCreate, [0; 6]) {
            Ok(h) => h,
            Err(e) => break e,
        };
        match sc(Sysnum::EndpointMint, [recv, 0, 0, 0, 0, 0]) {
            Ok(send) if n < eps.len() => {
                eps[n] = (recv, send);
                n += 1;
            }
            Ok(_) => break Error::InvalidArgument,
            Err(e) => break e,
        }
    };
    if ep_bound != Error::OutOfMemory || n != abi::bounds::ENDPOINTS {
        println!("bounds: creating endpoints ended with {ep_bound}");
        ok = false;
    }
    let (recv, to_self) = eps[0];
    // Pairs of capabilities naming one frame, until the table is full
    // (the second a copy sent to ourselves).
    let mut first = 0;
    let mut caps = 2 * n as u64;
    let table_full = loop {
        let h = match sc(Sysnum::FrameAlloc, [0; 6]) {
            Ok(h) => h,
            Err(e) => break e,
        };
        caps += 1;
        if first == 0 {
            first = h;
        }
        if let Err(e) = sc(Sysnum::Send, [to_self, 0, 0, h, abi::SEND_COPY, 0]) {
            break e;
        }
        match sc(Sysnum::Recv, [recv, 0, 0, 0, 0, 0]) {
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
    // Read-only copies into every endpoint's queue, until each is full.
    let mut queued = 0u64;
    let copy_ro = abi::SEND_COPY | abi::send_rights(Rights::READ);
    for &(_, send) in &eps {
        let full = loop {
            match sc(Sysnum::Send, [send, 0, 0, first, copy_ro, 0]) {
                Ok(_) => queued += 1,
                Err(e) => break e,
            }
        };
        if full != Error::WouldBlock {
            println!("bounds: filling a queue ended with {full}");
            ok = false;
        }
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
