//! test-bench: the exo half of `cargo xtask bench syscalls`.
//!
//! Times each operation with a `rdtsc` pair around one iteration
//! (`t0 = rdtsc; op; t1 = rdtsc`, sample `t1 - t0`), exactly as the Linux
//! half (`tools/linux-bench/bench.c`) does. Under QEMU with
//! `-icount shift=0` the TSC advances once per guest instruction, so a
//! sample is an exact count of the user and kernel instructions of one
//! iteration, the `rdtsc` pair included; without icount it is host TSC
//! ticks. [`WARMUP`] iterations are thrown away, then [`ITERS`] are sorted
//! and summarised, one line per row:
//!
//! ```text
//! bench: start tsc=N
//! bench: null-syscall median=N min=N iters=2000
//! bench: frame-alloc-free failed: frame_free returned BadCapability (rax=2) at iteration 0
//! bench: end tsc=N failures=0
//! ```
//!
//! Rows: `empty` (the `rdtsc` pair alone), `null-syscall` (`getpid`),
//! `frame-alloc-free`, `alloc-map-touch-unmap-free` (at [`VADDR`], with an
//! untimed `yield` before each iteration, which refills the kernel's pool
//! of zeroed frames: the pool-hit case), the same back to back as
//! `alloc-map-touch-unmap-free-pool-empty` (the pool runs dry: every frame
//! is zeroed on the call path),
//! `contiguous-16` (`frame_alloc_contiguous(16, 1, 0)` + `frame_free`),
//! `grow-1mib` (256 frames as one run, one `map`, a write per page, `unmap`,
//! `frame_free`) and
//! `cap-transfer`: a capability goes to `test-bench-peer` and comes back
//! (both sides hand it on with `TRANSFER_MOVE`; each side polls `cap_recv`
//! and yields while nothing has arrived), timed here as one round trip.
//!
//! Only the `abi` stub issues the measured calls (no wrapper in between);
//! libos provides the entry point, the console and the panic handler. A
//! failing call ends its row with the kernel's error and the program exits
//! 1 after the other rows.
#![no_std]
#![no_main]

use abi::raw::syscall6;
use abi::{Error, MapFlags, Rights, Sysnum, TRANSFER_MOVE};
use core::arch::x86_64::_rdtsc;
use libos::println;

extern crate alloc;

libos::entry!(main);

/// Iterations run and thrown away before measuring.
pub const WARMUP: usize = 200;
/// Iterations measured per row.
pub const ITERS: usize = 2000;
/// Where `alloc-map-touch-unmap-free` maps its frame (and `grow-1mib` its
/// run).
pub const VADDR: u64 = 0x4000_0000_0000;
/// Pages of `grow-1mib`: 1 MiB.
const GROW_PAGES: u64 = 256;
/// The process that sends capabilities back (it does exactly
/// `WARMUP + ITERS` round trips; keep its copy of the numbers equal).
const PEER: &str = "test-bench-peer";

/// A call the kernel refused.
struct Failure {
    call: Sysnum,
    rax: u64,
    iteration: usize,
}

/// Issues `num` through the raw stub.
#[inline(always)]
fn call(num: Sysnum, args: [u64; 6]) -> (u64, u64) {
    // SAFETY: the calls made here never unmap memory Rust code refers to:
    // the only mapping removed is the one at `VADDR`, which is used only
    // through a raw pointer between its `map` and its `unmap`.
    unsafe { syscall6(num as u64, args) }
}

/// Issues `num`; `rdx` on success, the failure otherwise.
#[inline(always)]
fn ok(num: Sysnum, args: [u64; 6], iteration: usize) -> Result<u64, Failure> {
    let (rax, rdx) = call(num, args);
    if rax == 0 {
        Ok(rdx)
    } else {
        Err(Failure {
            call: num,
            rax,
            iteration,
        })
    }
}

