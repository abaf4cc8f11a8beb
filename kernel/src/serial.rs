//! The kernel console on COM1: `kprint!`/`kprintln!` and raw byte output.
//!
//! The kernel runs with interrupts off, so holding the lock can never be
//! interrupted by code that wants it too. The writer remembers whether the
//! line is open, so a trace record can start on a fresh line even after a
//! program wrote half a line ([`begin_line`]).
use core::fmt::{self, Write};
use spin::Mutex;
use uart_16550::SerialPort;

/// COM1 and whether the last byte written ended a line.
pub struct Console {
    port: SerialPort,
    at_line_start: bool,
}

static COM1: Mutex<Console> = Mutex::new(Console {
    // SAFETY: 0x3F8 is COM1 on every PC and QEMU machine; only this static
    // drives it.
    port: unsafe { SerialPort::new(0x3F8) },
    at_line_start: true,
});

/// Programs the UART (115200 8N1, FIFOs on).
pub fn init() {
    COM1.lock().port.init();
}

impl Console {
    /// Writes raw bytes (user `debug_write` output passes through here).
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.port.send_raw(b);
        }
        if let Some(&last) = bytes.last() {
            self.at_line_start = last == b'\n';
        }
    }

    /// Writes a program's `debug_write` output. A program's line that would
    /// start with `@` or `[` (like a trace record or a kernel line) gets
    /// `| ` in front, so that what a program prints can never pass for what
    /// the kernel says.
    pub fn write_user(&mut self, bytes: &[u8]) {
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            if self.at_line_start && matches!(line.first(), Some(b'@' | b'[')) {
                self.write_bytes(b"| ");
            }
            self.write_bytes(line);
        }
    }

    /// Ends an open line so that what follows starts at column 0.
    pub fn begin_line(&mut self) {
        if !self.at_line_start {
            self.write_bytes(b"\n");
        }
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Runs `f` with the console locked (whole lines never interleave).
pub fn with<R>(f: impl FnOnce(&mut Console) -> R) -> R {
    f(&mut COM1.lock())
}

/// Prints a whole kernel line, starting on a fresh line.
#[doc(hidden)]
pub fn _print_line(args: fmt::Arguments) {
    with(|c| {
        c.begin_line();
        let _ = c.write_fmt(args);
        c.write_bytes(b"\n");
    });
}

/// For fault and panic reports: takes the console even if the lock was held
/// by the code that faulted (we never return to it).
pub fn emergency(args: fmt::Arguments) {
    // SAFETY: called only on paths that end the kernel (panic, fatal fault),
    // on the one CPU; the interrupted holder never runs again.
    unsafe { COM1.force_unlock() };
    _print_line(args);
}

/// Prints one kernel line to COM1 (a newline is added).
#[macro_export]
macro_rules! kprintln {
    ($($arg:tt)*) => { $crate::serial::_print_line(format_args!($($arg)*)) };
}
