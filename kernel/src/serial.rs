//! The kernel console on COM1: `kprintln!` and raw byte output.
//!
//! The kernel runs with interrupts off, so holding the lock can never be
//! interrupted by an interrupt handler that wants it too. Exceptions (a
//! fault, an NMI, a panic) can come anyway: their reports use
//! [`emergency`], which never waits for the lock. The writer remembers
//! whether the line is open, so a trace record can start on a fresh line
//! even after a program wrote half a line ([`Console::begin_line`]).
use core::fmt::{self, Write};
use spin::Mutex;
use uart_16550::SerialPort;

/// COM1 and whether the last byte written ended a line.
pub struct Console {
    port: SerialPort,
    at_line_start: bool,
}

/// COM1's I/O ports.
const COM1_BASE: u16 = 0x3F8;

static COM1: Mutex<Console> = Mutex::new(Console {
    // SAFETY: 0x3F8 is COM1 (a 16550 UART) on every PC and QEMU machine;
    // driving it is port I/O, which touches no memory.
    port: unsafe { SerialPort::new(COM1_BASE) },
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

    /// Writes a program's `debug_write` output, escaped and marked by
    /// [`exo_core::console::UserText`]: control characters come out as
    /// `\xNN`, and a line that would start with `@` or `[` (like a trace
    /// record or a kernel line) gets `| ` in front, so that what a program
    /// prints can never pass for what the kernel says.
    pub fn write_user(&mut self, bytes: &[u8]) {
        let mut text = exo_core::console::UserText {
            at_line_start: self.at_line_start,
        };
        let port = &mut self.port;
        text.write(bytes, |piece| {
            for &b in piece {
                port.send_raw(b);
            }
        });
        self.at_line_start = text.at_line_start;
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
    with(|c| c.line(args));
}

impl Console {
    fn line(&mut self, args: fmt::Arguments) {
        self.begin_line();
        let _ = self.write_fmt(args);
        self.write_bytes(b"\n");
    }
}

/// For fault, NMI and panic reports: prints a whole line even if the
/// console lock is held (by the code that was interrupted, which would
/// otherwise never let go). Then the line goes out through a second handle
/// on the UART, on a fresh line of its own but maybe in the middle of the
/// interrupted writer's output. Allocates nothing and takes no other lock.
pub fn emergency(args: fmt::Arguments) {
    if let Some(mut console) = COM1.try_lock() {
        console.line(args);
        return;
    }
    let mut console = Console {
        // SAFETY: as for COM1: the port is COM1 and port I/O touches no
        // memory, so a second handle can interleave bytes, nothing worse.
        port: unsafe { SerialPort::new(COM1_BASE) },
        at_line_start: false,
    };
    console.line(args);
}

/// Prints one kernel line to COM1 (a newline is added).
#[macro_export]
macro_rules! kprintln {
    ($($arg:tt)*) => { $crate::serial::_print_line(format_args!($($arg)*)) };
}
