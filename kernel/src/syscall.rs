//! System calls: the registers decoded by the syscall table
//! ([`abi::Call`]: every flag and right validated before a handler runs),
//! everything else the caller passes checked here, acting on the caller's
//! own capabilities, writing `rax`/`rdx`. One handler per row of the table;
//! every failure is an [`Error`] value, never a panic. With
//! tracing on, each call is written to COM1 as an `abi::trace` record.
use crate::arch::syscall::TRACE_ON;
use crate::arch::trap::TrapFrame;
use crate::memory::{self, PAGE};
use crate::process::{self, Ending, Kernel, Process};
use abi::{Call, Error, LocalCall, SwitchingCall, USER_TOP};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use exo_core::memmap::FrameClass;
use exo_core::object::AddressSpace as _;
use exo_core::object::{Outcome, Received};
use zerocopy::IntoBytes;

/// Syscalls taken on the direct and slow paths: every call except `getpid`
/// answered by the fast path in `arch::syscall` (which does not count, to
/// stay a few instructions long). Single CPU, interrupts off: relaxed is
/// enough.
pub static CALLS: AtomicU64 = AtomicU64::new(0);

/// Failed calls by [`Error`] code (index = code; index 0 is unused).
pub static ERRORS: [AtomicU64; Error::ALL.len() + 1] =
    [const { AtomicU64::new(0) }; Error::ALL.len() + 1];

/// `Kernel::check_invariants` runs every this many counted syscalls; a
/// violation ends the run with the failure verdict.
pub const INVARIANT_PERIOD: u64 = 1 << 16;

/// Periodic invariant checks that passed.
pub static INVARIANT_CHECKS: AtomicU64 = AtomicU64::new(0);

/// What a call does to the flow of control.
enum Flow {
    /// Return to the caller with this result.
    Return(Result<u64, Error>),
    /// Return 0 to the caller, then run the next process.
    Yield,
    /// The caller is gone.
    Exit(u64),
    /// A message (or nothing) came back at once.
    Got(Received),
    /// The caller blocked: run someone else.
    Block,
    /// The caller blocked in `call` and woke this receiver, or in
    /// `reply_recv` after waking this caller: run it.
    SwitchTo(u64),
    /// Return to this (sanitised) context instead of the call.
    Resume(TrapFrame),
}

/// What a call returns to user space: `rax` = 0 or the [`Error`] code,
/// `rdx` = the value (0 on failure). `repr(C)` with two `u64`s is returned
/// in rax:rdx by the SysV convention the direct path relies on.
#[repr(C)]
pub struct Ret {
    /// 0 or the error code.
    pub rax: u64,
    /// The result value.
    pub rdx: u64,
}

/// Entry from the direct path in `arch::syscall`: every `local` call (see
/// [`abi::LocalCall`]), with tracing off, with its arguments still in
/// registers (the table asserts that no local call takes more than four).
/// Nothing here can switch processes: the type of the decoded call says so.
pub extern "sysv64" fn direct(a0: u64, a1: u64, a2: u64, a3: u64, num: u64) -> Ret {
    let calls = count_call();
    // The lock taken by hand rather than through `process::with`: this is
    // every memory syscall's path, and the closure's captures cost more
    // than the call.
    let mut kernel = process::KERNEL.lock();
    let Some(k) = kernel.as_mut() else {
        return encode(Err(Error::UnknownSyscall));
    };
    let pid = k.current();
    let result = match LocalCall::decode(num, &[a0, a1, a2, a3, 0, 0]) {
        Ok(call) => local(k, pid, call),
        Err(e) => Err(e),
    };
    after_call(k, calls);
    encode(result)
}

/// Counts a slow- or direct-path call; returns the new total.
#[inline(always)]
fn count_call() -> u64 {
    // A load and a store, not `fetch_add`: one CPU, interrupts off, and no
    // interrupt handler counts calls, so nothing can come between them;
    // and a locked `xadd` costs ~20 cycles on hardware.
    let calls = CALLS.load(Ordering::Relaxed) + 1;
    CALLS.store(calls, Ordering::Relaxed);
    calls
}

