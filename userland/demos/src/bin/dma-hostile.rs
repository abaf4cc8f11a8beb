//! dma-hostile: a driver that holds QEMU's `edu` and aims its DMA where it
//! has no right to (issue 17): into the kernel's memory, into a frame
//! another process holds (writing it, and reading it), and into a frame it
//! freed a moment ago that another process now holds. Behind VT-d each
//! transfer is blocked (the kernel reports the fault record: which device,
//! which address, read or write), the victim `dma-victim` finds its bytes
//! unchanged, the kernel goes on and tells it of each blocked transfer on
//! the endpoint it bound (`iofault_bind`), and the run's verdict is success. First
//! it shows the device does reach what it maps (`iomap`): a transfer into
//! its own buffer arrives.
//!
//! Without an IOMMU the attacks would succeed (and corrupt the kernel): it
//! refuses to run then. It is a driver only with the boot option
//! `drivers=dma-hostile` (its test's); otherwise it says so and exits 0.
#![no_std]
#![no_main]

use abi::IoFlags;
use exo_demos::edu::{self, DMA_BYTES, DMA_LIMIT, EDU_BUFFER};
use exo_demos::pci::{COMMAND_BUS_MASTER, COMMAND_MEMORY};
use libos::ipc::{Endpoint, SendCap};
use libos::{println, sys, DeviceRegion, DmaBuffer, Error, PAGE_SIZE};

libos::entry!(main);

/// `dma-victim`'s commands.
const TARGET: u64 = 1;
const TAKE: u64 = 2;
const CHECK: u64 = 3;
const DONE: u64 = 4;

fn main() -> Result<(), Error> {
    let Some(e) = edu::claim("dma-hostile")? else {
        return Ok(());
    };
    let device = e.config.device(e.f).ok_or(Error::InvalidArgument)?;
    let command = e.config.command(e.f);
    e.config
        .set_command(e.f, command | COMMAND_MEMORY | COMMAND_BUS_MASTER);
    let edu = Edu {
        regs: &e.regs,
        device,
        clock: Endpoint::create(false)?,
        faults: Endpoint::create(false)?,
    };
    sys::iofault_bind(device, &edu.faults.mint(0xfa17)?)?;
    let result = attack(&edu);
    e.config.set_command(e.f, command);
    result?;
    println!("dma-hostile: ok");
    Ok(())
}

struct Edu<'a> {
    regs: &'a DeviceRegion,
    device: libos::Handle,
    clock: Endpoint,
    /// Where the kernel tells us of our blocked transfers.
    faults: Endpoint,
}

impl Edu<'_> {
    /// One transfer of [`DMA_BYTES`], waited for (the device takes 100 ms
    /// of virtual time), then an `iounmap` of nothing so the kernel reads
    /// the fault records now (it does at every IOMMU operation).
    fn dma(&self, source: u64, destination: u64, to_ram: bool) -> Result<(), Error> {
        edu::start_dma(self.regs, source, destination, to_ram);
        edu::wait_dma(self.regs, "dma-hostile", &self.clock)?;
        match sys::iounmap(self.device, abi::IOVA_MIN) {
            Err(Error::NotMapped) => Ok(()),
            Err(Error::NotSupported) => {
                println!(
                    "dma-hostile: FAILED: no IOMMU translates edu's DMA: this attack would succeed"
                );
                Err(Error::NotSupported)
            }
            other => {
                println!("dma-hostile: FAILED: iounmap of nothing: {other:?}");
                Err(Error::InvalidArgument)
            }
        }
    }
}

impl Edu<'_> {
    /// The kernel's word on a transfer just made: `Some((address, write))`
    /// if it told us one was blocked.
    fn told(&self) -> Option<(u64, bool)> {
        let msg = self
            .faults
            .recv(0)
            .ok()
            .filter(|m| m.irq && m.badge == 0xfa17)?;
        Some((msg.words[0], msg.words[1] & abi::IOFAULT_WRITE != 0))
    }

    /// Fails unless the kernel told us the last transfer, a write (or a
    /// read) at `at`, was blocked.
    fn expect_told(&self, at: u64, write: bool) -> Result<(), Error> {
        match self.told() {
            Some((address, w)) if address == at & !0xfff && w == write => {
                println!(
                    "dma-hostile: told by the kernel: our {} at {address:#x} was blocked",
                    if write { "write" } else { "read" }
                );
                Ok(())
            }
            other => {
                println!("dma-hostile: FAILED: expected word of a blocked transfer at {at:#x}, got {other:?}");
                Err(Error::InvalidArgument)
            }
        }
    }
}

