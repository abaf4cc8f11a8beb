//! test-deadlock: blocks for ever, alone: `recv` without a timeout on an
//! endpoint nobody else can send to. Nothing can wake it (no timeout, no
//! bound interrupt), so the kernel must say so and end the run instead of
//! halting for ever.
#![no_std]
#![no_main]

use libos::ipc::Endpoint;
use libos::{println, Error};

libos::entry!(main);

fn main() -> Result<(), Error> {
    let ep = Endpoint::create(false)?;
    println!("test-deadlock: waiting for a message nobody can send");
    let got = ep.recv(abi::FOREVER);
    println!("test-deadlock: NOT STOPPED: recv returned {got:?}");
    Ok(())
}
