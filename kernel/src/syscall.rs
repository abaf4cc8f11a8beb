//! System calls: decode the registers, check everything the caller passes,
//! act on the caller's own capabilities, write `rax`/`rdx`. One handler per
//! [`Sysnum`]; every failure is an [`Error`] value, never a panic. With
//! tracing on, each call is written to COM1 as an `abi::trace` record.
use crate::arch::paging::{MapError, PageFlags};
use crate::arch::syscall::TRACE_ON;
use crate::arch::trap::TrapFrame;
use crate::memory::{self, PAGE};
use crate::process::{self, Cap, CapKind, Ending, Kernel, MapRecord};
use abi::{Error, Handle, MapFlags, Rights, Sysnum, TRANSFER_MOVE, USER_TOP};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use exo_core::frame_alloc::AllocError;
use exo_core::memmap::FrameClass;

/// Largest contiguous request (frames): 16 MiB.
pub const MAX_CONTIGUOUS: u64 = 4096;

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

/// Entry from the direct path in `arch::syscall`: every call except `exit`
/// and `yield`, with tracing off, with its arguments still in registers
/// (no call takes more than four). Nothing here can switch processes.
pub extern "sysv64" fn direct(a0: u64, a1: u64, a2: u64, a3: u64, num: u64) -> Ret {
    let calls = count_call();
    // The lock taken by hand rather than through `process::with`: this is
    // every memory syscall's path, and the closure's captures cost more
    // than the call.
    let mut kernel = process::KERNEL.lock();
    let Some(k) = kernel.as_mut() else {
        return encode(Err(Error::UnknownSyscall));
    };
    let pid = k.current;
    // The memory path's four calls inline here; the rest through `call`.
    const FRAME_ALLOC: u64 = Sysnum::FrameAlloc as u64;
    const FRAME_FREE: u64 = Sysnum::FrameFree as u64;
    const MAP: u64 = Sysnum::Map as u64;
    const UNMAP: u64 = Sysnum::Unmap as u64;
    let result = match num {
        FRAME_ALLOC => frame_alloc(k, pid),
        FRAME_FREE => frame_free(k, pid, Handle::from_raw(a0)),
        MAP => map(k, pid, Handle::from_raw(a0), a1, a2),
        UNMAP => unmap(k, pid, a0),
        _ => match Sysnum::try_from(num) {
            Ok(sys) => call(k, pid, sys, &[a0, a1, a2, a3, 0, 0]),
            Err(_) => Err(Error::UnknownSyscall),
        },
    };
    after_call(k, calls);
    encode(result)
}

/// Counts a slow- or direct-path call; returns the new total.
#[inline(always)]
fn count_call() -> u64 {
    CALLS.fetch_add(1, Ordering::Relaxed) + 1
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
    process::with(|k| {
        let pid = k.current;
        let flow = match Sysnum::try_from(num) {
            Ok(Sysnum::Yield) => Flow::Yield,
            Ok(Sysnum::Exit) => Flow::Exit(args[0]),
            Ok(sys) => Flow::Return(call(k, pid, sys, &args)),
            Err(_) => Flow::Return(Err(Error::UnknownSyscall)),
        };
        let result = match &flow {
            Flow::Return(r) => *r,
            Flow::Yield | Flow::Exit(_) => Ok(0),
        };
        let ret = encode(result);
        frame.rax = ret.rax;
        frame.rdx = ret.rdx;
        if tracing {
            trace(k, pid, num, &args, result, crate::arch::rdtsc() - start);
        }
        after_call(k, calls);
        match flow {
            Flow::Return(_) => {}
            Flow::Yield => {
                k.save_current(frame);
                k.switch_after(pid, frame);
            }
            Flow::Exit(code) => {
                k.end(pid, Ending::Exited(code));
                if !k.switch_after(pid, frame) {
                    crate::finish(k);
                }
            }
        }
    });
}

fn trace(k: &Kernel, pid: u64, num: u64, args: &[u64; 6], result: Result<u64, Error>, cycles: u64) {
    let name = k.procs.get(&pid).map(|p| p.name.as_str()).unwrap_or("?");
    crate::serial::with(|c| {
        c.begin_line();
        let _ = abi::trace::write_record(c, pid, name, num, args, result, cycles);
        c.write_bytes(b"\n");
    });
}

