//! test-msi-vectors: a driver points its device's interrupts at vectors
//! the kernel uses for something else: 17 and 18 (the alignment-check and
//! machine-check exceptions), 100 (no handler of its own) and 0xff (the
//! local APIC's spurious vector). QEMU's `edu` raises one interrupt per
//! write of its raise register, delivered as a fixed MSI while this
//! program runs. An interrupt is not the exception its vector names: the
//! kernel tells them apart by the APIC's in-service bit, acknowledges and
//! counts each, and this program (the one running when they arrive) is
//! not ended for a fault it did not make. Vector 0xff comes first, and the
//! program then checks that the timer still preempts it. Vectors 13 and 14
//! (#GP and #PF, which the exception fast path delivers to a library OS's
//! handler) and 6 (#UD) come with a handler registered: an interrupt there
//! must reach neither the handler nor the fast path (QEMU's local APIC,
//! unlike a real one, accepts vectors below 16).
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use exo_demos::pci::{self, COMMAND_BUS_MASTER, COMMAND_MEMORY};
use libos::exception::{self, Action, ExceptionFrame};
use libos::{println, sys, Error, PAGE_SIZE};

libos::entry!(main);

const VECTORS: [u32; 7] = [0xff, 17, 18, 100, 13, 14, 6];

/// Deliveries to our handler (there must be none: we make no fault).
static DELIVERED: AtomicU64 = AtomicU64::new(0);

fn handler(_: &mut ExceptionFrame) -> Action {
    DELIVERED.fetch_add(1, Relaxed);
    Action::Kill
}
const EACH: u32 = 5;
const INTERRUPT_RAISE: usize = 0x60;
const INTERRUPT_ACK: usize = 0x64;
const MSI_ADDRESS: u32 = 0xfee0_0000;

fn main() -> Result<(), Error> {
    let Some((f, config)) = pci::find("test-msi-vectors", |v, d| (v, d) == (0x1234, 0x11e8))?
    else {
        println!("test-msi-vectors: FAILED: no edu device");
        return Err(Error::InvalidArgument);
    };
    let Some(msi) = pci::Msi::find(&config, f) else {
        println!("test-msi-vectors: FAILED: edu has no MSI capability");
        return Err(Error::InvalidArgument);
    };
    let Some(pci::Bar::Memory { address: bar0, .. }) = config.bars(f)[0] else {
        println!("test-msi-vectors: FAILED: no BAR0");
        return Err(Error::InvalidArgument);
    };
    let command = config.command(f);
    config.set_command(f, command | COMMAND_MEMORY | COMMAND_BUS_MASTER);
    let regs = exo_demos::claim(
        "test-msi-vectors",
        &"edu's registers",
        bar0,
        PAGE_SIZE as usize,
    )?;
    exception::register(handler)?;
    for vector in VECTORS {
        msi.enable(&config, MSI_ADDRESS, vector);
        for _ in 0..EACH {
            regs.write32(INTERRUPT_RAISE, 1);
            regs.write32(INTERRUPT_ACK, 1);
        }
        msi.disable(&config);
        let delivered = DELIVERED.load(Relaxed);
        if delivered != 0 {
            println!("test-msi-vectors: FAILED: {delivered} interrupt(s) on vector {vector} reached our exception handler");
            return Err(Error::InvalidArgument);
        }
        println!("test-msi-vectors: {EACH} interrupts on vector {vector}: still running, none reached our handler");
        if vector == 0xff {
            // Had the kernel left vector 0xff in service, the timer (0xf0,
            // the same priority class) would be held back for good: spin
            // without yielding until `hello`, which has not run yet, has
            // run and exited. Only preemption gets it there.
            let mut polls = 0u64;
            while sys::process_find("hello").is_ok() {
                polls += 1;
            }
            println!(
                "test-msi-vectors: the timer still preempts ({polls} polls until hello exited)"
            );
        }
        sys::yield_now();
    }
    exception::unregister()?;
    config.set_command(f, command);
    println!("test-msi-vectors: ok");
    Ok(())
}
