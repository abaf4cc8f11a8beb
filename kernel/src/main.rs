//! exo: an exokernel for x86_64.
//!
//! The kernel only multiplexes hardware securely: it owns physical memory
//! (a bitmap frame allocator), hands frames to user-space library OSes as
//! unforgeable capabilities, and checks every use. Everything else is policy
//! and lives in user space.
//!
//! Design rules: policy-free logic lives in `exo-core` (host-tested);
//! hardware glue lives in [`arch`]; the kernel runs with interrupts off and
//! never blocks, so one kernel stack serves every process (as in seL4);
//! nothing a program passes in can panic the kernel.
#![no_std]
#![no_main]

extern crate alloc;

mod acpi;
mod arch;
mod exception;
mod loader;
mod memory;
mod process;
mod sched;
mod selftest;
mod serial;
mod syscall;
mod trap;
mod verdict;

use bootloader_api::config::{BootloaderConfig, Mapping};
use bootloader_api::BootInfo;

/// Upper half: the bootloader puts everything it maps for us (kernel,
/// stack, boot info, physical memory) there, so user page tables can share
/// the kernel half and own the whole lower half.
const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;

/// Where the kernel image is linked at run time (fixed, so gdb can load its
/// symbols with this offset).
pub const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;

/// What the bootloader must set up.
pub static BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    config.mappings.dynamic_range_start = Some(KERNEL_HALF);
    config.mappings.kernel_base = Mapping::FixedAddress(KERNEL_BASE);
    config.kernel_stack_size = 256 * 1024;
    config
};

bootloader_api::entry_point!(kernel_main, config = &BOOTLOADER_CONFIG);

fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
    serial::init();
    kprintln!(
        "exo {} — an exokernel for x86_64 (physical address width {} bits)",
        env!("CARGO_PKG_VERSION"),
        arch::phys_addr_bits()
    );
    arch::paging::init();
    arch::gdt::init();
    arch::trap::init();
    memory::init_boot_heap();
    let phys_offset = boot_info
        .physical_memory_offset
        .into_option()
        .expect("bootloader gave no physical memory mapping");
    // SAFETY: the memory map and the physical-memory offset are the
    // bootloader's own, for the machine we run on.
    unsafe { memory::init(&boot_info.memory_regions, phys_offset) };
    // SAFETY: the RSDP address is the bootloader's, for this machine, and
    // the memory map (with the physical-memory offset) is set up.
    unsafe { acpi::init(boot_info.rsdp_addr.into_option()) };
    arch::vtd::init(acpi::platform());
    arch::pic::init();
    arch::apic::init();
    kprintln!(
        "[exo] preemption: local APIC timer at {} Hz ({} counts per tick, calibrated against the PIT)",
        arch::apic::TICK_HZ,
        arch::apic::count_per_tick()
    );
    arch::syscall::init();
    arch::disable_fpu();
    let restricted = arch::restrict_user_instructions();
    kprintln!(
        "[exo] UMIP: {}",
        if restricted.umip {
            "on (sgdt, sidt, sldt, smsw and str fault in ring 3)"
        } else {
            "not available on this CPU (ring 3 can read the GDT and IDT bases)"
        }
    );
    let on = |b: bool| if b { "on" } else { "not available on this CPU" };
    kprintln!(
        "[exo] SMEP: {}; SMAP: {} (the kernel never runs or touches a user page through its user address)",
        on(restricted.smep),
        on(restricted.smap)
    );
    kprintln!(
        "[exo] page zeroing: a pool of {} pre-zeroed frames, rep stosq when it is empty",
        exo_core::zero_pool::CAPACITY
    );

    let ramdisk: &'static [u8] = match boot_info.ramdisk_addr.into_option() {
        Some(addr) => {
            RAMDISK_VIRT.store(addr, core::sync::atomic::Ordering::Relaxed);
            // SAFETY: the bootloader mapped the ramdisk at this address with
            // this length, and nothing writes it: its frames are reserved in
            // the frame map, so they are never handed out.
            unsafe {
                core::slice::from_raw_parts(addr as *const u8, boot_info.ramdisk_len as usize)
            }
        }
        None => &[],
    };
    let entries = match exo_core::ramdisk::parse(ramdisk) {
        Ok(entries) => entries,
        Err(e) => {
            kprintln!("ramdisk: refused: {e}");
            alloc::vec::Vec::new()
        }
    };
    for entry in entries.iter().filter(|e| e.name == "!selftest") {
        selftest::run(core::str::from_utf8(entry.data).unwrap_or("?"));
    }
    let trace = entries.iter().any(|e| e.name == "!trace" && e.data != b"0");
    process::init(trace);
    let programs: alloc::vec::Vec<_> = entries
        .iter()
        .filter(|e| !e.name.starts_with('!'))
        .collect();
    kprintln!(
        "ramdisk: {} bytes, {} programs",
        ramdisk.len(),
        programs.len()
    );
    FREE_AT_START.store(
        memory::counters().free,
        core::sync::atomic::Ordering::Relaxed,
    );
    START_TICKS.store(arch::apic::ticks(), core::sync::atomic::Ordering::Relaxed);
    START_TSC.store(arch::rdtsc(), core::sync::atomic::Ordering::Relaxed);
    kprintln!("exo: boot complete");
    // Boot option `!NAME`: a comma-separated list of program names.
    let names_of = |option: &str| {
        entries
            .iter()
            .find(|e| e.name == option)
            .and_then(|e| core::str::from_utf8(e.data).ok())
            .unwrap_or("")
    };
    // Programs allowed to claim device frames.
    let drivers = names_of("!drivers");
    // Programs a test expects the loader to refuse (any other refusal
    // fails the run).
    let refusals = names_of("!refusals");
    let first = process::with(|k| {
        for entry in &programs {
            // Boot option `!args:NAME` holds that program's arguments.
            let args = entries
                .iter()
                .find(|e| e.name.strip_prefix("!args:") == Some(entry.name))
                .map(|e| e.data)
                .unwrap_or(&[]);
            let driver = drivers.split(',').any(|d| d == entry.name);
            let refusal_expected = refusals.split(',').any(|r| r == entry.name);
            match loader::spawn(k, entry.name, entry.data, args, driver) {
                Ok(pid) => {
                    verdict::expect(pid, entry.expect);
                    if refusal_expected {
                        kprintln!(
                            "[exo] program {} loaded, but its refusal was expected: the run fails",
                            entry.name
                        );
                        verdict::unplanned();
                    }
                    kprintln!(
                        "[exo] pid {pid} ({}) loaded{}",
                        entry.name,
                        if driver { " (driver)" } else { "" }
                    )
                }
                Err(why) => {
                    kprintln!(
                        "[exo] program {}: refused: {why}{}",
                        entry.name,
                        if refusal_expected { " (expected)" } else { "" }
                    );
                    if !refusal_expected {
                        // A program that never ran did not succeed.
                        kprintln!(
                            "[exo] program {} was asked for but not loaded ({why}): the run fails",
                            entry.name
                        );
                        verdict::unplanned();
                    }
                }
            }
        }
        let mut frame = arch::trap::TrapFrame::default();
        if sched::switch_after(k, 0, &mut frame) == sched::Next::Run {
            Some(frame)
        } else {
            finish(k)
        }
    });
    if let Some(frame) = first {
        // SAFETY: `switch_after` loaded the frame of a process it spawned
        // (ring-3 selectors, IOPL 0) and activated its space; we run on the
        // boot stack, with `frame` on it.
        unsafe { arch::enter_user(&frame) };
    }
    unreachable!()
}

/// Where the ramdisk starts (virtual), for `sys_info`.
static RAMDISK_VIRT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Machine facts for `sys_info`.
pub fn sys_info() -> abi::SysInfo {
    use arch::paging::translate_kernel;
    let ramdisk = RAMDISK_VIRT.load(core::sync::atomic::Ordering::Relaxed);
    let ecam = acpi::platform().ecam;
    abi::SysInfo {
        phys_addr_bits: arch::phys_addr_bits() as u64,
        kernel_image_phys: translate_kernel(kernel_main as *const () as u64).unwrap_or(0) & !0xfff,
        kernel_pml4_phys: arch::paging::boot_pml4(),
        ramdisk_phys: if ramdisk == 0 {
            0
        } else {
            translate_kernel(ramdisk).unwrap_or(0)
        },
        tick_hz: arch::apic::TICK_HZ,
        ecam_phys: ecam.map_or(0, |e| e.base),
        ecam_bus_start: ecam.map_or(0, |e| u64::from(e.bus_start)),
        ecam_bus_end: ecam.map_or(0, |e| u64::from(e.bus_end)),
    }
}

