//! test-nmi-printer: writes long lines while `test-nmi-driver` has its
//! device raise NMIs, so that some land while the kernel holds the console
//! (each `debug_write` of a line takes it for the whole line).
#![no_std]
#![no_main]

use libos::{println, sys, Error};

libos::entry!(main);

fn main() -> Result<(), Error> {
    let line = [b'='; 400];
    let text = core::str::from_utf8(&line).unwrap_or("");
    let mut lines = 0;
    while sys::process_find("test-nmi-driver").is_ok() || lines < 20 {
        println!("test-nmi-printer: {text}");
        lines += 1;
    }
    println!("test-nmi-printer: wrote {lines} long lines");
    Ok(())
}