/// The registers for `result`; counts failures by code.
#[inline(always)]
fn encode(result: Result<u64, Error>) -> Ret {
    match result {
        Ok(value) => Ret { rax: 0, rdx: value },
        Err(e) => {
            ERRORS[e as usize].fetch_add(1, Ordering::Relaxed);
            Ret {
                rax: e as u64,
                rdx: 0,
            }
        }
    }
}

/// The periodic invariant check, every [`INVARIANT_PERIOD`] calls.
#[inline(always)]
fn after_call(k: &mut Kernel, calls: u64) {
    if calls.is_multiple_of(INVARIANT_PERIOD) {
        check_invariants(k, calls);
    }
}

#[inline(never)]
fn check_invariants(k: &mut Kernel, calls: u64) {
    match k.check_invariants() {
        Ok(()) => {
            INVARIANT_CHECKS.fetch_add(1, Ordering::Relaxed);
        }
        Err(why) => crate::invariant_broken(k, calls, &why),
    }
}

/// Zeroed frames a `yield` may add to the pool (see
/// [`crate::memory::refill_zero_pool`]).
const YIELD_REFILL: usize = 8;

/// Zeroed 64-frame blocks a `yield` may add to the pool (see
/// [`crate::memory::refill_zero_blocks`]).
const YIELD_BLOCK_REFILL: usize = 1;

/// Handles the syscall whose registers `frame` holds (from the trap path,
/// vector `SYSCALL_VECTOR`: `exit`, `yield`, and every call while tracing
/// is on), and leaves in `frame` what to return to.
pub fn dispatch(frame: &mut TrapFrame) {
    // Tracing off costs one load and branch: no TSC reads.
    let tracing = TRACE_ON.load(Ordering::Relaxed);
    let start = if tracing { crate::arch::rdtsc() } else { 0 };
    let args = [
        frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
    ];
    let num = frame.rax;
    let calls = count_call();
    let next = process::with(|k| {
        let pid = k.current();
        // A call that may block saves the caller first: whoever wakes it
        // writes its results into the saved registers.
        let decoded = Call::decode(num, &args);
        let blocking = matches!(
            decoded,
            Ok(Call::Switching(
                SwitchingCall::Send { .. }
                    | SwitchingCall::Recv { .. }
                    | SwitchingCall::Call { .. }
                    | SwitchingCall::ReplyRecv { .. }
            ))
        );
        if blocking {
            crate::sched::save_current(k, frame);
        }
        let flow = match decoded {
            Ok(Call::Switching(SwitchingCall::Yield {})) => Flow::Yield,
            Ok(Call::Switching(SwitchingCall::Exit { code })) => Flow::Exit(code),
            Ok(Call::Switching(SwitchingCall::Resume { frame: ptr })) => {
                match crate::exception::resume(k, pid, ptr) {
                    Ok(to) => Flow::Resume(to),
                    Err(e) => Flow::Return(Err(e)),
                }
            }
            Ok(Call::Switching(SwitchingCall::ReplyRecv {
                ep,
                w0,
                w1,
                cap,
                flags,
            })) => reply_recv(k, pid, ep, [w0, w1], cap, flags),
            Ok(Call::Switching(call)) => match ipc(k, pid, call) {
                // Only `recv` completes with a message (`send` with none:
                // its stub expects only rax and rdx back).
                Ok(Outcome::Done(got)) if matches!(call, SwitchingCall::Recv { .. }) => {
                    Flow::Got(got)
                }
                Ok(Outcome::Done(_)) => Flow::Return(Ok(0)),
                Ok(Outcome::Woke(to)) if matches!(call, SwitchingCall::Call { .. }) => {
                    Flow::SwitchTo(to)
                }
                Ok(Outcome::Woke(_)) => Flow::Return(Ok(0)),
                Ok(Outcome::Blocked) => Flow::Block,
                Err(e) => Flow::Return(Err(e)),
            },
            Ok(Call::Local(call)) => Flow::Return(local(k, pid, call)),
            Err(e) => Flow::Return(Err(e)),
        };
        let result = match &flow {
            Flow::Return(r) => *r,
            Flow::Got(got) => Ok(got.badge),
            Flow::Yield | Flow::Exit(_) | Flow::Block | Flow::SwitchTo(_) | Flow::Resume(_) => {
                Ok(0)
            }
        };
        let ret = encode(result);
        frame.rax = ret.rax;
        frame.rdx = ret.rdx;
        if let Flow::Got(got) = &flow {
            set_received(frame, got);
        }
        if tracing {
            trace(k, pid, num, &args, result, crate::arch::rdtsc() - start);
        }
        after_call(k, calls);
        match flow {
            Flow::Return(_) | Flow::Got(_) => crate::sched::Next::Run,
            Flow::Resume(to) => {
                *frame = to;
                crate::sched::Next::Run
            }
            Flow::Yield => {
                // The program has nothing to do for now: so much the better
                // for zeroing frames ahead of need (bounded).
                crate::memory::refill_zero_pool(YIELD_REFILL);
                crate::memory::refill_zero_blocks(YIELD_BLOCK_REFILL);
                crate::sched::save_current(k, frame);
                crate::sched::switch_after(k, pid, frame)
            }
            Flow::Block => crate::sched::switch_after(k, pid, frame),
            Flow::SwitchTo(to) => {
                // The `call` fast path: straight to the receiver it woke.
                crate::sched::switch_to(k, to, frame);
                crate::sched::Next::Run
            }
            Flow::Exit(code) => {
                process::end(k, pid, Ending::Exited(code));
                let next = crate::sched::switch_after(k, pid, frame);
                if next == crate::sched::Next::Done {
                    crate::finish(k);
                }
                next
            }
        }
    });
    crate::sched::after(next, frame);
}

