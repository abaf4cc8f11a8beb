//! test-exc: exceptions delivered to the library OS, and `resume`
//! attacked field by field.
//!
//! Registration: every piece (entry, exception stack, save area) in the
//! kernel half, non-canonical, unaligned, unmapped, of the wrong kind
//! (data as entry, code or a read-only shared page as stack or save area,
//! a device page as any, when run as a driver) must be refused with its
//! exact error. Delivery: #UD, #PF (with its cr2 and error code), #DE,
//! #GP, #NM and `int3` (a #GP: the gate is ring 0) reach the handler with
//! every register, and what the handler writes is what the program sees.
//! `resume`: a kernel, non-canonical or last-page rip, a kernel or
//! non-canonical rsp, a bad pointer are refused; kernel selectors are
//! replaced by the user's; IOPL, NT, RF, VM, VIF, VIP and a cleared IF are
//! not loaded. A fault storm (10,000 faults resumed without a fix) is the
//! program's own time. Exits 0 only if every check held.
#![no_std]
#![no_main]

use abi::{ExceptionFrame, MapFlags, Rights, RESUME_RFLAGS, USER_MAP_TOP};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use libos::exception::{self, Action};
use libos::{println, sys, Error};

libos::entry!(main);

const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;
const KERNEL_IMAGE: u64 = 0xffff_ffff_8000_0000;
const NON_CANONICAL: u64 = 0x0000_8000_0000_0000;
/// Never mapped.
const NEVER: u64 = 0x0000_7100_0000_0000;
/// Our pages: a writable one, then (READ_ONLY) a read-only one.
const PAGE_VA: u64 = 0x0000_3100_0000_0000;
const READ_ONLY: u64 = PAGE_VA + 0x10_0000;
/// A run of pages across a level-1 table boundary (2 MiB).
const RUN_VA: u64 = PAGE_VA + 0x40_0000 - 12 * 4096;
const RUN_PAGES: u64 = 40;
const DEVICE_VA: u64 = PAGE_VA + 0x20_0000;
const HPET: u64 = 0xfed0_0000;
const STORM: u64 = 10_000;

/// What the handler does (set by the test before each fault).
static MODE: AtomicU64 = AtomicU64::new(0);
const NORMAL: u64 = 0;
const FLAGS: u64 = 1;
const SELECTORS: u64 = 2;
const BAD: u64 = 3;
const STORMY: u64 = 4;
/// Write-watch: the handler makes the faulting page writable (or, for a
/// page with no access, readable).
const WATCH: u64 = 5;

static FAULTS: AtomicU64 = AtomicU64::new(0);
static VECTOR: AtomicU64 = AtomicU64::new(0);
static ERROR: AtomicU64 = AtomicU64::new(0);
static CR2: AtomicU64 = AtomicU64::new(0);
static R12: AtomicU64 = AtomicU64::new(0);
static WATCH_RESULT: AtomicU64 = AtomicU64::new(0);
/// Error codes of the bad contexts the handler tried (0: it went through).
static BAD_RESULTS: [AtomicU64; 10] = [const { AtomicU64::new(0) }; 10];

const BAD_NAMES: [&str; 10] = [
    "rip in the kernel image",
    "non-canonical rip",
    "rip on the last user page",
    "rip 0xdeadbeefdeadbeef",
    "rsp in the kernel half",
    "non-canonical rsp",
    "rsp u64::MAX",
    "context pointer in the kernel half",
    "unaligned context pointer",
    "unmapped context pointer",
];

