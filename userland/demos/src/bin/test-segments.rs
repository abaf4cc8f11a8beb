//! test-segments: each process keeps its own DS, ES, FS and GS. Booted as
//! several copies: each loads selectors of its own choosing (any of the
//! eight a program may load: null or the user data segment, each with any
//! RPL, minus those the CPU itself changes on `iretq`: see `KEPT_BY_IRET`), lets the others run (200 `yield`s, then spins until the timer has
//! preempted it 5 times) and checks after each switch that it got its own
//! values back, not the last process's. It also checks that FS and GS
//! bases cannot be set (`wrfsbase` is a separate fault program).
#![no_std]
#![no_main]

use libos::{println, sys, Error};

libos::entry!(main);

/// The selectors ring 3 may load into a data segment register.
const LOADABLE: [u16; 8] = [0, 1, 2, 3, 0x18, 0x19, 0x1a, 0x1b];
/// Those that DS and ES keep across an `iretq` to ring 3: the CPU loads
/// null into DS or ES when it holds a null selector with a nonzero RPL
/// (its hidden DPL 0 is below CPL 3; QEMU keeps FS and GS as they are).
/// That is the CPU's rule, the same for every process, and carries nothing
/// from one process to another.
const KEPT_BY_IRET: [u16; 5] = [0, 0x18, 0x19, 0x1a, 0x1b];
const YIELDS: u32 = 200;
const PREEMPTIONS: u32 = 5;
/// A gap between two consecutive TSC reads this long means another process
/// ran in between.
const GAP: u64 = 500_000;

fn load(s: [u16; 4]) {
    // SAFETY: every value is one of LOADABLE, which ring 3 may load into a
    // data segment register (no fault); 64-bit code does not use DS or ES
    // for addressing, and this program uses no FS or GS (no TLS).
    unsafe {
        core::arch::asm!(
            "mov ds, {0:x}",
            "mov es, {1:x}",
            "mov fs, {2:x}",
            "mov gs, {3:x}",
            in(reg) s[0], in(reg) s[1], in(reg) s[2], in(reg) s[3],
            options(nostack, preserves_flags)
        );
    }
}

fn read() -> [u16; 4] {
    let (ds, es, fs, gs): (u16, u16, u16, u16);
    // SAFETY: reading segment registers has no side effects.
    unsafe {
        core::arch::asm!(
            "mov {0:x}, ds",
            "mov {1:x}, es",
            "mov {2:x}, fs",
            "mov {3:x}, gs",
            out(reg) ds, out(reg) es, out(reg) fs, out(reg) gs,
            options(nomem, nostack, preserves_flags)
        );
    }
    [ds, es, fs, gs]
}

fn main() -> Result<(), Error> {
    let pid = sys::getpid();
    let mut x = pid.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut pick = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        core::array::from_fn::<u16, 4, _>(|i| {
            let r = (x >> (8 * i)) as usize;
            if i < 2 {
                KEPT_BY_IRET[r % KEPT_BY_IRET.len()]
            } else {
                LOADABLE[r % LOADABLE.len()]
            }
        })
    };
    let (mut yields, mut preemptions, mut wrong) = (0u32, 0u32, 0u32);
    let mut spins: u64 = 0;
    while yields < YIELDS || preemptions < PREEMPTIONS {
        let want = pick();
        load(want);
        if yields < YIELDS {
            sys::yield_now();
            yields += 1;
        } else {
            let mut last = exo_demos::rdtsc();
            loop {
                let now = exo_demos::rdtsc();
                spins += 1;
                if now - last > GAP {
                    preemptions += 1;
                    break;
                }
                last = now;
                if spins > 400_000_000 {
                    break;
                }
            }
        }
        let got = read();
        if got != want {
            if wrong == 0 {
                println!("test-segments: after a switch got {got:x?}, had loaded {want:x?}");
            }
            wrong += 1;
        }
        if spins > 400_000_000 {
            println!("test-segments: no preemption seen in {spins} spins");
            return Err(Error::WouldBlock);
        }
    }
    load([0; 4]);
    println!(
        "test-segments: {yields} yields and {preemptions} preemptions, own selectors back {} times, another's {wrong} times",
        yields + preemptions - wrong
    );
    if wrong == 0 {
        Ok(())
    } else {
        Err(Error::InvalidArgument)
    }
}
