//! test-iomap: every way `iomap`/`iounmap` must refuse, with exact errors,
//! on QEMU's `edu` behind VT-d (issue 17), and what happens to a mapping
//! when its capability goes. A driver (the device programs are).
//!
//! Refused: a frame handle it does not hold (`BadCapability`), device
//! frames (`InvalidArgument`), more rights than it holds (`PermissionDenied`,
//! for the frames and for the device), addresses outside the allowed range
//! or unaligned (`InvalidAddress`), a second mapping at an address in use
//! (`AlreadyMapped`), undefined or no flags (`InvalidArgument`), a device
//! no IOMMU translates (`NotSupported`), more than `bounds::IOMAPS`
//! (`OutOfMemory`), an unmap where nothing starts (`NotMapped`). And: a
//! mapped frame cannot be sealed (`AlreadyMapped`); freeing it or moving it
//! away removes its mapping (the address is free again).
#![no_std]
#![no_main]

extern crate alloc;

use abi::{IoFlags, Rights};
use alloc::vec::Vec;
use exo_demos::pci;
use libos::ipc::{self, Endpoint};
use libos::{println, sys, DeviceFrame, Error, Frame, Handle};

libos::entry!(main);

const IOVA: u64 = 0x10_0000;
const PAGE: u64 = abi::PAGE_SIZE;

struct Checks {
    passed: u32,
    failed: u32,
}

impl Checks {
    fn expect(&mut self, what: &str, got: Result<(), Error>, want: Result<(), Error>) {
        if got == want {
            self.passed += 1;
            println!("test-iomap: {what}: {}", show(got));
        } else {
            self.failed += 1;
            println!(
                "test-iomap: FAILED: {what}: {}, expected {}",
                show(got),
                show(want)
            );
        }
    }
}

fn show(r: Result<(), Error>) -> alloc::string::String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => alloc::format!("refused: {e}"),
    }
}

/// `iomap`, as the syscall table's raw stub takes it (undefined flag bits
/// included).
fn iomap_raw(device: Handle, cap: Handle, iova: u64, flags: u64) -> Result<(), Error> {
    let num = abi::Sysnum::Iomap as u64;
    // SAFETY: nothing holds a reference to any frame mapped here (the
    // frames are never mapped into our address space).
    let (rax, _) = unsafe { sys::raw::syscall6(num, [device.raw(), cap.raw(), iova, flags, 0, 0]) };
    Error::check(rax)
}

fn iomap(device: Handle, cap: Handle, iova: u64, flags: IoFlags) -> Result<(), Error> {
    iomap_raw(device, cap, iova, flags.bits())
}

