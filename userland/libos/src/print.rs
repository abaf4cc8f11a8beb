//! `print!` and `println!` on the kernel console, through `debug_write`.
//!
//! Each call formats into a buffer on the stack and writes it with one
//! `debug_write`, so a line from one process is never cut by another's
//! (the kernel runs each call with interrupts off). Output longer than the
//! buffer is written in several pieces. Nothing here allocates, so printing
//! works before the heap exists and inside the panic handler.

use core::fmt::{self, Write};

/// Bytes formatted before a `debug_write` (at most `MAX_DEBUG_WRITE`).
const BUFFER: usize = 1024;
const _: () = assert!(BUFFER as u64 <= abi::MAX_DEBUG_WRITE);

/// A `fmt::Write` sink that batches bytes into `debug_write` calls.
struct Console {
    buf: [u8; BUFFER],
    len: usize,
}

impl Console {
    fn flush(&mut self) {
        let mut rest = &self.buf[..self.len];
        while !rest.is_empty() {
            match crate::sys::debug_write(rest) {
                Ok(n) if n > 0 && n <= rest.len() => rest = &rest[n..],
                // The console is all we have to report on: drop the text.
                _ => break,
            }
        }
        self.len = 0;
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut bytes = s.as_bytes();
        while !bytes.is_empty() {
            if self.len == BUFFER {
                self.flush();
            }
            let n = bytes.len().min(BUFFER - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
        }
        Ok(())
    }
}

/// Formats `args` to the console (what `print!` expands to).
#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let mut console = Console {
        buf: [0; BUFFER],
        len: 0,
    };
    // `Console::write_str` never fails; a failing `Display` impl just ends
    // the text early.
    let _ = console.write_fmt(args);
    console.flush();
}

/// Prints to the kernel console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::print::_print(::core::format_args!($($arg)*))
    };
}

/// Prints to the kernel console, with a newline.
#[macro_export]
macro_rules! println {
    () => {
        $crate::print::_print(::core::format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::print::_print(::core::format_args!("{}\n", ::core::format_args!($($arg)*)))
    };
}