fn attack(edu: &Edu) -> Result<(), Error> {
    // What it maps arrives: edu's buffer (zeros) into its own buffer.
    let mut own = DmaBuffer::for_device(edu.device, 1, 1, DMA_LIMIT, IoFlags::WRITE)?;
    for i in 0..own.len() {
        own.write8(i, 0xa5);
    }
    edu.dma(EDU_BUFFER, own.bus(), true)?;
    let arrived = (0..DMA_BYTES).all(|i| own.read8(i) == 0);
    if !arrived || edu.told().is_some() {
        println!(
            "dma-hostile: FAILED: a DMA into its own mapped buffer did not arrive (or was blocked)"
        );
        return Err(Error::InvalidArgument);
    }
    println!(
        "dma-hostile: a DMA into its own mapped buffer (I/O address {:#x}) arrived: the device works",
        own.bus()
    );

    // 1. The kernel's memory: its code and its page-table root.
    let info = sys::sys_info();
    for (what, at) in [
        ("the kernel image", info.kernel_image_phys),
        ("the kernel's page-table root", info.kernel_pml4_phys),
    ] {
        if at == 0 || at + PAGE_SIZE > DMA_LIMIT {
            println!("dma-hostile: {what} at {at:#x} is beyond edu's 28-bit reach: not tried");
            continue;
        }
        edu.dma(EDU_BUFFER, at, true)?;
        edu.expect_told(at, true)?;
        println!("dma-hostile: DMA write of {DMA_BYTES} zero bytes into {what} at {at:#x}: done by the device; the kernel still answers (pid {})", sys::getpid());
    }

    // 2. A frame another process holds: written, then read.
    let victim = SendCap::lookup("dma-victim")?;
    let target = victim.call([TARGET, 0])?.words[0];
    edu.dma(EDU_BUFFER, target, true)?;
    edu.expect_told(target, true)?;
    expect_intact(&victim, "a DMA write into dma-victim's frame")?;
    edu.dma(target, EDU_BUFFER, false)?;
    edu.expect_told(target, false)?;
    // What edu read, if anything, is now in its buffer: bring it home.
    edu.dma(EDU_BUFFER, own.bus(), true)?;
    let leaked = (0..DMA_BYTES).filter(|&i| own.read8(i) == 0x5a).count();
    if leaked != 0 {
        println!(
            "dma-hostile: FAILED: {leaked} bytes of dma-victim's frame were read by the device"
        );
        return Err(Error::InvalidArgument);
    }
    println!(
        "dma-hostile: DMA read of dma-victim's frame {target:#x}: the device got none of its bytes"
    );

    // 3. A frame it mapped and freed a moment ago, now dma-victim's.
    // Used once first, so the IOMMU has the translation cached: the free
    // must flush it, not only clear the entry.
    let mut freed = DmaBuffer::for_device(edu.device, 1, 1, DMA_LIMIT, IoFlags::WRITE)?;
    for i in 0..freed.len() {
        freed.write8(i, 0xa5);
    }
    edu.dma(EDU_BUFFER, freed.bus(), true)?;
    if !(0..DMA_BYTES).all(|i| freed.read8(i) == 0) || edu.told().is_some() {
        println!("dma-hostile: FAILED: a DMA into a mapped buffer did not arrive");
        return Err(Error::InvalidArgument);
    }
    let at = freed.bus();
    drop(freed); // frame_free: out of the device's space, IOTLB flushed
    let code = victim.call([TAKE, at])?.words[0];
    if code != 0 {
        println!(
            "dma-hostile: FAILED: dma-victim could not take the freed frame {at:#x} (error {code})"
        );
        return Err(Error::InvalidArgument);
    }
    edu.dma(EDU_BUFFER, at, true)?;
    edu.expect_told(at, true)?;
    expect_intact(
        &victim,
        "a DMA write into the frame it freed (now dma-victim's)",
    )?;

    drop(own);
    victim.call([DONE, 0])?;
    Ok(())
}

/// Asks the victim to check its frames; fails unless every byte is intact.
fn expect_intact(victim: &SendCap, what: &str) -> Result<(), Error> {
    let bad = victim.call([CHECK, 0])?.words[0];
    if bad != 0 {
        println!("dma-hostile: FAILED: {what}: {bad} bytes of dma-victim's frames changed");
        return Err(Error::InvalidArgument);
    }
    println!("dma-hostile: {what}: blocked; dma-victim's bytes are unchanged");
    Ok(())
}
