//! frames: the whole frame API, each step checked.
//!
//! Allocate, map, write and read back; physical addresses; allocate-at a
//! chosen frame (and be refused while it is held); contiguous DMA runs with
//! alignment and an address limit; forged, stale and freed handles; maps
//! the kernel must refuse; and at the end the caller's frame count is back
//! where it started, because every `Frame`, `Mapping` and `DmaBuffer`
//! gives its resources back on drop. Any failed check prints why and exits
//! with 1.
#![no_std]
#![no_main]

use libos::{
    println, sys, CapKindCode, DmaBuffer, Error, Frame, Handle, MapFlags, Mapping, Rights,
    PAGE_SIZE,
};

libos::entry!(main);

/// A check failed: says why and gives the error `main` exits with.
fn failed(why: core::fmt::Arguments<'_>) -> Error {
    println!("frames: FAILED: {why}");
    Error::InvalidArgument
}

/// Checks that `result` is the refusal `expected` and prints it.
fn refused<T>(what: &str, result: Result<T, Error>, expected: Error) -> Result<(), Error> {
    match result {
        Err(e) if e == expected => {
            println!("frames: {what} refused: {e}");
            Ok(())
        }
        Err(e) => Err(failed(format_args!("{what}: expected {expected}, got {e}"))),
        Ok(_) => Err(failed(format_args!("{what} was not refused"))),
    }
}

/// A byte of the test pattern at `i` (not periodic in a page).
fn pattern(i: usize, seed: u8) -> u8 {
    (i as u8).wrapping_mul(31) ^ ((i >> 8) as u8) ^ seed
}

/// Checks that every byte of `page` is zero.
fn all_zero(page: &Mapping<'_>, what: &str) -> Result<(), Error> {
    all_zero_bytes(page.as_slice(), what)?;
    println!("frames: {what} reads as zero");
    Ok(())
}

/// Checks that every byte of `bytes` is zero (volatile reads).
fn all_zero_bytes(bytes: &[u8], what: &str) -> Result<(), Error> {
    for i in 0..bytes.len() {
        // SAFETY: `i` is in bounds of a live slice.
        let got = unsafe { core::ptr::read_volatile(bytes.as_ptr().add(i)) };
        if got != 0 {
            return Err(failed(format_args!("{what}: byte {i} is {got:#x}, not 0")));
        }
    }
    Ok(())
}

/// Checks that every byte of a DMA buffer is zero (its volatile reads).
fn dma_all_zero(dma: &DmaBuffer, what: &str) -> Result<(), Error> {
    for i in 0..dma.len() {
        let got = dma.read8(i);
        if got != 0 {
            return Err(failed(format_args!("{what}: byte {i} is {got:#x}, not 0")));
        }
    }
    Ok(())
}

/// Fills a DMA buffer with the pattern with `copy_from` and reads it back
/// with `copy_to` (a stack chunk at a time: no heap, whose frames would
/// count as held), then one `u64` with `write64` and `read64`.
fn dma_write_and_check(dma: &mut DmaBuffer, seed: u8) -> Result<(), Error> {
    let mut chunk = [0u8; 256];
    for start in (0..dma.len()).step_by(chunk.len()) {
        for (j, b) in chunk.iter_mut().enumerate() {
            *b = pattern(start + j, seed);
        }
        dma.copy_from(start, &chunk);
    }
    for start in (0..dma.len()).step_by(chunk.len()) {
        dma.copy_to(start, &mut chunk);
        if let Some(j) = (0..chunk.len()).find(|&j| chunk[j] != pattern(start + j, seed)) {
            return Err(failed(format_args!(
                "DMA byte {}: wrote {:#x}, read {:#x}",
                start + j,
                pattern(start + j, seed),
                chunk[j]
            )));
        }
    }
    let at = dma.len() - 8;
    let word = 0x0123_4567_89ab_cdef_u64 ^ u64::from(seed);
    dma.write64(at, word);
    let got = dma.read64(at);
    if got != word || dma.read8(at) != word as u8 {
        return Err(failed(format_args!(
            "DMA word at {at:#x}: wrote {word:#x}, read {got:#x}"
        )));
    }
    Ok(())
}

/// Fills `bytes` with the pattern, then reads every byte back.
fn write_and_check(bytes: &mut [u8], seed: u8) -> Result<(), Error> {
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = pattern(i, seed);
    }
    // Volatile reads: really go to memory, not to what the compiler remembers.
    for i in 0..bytes.len() {
        // SAFETY: `i` is in bounds of a live slice.
        let got = unsafe { core::ptr::read_volatile(bytes.as_ptr().add(i)) };
        if got != pattern(i, seed) {
            return Err(failed(format_args!(
                "byte {i}: wrote {:#x}, read {got:#x}",
                pattern(i, seed)
            )));
        }
    }
    Ok(())
}