fn call(k: &mut Kernel, pid: u64, sys: Sysnum, a: &[u64; 6]) -> Result<u64, Error> {
    match sys {
        Sysnum::DebugWrite => debug_write(k, pid, a[0], a[1]),
        Sysnum::FrameAlloc => frame_alloc(k, pid),
        Sysnum::FrameAllocAt => frame_alloc_at(k, pid, a[0]),
        Sysnum::FrameFree => frame_free(k, pid, Handle::from_raw(a[0])),
        Sysnum::FramePhys => {
            let cap = proc(k, pid).caps.get(Handle::from_raw(a[0]))?;
            require(cap.rights, Rights::MAP)?;
            Ok(cap.kind.frames().0 * PAGE)
        }
        Sysnum::FrameAllocContiguous => frame_alloc_contiguous(k, pid, a[0], a[1], a[2]),
        Sysnum::Map => map(k, pid, Handle::from_raw(a[0]), a[1], a[2]),
        Sysnum::Unmap => unmap(k, pid, a[0]),
        Sysnum::CapTransfer => cap_transfer(k, pid, Handle::from_raw(a[0]), a[1], a[2], a[3]),
        Sysnum::CapRecv => cap_recv(k, pid),
        Sysnum::ProcessFind => {
            if a[1] == 0 || a[1] > abi::MAX_NAME_LEN as u64 {
                return Err(Error::InvalidArgument);
            }
            let name = copy_from_user(proc(k, pid), a[0], a[1])?;
            k.procs
                .values()
                .find(|p| p.name.as_bytes() == name.as_slice())
                .map(|p| p.pid)
                .ok_or(Error::NoSuchProcess)
        }
        Sysnum::FrameStats => {
            let stats = k.stats(pid);
            copy_to_user(proc(k, pid), a[0], as_bytes(&stats))?;
            Ok(0)
        }
        Sysnum::SysInfo => {
            let info = crate::sys_info();
            copy_to_user(proc(k, pid), a[0], as_bytes(&info))?;
            Ok(0)
        }
        Sysnum::TraceCtl => match a[0] {
            0 | 1 => {
                TRACE_ON.store(a[0] == 1, Ordering::Relaxed);
                Ok(0)
            }
            _ => Err(Error::InvalidArgument),
        },
        Sysnum::GetPid => Ok(pid),
        Sysnum::Yield | Sysnum::Exit => unreachable!("handled by dispatch"),
    }
}

/// The bytes of a `repr(C)` ABI struct made only of `u64` fields.
fn as_bytes<T: Copy>(value: &T) -> &[u8] {
    // SAFETY: used only for FrameStats and SysInfo, which are repr(C) structs
    // of u64s: no padding, every byte initialised.
    unsafe {
        core::slice::from_raw_parts((value as *const T).cast::<u8>(), core::mem::size_of::<T>())
    }
}

fn proc(k: &mut Kernel, pid: u64) -> &mut process::Process {
    k.procs.running_mut(pid).expect("the caller is alive")
}

