//! Code the demo programs share (each program is one file in `src/bin`):
//! [`claim`] for device memory another process may hold for a while,
//! [`pci`], configuration space through ECAM, and [`device_claim`], what
//! `test-device-claim` and its peer agree on.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

use core::fmt;
use libos::{println, sys, DeviceRegion, Error};

pub mod pci;

/// The page `test-device-claim` and `test-device-claim-peer` both claim,
/// and the layout of the RAM page they share to step through the test.
pub mod device_claim {
    /// The HPET's registers (q35): capabilities and ID at +0x00.
    pub const DEVICE: u64 = 0xfed0_0000;
    /// Byte of the shared page where the owner writes the step.
    pub const STEP: usize = 0;
    /// Byte where the peer acknowledges step `n` by writing `n`.
    pub const ACK: usize = 1;
}

/// Yields a demo waits for another process (to let a page go, to answer)
/// before giving up.
pub const PATIENCE: u32 = 1_000_000;

/// Claims and maps `len` bytes of device memory at `phys` (a
/// [`DeviceRegion`]), waiting while another process holds a page of it.
/// `who` prefixes the line that says so (or why the claim failed); `what`
/// names the range.
pub fn claim(
    who: &str,
    what: &dyn fmt::Display,
    phys: u64,
    len: usize,
) -> Result<DeviceRegion, Error> {
    let mut waited = 0;
    loop {
        match DeviceRegion::new(phys, len) {
            Err(Error::FrameInUse) if waited < PATIENCE => {
                if waited == 0 {
                    println!("{who}: {what} is held by another process (FrameInUse): waiting");
                }
                waited += 1;
                sys::yield_now();
            }
            Err(e) => {
                println!("{who}: claiming {what} at {phys:#x}: {e}");
                return Err(e);
            }
            Ok(region) => return Ok(region),
        }
    }
}
