//! The local APIC: its timer drives preemption and the run's clock, and
//! every interrupt that is not the legacy PIC's is acknowledged here.
//!
//! Why the local APIC and not the PIT or the HPET: a driver may claim the
//! HPET (the `hpet` demo does), and one write of its `LEG_RT_CNF` bit
//! takes IRQ 0 away from the PIT. Nobody can claim the local APIC's page
//! ([`super::local_apic_page`] is refused to every claim) and it is per
//! CPU, so no device a program drives can stop the clock. The PIT is used
//! once, at boot, to calibrate the timer to [`TICK_HZ`], and its PIC line
//! stays masked; the PICs keep every line masked.
//!
//! The registers are reached through one uncached kernel mapping of the
//! page ([`super::paging::map_kernel_device`]), made at boot before any
//! address space exists.
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;

/// The timer's vector: in the highest priority class (15), so that no
/// other interrupt in service can hold it back.
pub const TIMER_VECTOR: u8 = 0xf0;
/// The spurious-interrupt vector (never acknowledged, as the SDM says).
pub const SPURIOUS_VECTOR: u8 = 0xff;
/// Timer frequency.
pub const TICK_HZ: u64 = 100;

const EOI: usize = 0xb0;
/// In-service register: 8 registers of 32 bits, 16 bytes apart.
const ISR: usize = 0x100;
const SVR: usize = 0xf0;
const TPR: usize = 0x80;
const LVT_TIMER: usize = 0x320;
const INITIAL_COUNT: usize = 0x380;
const CURRENT_COUNT: usize = 0x390;
const DIVIDE: usize = 0x3e0;
/// SVR bit 8: the APIC is software-enabled.
const SVR_ENABLE: u32 = 1 << 8;
/// LVT bit 16: masked; bit 17: periodic.
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
/// Divide configuration 0b1011: divide by 1.
const DIVIDE_BY_1: u32 = 0b1011;

/// The PIT's input clock, and the calibration window in PIT periods of
/// [`PIT_PERIOD`] counts (5 x 10 ms).
const PIT_HZ: u64 = 1_193_182;
const PIT_PERIOD: u16 = (PIT_HZ / TICK_HZ) as u16;
const CALIBRATION_PERIODS: u64 = 5;

static BASE: AtomicU64 = AtomicU64::new(0);
static TICKS: AtomicU64 = AtomicU64::new(0);
static COUNT_PER_TICK: AtomicU64 = AtomicU64::new(0);

fn register(offset: usize) -> *mut u32 {
    (BASE.load(Ordering::Relaxed) as usize + offset) as *mut u32
}

fn read(offset: usize) -> u32 {
    // SAFETY: BASE maps the local APIC's register page uncached (set by
    // `init` before any caller); every offset used here is a 32-bit
    // register in that page, and reading one has no effect on memory.
    unsafe { register(offset).read_volatile() }
}

fn write(offset: usize, value: u32) {
    // SAFETY: as in `read`; the APIC's registers change interrupt delivery
    // only, never memory.
    unsafe { register(offset).write_volatile(value) }
}

/// Maps the registers, enables the APIC, calibrates its timer against the
/// PIT and starts it, periodic at [`TICK_HZ`] on [`TIMER_VECTOR`]. Runs
/// at boot with interrupts off, before the first address space.
pub fn init() {
    BASE.store(
        super::paging::map_kernel_device(super::local_apic_page()),
        Ordering::Relaxed,
    );
    write(TPR, 0);
    write(SVR, SVR_ENABLE | u32::from(SPURIOUS_VECTOR));
    write(DIVIDE, DIVIDE_BY_1);
    write(LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    write(INITIAL_COUNT, u32::MAX);
    let elapsed = pit_periods(CALIBRATION_PERIODS, || {
        write(INITIAL_COUNT, u32::MAX);
    });
    let counted = u64::from(u32::MAX - read(CURRENT_COUNT));
    let per_tick = (counted / elapsed).clamp(1000, u64::from(u32::MAX));
    COUNT_PER_TICK.store(per_tick, Ordering::Relaxed);
    write(LVT_TIMER, LVT_PERIODIC | u32::from(TIMER_VECTOR));
    write(INITIAL_COUNT, per_tick as u32);
}

/// Timer counts per tick, as calibrated (for the boot line).
pub fn count_per_tick() -> u64 {
    COUNT_PER_TICK.load(Ordering::Relaxed)
}

/// Reads PIT channel 0's counter (latched).
fn pit_count() -> u16 {
    let mut command: Port<u8> = Port::new(0x43);
    let mut channel0: Port<u8> = Port::new(0x40);
    // SAFETY: port I/O to the PIT touches no memory; 0x00 latches channel
    // 0's count, which then reads low byte first.
    unsafe {
        command.write(0x00);
        let low = channel0.read();
        let high = channel0.read();
        u16::from_le_bytes([low, high])
    }
}

/// Starts the PIT's channel 0 as a 100 Hz rate generator (its IRQ line
/// stays masked at the PIC), waits for the start of a period, runs
/// `start`, and waits for `periods` more; returns `periods`.
fn pit_periods(periods: u64, start: impl FnOnce()) -> u64 {
    let mut command: Port<u8> = Port::new(0x43);
    let mut channel0: Port<u8> = Port::new(0x40);
    // SAFETY: port I/O to the PIT touches no memory. 0x34: channel 0,
    // lobyte/hibyte, mode 2 (rate generator), binary.
    unsafe {
        command.write(0x34);
        channel0.write(PIT_PERIOD as u8);
        channel0.write((PIT_PERIOD >> 8) as u8);
    }
    // A period starts when the count reloads (goes up).
    let wait_reload = || {
        let mut last = pit_count();
        loop {
            let now = pit_count();
            if now > last {
                return;
            }
            last = now;
        }
    };
    wait_reload();
    start();
    for _ in 0..periods {
        wait_reload();
    }
    periods
}

/// Whether the local APIC has `vector` in service: set for an interrupt
/// it delivered (the timer, a device's MSI) until its EOI, never for a CPU
/// exception or an NMI. That tells a device's MSI on vector 16..31 from
/// the exception that vector also names.
pub fn in_service(vector: u8) -> bool {
    let isr = read(ISR + 0x10 * usize::from(vector / 32));
    isr & (1 << (vector % 32)) != 0
}

/// Acknowledges the interrupt in service.
pub fn end_of_interrupt() {
    write(EOI, 0);
}

/// Counts a timer tick.
pub fn tick() -> u64 {
    TICKS.fetch_add(1, Ordering::Relaxed) + 1
}

/// Timer ticks since boot.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}
