//! dma-victim: holds frames a hostile driver aims its device's DMA at,
//! and checks them (issue 17's hostile DMA tests, with `dma-hostile` and
//! `dma-exit`).
//!
//! Publishes an endpoint and serves calls, taken only from the two
//! hostile drivers (the badge is the caller's pid, stamped by the kernel):
//! - `[TARGET, _]`: allocates a frame below the device's 28-bit reach,
//!   fills it with [`FILL`], answers its physical address (frames are
//!   named by capabilities; the address itself is no secret);
//! - `[TAKE, phys]`: allocates the frame at `phys` (one the driver just
//!   freed), fills it, answers 0 or the error code;
//! - `[WATCH, phys]`: answers at once; waits until the caller has ended,
//!   then takes the frame at `phys` as `TAKE` does, waits out any DMA the
//!   caller left running and checks it (the caller cannot ask any more);
//! - `[CHECK, _]`: answers how many bytes of its frames are not [`FILL`];
//! - `[DONE, _]`: answers, checks once more and exits.
//!
//! Exits 0 only if every byte of every frame is still [`FILL`]; in a run
//! where neither driver calls (they are not drivers there), it says so and
//! exits 0.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use libos::ipc::{self, Endpoint};
use libos::{println, sys, Error, Frame, MapFlags, Mapping};

libos::entry!(main);

/// Commands (the first word of a call).
const TARGET: u64 = 1;
const TAKE: u64 = 2;
const CHECK: u64 = 3;
const DONE: u64 = 4;
const WATCH: u64 = 5;
/// What every byte of the victim's frames holds.
const FILL: u8 = 0x5a;
/// The edu device's DMA reach (28-bit mask).
const DMA_LIMIT: u64 = 1 << 28;
/// Timer ticks to wait for a call, in all.
const PATIENCE: u64 = 3000;
/// Timer ticks between looks at whether a hostile driver is still there.
const WAIT: u64 = 10;
/// Timer ticks a DMA the watched driver started may still take (edu's
/// take 100 ms, 10 ticks).
const DMA_TICKS: u64 = 40;

fn main() -> Result<(), Error> {
    let service = Endpoint::create(true)?;
    let clock = Endpoint::create(false)?;
    let mut frames: Vec<Mapping<'static>> = Vec::new();
    let mut served = 0;
    let mut waited = 0;
    loop {
        let msg = match service.recv(WAIT) {
            Err(Error::WouldBlock) => {
                let alive = sys::process_find("dma-hostile").is_ok()
                    || sys::process_find("dma-exit").is_ok();
                waited += WAIT;
                if alive && waited < PATIENCE {
                    continue;
                }
                if alive {
                    println!("dma-victim: FAILED: no call for {PATIENCE} ticks");
                    return Err(Error::WouldBlock);
                }
                if served == 0 {
                    // A run where they are not drivers: they skip.
                    println!("dma-victim: no hostile driver calls: nothing to guard, skipped");
                    return Ok(());
                }
                return verdict(&frames, served);
            }
            r => r?,
        };
        let from = [
            sys::process_find("dma-hostile"),
            sys::process_find("dma-exit"),
        ];
        if !msg.call || !from.contains(&Ok(msg.badge)) {
            println!(
                "dma-victim: FAILED: a message from pid {}, not a hostile driver",
                msg.badge
            );
            return Err(Error::PermissionDenied);
        }
        served += 1;
        let [command, phys] = msg.words;
        match command {
            TARGET => {
                let frame = Frame::alloc_contiguous(1, 1, DMA_LIMIT)?;
                let at = frame.phys()?;
                frames.push(fill(frame)?);
                println!("dma-victim: holds frame {at:#x}, every byte {FILL:#04x}");
                ipc::reply([at, 0])?;
            }
            TAKE => {
                let r = Frame::alloc_at(phys).and_then(fill);
                let code = match r {
                    Ok(m) => {
                        frames.push(m);
                        println!("dma-victim: took frame {phys:#x} (freed by the driver), every byte {FILL:#04x}");
                        0
                    }
                    Err(e) => e.code(),
                };
                ipc::reply([code, 0])?;
            }
            WATCH => {
                let caller = msg.badge;
                // A copy of the driver's device capability, held to our
                // end (so the function outlives the driver).
                let _device = msg.cap;
                ipc::reply([0, 0])?;
                // Until the caller is gone (its end frees its frames).
                while sys::process_find("dma-exit") == Ok(caller) {
                    let _ = clock.recv(1);
                }
                frames.push(fill(Frame::alloc_at(phys)?)?);
                println!("dma-victim: dma-exit ended; took its DMA target {phys:#x}, every byte {FILL:#04x}");
                let _ = clock.recv(DMA_TICKS);
                return verdict(&frames, served);
            }
            CHECK => {
                let bad = changed(&frames);
                println!(
                    "dma-victim: checked {} frames: {bad} bytes changed",
                    frames.len()
                );
                ipc::reply([bad, 0])?;
            }
            DONE => {
                ipc::reply([0, 0])?;
                return verdict(&frames, served);
            }
            other => {
                println!("dma-victim: FAILED: unknown command {other}");
                return Err(Error::InvalidArgument);
            }
        }
    }
}

/// Maps `frame` writable for good (the process keeps it to its end) and
/// fills it.
fn fill(frame: Frame) -> Result<Mapping<'static>, Error> {
    let handle = core::mem::ManuallyDrop::new(frame).handle();
    // SAFETY: the handle stays live to the end of the process (nothing
    // frees it: the frame was forgotten above), and a device may write
    // it, so it is only reached through volatile accesses.
    let mut m = unsafe { Mapping::from_handle(handle, None, MapFlags::WRITE)? };
    for at in 0..m.len() {
        m.volatile_write(at, &[FILL]);
    }
    Ok(m)
}

/// How many bytes of `frames` are not [`FILL`].
fn changed(frames: &[Mapping<'static>]) -> u64 {
    let mut bad = 0;
    for m in frames {
        let mut byte = [0u8];
        for at in 0..m.len() {
            m.volatile_read(at, &mut byte);
            bad += u64::from(byte[0] != FILL);
        }
    }
    bad
}

fn verdict(frames: &[Mapping<'static>], served: u64) -> Result<(), Error> {
    let bad = changed(frames);
    if bad != 0 {
        println!("dma-victim: FAILED: {bad} bytes of its frames changed: a device reached them");
        return Err(Error::InvalidArgument);
    }
    println!(
        "dma-victim: ok: {served} calls served; all {} frames intact",
        frames.len()
    );
    Ok(())
}
