//! The legacy 8259 PICs (remapped to vectors 32..48, via `pic8259`) and the
//! PIT on IRQ 0, which drives preemption.
use core::sync::atomic::{AtomicU64, Ordering};
use pic8259::ChainedPics;
use spin::Mutex;
use x86_64::instructions::port::Port;

/// First vector of the master PIC.
pub const PIC_BASE: u8 = 32;
/// The PIT's vector.
pub const TIMER_VECTOR: u8 = PIC_BASE;
/// Timer frequency.
pub const TICK_HZ: u32 = 100;
const PIT_HZ: u32 = 1_193_182;

// SAFETY: 32..48 do not overlap the CPU exception vectors.
static PICS: Mutex<ChainedPics> = Mutex::new(unsafe { ChainedPics::new(PIC_BASE, PIC_BASE + 8) });
static TICKS: AtomicU64 = AtomicU64::new(0);

/// Remaps the PICs, unmasks only the timer, and starts the PIT.
pub fn init() {
    let mut pics = PICS.lock();
    // SAFETY: port I/O to the two 8259s (0x20/0x21, 0xa0/0xa1; 0x80 for the
    // delays) touches no memory; interrupts are off (the kernel always runs
    // with IF clear), so none arrives half-way through the remap.
    unsafe {
        pics.initialize();
        pics.write_masks(0b1111_1110, 0b1111_1111);
    }
    let divisor = (PIT_HZ / TICK_HZ) as u16;
    let mut command: Port<u8> = Port::new(0x43);
    let mut channel0: Port<u8> = Port::new(0x40);
    // SAFETY: port I/O to the PIT (0x43, 0x40) touches no memory. 0x34:
    // channel 0, lobyte/hibyte, mode 2 (rate generator), binary.
    unsafe {
        command.write(0x34);
        channel0.write(divisor as u8);
        channel0.write((divisor >> 8) as u8);
    }
}

/// Acknowledges interrupt `vector` at the PIC.
pub fn end_of_interrupt(vector: u8) {
    // SAFETY: port I/O touches no memory; `notify_end_of_interrupt` does
    // nothing for a vector outside 32..48, and an EOI for a line not in
    // service only lets the PIC deliver the next interrupt early.
    unsafe { PICS.lock().notify_end_of_interrupt(vector) };
}

/// Counts a timer tick.
pub fn tick() -> u64 {
    TICKS.fetch_add(1, Ordering::Relaxed) + 1
}

/// Timer ticks since boot.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}