fn handler(f: &mut ExceptionFrame) -> Action {
    let n = FAULTS.fetch_add(1, Relaxed) + 1;
    VECTOR.store(f.vector, Relaxed);
    ERROR.store(f.error, Relaxed);
    CR2.store(f.cr2, Relaxed);
    R12.store(f.r12, Relaxed);
    match MODE.load(Relaxed) {
        FLAGS => f.rflags = !(0x200 | 0x100),
        SELECTORS => {
            f.cs = 0x08;
            f.ss = 0x10;
        }
        BAD => {
            for (i, slot) in BAD_RESULTS.iter().enumerate() {
                let mut c = *f;
                match i {
                    0 => c.rip = KERNEL_IMAGE,
                    1 => c.rip = NON_CANONICAL,
                    2 => c.rip = USER_MAP_TOP,
                    3 => c.rip = 0xdead_beef_dead_beef,
                    4 => c.rsp = KERNEL_HALF,
                    5 => c.rsp = NON_CANONICAL,
                    6 => c.rsp = u64::MAX,
                    _ => {}
                }
                let here = &c as *const ExceptionFrame as u64;
                let ptr = match i {
                    7 => KERNEL_HALF,
                    8 => here + 4,
                    9 => NEVER,
                    _ => here,
                } as *const ExceptionFrame;
                // SAFETY: each context is refused (checked by the caller);
                // one that went through would continue at our own rip.
                let e = unsafe { sys::resume(ptr) };
                slot.store(e.code(), Relaxed);
            }
        }
        STORMY if n < STORM => return Action::Resume,
        WATCH => {
            let page = f.cr2 & !0xfff;
            // Present bit set: a protection fault; write bit: a write.
            let to = if f.error & 2 != 0 {
                abi::Protection::Write
            } else {
                abi::Protection::Read
            };
            // SAFETY: our own test page; nothing refers into it.
            let r = unsafe { sys::protect(page, 1, to) };
            WATCH_RESULT.store(r.err().map_or(0, |e| e.code()), Relaxed);
            // Run the faulting instruction again.
            return Action::Resume;
        }
        _ => {}
    }
    // Continue after the faulting instruction: its caller put the address
    // in r15; rax tells it the handler ran.
    f.rip = f.r15;
    f.rax = 0xabcd;
    Action::Resume
}

/// What the code after a fault saw.
#[derive(Debug)]
struct Probe {
    rax: u64,
    r12: u64,
    rflags: u64,
    cs: u64,
    ss: u64,
}

/// Runs `$insn` (which faults) with r15 = the address after it and r12
/// marked; then reads rflags, cs and ss. `r9` = `$addr` for memory faults.
macro_rules! probe {
    ($insn:literal, $addr:expr) => {{
        let (rax, r12, rflags, cs, ss): (u64, u64, u64, u64, u64);
        // SAFETY: the instruction faults and the handler continues at the
        // label; every register it touches is declared.
        unsafe {
            core::arch::asm!(
                "lea r15, [rip + 2f]",
                "mov r12, 0x1234",
                "xor eax, eax",
                "xor edx, edx",
                "xor ecx, ecx",
                $insn,
                "2:",
                "pushfq",
                "pop rdi",
                // Back to the flags Rust code runs with (DF and AC clear).
                "push 0x202",
                "popfq",
                "mov esi, cs",
                "mov r8d, ss",
                in("r9") $addr,
                out("r15") _,
                out("rax") rax,
                out("r12") r12,
                out("rcx") _,
                out("rdx") _,
                out("rdi") rflags,
                out("rsi") cs,
                out("r8") ss,
            );
        }
        Probe {
            rax,
            r12,
            rflags,
            cs,
            ss,
        }
    }};
}

struct Tally {
    passed: u32,
    failed: u32,
}

impl Tally {
    fn expect(&mut self, name: &str, got: Result<(), Error>, want: Error) {
        self.check(
            name,
            got == Err(want),
            format_args!("{got:?}, expected {want}"),
        );
    }

    fn check(&mut self, name: &str, ok: bool, detail: core::fmt::Arguments<'_>) {
        if ok {
            self.passed += 1;
            println!("exc: {name}: ok");
        } else {
            self.failed += 1;
            println!("exc: {name}: FAILED: {detail}");
        }
    }
}

fn register(entry: u64, stack: u64, save: u64) -> Result<(), Error> {
    // SAFETY: every registration here is refused, or is undone before
    // anything faults (checked by the caller).
    unsafe { sys::exc_handler(entry, stack, save) }
}

