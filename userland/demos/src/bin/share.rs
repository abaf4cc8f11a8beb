//! share: hands a frame to another process and reads its reply.
//!
//! Allocates a frame, maps it, writes a message, finds `share-peer` by
//! name, gives it a copy of the capability (READ|WRITE|MAP) and polls the
//! page until the peer's reply appears. Both processes then hold the same
//! physical frame; it goes back to the allocator when the last one lets go.
//!
//! Page layout (shared with `share-peer.rs`): a length byte then the text,
//! at [`MESSAGE_AT`] for the message and [`REPLY_AT`] for the reply. The
//! writer stores the text first and the length last, so a reader that sees
//! a non-zero length sees the whole text.
#![no_std]
#![no_main]

use libos::{println, sys, Error, Frame, MapFlags, Mapping, Rights};

libos::entry!(main);

/// Where the message starts (must match `share-peer.rs`).
const MESSAGE_AT: usize = 0;
/// Where the reply starts (must match `share-peer.rs`).
const REPLY_AT: usize = 2048;
const MESSAGE: &str = "hello through a shared frame";
/// Yields before giving up on the peer.
const PATIENCE: u32 = 100_000;

fn main() -> Result<(), Error> {
    let mut frame = Frame::alloc()?;
    let mut page = Mapping::new(&mut frame, MapFlags::WRITE)?;
    page.volatile_write(MESSAGE_AT + 1, MESSAGE.as_bytes());
    page.volatile_write(MESSAGE_AT, &[MESSAGE.len() as u8]);
    println!("share: wrote {MESSAGE:?} at {:#x}", page.address());

    let peer = find("share-peer")?;
    let rights = Rights::READ | Rights::WRITE | Rights::MAP;
    // SAFETY: a copy (no move), so our mapping stays; from here the peer
    // may write the page, and we read it only with volatile accesses.
    unsafe { sys::cap_transfer(page.handle(), peer, rights, false) }?;
    println!("share: sent the frame to share-peer (pid {peer}) with {rights:?}");

    let mut waited = 0;
    let len = loop {
        let mut len = [0u8];
        page.volatile_read(REPLY_AT, &mut len);
        if len[0] != 0 {
            break len[0] as usize;
        }
        if waited == PATIENCE {
            println!("share: no reply after {PATIENCE} yields");
            return Err(Error::WouldBlock);
        }
        waited += 1;
        sys::yield_now();
    };
    let mut reply = [0u8; 255];
    page.volatile_read(REPLY_AT + 1, &mut reply[..len]);
    let reply = core::str::from_utf8(&reply[..len]).map_err(|_| Error::InvalidArgument)?;
    println!("share: peer replied: {reply}");
    println!("share: ok");
    Ok(())
}

/// The pid of process `name`, waiting (a bounded while) for it to appear.
fn find(name: &str) -> Result<u64, Error> {
    for _ in 0..PATIENCE {
        match sys::process_find(name) {
            Err(Error::NoSuchProcess) => sys::yield_now(),
            other => return other,
        }
    }
    Err(Error::NoSuchProcess)
}