/// Entry from `exo_syscall_ipc` (arch::syscall): `call` and `reply_recv`
/// while tracing is on (and the higher local numbers, which the direct path
/// takes when tracing is off), with the frame the slow path builds, for the
/// general dispatcher.
///
/// # Safety
/// Called only by `exo_syscall_ipc` with a pointer to the frame it built
/// on the kernel stack.
pub unsafe extern "C" fn ipc_entry(frame: *mut TrapFrame) {
    // SAFETY: the stub passes the frame it just pushed; nothing aliases it.
    dispatch(unsafe { &mut *frame });
}

/// Entry from the IPC fast stub (arch::syscall) for `call` with tracing
/// off, with its registers as arguments (the handle, the words, the
/// capability moved, the flags; and the segment selectors, as
/// [`UserSegments::bits`](crate::arch::gdt::UserSegments::bits)). The stub has saved the caller's registers
/// and segment selectors in its save area (see
/// [`crate::arch::syscall::ipc_saved`]). Returns the save area of the
/// process to run when the fast path switched to it (the stub loads it and
/// leaves with `sysretq`), or null with the frame to leave with in the
/// stub's slot ([`crate::arch::syscall::ipc_slot`]: the general
/// dispatcher's result; the stub leaves through the trap exit).
///
/// # Safety
/// Called only by the stub, right after it filled the running process's
/// save area, with the slot free.
pub unsafe extern "sysv64" fn ipc_call(
    h: u64,
    w0: u64,
    w1: u64,
    cap: u64,
    flags: u64,
    segments: u64,
) -> *const TrapFrame {
    let to = fast_ipc(flags, segments, |k, pid| {
        k.call_fast(pid, abi::Handle::from_raw(h), [w0, w1], cap)
    });
    // SAFETY: the stub's contract, passed on.
    unsafe { ipc_leave(to) }
}

/// [`ipc_call`]'s twin for `reply_recv`.
///
/// # Safety
/// As [`ipc_call`].
pub unsafe extern "sysv64" fn ipc_reply_recv(
    h: u64,
    w0: u64,
    w1: u64,
    cap: u64,
    flags: u64,
    segments: u64,
) -> *const TrapFrame {
    let to = fast_ipc(flags, segments, |k, pid| {
        k.reply_recv_fast(pid, abi::Handle::from_raw(h), [w0, w1], cap)
    });
    // SAFETY: the stub's contract, passed on.
    unsafe { ipc_leave(to) }
}