/// Free frames before the first program was loaded.
static FREE_AT_START: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Timer ticks when the first program was loaded.
static START_TICKS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
/// The TSC when the programs started (for the share of time halted).
static START_TSC: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The run's syscall figures, for the last line: counted calls (all but
/// fast-path `getpid`s), their rate, failures by kind, and the periodic
/// invariant checks.
///
/// Elapsed time is counted in PIT ticks (100 Hz) since the first program
/// was loaded, not with `rdtsc`: under TCG the PIT runs on QEMU's virtual
/// clock, which follows the host's wall clock, so no calibration is
/// needed. Resolution is 10 ms; a tick is lost only while the kernel keeps
/// interrupts off for more than a whole period (a 16 MiB contiguous
/// allocation zeroes for about that long), which makes the rate a slight
/// overestimate at worst.
struct RunFigures;

impl core::fmt::Display for RunFigures {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use core::sync::atomic::Ordering::Relaxed;
        let calls = syscall::CALLS.load(Relaxed);
        let ticks = arch::apic::ticks().saturating_sub(START_TICKS.load(Relaxed));
        let hz = arch::apic::TICK_HZ;
        let cycles = arch::rdtsc().saturating_sub(START_TSC.load(Relaxed));
        let halted = sched::halted_cycles();
        write!(
            f,
            "{calls} syscalls in {}.{:02} s ({}/s); CPU halted {}.{}% of the time (all blocked); errors:",
            ticks / hz,
            ticks % hz * 100 / hz,
            (calls * hz).checked_div(ticks).unwrap_or(0),
            (halted * 100).checked_div(cycles).unwrap_or(0),
            (halted * 1000).checked_div(cycles).unwrap_or(0) % 10
        )?;
        let mut total = 0;
        for e in abi::Error::ALL {
            let n = syscall::ERRORS[*e as usize].load(Relaxed);
            if n > 0 {
                write!(f, " {}={n}", e.name())?;
                total += n;
            }
        }
        write!(
            f,
            " (total {total}); invariants checked {} times",
            syscall::INVARIANT_CHECKS.load(Relaxed) + 1
        )
    }
}

/// A periodic invariant check failed: report it and end the run.
pub fn invariant_broken(k: &process::Kernel, calls: u64, why: &str) -> ! {
    kprintln!("[exo] invariant broken after {calls} syscalls: {why}");
    kprintln!(
        "[exo] {} processes live, {} finished; {}: broken; verdict: FAILURE",
        k.procs().len(),
        verdict::finished(),
        RunFigures
    );
    arch::exit(arch::Verdict::Failure)
}

/// Every process has ended: report, check that every frame came back, and
/// end the run with the verdict. The last line keeps the kernel's own
/// findings (frames, invariants) apart from the programs' (how many did
/// not load or end as expected), then gives the verdict of both.
pub fn finish(k: &mut process::Kernel) -> ! {
    trap::events::report();
    let not_as_expected = verdict::not_as_expected();
    let mut ok = not_as_expected == 0;
    let free = memory::counters().free;
    let before = FREE_AT_START.load(core::sync::atomic::Ordering::Relaxed);
    let invariants = k.check_invariants();
    if let Err(why) = &invariants {
        kprintln!("[exo] invariant broken: {why}");
        ok = false;
    }
    if free != before {
        kprintln!("[exo] LEAK: {free} frames free after all exited, {before} before");
        ok = false;
    }
    kprintln!(
        "[exo] all {} processes finished; free frames {} (before: {}); {}: {}; programs: {}; verdict: {}",
        verdict::finished(),
        free,
        before,
        RunFigures,
        if invariants.is_ok() { "hold" } else { "broken" },
        ProgramsLine(not_as_expected),
        if ok { "success" } else { "FAILURE" }
    );
    arch::exit(if ok {
        arch::Verdict::Success
    } else {
        arch::Verdict::Failure
    })
}

/// The programs' part of the last line: `all as expected` or `N not as
/// expected`.
struct ProgramsLine(usize);

impl core::fmt::Display for ProgramsLine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            0 => f.write_str("all as expected"),
            n => write!(f, "{n} not as expected"),
        }
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    serial::emergency(format_args!("KERNEL PANIC: {info}"));
    arch::exit(arch::Verdict::Failure)
}
