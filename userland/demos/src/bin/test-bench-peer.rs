//! test-bench-peer: the other end of `test-bench`'s `cap-transfer` row.
//!
//! Publishes an endpoint and waits in `recv`; every capability that
//! arrives goes straight back to `test-bench`'s endpoint with a `send`
//! (moved). After exactly `WARMUP + ITERS` round trips (test-bench's
//! numbers) it serves the `ipc-*` rows, then is the driver of
//! `irq-to-driver`: blocked in `recv` on an endpoint that `test-bench`
//! bound edu's interrupt to, it reads the TSC as its first instructions
//! after `recv` returns and sends it back ([`serve_irqs`]). It exits 1 if
//! a call fails (if `test-bench` ends first, its blocked `recv` is the
//! kernel's deadlock report, not a hang).
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
/// `irq-to-driver`: the badge of the send capability to our interrupt
/// endpoint (what `test-bench` binds edu's vector to), and the word that
/// ends the row (keep both equal to `test-bench`'s).
const IRQ_BADGE: u64 = 0x1e9;
const IRQ_STOP: u64 = 0x5709;

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
    serve_calls(&service)?;
    serve_irqs(&service)
}

/// The other end of `ipc-call-reply`, its split (`ipc-split`) and
/// `ipc-cap-transfer`: publishes an endpoint and answers `ROUND_TRIPS`
/// calls of each kind (a word back, and for a call whose second word is
/// [`STAMP`] the TSC read as soon as the call arrived; the capability
/// back), each answer and the wait for the next call in one `reply_recv`;
/// the last answer is a plain `reply`.
fn serve_calls(service: &libos::ipc::Endpoint) -> Result<(), libos::Error> {
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

/// The driver's side of `irq-to-driver`. `test-bench` calls with a send
/// capability to its endpoint (for the stamps); the answer carries one to
/// a fresh endpoint of ours (badge [`IRQ_BADGE`]), which `test-bench`
/// binds edu's interrupt to. Then: blocked in `recv` on it; each time an
/// interrupt message wakes us, the TSC is read after two `mov`s (the
/// first instructions after `recv` returns) and sent back with the
/// vector and count (`[tsc, vector << 32 | count]`). A plain message with
/// [`IRQ_STOP`] through the same capability ends it (test-bench has no
/// edu, or is done).
fn serve_irqs(service: &libos::ipc::Endpoint) -> Result<(), libos::Error> {
    let setup = service.recv(abi::FOREVER)?;
    let Some(back) = setup.cap.filter(|_| setup.call) else {
        println!("test-bench-peer: irq-to-driver: the set-up call carried no capability");
        exit(1);
    };
    // SAFETY: a send capability test-bench moved to us; only `back` frees it.
    let back = unsafe { libos::ipc::SendCap::from_raw(back) };
    let irq = libos::ipc::Endpoint::create(false)?;
    let to_irq = irq.mint(IRQ_BADGE)?;
    // SAFETY: a send capability has no mappings.
    unsafe { libos::ipc::reply_cap([0, 0], to_irq.into_raw(), false)? };
    let from = irq.handle().raw();
    loop {
        let (status, badge, w0, w1, flags, tsc): (u64, u64, u64, u64, u64, u64);
        // SAFETY: `recv` writes only the registers declared here (rax,
        // rdx, rsi, rdi, r8, r9; rcx and r11 by `syscall`); the two `mov`s
        // and `rdtsc` after it touch only declared registers.
        unsafe {
            core::arch::asm!(
                "syscall",
                "mov rcx, rax",
                "mov r11, rdx",
                "rdtsc",
                "shl rdx, 32",
                "or rax, rdx",
                inlateout("rax") Sysnum::Recv as u64 => tsc,
                inlateout("rdi") from => w1,
                inlateout("rsi") abi::FOREVER => w0,
                lateout("rdx") _,
                in("r10") 0u64,
                lateout("r8") _,
                lateout("r9") flags,
                lateout("rcx") status,
                lateout("r11") badge,
                options(nostack),
            );
        }
        if status != 0 {
            println!(
                "test-bench-peer: irq-to-driver: recv returned {} (rax={status})",
                error_name(status)
            );
            exit(1);
        }
        if flags & abi::RECV_IRQ == 0 {
            if w0 == IRQ_STOP && badge == IRQ_BADGE {
                return Ok(());
            }
            println!("test-bench-peer: irq-to-driver: a message that is no interrupt: {w0:#x}");
            exit(1);
        }
        if badge != IRQ_BADGE {
            println!("test-bench-peer: irq-to-driver: interrupt with badge {badge:#x}");
            exit(1);
        }
        if let Err(e) = back.send([tsc, w0 << 32 | w1], false) {
            println!("test-bench-peer: irq-to-driver: send back returned {e}");
            exit(1);
        }
    }
}
