//! One wrapper per system call: typed arguments in, `Result` out.
//!
//! Each function issues exactly one `syscall` (see [`abi`] for the calling
//! convention) and decodes `rax` with [`Error::check`]. Numbers come from
//! [`Sysnum`](abi::Sysnum), never literals. The wrappers add no policy:
//! what the kernel refuses comes back as the kernel's [`Error`].
//!
//! # Which calls are `unsafe`
//! A call is `unsafe` when it can remove memory from under live Rust
//! references: [`unmap`], [`frame_free`] (which also removes the mappings
//! made through the handle); sending a capability in a message
//! ([`crate::ipc`]) is too (a move frees the caller's handle; granting
//! `WRITE` lets another process change the frame at any time). [`map`] is safe: it only adds pages at addresses that were not
//! mapped, and reading them needs `unsafe` code of its own.
//!
//! The compiler checks that split: each wrapper calls the typed raw stub
//! that the syscall table generates ([`abi::raw`]), and the table marks
//! the stubs of calls that write user memory or remove mappings `unsafe`.
//! [`raw::syscall6`] is the escape hatch for hostile tests: any number,
//! any registers.

use crate::Error;
use abi::{CapInfo, FrameStats, Handle, IoFlags, MapFlags, SysInfo};

pub use abi::raw;

/// Decodes a stub's `(rax, rdx)`: the value, or the kernel's error.
#[inline(always)]
fn ok((rax, rdx): (u64, u64)) -> Result<u64, Error> {
    Error::check(rax).map(|()| rdx)
}

/// Writes `bytes` to the kernel console; returns how many were written.
/// At most [`abi::MAX_DEBUG_WRITE`] bytes per call (else `InvalidArgument`).
pub fn debug_write(bytes: &[u8]) -> Result<usize, Error> {
    let n = ok(raw::debug_write(bytes.as_ptr() as u64, bytes.len() as u64))?;
    Ok(n as usize)
}

/// Ends the calling process with `code`; every frame and capability it
/// holds goes back to the kernel.
pub fn exit(code: u64) -> ! {
    // `exit` does not return on success and cannot fail.
    let _ = raw::exit(code);
    loop {
        core::hint::spin_loop();
    }
}

/// Gives the CPU to the next runnable process.
pub fn yield_now() {
    // `yield` cannot fail.
    let _ = raw::yield_now();
}

/// The caller's process id.
pub fn getpid() -> u64 {
    ok(raw::getpid()).unwrap_or(0)
}

/// Allocates any free RAM frame (zeroed) and returns its capability.
pub fn frame_alloc() -> Result<Handle, Error> {
    ok(raw::frame_alloc()).map(Handle::from_raw)
}

/// Claims the frame at physical address `phys` (page aligned): free RAM
/// gives a RAM capability, a hole in the memory map an exclusive device
/// capability. `FrameInUse` if taken, `PermissionDenied` if reserved.
pub fn frame_alloc_at(phys: u64) -> Result<Handle, Error> {
    ok(raw::frame_alloc_at(phys)).map(Handle::from_raw)
}

/// Allocates `count` physically contiguous zeroed frames, the first aligned
/// to `align` frames (a power of two), the last byte below `max_phys`
/// (0 = no limit). One capability names the whole run.
pub fn frame_alloc_contiguous(count: u64, align: u64, max_phys: u64) -> Result<Handle, Error> {
    ok(raw::frame_alloc_contiguous(count, align, max_phys)).map(Handle::from_raw)
}

/// Gives capability `handle` back. Mappings made through it are removed
/// first; the frame returns to the allocator when its last holder frees it.
///
/// # Safety
/// No live reference may point into a mapping made through `handle`
/// (including the heap's, which libos owns).
pub unsafe fn frame_free(handle: Handle) -> Result<(), Error> {
    // SAFETY: the caller guarantees no reference into the mappings that go.
    ok(unsafe { raw::frame_free(handle) }).map(drop)
}

/// The physical address of the capability's first frame (needs `MAP`).
pub fn frame_phys(handle: Handle) -> Result<u64, Error> {
    ok(raw::frame_phys(handle))
}

/// Makes the frames of `handle` code, for good: `WRITE` gone, `EXEC`
/// gained (W^X per frame, see [`abi::Rights`]). The capability must be the
/// only one to its frames (`FrameInUse`), writable (`PermissionDenied`)
/// and not mapped (`AlreadyMapped`); a device frame is `InvalidArgument`.
pub fn frame_seal(handle: Handle) -> Result<(), Error> {
    ok(raw::frame_seal(handle)).map(drop)
}

