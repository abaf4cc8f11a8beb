//! Code the demo programs share (each program is one file in `src/bin`):
//! [`claim`] for device memory another process may hold for a while,
//! [`pci`], configuration space through ECAM, [`device_claim`], what
//! `test-device-claim` and its peer agree on, and [`fault_program!`], the
//! whole of each `test-fault-*` program, and [`Line`], text formatted on
//! the stack, and [`virtio`], `virtio-drivers` on exo's capabilities, and
//! [`cow`], the copy-on-write handler of the `cow` demos.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

use core::fmt;
use libos::{println, DeviceRegion, Error};

pub mod cow;
pub mod edu;
pub mod pci;
pub mod virtio;

/// The time-stamp counter (an exact instruction count under `-icount`).
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` is allowed in ring 3 (the kernel leaves CR4.TSD
    // clear) and has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The page `test-device-claim` and `test-device-claim-peer` both claim,
/// and the layout of the RAM page they share to step through the test.
pub mod device_claim {
    /// The HPET's registers (q35): capabilities and ID at +0x00.
    pub const DEVICE: u64 = 0xfed0_0000;
}

/// Yields a demo waits for another process (to let a page go, to answer)
/// before giving up.
pub const PATIENCE: u32 = 1_000_000;

/// Timer ticks (100 Hz) [`claim`] waits, in all, for a device page
/// another process holds: 10 s.
pub const CLAIM_PATIENCE_TICKS: u64 = 1000;

/// Claims and maps `len` bytes of device memory at `phys` (a
/// [`DeviceRegion`]), waiting while another process holds a page of it:
/// asleep for a timer tick between tries (a `recv` that times out on an
/// endpoint nobody sends to), not spinning on `yield`, so that a holder
/// blocked on its device's interrupt leaves the CPU idle. `who` prefixes
/// the line that says so (or why the claim failed); `what` names the
/// range.
pub fn claim(
    who: &str,
    what: &dyn fmt::Display,
    phys: u64,
    len: usize,
) -> Result<DeviceRegion, Error> {
    let mut waited = 0;
    let mut nap = None;
    loop {
        match DeviceRegion::new(phys, len) {
            Err(Error::FrameInUse) if waited < CLAIM_PATIENCE_TICKS => {
                if waited == 0 {
                    println!("{who}: {what} is held by another process (FrameInUse): waiting");
                }
                waited += 1;
                let nap = match &mut nap {
                    Some(ep) => ep,
                    None => nap.insert(libos::ipc::Endpoint::create(false)?),
                };
                match nap.recv(1) {
                    Err(Error::WouldBlock) => {}
                    other => {
                        println!("{who}: FAILED: sleeping a tick gave {other:?}");
                        return Err(Error::InvalidArgument);
                    }
                }
            }
            Err(e) => {
                println!("{who}: claiming {what} at {phys:#x}: {e}");
                return Err(e);
            }
            Ok(region) => return Ok(region),
        }
    }
}

/// The whole of a `test-fault-*` program: its entry point and `main`,
/// which prints `NAME: trying WHAT`, runs `fault` (the kernel must end the
/// process there, as the boot expects) and, if it comes back, prints
/// `NAME: NOT STOPPED` (every QEMU test fails on that line) and exits 0.
/// `NAME` must be the program's name (checked at compile time).
///
/// ```ignore
/// exo_demos::fault_program!("test-fault-hlt", "a privileged instruction (hlt)", {
///     // SAFETY: deliberately faulting; the kernel ends the process here.
///     unsafe { core::arch::asm!("hlt") }
/// });
/// ```
#[macro_export]
macro_rules! fault_program {
    ($name:literal, $what:literal, $fault:block) => {
        const _: () = ::core::assert!(
            $crate::same_str($name, ::core::env!("CARGO_BIN_NAME")),
            "fault_program!'s name is not the program's"
        );

        ::libos::entry!(main);

        fn main() -> ::core::result::Result<(), ::libos::Error> {
            ::libos::println!(::core::concat!($name, ": trying ", $what));
            $fault::libos::println!(::core::concat!($name, ": NOT STOPPED"));
            Ok(())
        }
    };
}

/// A line of text formatted on the stack, without the heap (for reports
/// made where the heap must not grow); output past 512 bytes is cut off.
pub struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Line {
    /// An empty line.
    pub fn new() -> Self {
        Line {
            buf: [0; 512],
            len: 0,
        }
    }
    /// Appends formatted text.
    pub fn push(&mut self, args: fmt::Arguments<'_>) {
        let _ = fmt::Write::write_fmt(self, args);
    }
    /// The text so far.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

impl Default for Line {
    fn default() -> Self {
        Line::new()
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Whether `a` and `b` are the same string, at compile time (for
/// [`fault_program!`]).
#[doc(hidden)]
pub const fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}