#[inline(always)]
fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` is allowed in ring 3 (the kernel leaves CR4.TSD clear)
    // and has no side effects.
    #[allow(unused_unsafe)]
    unsafe {
        _rdtsc()
    }
}

/// Ends the process with `code`.
fn exit(code: u64) -> ! {
    call(Sysnum::Exit, [code, 0, 0, 0, 0, 0]);
    unreachable!("exit returned")
}

/// Runs `op` `WARMUP + ITERS` times, each between two `rdtsc`, and prints
/// the row. Returns whether every iteration succeeded.
#[inline(always)]
fn measure(
    name: &str,
    samples: &mut [u64; ITERS],
    op: impl FnMut(usize) -> Result<(), Failure>,
) -> bool {
    measure_after(name, samples, || {}, op)
}

/// [`measure`], running `before` (untimed) before each iteration.
#[inline(always)]
fn measure_after(
    name: &str,
    samples: &mut [u64; ITERS],
    mut before: impl FnMut(),
    mut op: impl FnMut(usize) -> Result<(), Failure>,
) -> bool {
    for i in 0..WARMUP + ITERS {
        before();
        let t0 = rdtsc();
        let result = op(i);
        let t1 = rdtsc();
        if let Err(f) = result {
            report_failure(name, &f);
            return false;
        }
        if i >= WARMUP {
            samples[i - WARMUP] = t1.wrapping_sub(t0);
        }
    }
    samples.sort_unstable();
    let median = (samples[ITERS / 2 - 1] + samples[ITERS / 2]) / 2;
    println!(
        "bench: {name} median={median} min={} iters={ITERS}",
        samples[0]
    );
    true
}

/// Median of the samples (sorted in place).
fn median(samples: &mut [u64; ITERS]) -> u64 {
    samples.sort_unstable();
    (samples[ITERS / 2 - 1] + samples[ITERS / 2]) / 2
}

/// exo-only rows that split the memory path into its syscalls (each row
/// times one call; the calls around it run untimed), to show where the
/// instructions go. Printed as `bench: breakdown-NAME median=N min=N
/// iters=N`.
fn breakdown(samples: &mut [u64; ITERS]) {
    let timed = |samples: &mut [u64; ITERS], i: usize, f: &mut dyn FnMut() -> (u64, u64)| {
        let t0 = rdtsc();
        let r = f();
        let t1 = rdtsc();
        if i >= WARMUP {
            samples[i - WARMUP] = t1.wrapping_sub(t0);
        }
        r
    };
    // (name, median, min); `median` leaves the samples sorted.
    let mut rows: [(&str, u64, u64); 6] = [("", 0, 0); 6];
    // A call with no work: an invalid trace_ctl argument (direct path,
    // through the general dispatcher).
    for i in 0..WARMUP + ITERS {
        timed(samples, i, &mut || {
            call(Sysnum::TraceCtl, [7, 0, 0, 0, 0, 0])
        });
    }
    rows[0] = ("entry-exit", median(samples), samples[0]);
    let (_, keep) = call(Sysnum::FrameAlloc, [0; 6]);
    for i in 0..WARMUP + ITERS {
        timed(samples, i, &mut || {
            call(Sysnum::FramePhys, [keep, 0, 0, 0, 0, 0])
        });
    }
    rows[1] = ("frame-phys", median(samples), samples[0]);
    call(Sysnum::FrameFree, [keep, 0, 0, 0, 0, 0]);
    // On the heap: four sample arrays would overflow the 64 KiB stack.
    let mut parts = alloc::vec![[0u64; ITERS]; 4];
    for i in 0..WARMUP + ITERS {
        let mut one = |k: usize, num: Sysnum, args: [u64; 6]| {
            let t0 = rdtsc();
            let r = call(num, args);
            let t1 = rdtsc();
            if i >= WARMUP {
                parts[k][i - WARMUP] = t1.wrapping_sub(t0);
            }
            r.1
        };
        let h = one(0, Sysnum::FrameAlloc, [0; 6]);
        one(1, Sysnum::Map, [h, VADDR, MapFlags::WRITE.bits(), 0, 0, 0]);
        one(2, Sysnum::Unmap, [VADDR, 0, 0, 0, 0, 0]);
        one(3, Sysnum::FrameFree, [h, 0, 0, 0, 0, 0]);
    }
    for (k, name) in ["frame-alloc", "map", "unmap", "frame-free"]
        .into_iter()
        .enumerate()
    {
        rows[2 + k] = (name, median(&mut parts[k]), parts[k][0]);
    }
    for (name, m, min) in rows {
        println!("bench: breakdown-{name} median={m} min={min} iters={ITERS}");
    }
}

