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
//! `grow-1mib` (`frame_alloc_many` of 256 frames: four pooled zeroed
//! blocks, topped up by untimed yields before each iteration; one
//! `map_many`, a write per page, `unmap_many`, `free_many`), the same back
//! to back as `grow-1mib-pool-empty` (the blocks are zeroed on the call
//! path) and
//! `cap-transfer`: a capability goes to `test-bench-peer` and comes back
//! (each side moves it on with `send` and waits for it blocked in `recv`),
//! timed here as one round trip. `irq-to-driver` (with QEMU's `edu`
//! device; without one it is not measured and says so): from the store
//! that makes edu raise its MSI to the first instructions of the driver
//! blocked in `recv` for it, `test-bench-peer` (see [`irq_to_driver`]).
//!
//! Appel and Li's virtual-memory rows, with the fault handled in the
//! library OS (`libos::exception`, a Rust handler) over a 128-page
//! region at [`VM`]: `trap` (a write to a read-only page; the handler
//! makes it writable and resumes; the page is protected again untimed),
//! `prot1`/`unprot1` (`protect` one page read-only / writable),
//! `prot100`/`unprot100` (100 pages in one call), `appel1` (a read of a
//! page with no access; the handler unprotects it and takes access away
//! from the page unprotected before, so exactly one page is accessible at
//! a time), `appel2` (protect 100 pages to no access in one call, read
//! each: 100 faults, each
//! handler unprotects its page; the sample is the round divided by 100)
//! and `dirty` (`page_bits` of one page; exo only: Linux has no call).
//! The kernel's share of `trap` comes from an assembly handler that reads
//! the TSC first thing (`trap-deliver`: the `rdtsc` before the faulting
//! write to the handler's first instruction) and just before its
//! `resume` (`trap-resume`: from there back to the `rdtsc` after the
//! write); each window also holds a few user instructions (three and
//! eight, listed at [`trap_kernel`]).
//!
//! Only the `abi` stub issues the measured calls (no wrapper in between);
//! libos provides the entry point, the console and the panic handler. A
//! failing call ends its row with the kernel's error and the program exits
//! 1 after the other rows.
#![no_std]
#![no_main]

use abi::raw::{syscall6, syscall6_ipc};
use abi::{exc_offsets as off, Error, MapFlags, Protection, Sysnum};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use exo_demos::rdtsc;
use libos::exception::{self, Action, ExceptionFrame};
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

    // A heap growing by 1 MiB with the bulk calls: `frame_alloc_many`
    // (four 64-frame blocks, zeroed ahead of need by the kernel's pool:
    // the untimed yields before each iteration top it up, a block each),
    // one `map_many`, a write to each page, one `unmap_many`, one
    // `free_many`. Then the same back to back: the pool runs dry, and each
    // block is zeroed on the call path.
    count(measure_after(
        "grow-1mib",
        &mut samples,
        || {
            for _ in 0..GROW_PAGES / 64 {
                let _ = call(Sysnum::Yield, [0; 6]);
            }
        },
        grow_1mib,
    ));
    count(measure("grow-1mib-pool-empty", &mut samples, grow_1mib));

    count(cap_transfer(&mut samples));
    let ipc_done = ipc(&mut samples);
    count(ipc_done);
    if ipc_done {
        count(irq_to_driver(&mut samples));
    }
    count(appel_li(&mut samples));
    breakdown(&mut samples);

    println!("bench: end tsc={} failures={failures}", rdtsc());
    if failures > 0 {
        exit(1);
    }
    Ok(())
}

