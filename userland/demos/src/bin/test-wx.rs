//! test-wx: W^X holds per frame, not just per mapping. The attack the
//! hostile review used: write code through a writable mapping of a frame,
//! map the same frame executable at a second address and run it (then
//! patch it through the first). Refused: only a sealed capability maps
//! executable, and sealing needs the only capability to the frame, mapped
//! nowhere, and takes its WRITE away for good. The program then does what
//! a JIT does the legal way (write, unmap, seal, map executable, run) and
//! shows the code cannot be made writable again, here or in a copy.
#![no_std]
#![no_main]

use libos::{println, sys, Error, Handle, MapFlags, Rights};

libos::entry!(main);

const WRITABLE_AT: u64 = 0x5000_0000_0000;
const ALIAS_AT: u64 = 0x5000_0001_0000;
/// `mov eax, 42; ret`
const CODE: [u8; 6] = [0xb8, 42, 0, 0, 0, 0xc3];

fn check(what: &str, got: Result<(), Error>, want: Result<(), Error>) -> Result<(), Error> {
    if got == want {
        match got {
            Ok(()) => println!("test-wx: {what}: ok"),
            Err(e) => println!("test-wx: {what}: refused: {e:?}"),
        }
        Ok(())
    } else {
        println!("test-wx: FAILED: {what}: got {got:?}, expected {want:?}");
        Err(Error::InvalidArgument)
    }
}

fn main() -> Result<(), Error> {
    let frame: Handle = sys::frame_alloc()?;
    sys::map(frame, WRITABLE_AT, MapFlags::WRITE)?;
    // SAFETY: just mapped writable at WRITABLE_AT, our own page.
    unsafe { core::ptr::copy_nonoverlapping(CODE.as_ptr(), WRITABLE_AT as *mut u8, CODE.len()) };
    check(
        "the written frame mapped executable at a second address",
        sys::map(frame, ALIAS_AT, MapFlags::EXEC),
        Err(Error::PermissionDenied),
    )?;
    check(
        "sealing while it is mapped",
        sys::frame_seal(frame),
        Err(Error::AlreadyMapped),
    )?;
    // SAFETY: nothing refers to the page at WRITABLE_AT (raw pointer only).
    unsafe { sys::unmap(WRITABLE_AT)? };
    // A second capability to the frame (a copy sent to ourselves; we
    // access the frame only through raw pointers).
    let copy = libos::ipc::copy_with(frame, Rights::WRITABLE)?;
    check(
        "sealing while another capability names the frame",
        sys::frame_seal(frame),
        Err(Error::FrameInUse),
    )?;
    // SAFETY: the copy is mapped nowhere.
    unsafe { sys::frame_free(copy)? };
    check(
        "sealing the only, unmapped capability",
        sys::frame_seal(frame),
        Ok(()),
    )?;
    check(
        "the sealed frame mapped writable",
        sys::map(frame, WRITABLE_AT, MapFlags::WRITE),
        Err(Error::PermissionDenied),
    )?;
    check(
        "a copy of the sealed frame with WRITE",
        libos::ipc::copy_with(frame, Rights::WRITABLE).map(drop),
        Err(Error::PermissionDenied),
    )?;
    check(
        "the sealed frame mapped executable",
        sys::map(frame, ALIAS_AT, MapFlags::EXEC),
        Ok(()),
    )?;
    // SAFETY: ALIAS_AT maps, executable, the frame holding CODE (a
    // complete function in the C ABI: it returns 42 in eax).
    let run: extern "C" fn() -> u32 = unsafe { core::mem::transmute(ALIAS_AT as usize) };
    let answer = run();
    println!("test-wx: the sealed code ran and returned {answer}");
    if answer != 42 {
        return Err(Error::InvalidArgument);
    }
    println!("test-wx: ok");
    Ok(())
}