/// Maps every frame of `handle` at `vaddr` (page aligned, at least
/// `0x10000`, below [`abi::USER_TOP`]); readable, plus `flags`. Needs the
/// `READ` and `MAP` rights, and `WRITE` for [`MapFlags::WRITE`].
///
/// Safe because it only adds pages where nothing was mapped
/// (`AlreadyMapped` otherwise); turning the address into a reference is
/// the caller's `unsafe` step. `WRITE|EXEC` is refused (`InvalidArgument`);
/// `EXEC` needs a sealed capability ([`frame_seal`]), `WRITE` an unsealed
/// one (`PermissionDenied` otherwise).
pub fn map(handle: Handle, vaddr: u64, flags: MapFlags) -> Result<(), Error> {
    ok(raw::map(handle, vaddr, flags)).map(drop)
}

/// Lets the PCI function of `device` (its configuration page's
/// capability) DMA to the frames of `handle` at I/O address `iova` onward,
/// for what `flags` allow (see the syscall table's `iomap` for every
/// rule). `NotSupported` where no IOMMU translates its DMA: then the
/// device reaches physical addresses (and all of memory).
///
/// # Safety
/// With [`IoFlags::WRITE`] the device may change the frames at any time:
/// nothing may hold a Rust reference to their memory while they are
/// mapped (a [`DmaBuffer`](crate::device::DmaBuffer) never hands one out).
pub unsafe fn iomap(
    device: Handle,
    handle: Handle,
    iova: u64,
    flags: IoFlags,
) -> Result<(), Error> {
    // SAFETY: the caller's promise (above) is what the stub asks.
    ok(unsafe { raw::iomap(device, handle, iova, flags) }).map(drop)
}

/// Each DMA of `device`'s function that the IOMMU blocks becomes a
/// message on `ep`'s endpoint (a kernel message, `Msg::irq`; words: the
/// I/O address, and the fault reason with [`abi::IOFAULT_WRITE`] for a
/// write). One binding per function; it lapses with the handle.
pub fn iofault_bind(device: Handle, ep: &crate::ipc::SendCap) -> Result<(), Error> {
    ok(raw::iofault_bind(device, ep.handle())).map(drop)
}

/// Removes the `iomap` mapping that starts at `iova` from `device`'s DMA
/// address space; the IOMMU's caches are flushed before it returns.
pub fn iounmap(device: Handle, iova: u64) -> Result<(), Error> {
    ok(raw::iounmap(device, iova)).map(drop)
}

/// Allocates `count` zeroed frames (1 to [`abi::bounds::BULK`]) as few
/// capabilities: one per block of 64 frames aligned to 64 (zeroed ahead
/// of need when the kernel's pool has them), one per remaining frame.
/// Writes the handles to the front of `out` (which needs room for `count`,
/// else `InvalidArgument`) and returns how many; their sizes add up to
/// `count`. All or nothing.
pub fn frame_alloc_many(count: u64, out: &mut [Handle]) -> Result<usize, Error> {
    if (out.len() as u64) < count {
        return Err(Error::InvalidArgument);
    }
    let ptr = out.as_mut_ptr() as u64;
    // SAFETY: the kernel writes at most `count` handles (`u64`s: `Handle`
    // is `repr(transparent)`) to `out`, which we borrow exclusively and has
    // room for them; nothing else refers to it during the call.
    ok(unsafe { raw::frame_alloc_many(count, ptr) }).map(|n| n as usize)
}

/// Maps the capabilities of `handles` back to back from `vaddr`, as
/// [`map`] would one at a time; all or nothing.
pub fn map_many(handles: &[Handle], vaddr: u64, flags: MapFlags) -> Result<(), Error> {
    let ptr = handles.as_ptr() as u64;
    ok(raw::map_many(ptr, handles.len() as u64, vaddr, flags)).map(drop)
}

/// Removes the mappings that tile `pages` pages from `vaddr`; all or
/// nothing.
///
/// # Safety
/// No live reference may point into those mappings.
pub unsafe fn unmap_many(vaddr: u64, pages: u64) -> Result<(), Error> {
    // SAFETY: the caller guarantees no reference into the mappings.
    ok(unsafe { raw::unmap_many(vaddr, pages) }).map(drop)
}

/// Gives every capability of `handles` back, as [`frame_free`] does; a
/// handle not held or listed twice frees nothing (`BadCapability`).
///
/// # Safety
/// No live reference may point into a mapping made through any of them.
/// `handles` itself may lie in such a mapping: the kernel reads the list
/// before it frees anything.
pub unsafe fn free_many(handles: &[Handle]) -> Result<(), Error> {
    let ptr = handles.as_ptr() as u64;
    // SAFETY: the caller guarantees no reference into the mappings that
    // go; the kernel only reads `handles`.
    ok(unsafe { raw::free_many(ptr, handles.len() as u64) }).map(drop)
}

