//! pong: a service on an endpoint. It publishes an endpoint under its name
//! and answers each `call` with the number plus one, until a caller sends
//! 0; a frame capability that comes with a call is read, stamped and sent
//! back with the reply. It blocks in `recv` between calls: no polling.
#![no_std]
#![no_main]

use libos::ipc::{self, Endpoint};
use libos::{println, Error, MapFlags};

libos::entry!(main);

fn main() -> Result<(), Error> {
    let service = Endpoint::create(true)?;
    let mut answered = 0u64;
    loop {
        let msg = service.recv(abi::FOREVER)?;
        if !msg.call {
            println!(
                "pong: a message that is not a call (badge {}): ignored",
                msg.badge
            );
            continue;
        }
        match msg.cap {
            None if msg.words[0] == 0 => {
                ipc::reply([0, answered])?;
                break;
            }
            None => ipc::reply([msg.words[0] + 1, msg.badge])?,
            Some(frame) => {
                // Stamp the page the caller sent and hand it back.
                let at = 0x2800_0000_0000;
                libos::sys::map(frame, at, MapFlags::WRITE)?;
                // SAFETY: just mapped writable; only we hold the frame now.
                unsafe { (at as *mut u64).write_volatile((at as *const u64).read_volatile() + 1) };
                // SAFETY: nothing refers to the page but the raw pointer above.
                unsafe { libos::sys::unmap(at)? };
                // SAFETY: moved back: the mapping is gone already.
                unsafe { ipc::reply_cap([1, 0], frame, false)? };
            }
        }
        answered += 1;
    }
    println!("pong: answered {answered} calls, blocking in recv between them");
    Ok(())
}
