//! test-endpoints-peer: publishes an endpoint, receives one call and exits
//! without replying: the caller (`test-endpoints`) must wake with
//! `NoSuchProcess`, not hang.
#![no_std]
#![no_main]

use libos::ipc::Endpoint;
use libos::{println, Error};

libos::entry!(main);

fn main() -> Result<(), Error> {
    let ep = Endpoint::create(true)?;
    let msg = ep.recv(abi::FOREVER)?;
    println!(
        "test-endpoints-peer: got a call ({}), exiting without a reply",
        msg.call
    );
    Ok(())
}
