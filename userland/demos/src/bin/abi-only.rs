//! abi-only: a program built on the `abi` crate alone, without libos.
//!
//! It shows what a library OS needs at the very least: an `_start`, a
//! panic handler and the raw `syscall` stub. Everything libos offers is
//! ordinary code over these. (Cargo passes libos to every binary of this
//! package, but it is linked only into the ones that name it.)
#![no_std]
#![no_main]

use abi::raw::syscall6;
use abi::{SysError, Sysnum};

/// Writes `bytes` to the kernel console.
fn debug_write(bytes: &[u8]) -> Result<(), SysError> {
    let args = [bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0, 0];
    // SAFETY: `debug_write` only reads `bytes`, which outlives the call.
    let (rax, _) = unsafe { syscall6(Sysnum::DebugWrite as u64, args) };
    SysError::check(rax)
}

/// Ends the process.
fn exit(code: u64) -> ! {
    // SAFETY: `exit` touches no memory of ours and does not return.
    unsafe { syscall6(Sysnum::Exit as u64, [code, 0, 0, 0, 0, 0]) };
    loop {
        core::hint::spin_loop();
    }
}

/// The entry point: the kernel starts here with the pid in `rdi`.
#[no_mangle]
pub extern "C" fn _start(pid: u64) -> ! {
    let mut line = Line::default();
    line.push(b"abi-only: hello from a program that uses only the abi crate (pid ");
    line.push_decimal(pid);
    line.push(b")\n");
    match debug_write(line.as_bytes()) {
        Ok(()) => exit(abi::exit_code::SUCCESS),
        Err(_) => exit(1),
    }
}

/// A line built on the stack (no heap, no formatting machinery).
struct Line {
    buf: [u8; 128],
    len: usize,
}

impl Default for Line {
    fn default() -> Self {
        Line {
            buf: [0; 128],
            len: 0,
        }
    }
}

impl Line {
    /// Appends `bytes` (truncated at the end of the buffer).
    fn push(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    /// Appends `n` in decimal.
    fn push_decimal(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[at..]);
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    let _ = debug_write(b"abi-only: panic\n");
    exit(abi::exit_code::PANIC)
}