fn main() -> Result<(), Error> {
    let before = sys::frame_stats();
    println!(
        "frames: baseline: {} frames total, {} free, {} held by me",
        before.total, before.free, before.held_by_caller
    );

    // Allocate, map, write, read back, free.
    let mut frame = Frame::alloc()?;
    let phys = frame.phys()?;
    println!("frames: allocated a frame at phys {phys:#x}");
    {
        let mut page = Mapping::new(&mut frame, MapFlags::WRITE)?;
        if page.as_slice().iter().any(|&b| b != 0) {
            return Err(failed(format_args!("a fresh frame is not zeroed")));
        }
        write_and_check(page.as_mut_slice(), 0x5a)?;
        println!(
            "frames: mapped it at {:#x}, wrote and read back {} bytes",
            page.address(),
            page.len()
        );
        // Mapping the same address twice is refused.
        refused(
            "map over a mapping",
            sys::map(page.handle(), page.address(), MapFlags::NONE),
            Error::AlreadyMapped,
        )?;
    } // unmapped here
      // An address libos reserved but never mapped.
    let spare = libos::mem::reserve_pages(1)?;
    // SAFETY: nothing is mapped at `spare`, so nothing refers into it.
    let unmapped = unsafe { sys::unmap(spare) };
    refused("unmap of an unmapped page", unmapped, Error::NotMapped)?;
    // Allocate-at: the frame just freed is free RAM again. Claimed right
    // after the free, before anything is printed: beside other programs
    // that allocate (demandheap, growstack), a preemption in a slow serial
    // write between the two let another take it (the lowest free frame).
    drop(frame);
    let again = Frame::alloc_at(phys);
    println!("frames: freed it");
    let again = again?;
    if again.phys()? != phys {
        return Err(failed(format_args!(
            "allocate-at {phys:#x} gave another frame"
        )));
    }
    println!("frames: allocate-at {phys:#x} again: ok");
    // The frame was full of the pattern when freed: every byte must have
    // been cleared before it came back.
    let mut again = again;
    all_zero(&Mapping::new(&mut again, MapFlags::NONE)?, "a reused frame")?;
    refused(
        "allocate-at a held frame",
        Frame::alloc_at(phys),
        Error::FrameInUse,
    )?;
    drop(again);

    // The pool of zeroed frames: 64 frames filled with the pattern and
    // freed are then the lowest free ones (the allocator hands out the
    // lowest first); a `yield` lets the kernel zero the lowest free frames
    // into its pool, and the frames that come from the pool must read as
    // zero without being zeroed on the call.
    // (Arrays, not the heap: its frames would count as held.)
    let mut dirty: [Option<Frame>; 64] = core::array::from_fn(|_| None);
    let mut dirty_phys = [0u64; 64];
    for (slot, phys) in dirty.iter_mut().zip(&mut dirty_phys) {
        let mut f = Frame::alloc()?;
        write_and_check(Mapping::new(&mut f, MapFlags::WRITE)?.as_mut_slice(), 0xa5)?;
        *phys = f.phys()?;
        *slot = Some(f);
    }
    drop(dirty);
    // Each `yield` refills the pool; beside other programs, they may take
    // what it refilled before we look, so yield until it holds a frame
    // (a bounded while).
    let mut pooled = 0;
    for _ in 0..100 {
        sys::yield_now();
        pooled = sys::frame_stats().zeroed;
        if pooled > 0 {
            break;
        }
    }
    let mut from_pool: [Option<Frame>; 64] = core::array::from_fn(|_| None);
    let mut were_dirty = 0;
    for slot in from_pool.iter_mut().take(pooled as usize) {
        let mut f = Frame::alloc()?;
        were_dirty += usize::from(dirty_phys.contains(&f.phys()?));
        all_zero_bytes(
            Mapping::new(&mut f, MapFlags::NONE)?.as_slice(),
            "a pooled frame",
        )?;
        *slot = Some(f);
    }
    if pooled == 0 {
        return Err(failed(format_args!(
            "no zeroed frame in the pool after 100 yields"
        )));
    }
    drop(from_pool);
    // Alone, the frames just dirtied are the lowest free ones and come
    // back through the pool (the tests that run this program alone require
    // that line); beside other programs, theirs may be lower.
    if were_dirty > 0 {
        println!(
            "frames: {pooled} frames from the zeroed pool read as zero, {were_dirty} of them dirtied and freed by us"
        );
    } else {
        println!("frames: {pooled} frames from the zeroed pool read as zero (none of ours: other programs' frames were lower)");
    }

    // Contiguous runs (DMA buffers).
    let mut dma = DmaBuffer::new(16, 16, 0)?;
    let run = 16 * PAGE_SIZE;
    if dma.phys() % run != 0 {
        return Err(failed(format_args!(
            "run at {:#x} is not 64 KiB aligned",
            dma.phys()
        )));
    }
    dma_write_and_check(&mut dma, 0xa5)?;
    println!(
        "frames: contiguous: 16 frames at phys {:#x} (aligned to 16 frames), {} bytes written and read back",
        dma.phys(),
        dma.len()
    );
    let dma_phys = dma.phys();
    drop(dma);
    // The same request again (normally the lowest fitting run: the one
    // just freed, full of the pattern). Whichever run it is, it must read
    // as zero.
    let dma = DmaBuffer::new(16, 16, 0)?;
    dma_all_zero(&dma, "a reallocated 16-frame run")?;
    println!(
        "frames: contiguous: a reallocated run reads as zero ({})",
        if dma.phys() == dma_phys {
            "the same run"
        } else {
            "another run"
        }
    );
    drop(dma);
    let limit = 16 << 20;
    let mut low = DmaBuffer::new(4, 1, limit)?;
    if low.phys() + low.len() as u64 > limit {
        return Err(failed(format_args!(
            "run at {:#x} crosses 16 MiB",
            low.phys()
        )));
    }
    dma_write_and_check(&mut low, 0x3c)?;
    println!(
        "frames: contiguous below 16 MiB: 4 frames at phys {:#x}",
        low.phys()
    );
    drop(low);

    // What a capability is, asked of the kernel: a run handed around as a
    // raw handle comes back as a `Frame` of the right size.
    let run = Frame::alloc_contiguous(4, 1, 0)?;
    let run_phys = run.phys()?;
    let info = sys::cap_info(run.handle())?;
    if info.cap_kind() != Some(CapKindCode::RamRun)
        || info.frames != 4
        || info.rights() != Some(Rights::WRITABLE)
        || info.phys() != Some(run_phys)
    {
        return Err(failed(format_args!("cap_info of a 4-frame run: {info:?}")));
    }
    // SAFETY: `into_raw` gave the handle up to us: nothing else frees it,
    // and only this process maps it.
    let mut run = unsafe { Frame::from_raw(run.into_raw())? };
    let pages = run.pages();
    let mut single = Frame::alloc()?;
    {
        // The whole run is mapped, so the next mapping lands past it.
        let mut whole = Mapping::new(&mut run, MapFlags::WRITE)?;
        whole.as_mut_slice()[4 * PAGE_SIZE as usize - 1] = 1;
        let next = Mapping::new(&mut single, MapFlags::NONE)?;
        drop(next);
    }
    println!(
        "frames: cap_info: a run of {} frames at phys {run_phys:#x} with {:?}; from_raw took {pages} pages",
        info.frames,
        Rights::WRITABLE
    );
    drop((run, single));

    // Handles the kernel must not honour.
    let forged = Handle::from_raw(0x5eed_f00d_dead_beef);
    refused(
        "forged handle",
        sys::frame_phys(forged),
        Error::BadCapability,
    )?;
    let freed = sys::frame_alloc()?;
    // SAFETY: the handle was never mapped.
    unsafe { sys::frame_free(freed) }?;
    refused("freed handle", sys::frame_phys(freed), Error::BadCapability)?;
    refused(
        "cap_info of a freed handle",
        sys::cap_info(freed),
        Error::BadCapability,
    )?;
    // The freed slot is reused by the next allocation (with a new generation).
    let stale = sys::frame_alloc()?;
    // SAFETY: never mapped.
    unsafe { sys::frame_free(stale) }?;
    let fresh = Frame::alloc()?;
    refused("stale handle", sys::frame_phys(stale), Error::BadCapability)?;
    refused(
        "map through a stale handle",
        sys::map(stale, spare, MapFlags::NONE),
        Error::BadCapability,
    )?;

    // Maps the kernel must refuse (through the live `fresh`).
    let h = fresh.handle();
    refused(
        "map W+X",
        sys::map(h, spare, MapFlags::WRITE | MapFlags::EXEC),
        Error::InvalidArgument,
    )?;
    refused(
        "map into the kernel half",
        sys::map(h, 0xffff_8000_0000_0000, MapFlags::NONE),
        Error::InvalidAddress,
    )?;
    refused(
        "map non-canonical",
        sys::map(h, 0x0000_8000_0000_0000, MapFlags::NONE),
        Error::InvalidAddress,
    )?;
    refused(
        "map page zero",
        sys::map(h, 0, MapFlags::NONE),
        Error::InvalidAddress,
    )?;
    refused(
        "map unaligned",
        sys::map(h, spare + 8, MapFlags::NONE),
        Error::InvalidAddress,
    )?;
    drop(fresh);
    let info = sys::sys_info();
    refused(
        "allocate-at the kernel image",
        sys::frame_alloc_at(info.kernel_image_phys),
        Error::PermissionDenied,
    )?;

    let after = sys::frame_stats();
    println!(
        "frames: held before {}, after {}",
        before.held_by_caller, after.held_by_caller
    );
    if after.held_by_caller != before.held_by_caller {
        return Err(failed(format_args!("frames leaked")));
    }
    println!("frames: ok");
    Ok(())
}