/// What the IPC stub returns to: `to`, the save area the fast path
/// switched to, or (it declined: null) the general dispatcher's frame in
/// the stub's slot.
///
/// # Safety
/// As [`ipc_call`]: the running process's save area was just filled by
/// the stub, and its slot is free.
#[inline(always)]
unsafe fn ipc_leave(to: Option<*const TrapFrame>) -> *const TrapFrame {
    match to {
        // `sysretq` with a non-canonical rcx faults in ring 0 (Intel): the
        // process switched to is blocked in a syscall, so its rip is the
        // canonical return address of its `syscall`; a frame that says
        // otherwise leaves through `iretq` (below), which faults in its
        // ring.
        // SAFETY: a non-null `to` is the save area of the process that runs
        // now (live until it ends, which cannot happen before it runs);
        // single CPU, interrupts off: nothing writes it meanwhile.
        Some(to) if !to.is_null() && unsafe { (*to).rip } < abi::USER_TOP => to,
        // SAFETY: the stub's contract, passed on.
        _ => unsafe { ipc_slow(to) },
    }
}

/// [`ipc_leave`] through the stub's slot and the trap exit: the general
/// dispatcher when the fast path declined (`None`), else the frame of the
/// process switched to (a rip `sysretq` must not take), or, if the switch
/// found nobody (not reached: the fast path found the process it switches
/// to live, under the lock), the scheduler's choice, as after a blocking
/// call.
///
/// # Safety
/// As [`ipc_call`].
#[cold]
#[inline(never)]
unsafe fn ipc_slow(to: Option<*const TrapFrame>) -> *const TrapFrame {
    // SAFETY: the stub's slot on the kernel stack; nothing aliases it.
    let slot = unsafe { &mut *crate::arch::syscall::ipc_slot() };
    match to {
        None => {
            // SAFETY: the running process's save area, filled by the stub
            // (the general path saves the caller from `slot`); no reference
            // to it is live (the kernel lock is free again).
            *slot = unsafe { (*crate::arch::syscall::ipc_saved()).frame };
            dispatch(slot);
        }
        Some(to) if to.is_null() => {
            let next = process::with(|k| {
                let pid = k.current();
                crate::sched::switch_after(k, pid, slot)
            });
            crate::sched::after(next, slot);
        }
        // SAFETY: as in `ipc_leave`.
        Some(to) => *slot = unsafe { to.read() },
    }
    core::ptr::null()
}

/// The IPC fast path (see `exo_core::object::fast`): a `call` without
/// flags (two words, at most one capability moved) to a receiver blocked
/// in `recv`, or such a `reply_recv` to a caller waiting for its reply
/// with nothing queued, is one state change (`op`, which returns the
/// process to run or changes nothing) and a direct switch to that process:
/// no decoding through the table, no scheduler, no copy of either side's
/// registers (the caller's are in its save area already; the stub loads
/// the other's from its own; `segments` are the selectors in the
/// registers, as bits). `None` (nothing changed) sends the call down the
/// general path.
#[inline(always)]
fn fast_ipc(
    flags: u64,
    segments: u64,
    op: impl FnOnce(&mut Kernel, u64) -> Option<u64>,
) -> Option<*const TrapFrame> {
    if flags != 0 {
        return None;
    }
    let mut kernel = process::KERNEL.lock();
    let k = kernel.as_mut()?;
    let pid = k.current();
    let next = op(k, pid)?;
    let calls = count_call();
    let to = crate::sched::switch_saved(k, next, segments);
    after_call(k, calls);
    Some(to)
}

/// The calls that may block: `send`, `recv`, `call`.
fn ipc(k: &mut Kernel, pid: u64, call: SwitchingCall) -> Result<Outcome, Error> {
    match call {
        SwitchingCall::Send {
            ep,
            w0,
            w1,
            cap,
            flags,
        } => k.send(pid, ep, [w0, w1], cap, flags),
        SwitchingCall::Call {
            ep,
            w0,
            w1,
            cap,
            flags,
        } => k.call(pid, ep, [w0, w1], cap, flags),
        SwitchingCall::Recv { ep, timeout } => k.recv(pid, ep, timeout, crate::arch::apic::ticks()),
        SwitchingCall::Exit { .. }
        | SwitchingCall::Yield {}
        | SwitchingCall::Resume { .. }
        | SwitchingCall::ReplyRecv { .. } => Err(Error::InvalidArgument),
    }
}

