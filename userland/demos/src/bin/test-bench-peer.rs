//! test-bench-peer: the other end of `test-bench`'s `cap-transfer` row.
//!
//! Publishes an endpoint and waits in `recv`; every capability that
//! arrives goes straight back to `test-bench`'s endpoint with a `send`
//! (moved). After exactly `WARMUP + ITERS` round trips (test-bench's
//! numbers) it serves the `ipc-*` rows; it exits 1 if a call fails (if
//! `test-bench` ends first, its blocked `recv` is the kernel's deadlock
//! report, not a hang).
#![no_std]
#![no_main]

use abi::raw::{syscall6, syscall6_ipc};
use abi::{Error, Sysnum};
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
    let service = libos::ipc::Endpoint::create(true)?;
    let from = service.handle().raw();
    let mut bench = 0;
    for done in 0..ROUND_TRIPS {
        // SAFETY: recv writes only registers, all outputs of syscall6_ipc.
        let [rax, _, _, _, cap, _] =
            unsafe { syscall6_ipc(Sysnum::Recv as u64, [from, abi::FOREVER, 0, 0, 0, 0]) };
        if rax != 0 || cap == 0 {
            println!(
                "test-bench-peer: recv returned {} (rax={rax}, cap {cap:#x}) after {done} round trips",
                error_name(rax)
            );
            exit(1);
        }
        if bench == 0 {
            // test-bench published its endpoint before it sent.
            bench = match libos::ipc::SendCap::lookup(BENCH) {
                Ok(cap) => cap.into_raw().raw(),
                Err(e) => {
                    println!("test-bench-peer: endpoint_lookup(test-bench) returned {e}");
                    exit(1);
                }
            };
        }
        let (rax, _) = call(Sysnum::Send, [bench, 0, 0, cap, 0, 0]);
        if rax != 0 {
            println!(
                "test-bench-peer: send back returned {} (rax={rax}) after {done} round trips",
                error_name(rax)
            );
            exit(1);
        }
    }
    serve_calls(service)
}

/// The other end of `ipc-call-reply`, its split (`ipc-split`) and
/// `ipc-cap-transfer`: publishes an endpoint and answers `ROUND_TRIPS`
/// calls of each kind (a word back, and for a call whose second word is
/// [`STAMP`] the TSC read as soon as the call arrived; the capability
/// back), each answer and the wait for the next call in one `reply_recv`;
/// the last answer is a plain `reply`.
fn serve_calls(service: libos::ipc::Endpoint) -> Result<(), libos::Error> {
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