fn require(held: Rights, needed: Rights) -> Result<(), Error> {
    if held.contains(needed) {
        Ok(())
    } else {
        Err(Error::PermissionDenied)
    }
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
fn is_ram(phys: u64) -> bool {
    memory::classify(phys / PAGE) == FrameClass::Usable
}

/// The RAM frame behind user page `page` of the caller.
fn user_ram_page(p: &mut process::Process, page: u64, write: bool) -> Result<u64, Error> {
    match p.space.translate(page) {
        Some((phys, flags)) if (flags.write || !write) && is_ram(phys) => Ok(phys),
        _ => Err(Error::InvalidAddress),
    }
}

/// Copies user memory through the caller's page tables (never by touching
/// user addresses directly), so a bad pointer is an error, not a fault.
fn copy_from_user(p: &mut process::Process, addr: u64, len: u64) -> Result<Vec<u8>, Error> {
    let end = user_range(addr, len)?;
    let mut out = Vec::new();
    out.try_reserve(len as usize)
        .map_err(|_| Error::OutOfMemory)?;
    let mut at = addr;
    while at < end {
        let page = at & !(PAGE - 1);
        let phys = user_ram_page(p, page, false)?;
        let chunk = (page + PAGE).min(end) - at;
        // SAFETY: `phys` is a frame mapped user-accessible in the caller's
        // space (RAM or device); we read `chunk` bytes inside it through the
        // offset mapping.
        let src = unsafe {
            core::slice::from_raw_parts(memory::phys_to_virt(phys + (at - page)), chunk as usize)
        };
        out.extend_from_slice(src);
        at += chunk;
    }
    Ok(out)
}

fn copy_to_user(p: &mut process::Process, addr: u64, bytes: &[u8]) -> Result<(), Error> {
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
    let bytes = copy_from_user(proc(k, pid), ptr, len)?;
    crate::serial::with(|c| c.write_user(&bytes));
    Ok(len)
}

fn alloc_error(e: AllocError) -> Error {
    match e {
        AllocError::OutOfMemory => Error::OutOfMemory,
        AllocError::InUse => Error::FrameInUse,
        AllocError::Reserved => Error::PermissionDenied,
        AllocError::NotRam | AllocError::OutOfRange => Error::InvalidFrame,
        _ => Error::InvalidArgument,
    }
}

/// Puts a freshly owned run into the caller's table; on a full table the
/// run goes straight back.
fn grant(k: &mut Kernel, pid: u64, kind: CapKind, rights: Rights) -> Result<u64, Error> {
    k.own_new(kind);
    match proc(k, pid).caps.insert(Cap {
        kind,
        rights,
        mapped: 0,
    }) {
        Ok(h) => Ok(h.raw()),
        Err(e) => {
            k.drop_ref(kind);
            Err(e.into())
        }
    }
}

/// Zeroes a run just taken from the allocator (no data from its last
/// owner) and grants it to the caller with every right.
#[inline]
fn grant_ram(k: &mut Kernel, pid: u64, first: u64, count: u64) -> Result<u64, Error> {
    // SAFETY: every caller passes a run it just took from the allocator.
    unsafe { memory::zero_frames(first * PAGE, count) };
    grant(k, pid, CapKind::Ram { first, count }, Rights::ALL)
}

#[inline]
fn frame_alloc(k: &mut Kernel, pid: u64) -> Result<u64, Error> {
    let frame = memory::frames(|f| f.alloc.alloc()).map_err(alloc_error)?;
    grant_ram(k, pid, frame, 1)
}

fn frame_alloc_at(k: &mut Kernel, pid: u64, phys: u64) -> Result<u64, Error> {
    if !phys.is_multiple_of(PAGE) {
        return Err(Error::InvalidArgument);
    }
    if phys >> crate::arch::phys_addr_bits() != 0 {
        return Err(Error::InvalidFrame);
    }
    let frame = phys / PAGE;
    match memory::classify(frame) {
        FrameClass::Usable => {
            memory::frames(|f| f.alloc.alloc_at(frame)).map_err(alloc_error)?;
            grant_ram(k, pid, frame, 1)
        }
        FrameClass::Reserved => Err(Error::PermissionDenied),
        FrameClass::NotRam => {
            // Device space: for drivers only, and never the kernel's own
            // interrupt controllers (whoever programs them can inject any
            // vector or silence the timer).
            if !proc(k, pid).driver
                || phys == crate::arch::local_apic_page()
                || phys == crate::arch::IOAPIC_PAGE
            {
                return Err(Error::PermissionDenied);
            }
            if k.device_claimed(frame) {
                return Err(Error::FrameInUse);
            }
            grant(k, pid, CapKind::Device { frame }, Rights::ALL)
        }
    }
}

fn frame_alloc_contiguous(
    k: &mut Kernel,
    pid: u64,
    count: u64,
    align: u64,
    max_phys: u64,
) -> Result<u64, Error> {
    if count == 0 || count > MAX_CONTIGUOUS || align == 0 || !align.is_power_of_two() {
        return Err(Error::InvalidArgument);
    }
    let limit = if max_phys == 0 {
        None
    } else {
        Some(max_phys / PAGE)
    };
    let first =
        memory::frames(|f| f.alloc.alloc_contiguous(count, align, limit)).map_err(alloc_error)?;
    grant_ram(k, pid, first, count)
}

#[inline]
fn frame_free(k: &mut Kernel, pid: u64, h: Handle) -> Result<u64, Error> {
    let p = proc(k, pid);
    let cap = p.caps.remove(h)?;
    if cap.mapped > 0 {
        // The handle is gone from the table already; its records remain.
        Kernel::unmap_handle(p, h);
    }
    k.drop_ref(cap.kind);
    Ok(0)
}

#[inline]
fn unmap(k: &mut Kernel, pid: u64, vaddr: u64) -> Result<u64, Error> {
    // Only where `map` could have put something: no walk elsewhere.
    if !vaddr.is_multiple_of(PAGE)
        || !(exo_core::elf::USER_MIN..process::USER_MAP_TOP).contains(&vaddr)
    {
        return Err(Error::NotMapped);
    }
    if Kernel::unmap_at(proc(k, pid), vaddr) {
        Ok(0)
    } else {
        Err(Error::NotMapped)
    }
}

#[inline]
fn map(k: &mut Kernel, pid: u64, h: Handle, vaddr: u64, raw_flags: u64) -> Result<u64, Error> {
    let flags = MapFlags::from_bits(raw_flags).ok_or(Error::InvalidArgument)?;
    if flags.contains(MapFlags::WRITE | MapFlags::EXEC) {
        return Err(Error::InvalidArgument);
    }
    let p = proc(k, pid);
    // One lookup: the capability stays borrowed (its `mapped` count goes
    // up at the end) while the space and the records are used.
    let cap = p.caps.get_mut(h)?;
    require(cap.rights, Rights::MAP | Rights::READ)?;
    if flags.contains(MapFlags::WRITE) {
        require(cap.rights, Rights::WRITE)?;
    }
    let device = matches!(cap.kind, CapKind::Device { .. });
    if device && flags.contains(MapFlags::EXEC) {
        return Err(Error::InvalidArgument);
    }
    let (first, count) = cap.kind.frames();
    // Each mapping costs kernel heap: a process gets a bounded number.
    if p.mappings.len() >= process::MAX_MAPPINGS {
        return Err(Error::OutOfMemory);
    }
    if !vaddr.is_multiple_of(PAGE) || vaddr < exo_core::elf::USER_MIN {
        return Err(Error::InvalidAddress);
    }
    let end = vaddr
        .checked_add(count * PAGE)
        .filter(|&end| end <= process::USER_MAP_TOP)
        .ok_or(Error::InvalidAddress)?;
    // Multi-page runs are checked first so that a refusal maps nothing
    // (a single page is checked by `map` itself).
    let mut page = vaddr;
    while count > 1 && page < end {
        if p.space.is_mapped(page) {
            return Err(Error::AlreadyMapped);
        }
        page += PAGE;
    }
    let pf = PageFlags {
        write: flags.contains(MapFlags::WRITE),
        exec: flags.contains(MapFlags::EXEC),
        uncached: device || flags.contains(MapFlags::UNCACHED),
    };
    let slot = p
        .mappings
        .insert(MapRecord {
            start: vaddr,
            handle: h,
            pages: count,
        })
        .map_err(|_| Error::OutOfMemory)?;
    let tag = Some(slot as crate::arch::paging::Tag);
    for i in 0..count {
        if let Err(e) = p.space.map(vaddr + i * PAGE, (first + i) * PAGE, pf, tag) {
            for j in 0..i {
                p.space.unmap(vaddr + j * PAGE);
            }
            p.mappings.remove(slot);
            return Err(match e {
                MapError::AlreadyMapped => Error::AlreadyMapped,
                MapError::OutOfMemory => Error::OutOfMemory,
            });
        }
    }
    cap.mapped += 1;
    Ok(0)
}

fn cap_transfer(
    k: &mut Kernel,
    pid: u64,
    h: Handle,
    target: u64,
    raw_rights: u64,
    flags: u64,
) -> Result<u64, Error> {
    if flags & !TRANSFER_MOVE != 0 {
        return Err(Error::InvalidArgument);
    }
    let rights = Rights::from_bits(raw_rights).ok_or(Error::InvalidArgument)?;
    let cap = *proc(k, pid).caps.get(h)?;
    require(cap.rights, Rights::TRANSFER)?;
    require(cap.rights, rights)?;
    let receiver = k.procs.get_mut(&target).ok_or(Error::NoSuchProcess)?;
    if receiver.inbox.len() >= process::INBOX_CAPACITY {
        return Err(Error::CapTableFull);
    }
    receiver.inbox.push_back(Cap {
        kind: cap.kind,
        rights,
        mapped: 0,
    });
    k.add_ref(cap.kind);
    if flags & TRANSFER_MOVE != 0 {
        frame_free(k, pid, h)?;
    }
    Ok(0)
}

fn cap_recv(k: &mut Kernel, pid: u64) -> Result<u64, Error> {
    let p = proc(k, pid);
    let cap = p.inbox.pop_front().ok_or(Error::WouldBlock)?;
    match p.caps.try_insert(cap) {
        Ok(h) => Ok(h.raw()),
        Err((e, cap)) => {
            p.inbox.push_front(cap);
            Err(e.into())
        }
    }
}