/// Removes the mapping that starts at `vaddr`.
///
/// # Safety
/// No live reference may point into that mapping.
pub unsafe fn unmap(vaddr: u64) -> Result<(), Error> {
    // SAFETY: the caller guarantees no reference into the mapping.
    ok(unsafe { raw::unmap(vaddr) }).map(drop)
}

/// The pid of the live process called `name` (`NoSuchProcess` if none).
/// It gives no way to reach the process: that takes a send capability
/// ([`crate::ipc::SendCap::lookup`] of its published endpoint).
pub fn process_find(name: &str) -> Result<u64, Error> {
    ok(raw::process_find(name.as_ptr() as u64, name.len() as u64))
}

/// The kernel's frame counters, with the caller's share.
///
/// # Panics
/// If the kernel refuses to write to the caller's own stack (a kernel bug).
pub fn frame_stats() -> FrameStats {
    let mut stats = FrameStats::default();
    let out = &mut stats as *mut FrameStats as u64;
    // SAFETY: `out` is a local the kernel fills for the length of one
    // `FrameStats`; no reference to it lives across the call.
    if let Err(e) = ok(unsafe { raw::frame_stats(out) }) {
        panic!("frame_stats refused a stack buffer: {e}");
    }
    stats
}

/// Machine facts: physical address width, where the kernel's own pages lie.
///
/// # Panics
/// If the kernel refuses to write to the caller's own stack (a kernel bug).
pub fn sys_info() -> SysInfo {
    let mut info = SysInfo::default();
    let out = &mut info as *mut SysInfo as u64;
    // SAFETY: as for `frame_stats`: a local the kernel fills.
    if let Err(e) = ok(unsafe { raw::sys_info(out) }) {
        panic!("sys_info refused a stack buffer: {e}");
    }
    info
}

/// What capability `handle` is: its kind, size in frames, rights, and
/// (with the `MAP` right) physical address. `BadCapability` if the caller
/// holds no such handle.
pub fn cap_info(handle: Handle) -> Result<CapInfo, Error> {
    let mut info = CapInfo::default();
    let out = &mut info as *mut CapInfo as u64;
    // SAFETY: `out` is a local the kernel fills for the length of one
    // `CapInfo`; no reference to it lives across the call.
    ok(unsafe { raw::cap_info(handle, out) })?;
    Ok(info)
}

/// Switches syscall tracing (on the kernel console) on or off.
pub fn trace_ctl(on: bool) -> Result<(), Error> {
    ok(raw::trace_ctl(on)).map(drop)
}

/// Registers the caller's exception handler (see
/// [`abi::Sysnum::ExcHandler`]); all three 0 removes it. Prefer
/// [`crate::exception::register`].
///
/// # Safety
/// From now on the kernel writes an [`abi::ExceptionFrame`] at `save` and
/// runs `entry` on the stack under `stack_top` at any fault: both must be
/// memory nothing else uses, and `entry` must take the save area in `rdi`
/// and never return.
pub unsafe fn exc_handler(entry: u64, stack_top: u64, save: u64) -> Result<(), Error> {
    // SAFETY: the caller's contract, above.
    ok(unsafe { raw::exc_handler(entry, stack_top, save) }).map(drop)
}

/// Loads the context at `frame` (sanitised by the kernel, see
/// [`abi::Sysnum::Resume`]); returns only with the kernel's refusal.
///
/// # Safety
/// Continuing at the context's `rip` with its registers and stack must be
/// sound for the program (it is, for an unchanged save area).
pub unsafe fn resume(frame: *const abi::ExceptionFrame) -> Error {
    // SAFETY: the caller's contract, above.
    match ok(unsafe { raw::resume(frame as u64) }) {
        Err(e) => e,
        // Success does not come back here.
        Ok(_) => Error::Unknown(0),
    }
}

/// Changes how `pages` pages of the caller's mappings from `vaddr` may be
/// used (see [`abi::Sysnum::Protect`]), TLB flushed on return.
///
/// # Safety
/// No live reference may be used in a way the new protection forbids
/// (a `&mut` into a page made read-only, any reference into one made
/// inaccessible), unless an exception handler deals with the fault.
pub unsafe fn protect(vaddr: u64, pages: u64, prot: abi::Protection) -> Result<(), Error> {
    // SAFETY: the caller's contract, above.
    ok(unsafe { raw::protect(vaddr, pages, prot) }).map(drop)
}

/// The hardware accessed and dirty bits of `pages` (at most
/// [`abi::bounds::PAGE_BITS_PAGES`]) of the caller's pages from `vaddr`:
/// bit `2i` accessed, bit `2i + 1` dirty, of page `i`; cleared too with
/// `clear` (see [`abi::Sysnum::PageBits`]).
pub fn page_bits(vaddr: u64, pages: u64, clear: bool) -> Result<u64, Error> {
    ok(raw::page_bits(vaddr, pages, clear))
}