/// One `grow-1mib` iteration: 256 zeroed frames from `frame_alloc_many`,
/// `map_many` at [`VADDR`], a write to each page, `unmap_many`,
/// `free_many`.
fn grow_1mib(i: usize) -> Result<(), Failure> {
    let mut handles = [0u64; GROW_PAGES as usize];
    let hp = handles.as_mut_ptr() as u64;
    let n = ok(Sysnum::FrameAllocMany, [GROW_PAGES, hp, 0, 0, 0, 0], i)?;
    let mapped = ok(
        Sysnum::MapMany,
        [hp, n, VADDR, MapFlags::WRITE.bits(), 0, 0],
        i,
    );
    if let Err(f) = mapped {
        call(Sysnum::FreeMany, [hp, n, 0, 0, 0, 0]);
        return Err(f);
    }
    for page in 0..GROW_PAGES {
        // SAFETY: the frames were just mapped writable at `VADDR`, only
        // this process holds them, and no reference into them exists.
        unsafe { core::ptr::write_volatile((VADDR + page * 4096) as *mut u8, 1) };
    }
    let unmapped = ok(Sysnum::UnmapMany, [VADDR, GROW_PAGES, 0, 0, 0, 0], i);
    let freed = ok(Sysnum::FreeMany, [hp, n, 0, 0, 0, 0], i);
    unmapped.and(freed).map(drop)
}