/// `reply_recv`: the answered caller runs next if the server blocks (the
/// server's half of the fast path: no round of the scheduler); a message
/// already queued comes back to the server at once.
fn reply_recv(
    k: &mut Kernel,
    pid: u64,
    ep: abi::Handle,
    words: [u64; 2],
    cap: u64,
    flags: u64,
) -> Flow {
    match k.reply_recv(pid, ep, words, cap, flags, crate::arch::apic::ticks()) {
        Ok(rr) => match rr.recv {
            Ok(Outcome::Done(got)) => Flow::Got(got),
            Ok(Outcome::Blocked) => Flow::SwitchTo(rr.answered),
            // `recv` wakes nobody.
            Ok(Outcome::Woke(_)) => Flow::Return(Ok(0)),
            Err(e) => Flow::Return(Err(e)),
        },
        Err(e) => Flow::Return(Err(e)),
    }
}

/// Writes a received message into the result registers (beyond `rax` and
/// `rdx`): the words in `rsi` and `rdi`, the capability in `r8`, flags in
/// `r9` (`recv`'s row in the syscall table).
fn set_received(frame: &mut TrapFrame, got: &Received) {
    frame.rsi = got.words[0];
    frame.rdi = got.words[1];
    frame.r8 = got.cap;
    frame.r9 = got.flags;
}

impl exo_core::object::SetResult for alloc::boxed::Box<crate::arch::trap::UserContext> {
    fn set_result(&mut self, rax: u64, values: [u64; 5]) {
        let f = &mut self.frame;
        f.rax = rax;
        [f.rdx, f.rsi, f.rdi, f.r8, f.r9] = values;
    }
    fn set_status(&mut self, rax: u64) {
        self.frame.rax = rax;
        self.frame.rdx = 0;
    }
}

fn trace(k: &Kernel, pid: u64, num: u64, args: &[u64; 6], result: Result<u64, Error>, cycles: u64) {
    let name = k.procs().get(pid).map(|p| p.name.as_str()).unwrap_or("?");
    crate::serial::with(|c| {
        c.begin_line();
        let _ = abi::trace::write_record(c, pid, name, num, args, result, cycles);
        c.write_bytes(b"\n");
    });
}

/// Runs a call that returns to its caller. The four hot memory calls are
/// inlined into both paths; every other one runs out of line through
/// [`cold`].
#[inline(always)]
fn local(k: &mut Kernel, pid: u64, call: LocalCall) -> Result<u64, Error> {
    match call {
        LocalCall::FrameAlloc {} => k.frame_alloc(pid),
        LocalCall::FrameFree { cap } => k.frame_free(pid, cap),
        LocalCall::Map { cap, vaddr, flags } => k.map(pid, cap, vaddr, flags),
        LocalCall::Unmap { vaddr } => k.unmap(pid, vaddr),
        LocalCall::DebugWrite { ptr, len } => cold(|| debug_write(k, pid, ptr, len)),
        LocalCall::FrameAllocAt { phys } => cold(|| k.frame_alloc_at(pid, phys)),
        LocalCall::FramePhys { cap } => cold(|| k.frame_phys(pid, cap)),
        LocalCall::FrameSeal { cap } => cold(|| k.frame_seal(pid, cap)),
        LocalCall::Reply { w0, w1, cap, flags } => {
            cold(|| k.reply(pid, [w0, w1], cap, flags).map(|_| 0))
        }
        LocalCall::EndpointCreate { publish } => cold(|| k.endpoint_create(pid, publish)),
        LocalCall::IrqBind { device, ep } => cold(|| k.irq_bind(pid, device, ep)),
        LocalCall::Iomap {
            device,
            cap,
            iova,
            flags,
        } => cold(|| {
            let r = k.iomap(pid, device, cap, iova, flags);
            process::tell_faults(k);
            r
        }),
        LocalCall::Iounmap { device, iova } => cold(|| {
            let r = k.iounmap(pid, device, iova);
            process::tell_faults(k);
            r
        }),
        LocalCall::IofaultBind { device, ep } => cold(|| {
            let r = k.iofault_bind(pid, device, ep);
            process::tell_faults(k);
            r
        }),
        LocalCall::EndpointMint { recv, badge } => cold(|| k.endpoint_mint(pid, recv, badge)),
        LocalCall::EndpointLookup { name, len } => cold(|| endpoint_lookup(k, pid, name, len)),
        LocalCall::FrameAllocContiguous {
            count,
            align,
            max_phys,
        } => cold(|| k.frame_alloc_contiguous(pid, count, align, max_phys)),
        LocalCall::ProcessFind { name, len } => cold(|| process_find(k, pid, name, len)),
        LocalCall::FrameStats { out } => cold(|| {
            let stats = k.stats(pid);
            copy_out(k, pid, out, stats.as_bytes())
        }),
        LocalCall::SysInfo { out } => cold(|| copy_out(k, pid, out, crate::sys_info().as_bytes())),
        LocalCall::CapInfo { cap, out } => cold(|| {
            let info = k.cap_info(pid, cap)?;
            copy_out(k, pid, out, info.as_bytes())
        }),
        LocalCall::ExcHandler {
            entry,
            stack_top,
            save,
        } => cold(|| crate::exception::register(k, pid, entry, stack_top, save)),
        LocalCall::Protect { vaddr, pages, prot } => k.protect(pid, vaddr, pages, prot),
        LocalCall::PageBits {
            vaddr,
            pages,
            clear,
        } => k.page_bits(pid, vaddr, pages, clear),
        LocalCall::TraceCtl { on } => {
            TRACE_ON.store(on, Ordering::Relaxed);
            Ok(0)
        }
        LocalCall::GetPid {} => Ok(pid),
        LocalCall::FrameAllocMany { count, out } => cold(|| {
            // The count, then the address rule, so that a hopeless `out`
            // allocates nothing; a page that turns out unwritable undoes
            // the call.
            if count == 0 || count > abi::bounds::BULK as u64 {
                return Err(Error::InvalidArgument);
            }
            user_range(out, count * 8)?;
            k.frame_alloc_many(pid, count, |p, handles| {
                copy_to_user(p, out, handles.as_bytes())
            })
        }),
        LocalCall::MapMany {
            handles,
            count,
            vaddr,
            flags,
        } => cold(|| {
            let handles = handles_from_user(k, pid, handles, count)?;
            k.map_many(pid, &handles, vaddr, flags)
        }),
        LocalCall::UnmapMany { vaddr, pages } => cold(|| k.unmap_many(pid, vaddr, pages)),
        LocalCall::FreeMany { handles, count } => cold(|| {
            let handles = handles_from_user(k, pid, handles, count)?;
            k.free_many(pid, &handles)
        }),
    }
}

