//! test-bench-peer: the other end of `test-bench`'s `cap-transfer` row.
//!
//! Polls `cap_recv`; every capability that arrives goes straight back to
//! `test-bench` with `TRANSFER_MOVE`, then it yields. It exits 0 after
//! exactly `WARMUP + ITERS` round trips (test-bench's numbers), or 1 if a
//! call fails or `test-bench` is gone before that (so a failed run ends
//! instead of spinning until the timeout).
#![no_std]
#![no_main]

use abi::raw::syscall6;
use abi::{Error, Rights, Sysnum, TRANSFER_MOVE};
use libos::println;

libos::entry!(main);

/// `test-bench`'s `WARMUP + ITERS`: the round trips it times.
const ROUND_TRIPS: u64 = 200 + 2000;
/// A call's second word asking for the TSC of its arrival (`ipc-split`).
const STAMP: u64 = 0x57a3;
/// The process that sends the capabilities.
const BENCH: &str = "test-bench";

fn call(num: Sysnum, args: [u64; 6]) -> (u64, u64) {
    // SAFETY: none of these calls removes memory Rust code refers to (a
    // moved capability was never mapped here).
    unsafe { syscall6(num as u64, args) }
}

/// Ends the process with `code`.
fn exit(code: u64) -> ! {
    call(Sysnum::Exit, [code, 0, 0, 0, 0, 0]);
    unreachable!("exit returned")
}

fn error_name(rax: u64) -> &'static str {
    Error::try_from(rax)
        .map(Error::name)
        .unwrap_or("an unknown code")
}

fn main() -> Result<(), libos::Error> {
    let find = [BENCH.as_ptr() as u64, BENCH.len() as u64, 0, 0, 0, 0];
    let (rax, bench) = call(Sysnum::ProcessFind, find);
    if rax != 0 {
        println!(
            "test-bench-peer: process_find(test-bench) returned {}",
            error_name(rax)
        );
        exit(1);
    }
    let mut done = 0u64;
    loop {
        let (rax, handle) = call(Sysnum::CapRecv, [0; 6]);
        if rax == 0 {
            let back = [handle, bench, Rights::WRITABLE.bits(), TRANSFER_MOVE, 0, 0];
            let (rax, _) = call(Sysnum::CapTransfer, back);
            if rax != 0 {
                println!(
                    "test-bench-peer: cap_transfer back returned {} (rax={rax}) after {done} round trips",
                    error_name(rax)
                );
                exit(1);
            }
            done += 1;
            if done == ROUND_TRIPS {
                return serve_calls();
            }
        } else if rax == Error::WouldBlock as u64 {
            // Nothing yet: is the sender still there?
            if call(Sysnum::ProcessFind, find).0 != 0 {
                println!("test-bench-peer: test-bench is gone after {done} round trips");
                exit(1);
            }
        } else {
            println!(
                "test-bench-peer: cap_recv returned {} (rax={rax}) after {done} round trips",
                error_name(rax)
            );
            exit(1);
        }
        call(Sysnum::Yield, [0; 6]);
    }
}

/// The other end of `ipc-call-reply`, its split (`ipc-split`) and
/// `ipc-cap-transfer`: publishes an endpoint and answers `ROUND_TRIPS`
/// calls of each kind (a word back, and for a call whose second word is
/// [`STAMP`] the TSC read as soon as the call arrived; the capability
/// back), each answer and the wait for the next call in one `reply_recv`;
/// the last answer is a plain `reply`.
fn serve_calls() -> Result<(), libos::Error> {
    let service = libos::ipc::Endpoint::create(true)?;
    let mut msg = service.recv(abi::FOREVER)?;
    for i in 0..3 * ROUND_TRIPS {
        let arrived = if msg.words[1] == STAMP {
            exo_demos::rdtsc()
        } else {
            0
        };
        if i == 0 && msg.cap.is_some() {
            println!("test-bench-peer: a capability came first");
            exit(1);
        }
        let last = i + 1 == 3 * ROUND_TRIPS;
        msg = match (msg.cap, last) {
            (None, false) => service.reply_recv([msg.words[0] + 1, arrived])?,
            // SAFETY: moved back unmapped (we never map it).
            (Some(cap), false) => unsafe { service.reply_recv_cap([0, 0], cap, false)? },
            (None, true) => return libos::ipc::reply([msg.words[0] + 1, 0]),
            // SAFETY: as above.
            (Some(cap), true) => return unsafe { libos::ipc::reply_cap([0, 0], cap, false) },
        };
    }
    Ok(())
}