/// The `ipc-call-reply` and `ipc-cap-transfer` rows: a one-word `call`
/// that the peer, blocked in `recv`, answers with `reply`; then the same
/// carrying a frame capability each way (moved).
fn ipc(samples: &mut [u64; ITERS]) -> bool {
    let peer = loop {
        match libos::ipc::SendCap::lookup(PEER) {
            Ok(cap) => break cap,
            // Not published yet (it publishes before the first row).
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
    if !done || !ipc_split(ep, samples) {
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

/// The two crossings of `ipc-call-reply` apart (`ipc-call-leg`: from
/// before our `call` to the peer's first instructions, its TSC read as the
/// call arrives, sent back in the reply; `ipc-reply-leg`: from there to
/// after our `call` returns, the peer's `reply_recv` and its few user
/// instructions included).
fn ipc_split(ep: u64, samples: &mut [u64; ITERS]) -> bool {
    /// Keep equal to the peer's.
    const STAMP: u64 = 0x57a3;
    let mut reply_leg = alloc::vec![0u64; ITERS];
    for i in 0..WARMUP + ITERS {
        let t0 = rdtsc();
        // SAFETY: no capability moves (cap 0); the stub declares every
        // register the reply writes.
        let r = unsafe { abi::raw::call(abi::Handle::from_raw(ep), i as u64, STAMP, 0, 0) };
        let t2 = rdtsc();
        if r[0] != 0 || r[2] != i as u64 + 1 || !(t0..t2).contains(&r[3]) {
            report_failure(
                "ipc-split",
                &Failure {
                    call: Sysnum::Call,
                    rax: r[0],
                    iteration: i,
                },
            );
            return false;
        }
        if i >= WARMUP {
            samples[i - WARMUP] = r[3] - t0;
            reply_leg[i - WARMUP] = t2 - r[3];
        }
    }
    let call_leg = median(samples);
    let min = samples[0];
    println!("bench: ipc-call-leg median={call_leg} min={min} iters={ITERS}");
    reply_leg.sort_unstable();
    let m = (reply_leg[ITERS / 2 - 1] + reply_leg[ITERS / 2]) / 2;
    println!(
        "bench: ipc-reply-leg median={m} min={} iters={ITERS}",
        reply_leg[0]
    );
    true
}

/// `irq-to-driver`: QEMU's `edu` device (PCI 1234:11e8).
const EDU: (u16, u16) = (0x1234, 0x11e8);
/// edu's registers: writing the raise register raises its interrupt (an
/// MSI, once enabled) with those status bits; the acknowledge register
/// clears them.
const EDU_RAISE: usize = 0x60;
const EDU_ACK: usize = 0x64;
/// The word that ends the peer's part of the row (keep equal to the
/// peer's).
const IRQ_STOP: u64 = 0x5709;

/// The `irq-to-driver` row: from the device raising an interrupt to the
/// first instructions of the driver blocked in `recv` for it. This process
/// holds edu and binds its vector (`irq_bind`) to an endpoint of
/// `test-bench-peer`, which waits for it in `recv`; each iteration one
/// store to edu's raise register makes the device send its MSI, which
/// interrupts us in ring 3 right after the store; the kernel turns it
/// into a message, wakes the peer and switches straight to it; the peer
/// reads the TSC (its stamp) and sends it back, and is blocked again in
/// `recv` before we run. The sample is its stamp minus our TSC before the
/// store: the kernel's interrupt path (entry, acknowledge, the message,
/// the switch) plus 7 user instructions (ours after the first `rdtsc`:
/// `shl`, `or`, `mov` and the store; the peer's `mov`, `mov` and
/// `rdtsc`). It is the
/// interrupt-while-another-process-runs case; a driver whose CPU is idle
/// (halted) is woken through the idle loop instead (not timed here).
fn irq_to_driver(samples: &mut [u64; ITERS]) -> bool {
    const NAME: &str = "irq-to-driver";
    let fail = |what: &str, e: libos::Error| {
        println!("bench: {NAME} failed: {what} returned {e}");
        false
    };
    // Our endpoint for the stamps; the peer answers the set-up call with a
    // send capability to its interrupt endpoint.
    let own = match libos::ipc::Endpoint::create(false) {
        Ok(ep) => ep,
        Err(e) => return fail("endpoint_create", e),
    };
    let setup = libos::ipc::SendCap::lookup(PEER).and_then(|peer| {
        let to_own = own.mint(0)?;
        // SAFETY: a send capability has no mappings.
        let r = unsafe { peer.call_cap([0, 0], to_own.into_raw(), false) }?;
        let cap = r.cap.ok_or(libos::Error::InvalidArgument)?;
        // SAFETY: the peer moved it to us; only the wrapper frees it.
        Ok(unsafe { libos::ipc::SendCap::from_raw(cap) })
    });
    let to_irq = match setup {
        Ok(cap) => cap,
        Err(e) => return fail("the set-up call to the peer", e),
    };
    let stop = |to_irq: &libos::ipc::SendCap| to_irq.send([IRQ_STOP, 0], false);
    let device = match exo_demos::pci::find("bench", |v, d| (v, d) == EDU) {
        Ok(Some(found)) => found,
        Ok(None) => {
            // The wall-time boot has no edu (like the Linux guest).
            println!("bench-note: {NAME} not measured: no edu device");
            return stop(&to_irq).is_ok();
        }
        Err(e) => return fail("pci::find", e),
    };
    let result = irq_rounds(&device, &own, &to_irq, samples);
    let stopped = stop(&to_irq);
    match (result, stopped) {
        (Err(e), _) => fail("irq-to-driver set-up", e),
        (Ok(false), _) => false,
        (Ok(true), Err(e)) => fail("the stop message", e),
        (Ok(true), Ok(())) => {
            print_row(NAME, samples);
            true
        }
    }
}

/// The timed rounds of [`irq_to_driver`] on the edu function found;
/// `Ok(false)` if a round failed (reported).
fn irq_rounds(
    (f, config): &(exo_demos::pci::Function, exo_demos::pci::Ecam),
    own: &libos::ipc::Endpoint,
    to_irq: &libos::ipc::SendCap,
    samples: &mut [u64; ITERS],
) -> Result<bool, libos::Error> {
    use exo_demos::pci::{Bar, Msi, COMMAND_BUS_MASTER, COMMAND_MEMORY};
    let Some(Bar::Memory { address: bar0, .. }) = config.bars(*f)[0] else {
        return Err(libos::Error::InvalidArgument);
    };
    let regs = libos::DeviceRegion::new(bar0, PAGE as usize)?;
    let msi = Msi::find(config, *f).ok_or(libos::Error::InvalidArgument)?;
    let device = regs.handle(0).ok_or(libos::Error::InvalidArgument)?;
    let vector = libos::ipc::irq_bind(device, to_irq)?;
    let command = config.command(*f);
    // The device sends MSIs only while it may master the bus.
    config.set_command(*f, command | COMMAND_MEMORY | COMMAND_BUS_MASTER);
    msi.enable(config, abi::MSI_ADDRESS as u32, u32::from(vector));
    let raise = regs.as_mut_ptr() as u64 + EDU_RAISE as u64;
    let from = own.handle().raw();
    let mut ok = true;
    for i in 0..WARMUP + ITERS {
        let t0: u64;
        // SAFETY: a 4-byte store to edu's raise register, in the register
        // page mapped (uncached) by `regs`; it touches no Rust memory.
        // The interrupt it raises preempts us after it; we resume with
        // every register as it was.
        unsafe {
            core::arch::asm!(
                "rdtsc",
                "shl rdx, 32",
                "or rax, rdx",
                "mov r8, rax",
                "mov dword ptr [r9], 1",
                in("r9") raise,
                out("r8") t0,
                out("rax") _,
                out("rdx") _,
                options(nostack),
            );
        }
        // The peer ran, stamped and sent, and waits again: its stamp is
        // queued (unless a timer tick preempted it first: then we wait,
        // up to a second).
        // SAFETY: recv writes only registers, all outputs of syscall6_ipc.
        let [rax, badge, stamp, what, _, flags] =
            unsafe { syscall6_ipc(Sysnum::Recv as u64, [from, 100, 0, 0, 0, 0]) };
        let t1 = rdtsc();
        regs.write32(EDU_ACK, 1);
        let expected = u64::from(vector) << 32 | 1;
        if rax != 0 || badge != 0 || flags != 0 || what != expected || !(t0..t1).contains(&stamp) {
            println!(
                "bench: irq-to-driver failed: round {i}: recv returned rax={rax}, words [{stamp}, {what:#x}] (expected a stamp in {t0}..{t1} and {expected:#x})"
            );
            ok = false;
            break;
        }
        if i >= WARMUP {
            samples[i - WARMUP] = stamp - t0;
        }
    }
    msi.disable(config);
    libos::ipc::irq_unbind(device)?;
    config.set_command(*f, command);
    Ok(ok)
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
/// per iteration, as two `send`s (moved), each side blocked in `recv`
/// until it arrives: the counterpart of Linux's pipe round trip (a write
/// and a blocking read each way).
fn cap_transfer(samples: &mut [u64; ITERS]) -> bool {
    const NAME: &str = "cap-transfer";
    let fail = |what: &str, e: libos::Error| {
        println!("bench: {NAME} failed: {what} returned {e}");
        false
    };
    // Ours first (published: the peer sends the capability back through
    // it), then the peer's, once it is there.
    let own = match libos::ipc::Endpoint::create(true) {
        Ok(ep) => ep,
        Err(e) => return fail("endpoint_create", e),
    };
    let peer = loop {
        match libos::ipc::SendCap::lookup(PEER) {
            Ok(cap) => break cap,
            Err(libos::Error::NoSuchProcess) => {
                call(Sysnum::Yield, [0; 6]);
            }
            Err(e) => return fail("endpoint_lookup", e),
        }
    };
    let mut handle = match ok(Sysnum::FrameAlloc, [0; 6], 0) {
        Ok(h) => h,
        Err(f) => {
            report_failure(NAME, &f);
            return false;
        }
    };
    let (to, from) = (peer.handle().raw(), own.handle().raw());
    let held = &mut handle;
    let done = measure(NAME, samples, |i| {
        ok(Sysnum::Send, [to, 0, 0, *held, 0, 0], i)?;
        // SAFETY: recv writes only registers, all outputs of syscall6_ipc.
        let [rax, _, _, _, cap, _] =
            unsafe { syscall6_ipc(Sysnum::Recv as u64, [from, abi::FOREVER, 0, 0, 0, 0]) };
        if rax != 0 || cap == 0 {
            return Err(Failure {
                call: Sysnum::Recv,
                rax,
                iteration: i,
            });
        }
        *held = cap;
        Ok(())
    });
    if done {
        call(Sysnum::FrameFree, [handle, 0, 0, 0, 0, 0]);
    }
    done
}

/// Start of the Appel and Li rows' region (128 pages, one contiguous
/// capability, mapped writable).
pub const VM: u64 = 0x4100_0000_0000;
const VM_PAGES: u64 = 128;
const PAGE: u64 = 4096;

/// `appel1`'s handler also protects the page it unprotected last.
static APPEL1: AtomicU64 = AtomicU64::new(0);
/// The one page `appel1` keeps accessible.
static OPEN: AtomicU64 = AtomicU64::new(0);

#[inline(always)]
fn protect(vaddr: u64, pages: u64, to: Protection) -> (u64, u64) {
    call(Sysnum::Protect, [vaddr, pages, to as u64, 0, 0, 0])
}

/// The rows' handler: a protection fault in the region is unprotected.
fn vm_handler(f: &mut ExceptionFrame) -> Action {
    let page = f.cr2 & !(PAGE - 1);
    if f.vector != 14 || !(VM..VM + VM_PAGES * PAGE).contains(&page) {
        return Action::Kill;
    }
    if protect(page, 1, Protection::Write).0 != 0 {
        return Action::Kill;
    }
    if APPEL1.load(Relaxed) != 0 {
        let before = OPEN.swap(page, Relaxed);
        if protect(before, 1, Protection::None).0 != 0 {
            return Action::Kill;
        }
    }
    Action::Resume
}

/// One `rdtsc`-timed sample into `samples` (after the warm-up).
#[inline(always)]
fn sample(samples: &mut [u64; ITERS], i: usize, t0: u64, t1: u64) {
    if i >= WARMUP {
        samples[i - WARMUP] = t1.wrapping_sub(t0);
    }
}

fn print_row(name: &str, samples: &mut [u64; ITERS]) {
    let m = median(samples);
    println!("bench: {name} median={m} min={} iters={ITERS}", samples[0]);
}

#[inline(always)]
fn touch_write(page: u64) {
    // SAFETY: a page of the region, ours; a fault is handled and resumed.
    unsafe { core::ptr::write_volatile(page as *mut u8, 1) };
}

#[inline(always)]
fn touch_read(page: u64) {
    // SAFETY: as in `touch_write`.
    unsafe { core::ptr::read_volatile(page as *const u8) };
}

/// The Appel and Li rows (see the module documentation).
fn appel_li(samples: &mut [u64; ITERS]) -> bool {
    const NAME: &str = "trap";
    let setup = || -> Result<u64, Failure> {
        let h = ok(Sysnum::FrameAllocContiguous, [VM_PAGES, 1, 0, 0, 0, 0], 0)?;
        ok(Sysnum::Map, [h, VM, MapFlags::WRITE.bits(), 0, 0, 0], 0)?;
        Ok(h)
    };
    let h = match setup() {
        Ok(h) => h,
        Err(f) => {
            report_failure(NAME, &f);
            return false;
        }
    };
    if exception::register(vm_handler).is_err() {
        println!("bench: {NAME} failed: exc_handler refused");
        return false;
    }
    let mut other = alloc::vec![[0u64; ITERS]; 1];
    let other = &mut other[0];

    for i in 0..WARMUP + ITERS {
        protect(VM, 1, Protection::Read);
        let t0 = rdtsc();
        touch_write(VM);
        let t1 = rdtsc();
        sample(samples, i, t0, t1);
    }
    print_row("trap", samples);

    for (n, a, b) in [(1, "prot1", "unprot1"), (100, "prot100", "unprot100")] {
        for i in 0..WARMUP + ITERS {
            let t0 = rdtsc();
            protect(VM, n, Protection::Read);
            let t1 = rdtsc();
            protect(VM, n, Protection::Write);
            let t2 = rdtsc();
            sample(samples, i, t0, t1);
            sample(other, i, t1, t2);
        }
        print_row(a, samples);
        print_row(b, other);
    }

    // appel1: page 0 open, 1..100 protected; read 1, 2, ..., 99, 1, ...
    protect(VM + PAGE, 99, Protection::None);
    OPEN.store(VM, Relaxed);
    APPEL1.store(1, Relaxed);
    for i in 0..WARMUP + ITERS {
        let page = VM + (1 + (i as u64 % 99)) * PAGE;
        let t0 = rdtsc();
        touch_read(page);
        let t1 = rdtsc();
        sample(samples, i, t0, t1);
    }
    APPEL1.store(0, Relaxed);
    print_row("appel1", samples);
    protect(VM, 100, Protection::Write);

    // appel2: per page of a round (protect 100, read each).
    for i in 0..WARMUP + ITERS {
        let t0 = rdtsc();
        protect(VM, 100, Protection::None);
        for k in 0..100 {
            touch_read(VM + k * PAGE);
        }
        let t1 = rdtsc();
        sample(samples, i, 0, t1.wrapping_sub(t0) / 100);
    }
    print_row("appel2", samples);

    for i in 0..WARMUP + ITERS {
        let t0 = rdtsc();
        call(Sysnum::PageBits, [VM, 1, 0, 0, 0, 0]);
        let t1 = rdtsc();
        sample(samples, i, t0, t1);
    }
    print_row("dirty", samples);

    let _ = exception::unregister();
    trap_kernel(samples, other);
    let _ = exception::unregister();
    call(Sysnum::Unmap, [VM, 0, 0, 0, 0, 0]);
    call(Sysnum::FrameFree, [h, 0, 0, 0, 0, 0]);
    true
}

/// TSC values the assembly handler records: at its first instruction,
/// and just before its `resume`.
static T_HANDLER: AtomicU64 = AtomicU64::new(0);
static T_RESUME: AtomicU64 = AtomicU64::new(0);

/// The assembly handler's exception stack and save area.
#[repr(C, align(4096))]
struct RawArea(core::cell::UnsafeCell<[u64; 1024]>);
// SAFETY: one thread; only the kernel (at delivery) and the handler touch it.
unsafe impl Sync for RawArea {}
static RAW_AREA: RawArea = RawArea(core::cell::UnsafeCell::new([0; 1024]));

core::arch::global_asm!(
    ".global exo_bench_raw_handler",
    "exo_bench_raw_handler:",
    "rdtsc",
    "shl rdx, 32",
    "or rax, rdx",
    "mov [rip + {t_handler}], rax",
    // protect(VM, 1, Write)
    "mov eax, {protect}",
    "mov rdi, {vm}",
    "mov esi, 1",
    "mov edx, 2",
    "syscall",
    "rdtsc",
    "shl rdx, 32",
    "or rax, rdx",
    "mov [rip + {t_resume}], rax",
    // Resume in ring 3, as libos does: no kernel instruction.
    "mov qword ptr [rip + {area} + {pending}], 0",
    "push qword ptr [rip + {area} + {rflags}]",
    "mov r15, [rip + {area} + {r15}]",
    "mov r14, [rip + {area} + {r14}]",
    "mov r13, [rip + {area} + {r13}]",
    "mov r12, [rip + {area} + {r12}]",
    "mov r11, [rip + {area} + {r11}]",
    "mov r10, [rip + {area} + {r10}]",
    "mov r9, [rip + {area} + {r9}]",
    "mov r8, [rip + {area} + {r8}]",
    "mov rbp, [rip + {area} + {rbp}]",
    "mov rdi, [rip + {area} + {rdi}]",
    "mov rsi, [rip + {area} + {rsi}]",
    "mov rdx, [rip + {area} + {rdx}]",
    "mov rcx, [rip + {area} + {rcx}]",
    "mov rbx, [rip + {area} + {rbx}]",
    "mov rax, [rip + {area} + {rax}]",
    "popfq",
    "mov rsp, [rip + {area} + {rsp}]",
    "jmp qword ptr [rip + {area} + {rip}]",
    t_handler = sym T_HANDLER,
    t_resume = sym T_RESUME,
    protect = const Sysnum::Protect as u64,
    vm = const VM,
    area = sym RAW_AREA,
    pending = const off::PENDING,
    rflags = const off::RFLAGS,
    r15 = const off::R15,
    r14 = const off::R14,
    r13 = const off::R13,
    r12 = const off::R12,
    r11 = const off::R11,
    r10 = const off::R10,
    r9 = const off::R9,
    r8 = const off::R8,
    rbp = const off::RBP,
    rdi = const off::RDI,
    rsi = const off::RSI,
    rdx = const off::RDX,
    rcx = const off::RCX,
    rbx = const off::RBX,
    rax = const off::RAX,
    rsp = const off::RSP,
    rip = const off::RIP,
);

extern "C" {
    fn exo_bench_raw_handler();
}

/// The kernel's share of `trap`, in two windows (user instructions in
/// them: `trap-deliver` holds the `shl`, `or` after the first `rdtsc`
/// and the faulting write, plus the handler's `rdtsc`: 4; `trap-resume`
/// is all user instructions, the ring-3 resume: the handler's `shl`,
/// `or`, `mov`, 20 to reload the context, the write again and the final
/// `rdtsc`: 25). `trap-kernel` is the kernel's part of both: deliver
/// minus its 4 user instructions, plus resume minus its 25.
fn trap_kernel(a: &mut [u64; ITERS], b: &mut [u64; ITERS]) {
    /// User instructions in the `trap-deliver` and `trap-resume` windows.
    const DELIVER_USER: u64 = 4;
    const RESUME_USER: u64 = 25;
    let area = RAW_AREA.0.get() as u64;
    // Stack: the top 7 KiB; save area: the bottom.
    // SAFETY: our own statics; the entry never returns (it resumes).
    let r = unsafe {
        libos::sys::exc_handler(exo_bench_raw_handler as *const () as u64, area + 8192, area)
    };
    if r.is_err() {
        println!("bench: trap-kernel failed: exc_handler refused");
        return;
    }
    for i in 0..WARMUP + ITERS {
        protect(VM, 1, Protection::Read);
        let (t0, t1): (u64, u64);
        // SAFETY: the write faults; the handler unprotects and resumes at
        // the write, which then completes. Registers it uses are declared.
        unsafe {
            core::arch::asm!(
                "rdtsc",
                "shl rdx, 32",
                "or rax, rdx",
                "mov r8, rax",
                "mov byte ptr [r9], 1",
                "rdtsc",
                "shl rdx, 32",
                "or rax, rdx",
                in("r9") VM,
                out("r8") t0,
                out("rax") t1,
                // The resume restores every register as it was at the
                // fault: the handler's own use of them does not leak.
                out("rdx") _,
            );
        }
        sample(a, i, t0, T_HANDLER.load(Relaxed));
        sample(b, i, T_RESUME.load(Relaxed), t1);
    }
    let deliver = median(a);
    let resume = median(b);
    println!(
        "bench: trap-deliver median={deliver} min={} iters={ITERS}",
        a[0]
    );
    println!(
        "bench: trap-resume median={resume} min={} iters={ITERS}",
        b[0]
    );
    let kernel = |d: u64, r: u64| (d + r).saturating_sub(DELIVER_USER + RESUME_USER);
    println!(
        "bench: trap-kernel median={} min={} iters={ITERS}",
        kernel(deliver, resume),
        kernel(a[0], b[0])
    );
}