/// The `count` handles (1 to `abi::bounds::BULK`, else `InvalidArgument`)
/// of the caller's `u64` array at `ptr`, for `map_many` and `free_many`.
fn handles_from_user(
    k: &mut Kernel,
    pid: u64,
    ptr: u64,
    count: u64,
) -> Result<Vec<abi::Handle>, Error> {
    if count == 0 || count > abi::bounds::BULK as u64 {
        return Err(Error::InvalidArgument);
    }
    let bytes = copy_from_user(k.caller(pid)?, ptr, count * 8)?;
    Ok(bytes
        .chunks_exact(8)
        .map(|c| {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(c);
            abi::Handle::from_raw(u64::from_ne_bytes(raw))
        })
        .collect())
}

/// Runs a rarely used call out of line, keeping the hot paths short.
#[inline(never)]
fn cold(f: impl FnOnce() -> Result<u64, Error>) -> Result<u64, Error> {
    f()
}

/// Writes an ABI struct's bytes to the caller's `out` (`frame_stats`,
/// `sys_info`, `cap_info`).
fn copy_out(k: &mut Kernel, pid: u64, out: u64, bytes: &[u8]) -> Result<u64, Error> {
    copy_to_user(k.caller(pid)?, out, bytes).map(|()| 0)
}

fn process_find(k: &mut Kernel, pid: u64, ptr: u64, len: u64) -> Result<u64, Error> {
    if len == 0 || len > abi::MAX_NAME_LEN as u64 {
        return Err(Error::InvalidArgument);
    }
    let name = copy_from_user(k.caller(pid)?, ptr, len)?;
    k.find(&name)
}

fn endpoint_lookup(k: &mut Kernel, pid: u64, ptr: u64, len: u64) -> Result<u64, Error> {
    if len == 0 || len > abi::MAX_NAME_LEN as u64 {
        return Err(Error::InvalidArgument);
    }
    let name = copy_from_user(k.caller(pid)?, ptr, len)?;
    k.endpoint_lookup(pid, &name)
}