fn report_failure(name: &str, f: &Failure) {
    let error = Error::try_from(f.rax)
        .map(Error::name)
        .unwrap_or("an unknown code");
    println!(
        "bench: {name} failed: {} returned {error} (rax={}) at iteration {}",
        f.call.name(),
        f.rax,
        f.iteration
    );
}

fn main() -> Result<(), libos::Error> {
    // First thing: the host times the boot to this line.
    println!("bench: start tsc={}", rdtsc());
    let mut samples = [0u64; ITERS];
    let mut failures = 0u32;
    let mut count = |passed: bool| failures += u32::from(!passed);

    count(measure("empty", &mut samples, |_| Ok(())));

    count(measure("null-syscall", &mut samples, |i| {
        ok(Sysnum::GetPid, [0; 6], i).map(drop)
    }));

    count(measure("frame-alloc-free", &mut samples, |i| {
        let h = ok(Sysnum::FrameAlloc, [0; 6], i)?;
        ok(Sysnum::FrameFree, [h, 0, 0, 0, 0, 0], i).map(drop)
    }));

    // Pool hit: the untimed yield before each iteration tops the kernel's
    // pool of zeroed frames up, so the frame (and any page table) comes
    // zeroed already.
    count(measure_after(
        "alloc-map-touch-unmap-free",
        &mut samples,
        || {
            let _ = call(Sysnum::Yield, [0; 6]);
        },
        alloc_map_touch_unmap_free,
    ));
    // Pool empty: back to back, the pool is empty after a few iterations,
    // and every frame is zeroed on the call path.
    count(measure(
        "alloc-map-touch-unmap-free-pool-empty",
        &mut samples,
        alloc_map_touch_unmap_free,
    ));

    count(measure("contiguous-16", &mut samples, |i| {
        let h = ok(Sysnum::FrameAllocContiguous, [16, 1, 0, 0, 0, 0], i)?;
        ok(Sysnum::FrameFree, [h, 0, 0, 0, 0, 0], i).map(drop)
    }));

    // A heap growing by 1 MiB with today's calls: one contiguous run of
    // 256 frames, one `map` of all of it, a write to each page, one
    // `unmap`, one `frame_free`.
    count(measure("grow-1mib", &mut samples, |i| {
        let h = ok(Sysnum::FrameAllocContiguous, [GROW_PAGES, 1, 0, 0, 0, 0], i)?;
        let mapped = ok(Sysnum::Map, [h, VADDR, MapFlags::WRITE.bits(), 0, 0, 0], i);
        if let Err(f) = mapped {
            call(Sysnum::FrameFree, [h, 0, 0, 0, 0, 0]);
            return Err(f);
        }
        for page in 0..GROW_PAGES {
            // SAFETY: the run was just mapped writable at `VADDR`, only this
            // process holds it, and no reference into it exists.
            unsafe { core::ptr::write_volatile((VADDR + page * 4096) as *mut u8, 1) };
        }
        let unmapped = ok(Sysnum::Unmap, [VADDR, 0, 0, 0, 0, 0], i);
        let freed = ok(Sysnum::FrameFree, [h, 0, 0, 0, 0, 0], i);
        unmapped.and(freed).map(drop)
    }));

    count(cap_transfer(&mut samples));
    count(ipc(&mut samples));
    breakdown(&mut samples);

    println!("bench: end tsc={} failures={failures}", rdtsc());
    if failures > 0 {
        exit(1);
    }
    Ok(())
}