fn main() -> Result<(), Error> {
    let mut t = Tally {
        passed: 0,
        failed: 0,
    };
    let page = sys::frame_alloc()?;
    sys::map(page, PAGE_VA, MapFlags::WRITE)?;
    // The same frame, but only READ|MAP: a page we may read, never write.
    let shared = sys::frame_alloc()?;
    let read_only = libos::ipc::copy_with(shared, Rights::READ | Rights::MAP)?;
    sys::map(
        read_only,
        READ_ONLY,
        MapFlags::from_bits(0).ok_or(Error::InvalidArgument)?,
    )?;
    let code = handler as *const () as u64;
    let code_page = code & !0xfff;
    let stack = PAGE_VA + 4096;
    let save = PAGE_VA + 256;

    let refusals: [(&str, [u64; 3], Error); 20] = [
        (
            "entry in the kernel half",
            [KERNEL_IMAGE, stack, save],
            Error::InvalidAddress,
        ),
        (
            "non-canonical entry",
            [NON_CANONICAL, stack, save],
            Error::InvalidAddress,
        ),
        (
            "entry below USER_MIN",
            [0x1000, stack, save],
            Error::InvalidAddress,
        ),
        ("unmapped entry", [NEVER, stack, save], Error::NotMapped),
        (
            "entry in writable data",
            [PAGE_VA, stack, save],
            Error::PermissionDenied,
        ),
        (
            "entry in a read-only data page",
            [READ_ONLY, stack, save],
            Error::PermissionDenied,
        ),
        (
            "stack in the kernel half",
            [code, KERNEL_HALF, save],
            Error::InvalidAddress,
        ),
        (
            "non-canonical stack",
            [code, NON_CANONICAL + 4096, save],
            Error::InvalidAddress,
        ),
        (
            "unaligned stack",
            [code, stack - 8, save],
            Error::InvalidAddress,
        ),
        (
            "unmapped stack",
            [code, NEVER + 4096, save],
            Error::NotMapped,
        ),
        (
            "stack in code (read-only)",
            [code, code_page + 4096, save],
            Error::PermissionDenied,
        ),
        (
            "stack in a read-only shared page",
            [code, READ_ONLY + 4096, save],
            Error::PermissionDenied,
        ),
        (
            "save area in the kernel half",
            [code, stack, KERNEL_HALF],
            Error::InvalidAddress,
        ),
        (
            "non-canonical save area",
            [code, stack, NON_CANONICAL],
            Error::InvalidAddress,
        ),
        (
            "unaligned save area",
            [code, stack, save + 4],
            Error::InvalidAddress,
        ),
        ("unmapped save area", [code, stack, NEVER], Error::NotMapped),
        (
            "save area in code",
            [code, stack, code_page],
            Error::PermissionDenied,
        ),
        (
            "save area in a page we may only read",
            [code, stack, READ_ONLY],
            Error::PermissionDenied,
        ),
        (
            "save area crossing a page boundary",
            [code, stack, PAGE_VA + 4096 - 8],
            Error::InvalidAddress,
        ),
        (
            "save area ending at USER_MAP_TOP + 8",
            [code, stack, USER_MAP_TOP - 176],
            Error::InvalidAddress,
        ),
    ];
    for (name, [e, s, v], want) in refusals {
        t.expect(name, register(e, s, v), want);
    }
    // A device page (we run as a driver): mapped uncached, writable, not RAM.
    match sys::frame_alloc_at(HPET) {
        Ok(dev) => {
            sys::map(dev, DEVICE_VA, MapFlags::WRITE)?;
            for (name, [e, s, v]) in [
                ("entry in device memory", [DEVICE_VA, stack, save]),
                ("stack in device memory", [code, DEVICE_VA + 4096, save]),
                ("save area in device memory", [code, stack, DEVICE_VA]),
            ] {
                t.expect(name, register(e, s, v), Error::PermissionDenied);
            }
            // SAFETY: nothing refers to the device page.
            unsafe { sys::frame_free(dev)? };
        }
        Err(e) => t.check(
            "claim the HPET page (run as a driver)",
            false,
            format_args!("{e}"),
        ),
    }
    t.expect(
        "remove with a stray argument",
        register(0, 0, save),
        Error::InvalidAddress,
    );
    t.check(
        "remove when none is registered",
        register(0, 0, 0).is_ok(),
        format_args!("refused"),
    );

    exception::register(handler)?;
    let count = |n: u64| FAULTS.load(Relaxed) == n;
    let user_flags = |f: u64| f & 0x200 != 0 && f & 0x3000 == 0 && f & 0x4000 == 0;

    // Every vector the kernel delivers, with its details.
    let p = probe!("ud2", 0u64);
    t.check(
        "ud2 delivered as #UD, registers kept, rax from the handler",
        count(1)
            && VECTOR.load(Relaxed) == 6
            && R12.load(Relaxed) == 0x1234
            && p.r12 == 0x1234
            && p.rax == 0xabcd
            && p.cs == 0x23
            && p.ss == 0x1b
            && user_flags(p.rflags),
        format_args!("{p:?} vector {}", VECTOR.load(Relaxed)),
    );
    let p = probe!("mov rax, [r9]", NEVER + 0x123);
    t.check(
        "read of an unmapped page delivered as #PF with cr2 and error 4",
        count(2)
            && VECTOR.load(Relaxed) == 14
            && CR2.load(Relaxed) == NEVER + 0x123
            && ERROR.load(Relaxed) == 4
            && p.rax == 0xabcd,
        format_args!(
            "vector {} cr2 {:#x} error {:#x}",
            VECTOR.load(Relaxed),
            CR2.load(Relaxed),
            ERROR.load(Relaxed)
        ),
    );
    let p = probe!("mov [r9], rax", READ_ONLY + 8);
    t.check(
        "write to a read-only page delivered as #PF with error 7",
        count(3)
            && VECTOR.load(Relaxed) == 14
            && CR2.load(Relaxed) == READ_ONLY + 8
            && ERROR.load(Relaxed) == 7
            && p.rax == 0xabcd,
        format_args!(
            "vector {} error {:#x}",
            VECTOR.load(Relaxed),
            ERROR.load(Relaxed)
        ),
    );
    let _ = probe!("div ecx", 0u64);
    t.check(
        "division by zero delivered as #DE",
        count(4) && VECTOR.load(Relaxed) == 0,
        format_args!("{}", VECTOR.load(Relaxed)),
    );
    let _ = probe!("cli", 0u64);
    t.check(
        "cli delivered as #GP(0)",
        count(5) && VECTOR.load(Relaxed) == 13 && ERROR.load(Relaxed) == 0,
        format_args!("{} {:#x}", VECTOR.load(Relaxed), ERROR.load(Relaxed)),
    );
    let _ = probe!("fld1", 0u64);
    t.check(
        "x87 delivered as #NM",
        count(6) && VECTOR.load(Relaxed) == 7,
        format_args!("{}", VECTOR.load(Relaxed)),
    );
    let _ = probe!("int3", 0u64);
    t.check(
        "int3 delivered as #GP on an IDT gate (the gate is ring 0)",
        // The error code names an IDT entry (bit 1); QEMU names entry 6.
        count(7) && VECTOR.load(Relaxed) == 13 && ERROR.load(Relaxed) & 7 == 2,
        format_args!("{} {:#x}", VECTOR.load(Relaxed), ERROR.load(Relaxed)),
    );

    // Resume attacked.
    MODE.store(FLAGS, Relaxed);
    let p = probe!("ud2", 0u64);
    let want = (!0x300u64 & RESUME_RFLAGS) | 0x202;
    t.check(
        "rflags all set but IF and TF: IF on, IOPL 0, NT/RF/VM/VIF/VIP clear, AC and ID kept",
        count(8) && p.rflags == want && p.rax == 0xabcd,
        format_args!("rflags {:#x}, expected {want:#x}", p.rflags),
    );
    MODE.store(SELECTORS, Relaxed);
    let p = probe!("ud2", 0u64);
    t.check(
        "kernel cs and ss in the context: resumed with the user's",
        count(9) && p.cs == 0x23 && p.ss == 0x1b && p.rax == 0xabcd,
        format_args!("cs {:#x} ss {:#x}", p.cs, p.ss),
    );
    MODE.store(BAD, Relaxed);
    let p = probe!("ud2", 0u64);
    t.check(
        "after refused contexts the handler resumed",
        count(10) && p.rax == 0xabcd,
        format_args!("{p:?}"),
    );
    for (name, code) in BAD_NAMES.iter().zip(&BAD_RESULTS) {
        let got = match code.load(Relaxed) {
            0 => Ok(()),
            c => Err(Error::from_code(c)),
        };
        t.expect(name, got, Error::InvalidAddress);
    }

    // A fault storm: resumed unfixed STORM - 1 times.
    MODE.store(STORMY, Relaxed);
    FAULTS.store(0, Relaxed);
    let p = probe!("ud2", 0u64);
    t.check(
        "fault storm: 10000 faults, the last one fixed",
        count(STORM) && p.rax == 0xabcd,
        format_args!("{} faults", FAULTS.load(Relaxed)),
    );
    MODE.store(NORMAL, Relaxed);

    // protect: refusals, each with its exact error.
    use abi::Protection as P;
    let prot = |va: u64, pages: u64, to: P| {
        // SAFETY: refused, or our own test pages that no reference uses.
        unsafe { sys::protect(va, pages, to) }
    };
    t.expect(
        "protect in the kernel half",
        prot(KERNEL_HALF, 1, P::Read),
        Error::InvalidAddress,
    );
    t.expect(
        "protect unaligned",
        prot(PAGE_VA + 8, 1, P::Read),
        Error::InvalidAddress,
    );
    t.expect(
        "protect 0 pages",
        prot(PAGE_VA, 0, P::Read),
        Error::InvalidArgument,
    );
    t.expect(
        "protect more than PROTECT_PAGES",
        prot(PAGE_VA, abi::bounds::PROTECT_PAGES + 1, P::Read),
        Error::InvalidArgument,
    );
    t.expect(
        "protect an unmapped page",
        prot(NEVER, 1, P::Read),
        Error::NotMapped,
    );
    t.expect(
        "protect a range running into an unmapped page",
        prot(PAGE_VA, 2, P::Read),
        Error::NotMapped,
    );
    t.expect(
        "protect our program image",
        prot(code_page, 1, P::Read),
        Error::PermissionDenied,
    );
    t.expect(
        "protect a read-only capability's page writable",
        prot(READ_ONLY, 1, P::Write),
        Error::PermissionDenied,
    );
    t.expect(
        "protect an unsealed frame executable (W^X)",
        prot(PAGE_VA, 1, P::Exec),
        Error::PermissionDenied,
    );
    t.check(
        "a refused protect changed nothing (the page still writable)",
        // SAFETY: our own writable page.
        unsafe {
            core::ptr::write_volatile((PAGE_VA + 64) as *mut u64, 7);
            core::ptr::read_volatile((PAGE_VA + 64) as *const u64) == 7
        } && FAULTS.load(Relaxed) == STORM,
        format_args!("faulted"),
    );

    // Write-watch: read-only, then a write faults; the handler unprotects.
    MODE.store(WATCH, Relaxed);
    FAULTS.store(0, Relaxed);
    t.check(
        "protect read-only",
        prot(PAGE_VA, 1, P::Read).is_ok(),
        format_args!("refused"),
    );
    // SAFETY: our own page; the write faults once and the handler makes it
    // writable again.
    let seen = unsafe {
        let at = (PAGE_VA + 72) as *mut u64;
        let before = core::ptr::read_volatile(at);
        core::ptr::write_volatile(at, 0x77);
        (before, core::ptr::read_volatile(at))
    };
    t.check(
        "write to a read-only page: one #PF (error 7), unprotected, the write landed",
        FAULTS.load(Relaxed) == 1
            && ERROR.load(Relaxed) == 7
            && CR2.load(Relaxed) == PAGE_VA + 72
            && WATCH_RESULT.load(Relaxed) == 0
            && seen == (0, 0x77),
        format_args!(
            "{} faults, error {:#x}, {seen:?}",
            FAULTS.load(Relaxed),
            ERROR.load(Relaxed)
        ),
    );
    t.check(
        "protect to no access",
        prot(PAGE_VA, 1, P::None).is_ok(),
        format_args!("refused"),
    );
    // SAFETY: as above: the read faults (present, read) and the handler
    // makes the page readable.
    let seen = unsafe { core::ptr::read_volatile((PAGE_VA + 64) as *const u64) };
    t.check(
        "read of a page with no access: #PF (error 5), made readable, the value kept",
        FAULTS.load(Relaxed) == 2 && ERROR.load(Relaxed) == 5 && seen == 7,
        format_args!(
            "{} faults, error {:#x}, read {seen}",
            FAULTS.load(Relaxed),
            ERROR.load(Relaxed)
        ),
    );
    // The kernel's own copies respect it too.
    t.check(
        "protect to no access again",
        prot(PAGE_VA, 1, P::None).is_ok(),
        format_args!("refused"),
    );
    // SAFETY: debug_write only reads, through the page tables.
    let copied = sys::debug_write(unsafe { core::slice::from_raw_parts(PAGE_VA as *const u8, 8) });
    t.expect(
        "debug_write from a page with no access",
        copied.map(drop),
        Error::InvalidAddress,
    );

    // A run across two page tables (12 pages under a 2 MiB boundary, 28
    // above): refused when its last page is unmapped (nothing changed,
    // not even in the first table), then protected in one call of more
    // pages than the kernel flushes one by one: every page faults once.
    let run = sys::frame_alloc_contiguous(RUN_PAGES, 1, 0)?;
    sys::map(run, RUN_VA, MapFlags::WRITE)?;
    let write = |i: u64| {
        // SAFETY: our own run's pages; a fault is handled (WATCH).
        unsafe { core::ptr::write_volatile((RUN_VA + i * 4096 + 8) as *mut u64, i) }
    };
    FAULTS.store(0, Relaxed);
    t.expect(
        "protect a run across two page tables into an unmapped page",
        prot(RUN_VA, RUN_PAGES + 1, P::Read),
        Error::NotMapped,
    );
    (0..RUN_PAGES).for_each(write);
    t.check(
        "the refused run changed no page of either table",
        FAULTS.load(Relaxed) == 0,
        format_args!("{} faults", FAULTS.load(Relaxed)),
    );
    t.check(
        "protect a run across two page tables read-only",
        prot(RUN_VA, RUN_PAGES, P::Read).is_ok(),
        format_args!("refused"),
    );
    (0..RUN_PAGES).for_each(write);
    t.check(
        "every page of the run faulted once, then took the write",
        FAULTS.load(Relaxed) == RUN_PAGES
            && WATCH_RESULT.load(Relaxed) == 0
            // SAFETY: our own run's pages, writable again.
            && (0..RUN_PAGES).all(|i| unsafe {
                core::ptr::read_volatile((RUN_VA + i * 4096 + 8) as *const u64) == i
            }),
        format_args!("{} faults", FAULTS.load(Relaxed)),
    );
    // SAFETY: nothing refers to the run.
    unsafe {
        sys::unmap(RUN_VA)?;
        sys::frame_free(run)?;
    }
    MODE.store(NORMAL, Relaxed);

    exception::unregister()?;
    // SAFETY: nothing refers to these pages any more; the first has no
    // access and must unmap like any other.
    unsafe {
        sys::unmap(PAGE_VA)?;
        sys::unmap(READ_ONLY)?;
        sys::frame_free(page)?;
        sys::frame_free(read_only)?;
        sys::frame_free(shared)?;
    }
    // A page with no access still counts as mapped, and is gone after
    // its unmap: mapping it again works.
    let again = sys::frame_alloc()?;
    t.check(
        "map where the no-access page was",
        sys::map(again, PAGE_VA, MapFlags::WRITE).is_ok(),
        format_args!("refused"),
    );

    // The MMU's accessed and dirty bits, as the hardware set them.
    let bits = |pages: u64, clear: bool| sys::page_bits(PAGE_VA, pages, clear);
    let fresh = bits(1, false);
    // SAFETY: our own fresh writable page.
    let _ = unsafe { core::ptr::read_volatile(PAGE_VA as *const u64) };
    let read = bits(1, false);
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(PAGE_VA as *mut u64, 1) };
    let written = bits(1, false);
    let cleared = bits(1, true);
    let after_clear = bits(1, false);
    // SAFETY: as above. The clear flushed the TLB, so the MMU sets the
    // dirty bit again.
    unsafe { core::ptr::write_volatile(PAGE_VA as *mut u64, 2) };
    let rewritten = bits(1, false);
    t.check(
        "page_bits: fresh 0, read A, written A|D, cleared, written again A|D",
        [fresh, read, written, cleared, after_clear, rewritten]
            == [Ok(0), Ok(1), Ok(3), Ok(3), Ok(0), Ok(3)],
        format_args!(
            "{:?}",
            [fresh, read, written, cleared, after_clear, rewritten]
        ),
    );
    t.expect(
        "page_bits running into an unmapped page",
        bits(2, false).map(drop),
        Error::NotMapped,
    );
    t.expect(
        "page_bits of 33 pages",
        bits(33, false).map(drop),
        Error::InvalidArgument,
    );
    t.expect(
        "page_bits in the kernel half",
        sys::page_bits(KERNEL_HALF, 1, false).map(drop),
        Error::InvalidAddress,
    );
    // SAFETY: nothing refers to it.
    unsafe { sys::frame_free(again)? };
    println!("exc: {} checks passed, {} failed", t.passed, t.failed);
    if t.failed == 0 {
        Ok(())
    } else {
        Err(Error::InvalidArgument)
    }
}