fn main() -> Result<(), Error> {
    let Some((f, config)) = pci::find("test-iomap", |v, d| (v, d) == (0x1234, 0x11e8))? else {
        println!("test-iomap: FAILED: no edu");
        return Err(Error::InvalidArgument);
    };
    let dev = config.device(f).ok_or(Error::InvalidArgument)?;
    let mut t = Checks {
        passed: 0,
        failed: 0,
    };
    let rw = IoFlags::READ | IoFlags::WRITE;
    let frame = Frame::alloc()?;
    let two = Frame::alloc_contiguous(2, 1, 0)?;
    let h = frame.handle();

    t.expect("iomap of a frame it holds", iomap(dev, h, IOVA, rw), Ok(()));
    t.expect(
        "the same address again",
        iomap(dev, two.handle(), IOVA, rw),
        Err(Error::AlreadyMapped),
    );
    t.expect(
        "a run overlapping it",
        iomap(dev, two.handle(), IOVA - PAGE, rw),
        Err(Error::AlreadyMapped),
    );
    t.expect(
        "the same frame elsewhere (allowed)",
        iomap(dev, h, IOVA + 16 * PAGE, IoFlags::READ),
        Ok(()),
    );
    t.expect(
        "frame_seal of a mapped frame",
        sys::frame_seal(h),
        Err(Error::AlreadyMapped),
    );
    t.expect(
        "a handle it does not hold",
        iomap(dev, Handle::from_raw(0x5eed_5eed), IOVA + PAGE, rw),
        Err(Error::BadCapability),
    );
    t.expect(
        "its device page as the frames",
        iomap(dev, dev, IOVA + PAGE, rw),
        Err(Error::InvalidArgument),
    );
    let Some(pci::Bar::Memory { address: bar0, .. }) = config.bars(f)[0] else {
        println!("test-iomap: FAILED: edu's BAR0 is not a memory BAR");
        return Err(Error::InvalidArgument);
    };
    let bar = DeviceFrame::claim(bar0)?;
    t.expect(
        "a BAR page as the frames",
        iomap(dev, bar.handle(), IOVA + PAGE, rw),
        Err(Error::InvalidArgument),
    );
    t.expect(
        "a BAR page as the device (no function's page)",
        iomap(bar.handle(), h, IOVA + PAGE, rw),
        Err(Error::NotSupported),
    );
    t.expect(
        "a RAM frame as the device",
        iomap(h, h, IOVA + PAGE, rw),
        Err(Error::InvalidArgument),
    );
    let ep = Endpoint::create(false)?;
    t.expect(
        "an endpoint as the frames",
        iomap(dev, ep.handle(), IOVA + PAGE, rw),
        Err(Error::InvalidArgument),
    );

    let read_only = ipc::copy_with(h, Rights::READ | Rights::MAP | Rights::TRANSFER)?;
    t.expect(
        "WRITE through a read-only copy",
        iomap(dev, read_only, IOVA + PAGE, IoFlags::WRITE),
        Err(Error::PermissionDenied),
    );
    t.expect(
        "READ through a read-only copy",
        iomap(dev, read_only, IOVA + PAGE, IoFlags::READ),
        Ok(()),
    );
    let unmappable = ipc::copy_with(h, Rights::READ | Rights::WRITE | Rights::TRANSFER)?;
    t.expect(
        "a copy without MAP",
        iomap(dev, unmappable, IOVA + 2 * PAGE, IoFlags::READ),
        Err(Error::PermissionDenied),
    );
    // A copy of the device page without WRITE reads configuration space
    // but maps no DMA.
    let dev_ro = ipc::copy_with(dev, Rights::READ | Rights::MAP | Rights::TRANSFER);
    t.expect(
        "a read-only copy of the device page",
        dev_ro.map(drop),
        Ok(()),
    );
    let dev_ro = dev_ro?;
    t.expect(
        "iomap through the read-only device copy",
        iomap(dev_ro, h, IOVA + 3 * PAGE, rw),
        Err(Error::PermissionDenied),
    );
    t.expect(
        "iounmap through the read-only device copy",
        sys::iounmap(dev_ro, IOVA),
        Err(Error::PermissionDenied),
    );

    t.expect(
        "I/O address 0",
        iomap(dev, h, 0, rw),
        Err(Error::InvalidAddress),
    );
    t.expect(
        "an unaligned I/O address",
        iomap(dev, h, IOVA + 0x10, rw),
        Err(Error::InvalidAddress),
    );
    t.expect(
        "the last page, one frame",
        iomap(dev, h, abi::IOVA_TOP - PAGE, rw),
        Ok(()),
    );
    t.expect(
        "the last page, two frames (past the top)",
        iomap(dev, two.handle(), abi::IOVA_TOP - PAGE, rw),
        Err(Error::InvalidAddress),
    );
    t.expect(
        "beyond the top",
        iomap(dev, h, abi::IOVA_TOP, rw),
        Err(Error::InvalidAddress),
    );
    t.expect(
        "a non-canonical I/O address",
        iomap(dev, h, 1 << 63, rw),
        Err(Error::InvalidAddress),
    );
    t.expect(
        "no flags",
        iomap_raw(dev, h, IOVA + 4 * PAGE, 0),
        Err(Error::InvalidArgument),
    );
    t.expect(
        "undefined flags",
        iomap_raw(dev, h, IOVA + 4 * PAGE, 4),
        Err(Error::InvalidArgument),
    );

    t.expect(
        "iounmap where nothing starts",
        sys::iounmap(dev, IOVA + 5 * PAGE),
        Err(Error::NotMapped),
    );
    t.expect(
        "iounmap inside a mapping",
        sys::iounmap(dev, IOVA - PAGE),
        Err(Error::NotMapped),
    );
    t.expect(
        "iounmap at 0",
        sys::iounmap(dev, 0),
        Err(Error::InvalidAddress),
    );
    t.expect("iounmap", sys::iounmap(dev, IOVA + 16 * PAGE), Ok(()));
    t.expect(
        "iounmap twice",
        sys::iounmap(dev, IOVA + 16 * PAGE),
        Err(Error::NotMapped),
    );
    t.expect(
        "iounmap through a RAM frame",
        sys::iounmap(h, IOVA),
        Err(Error::InvalidArgument),
    );

    // Freeing a mapped frame unmaps it: the address is free again.
    drop(frame);
    t.expect(
        "iounmap where the freed frame was (gone with it)",
        sys::iounmap(dev, IOVA),
        Err(Error::NotMapped),
    );
    t.expect(
        "iounmap of the read-only copy's mapping",
        sys::iounmap(dev, IOVA + PAGE),
        Ok(()),
    );
    t.expect(
        "iomap of a run where the freed frame was",
        iomap(dev, two.handle(), IOVA, rw),
        Ok(()),
    );
    // Moving a mapped frame away unmaps it too.
    let inbox = Endpoint::create(false)?;
    let to = inbox.mint(0)?;
    // SAFETY: a move: `two` is not used again (its handle travels).
    let sent = unsafe { to.send_with([0, 0], two.handle(), 0) };
    core::mem::forget(two);
    t.expect("moving a mapped run", sent, Ok(()));
    t.expect(
        "its mapping went with the move",
        sys::iounmap(dev, IOVA),
        Err(Error::NotMapped),
    );
    if let Some(moved) = inbox.recv(0)?.cap {
        // SAFETY: the message gave us this handle: ours alone.
        drop(unsafe { Frame::from_raw(moved)? });
    }

    // The bound: `bounds::IOMAPS` records, then OutOfMemory.
    let mut frames = Vec::new();
    let mut mapped = 0;
    let last = loop {
        let f = Frame::alloc()?;
        let r = iomap(dev, f.handle(), IOVA + (mapped + 1) * PAGE, IoFlags::READ);
        frames.push(f);
        if r.is_err() {
            break r;
        }
        mapped += 1;
    };
    t.expect("mapping past bounds::IOMAPS", last, Err(Error::OutOfMemory));
    println!(
        "test-iomap: {mapped} mappings held at once before OutOfMemory (bound {})",
        abi::bounds::IOMAPS
    );
    let all = if mapped as usize == abi::bounds::IOMAPS {
        Ok(())
    } else {
        Err(Error::OutOfMemory)
    };
    t.expect("as many as the bound", all, Ok(()));
    drop(frames);
    t.expect(
        "after freeing them all, a mapping again",
        iomap(dev, read_only, IOVA, IoFlags::READ),
        Ok(()),
    );

    let stats = sys::frame_stats();
    println!(
        "test-iomap: {} checks passed, {} failed (frames held {})",
        t.passed, t.failed, stats.held_by_caller
    );
    drop(bar);
    drop(config);
    if t.failed == 0 {
        println!("test-iomap: ok");
        Ok(())
    } else {
        Err(Error::InvalidArgument)
    }
}