/// The `ipc-call-reply` and `ipc-cap-transfer` rows: a one-word `call`
/// that the peer, blocked in `recv`, answers with `reply`; then the same
/// carrying a frame capability each way (moved).
fn ipc(samples: &mut [u64; ITERS]) -> bool {
    let peer = loop {
        match libos::ipc::SendCap::lookup(PEER) {
            Ok(cap) => break cap,
            // Not published yet: it is finishing the cap-transfer row.
            Err(libos::Error::NoSuchProcess) => {
                call(Sysnum::Yield, [0; 6]);
            }
            Err(e) => {
                println!("bench: ipc-call-reply failed: endpoint_lookup returned {e}");
                return false;
            }
        }
    };
    let ep = peer.handle().raw();
    let done = measure("ipc-call-reply", samples, |i| {
        // SAFETY: no capability moves (cap 0); the stub declares every
        // register the reply writes.
        let r = unsafe { abi::raw::call(abi::Handle::from_raw(ep), i as u64, 0, 0, 0) };
        if r[0] != 0 || r[2] != i as u64 + 1 {
            return Err(Failure {
                call: Sysnum::Call,
                rax: r[0],
                iteration: i,
            });
        }
        Ok(())
    });
    if !done {
        return false;
    }
    let mut handle = match ok(Sysnum::FrameAlloc, [0; 6], 0) {
        Ok(h) => h,
        Err(f) => {
            report_failure("ipc-cap-transfer", &f);
            return false;
        }
    };
    let held = &mut handle;
    let done = measure("ipc-cap-transfer", samples, |i| {
        // SAFETY: the frame is never mapped here, so moving it unmaps
        // nothing; the stub declares every register the reply writes.
        let r = unsafe { abi::raw::call(abi::Handle::from_raw(ep), 0, 0, *held, 0) };
        if r[0] != 0 || r[4] == 0 {
            return Err(Failure {
                call: Sysnum::Call,
                rax: r[0],
                iteration: i,
            });
        }
        *held = r[4];
        Ok(())
    });
    if done {
        call(Sysnum::FrameFree, [handle, 0, 0, 0, 0, 0]);
    }
    done
}

/// One iteration of `alloc-map-touch-unmap-free`.
#[inline(always)]
fn alloc_map_touch_unmap_free(i: usize) -> Result<(), Failure> {
    let h = ok(Sysnum::FrameAlloc, [0; 6], i)?;
    let mapped = ok(Sysnum::Map, [h, VADDR, MapFlags::WRITE.bits(), 0, 0, 0], i);
    if let Err(f) = mapped {
        call(Sysnum::FrameFree, [h, 0, 0, 0, 0, 0]);
        return Err(f);
    }
    // SAFETY: `VADDR` was just mapped writable to a frame only this
    // process holds; no reference to it exists.
    unsafe { core::ptr::write_volatile(VADDR as *mut u8, 1) };
    let unmapped = ok(Sysnum::Unmap, [VADDR, 0, 0, 0, 0, 0], i);
    // Freeing also removes the mapping if `unmap` failed.
    let freed = ok(Sysnum::FrameFree, [h, 0, 0, 0, 0, 0], i);
    unmapped.and(freed).map(drop)
}

/// The `cap-transfer` row: one frame capability goes to the peer and back
/// per iteration.
fn cap_transfer(samples: &mut [u64; ITERS]) -> bool {
    const NAME: &str = "cap-transfer";
    let peer = match ok(
        Sysnum::ProcessFind,
        [PEER.as_ptr() as u64, PEER.len() as u64, 0, 0, 0, 0],
        0,
    ) {
        Ok(pid) => pid,
        Err(f) => {
            report_failure(NAME, &f);
            return false;
        }
    };
    let mut handle = match ok(Sysnum::FrameAlloc, [0; 6], 0) {
        Ok(h) => h,
        Err(f) => {
            report_failure(NAME, &f);
            return false;
        }
    };
    let held = &mut handle;
    let done = measure(NAME, samples, |i| {
        ok(
            Sysnum::CapTransfer,
            [*held, peer, Rights::WRITABLE.bits(), TRANSFER_MOVE, 0, 0],
            i,
        )?;
        loop {
            call(Sysnum::Yield, [0; 6]);
            let (rax, rdx) = call(Sysnum::CapRecv, [0; 6]);
            if rax == 0 {
                *held = rdx;
                return Ok(());
            }
            if rax != Error::WouldBlock as u64 {
                return Err(Failure {
                    call: Sysnum::CapRecv,
                    rax,
                    iteration: i,
                });
            }
        }
    });
    if done {
        call(Sysnum::FrameFree, [handle, 0, 0, 0, 0, 0]);
    }
    done
}
