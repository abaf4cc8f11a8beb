//! share: hands a frame to another process and reads its reply.
//!
//! Allocates a frame, maps it, writes a message, finds the endpoint
//! `share-peer` published, and `call`s it with a copy of the capability:
//! blocked until the peer replies, then reads the peer's answer in the
//! page. Both processes hold the same physical frame meanwhile; it goes
//! back to the allocator when the last one lets go. The peer knows the
//! call is ours: the kernel badged our send capability with our pid.
//!
//! Page layout (shared with `share-peer.rs`): a length byte then the text,
//! at [`MESSAGE_AT`] for the message and [`REPLY_AT`] for the reply. The
//! writer stores the text first and the length last, so a reader that sees
//! a non-zero length sees the whole text.
#![no_std]
#![no_main]

use libos::ipc::SendCap;
use libos::{println, sys, Error, Frame, MapFlags, Mapping};

libos::entry!(main);

/// Where the message starts (must match `share-peer.rs`).
const MESSAGE_AT: usize = 0;
/// Where the reply starts (must match `share-peer.rs`).
const REPLY_AT: usize = 2048;
const MESSAGE: &str = "hello through a shared frame";
/// Yields before giving up on the peer's endpoint.
const PATIENCE: u32 = 100_000;

fn main() -> Result<(), Error> {
    let mut frame = Frame::alloc()?;
    let mut page = Mapping::new(&mut frame, MapFlags::WRITE)?;
    page.volatile_write(MESSAGE_AT + 1, MESSAGE.as_bytes());
    page.volatile_write(MESSAGE_AT, &[MESSAGE.len() as u8]);
    println!("share: wrote {MESSAGE:?} at {:#x}", page.address());

    let peer = find("share-peer")?;
    // SAFETY: a copy (no move), so our mapping stays; from here the peer
    // may write the page, and we read it only with volatile accesses.
    let answer = unsafe { peer.call_cap([MESSAGE.len() as u64, 0], page.handle(), true) }?;
    println!(
        "share: share-peer answered the call ({} bytes of reply)",
        answer.words[0]
    );
    let mut len = [0u8];
    page.volatile_read(REPLY_AT, &mut len);
    let len = len[0] as usize;
    if len == 0 || len as u64 != answer.words[0] {
        println!(
            "share: FAILED: the page holds no reply of {} bytes",
            answer.words[0]
        );
        return Err(Error::InvalidArgument);
    }
    let mut reply = [0u8; 255];
    page.volatile_read(REPLY_AT + 1, &mut reply[..len]);
    let reply = core::str::from_utf8(&reply[..len]).map_err(|_| Error::InvalidArgument)?;
    println!("share: peer replied: {reply}");
    println!("share: ok");
    Ok(())
}

/// A send capability to the endpoint `name` published, waiting (a bounded
/// while) for it to be published: the peer may not have run yet.
fn find(name: &str) -> Result<SendCap, Error> {
    for _ in 0..PATIENCE {
        match SendCap::lookup(name) {
            Err(Error::NoSuchProcess) => sys::yield_now(),
            other => return other,
        }
    }
    Err(Error::NoSuchProcess)
}
