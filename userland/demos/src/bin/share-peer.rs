//! share-peer: receives a frame from `share`, reads it and replies in it.
//!
//! Publishes an endpoint and blocks in `recv` until a call arrives. It
//! takes it only from `share`: the badge is the caller's pid, stamped by
//! the kernel, so a process that ran first cannot pass itself off as
//! `share` (the inbox could not tell). Maps the frame, reads the message,
//! writes a reply, gives its handle back and answers the call. The frame
//! stays alive: `share` still holds it. See `share.rs` for the page layout.
#![no_std]
#![no_main]

use libos::ipc::{self, Endpoint};
use libos::{println, sys, Error, Frame, MapFlags, Mapping};

libos::entry!(main);

/// Where the message starts (must match `share.rs`).
const MESSAGE_AT: usize = 0;
/// Where the reply starts (must match `share.rs`).
const REPLY_AT: usize = 2048;
/// Timer ticks to wait for `share`'s call.
const PATIENCE: u64 = 1000;

fn main() -> Result<(), Error> {
    let service = Endpoint::create(true)?;
    let share = sys::process_find("share")?;
    let msg = service.recv(PATIENCE)?;
    let Some(handle) = msg.cap.filter(|_| msg.badge == share && msg.call) else {
        println!(
            "share-peer: FAILED: a message from pid {} (share is {share})",
            msg.badge
        );
        return Err(Error::PermissionDenied);
    };
    // SAFETY: the message gave us this handle: we own it and nothing else
    // frees it (its size comes from the kernel). `share` may write the page, so we use volatile accesses.
    let mut frame = unsafe { Frame::from_raw(handle)? };
    let mut page = Mapping::new(&mut frame, MapFlags::WRITE)?;

    let mut len = [0u8];
    page.volatile_read(MESSAGE_AT, &mut len);
    let mut message = [0u8; 255];
    let message = &mut message[..len[0] as usize];
    page.volatile_read(MESSAGE_AT + 1, message);
    let message = core::str::from_utf8(message).map_err(|_| Error::InvalidArgument)?;
    println!("share-peer: received: {message}");

    let mut reply = [0u8; 64];
    let reply = format_into(
        &mut reply,
        format_args!("got it, thanks (pid {})", sys::getpid()),
    );
    page.volatile_write(REPLY_AT + 1, reply);
    page.volatile_write(REPLY_AT, &[reply.len() as u8]);
    drop(page);
    drop(frame); // our handle goes; `share` still holds the frame
    ipc::reply([reply.len() as u64, 0])?;
    println!("share-peer: ok");
    Ok(())
}

/// Formats `args` into `buf` (truncating) and returns the bytes written.
fn format_into<'a>(buf: &'a mut [u8], args: core::fmt::Arguments<'_>) -> &'a [u8] {
    struct Cursor<'b>(&'b mut [u8], usize);
    impl core::fmt::Write for Cursor<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let n = s.len().min(self.0.len() - self.1);
            self.0[self.1..self.1 + n].copy_from_slice(&s.as_bytes()[..n]);
            self.1 += n;
            Ok(())
        }
    }
    let mut cursor = Cursor(buf, 0);
    let _ = core::fmt::Write::write_fmt(&mut cursor, args);
    let len = cursor.1;
    &buf[..len]
}