/// Checks a user buffer: no overflow, entirely in the user half.
fn user_range(addr: u64, len: u64) -> Result<u64, Error> {
    let end = addr.checked_add(len).ok_or(Error::InvalidAddress)?;
    if end > USER_TOP {
        return Err(Error::InvalidAddress);
    }
    Ok(end)
}

/// Whether a mapped user page is RAM (not a device frame): the kernel only
/// copies to and from RAM, through its offset mapping. Device registers are
/// never read or written on a program's behalf (side effects), and may lie
/// outside the offset mapping altogether.
pub(crate) fn is_ram(phys: u64) -> bool {
    memory::classify(phys / PAGE) == FrameClass::Usable
}

/// The RAM frame behind user page `page` of the caller.
fn user_ram_page(p: &mut Process, page: u64, write: bool) -> Result<u64, Error> {
    match p.space.translate(page) {
        Some((phys, flags)) if (flags.write || !write) && is_ram(phys) => Ok(phys),
        _ => Err(Error::InvalidAddress),
    }
}

/// Copies user memory through the caller's page tables (never by touching
/// user addresses directly), so a bad pointer is an error, not a fault.
fn copy_from_user(p: &mut Process, addr: u64, len: u64) -> Result<Vec<u8>, Error> {
    let end = user_range(addr, len)?;
    let mut out = Vec::new();
    out.try_reserve(len as usize)
        .map_err(|_| Error::OutOfMemory)?;
    let mut at = addr;
    while at < end {
        let page = at & !(PAGE - 1);
        let phys = user_ram_page(p, page, false)?;
        let chunk = (page + PAGE).min(end) - at;
        // SAFETY: `user_ram_page` accepted `phys`: a RAM frame (never device
        // memory) mapped user-accessible in the caller's space, so it is in
        // the offset mapping; we read `chunk` bytes inside it.
        let src = unsafe {
            core::slice::from_raw_parts(memory::phys_to_virt(phys + (at - page)), chunk as usize)
        };
        out.extend_from_slice(src);
        at += chunk;
    }
    Ok(out)
}

/// Fills `out` from user memory at `addr`, as [`copy_from_user`] reads,
/// without allocating.
pub(crate) fn copy_from_user_into(p: &mut Process, addr: u64, out: &mut [u8]) -> Result<(), Error> {
    let end = user_range(addr, out.len() as u64)?;
    let mut at = addr;
    let mut done = 0usize;
    while at < end {
        let page = at & !(PAGE - 1);
        let phys = user_ram_page(p, page, false)?;
        let chunk = ((page + PAGE).min(end) - at) as usize;
        // SAFETY: as in `copy_from_user`: a RAM frame mapped user-accessible
        // in the caller's space; the read stays inside it.
        let src =
            unsafe { core::slice::from_raw_parts(memory::phys_to_virt(phys + (at - page)), chunk) };
        out[done..done + chunk].copy_from_slice(src);
        done += chunk;
        at += chunk as u64;
    }
    Ok(())
}

fn copy_to_user(p: &mut Process, addr: u64, bytes: &[u8]) -> Result<(), Error> {
    let end = user_range(addr, bytes.len() as u64)?;
    // Check every page first so that a failure writes nothing.
    let mut at = addr & !(PAGE - 1);
    while at < end {
        user_ram_page(p, at, true)?;
        at += PAGE;
    }
    let mut at = addr;
    let mut done = 0usize;
    while at < end {
        let page = at & !(PAGE - 1);
        let phys = user_ram_page(p, page, true)?;
        let chunk = ((page + PAGE).min(end) - at) as usize;
        // SAFETY: checked above: a writable user page of the caller; the
        // write stays inside the frame.
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes[done..].as_ptr(),
                memory::phys_to_virt(phys + (at - page)),
                chunk,
            );
        }
        done += chunk;
        at += chunk as u64;
    }
    Ok(())
}

fn debug_write(k: &mut Kernel, pid: u64, ptr: u64, len: u64) -> Result<u64, Error> {
    if len > abi::MAX_DEBUG_WRITE {
        return Err(Error::InvalidArgument);
    }
    let bytes = copy_from_user(k.caller(pid)?, ptr, len)?;
    crate::serial::with(|c| c.write_user(&bytes));
    Ok(len)
}
