//! The legacy 8259 PICs (via `pic8259`): remapped to vectors 32..48, away
//! from the exceptions, and every line masked. Nothing in exo uses them:
//! the local APIC's timer drives preemption ([`super::apic`]), and device
//! drivers poll. An interrupt on 32..48 (only a device's MSI can send one
//! now) is acknowledged and counted.
use pic8259::ChainedPics;
use spin::Mutex;

/// First vector of the master PIC.
pub const PIC_BASE: u8 = 32;

// SAFETY: 32..48 do not overlap the CPU exception vectors.
static PICS: Mutex<ChainedPics> = Mutex::new(unsafe { ChainedPics::new(PIC_BASE, PIC_BASE + 8) });

/// Remaps the PICs and masks every line.
pub fn init() {
    let mut pics = PICS.lock();
    // SAFETY: port I/O to the two 8259s (0x20/0x21, 0xa0/0xa1; 0x80 for the
    // delays) touches no memory; interrupts are off (the kernel always runs
    // with IF clear), so none arrives half-way through the remap.
    unsafe {
        pics.initialize();
        pics.write_masks(0xff, 0xff);
    }
}

/// Acknowledges interrupt `vector` at the PIC.
pub fn end_of_interrupt(vector: u8) {
    // SAFETY: port I/O touches no memory; `notify_end_of_interrupt` does
    // nothing for a vector outside 32..48, and an EOI for a line not in
    // service only lets the PIC deliver the next interrupt early.
    unsafe { PICS.lock().notify_end_of_interrupt(vector) };
}
