//! Hardware access for drivers: device frames, device registers and DMA
//! buffers. None of them ever hands out a reference to the memory it
//! covers: a device may read or write it at any time, and a register read
//! can have side effects, so every access is volatile and bounds-checked.
//!
//! [`DeviceFrame`] owns one frame of device space (a hole in the memory
//! map, which the kernel gives one driver at a time); it is a different
//! type from a RAM [`Frame`], so it can never become a
//! [`Mapping`](crate::Mapping) with slices. [`DeviceRegion`] claims the
//! device frames of a physical range, maps them uncached and offers only
//! volatile register accessors. [`DmaBuffer`] is physically contiguous RAM
//! whose physical address a device can be given; its contents are read
//! and written only through volatile accessors and copies. All of them
//! give their frames back on drop (which also removes their mappings).

use crate::mem::{claim_at, give_back, reserve_pages, Claimed, Frame};
use crate::Error;
use abi::{Handle, MapFlags};
use core::sync::atomic::{fence, Ordering};
#[cfg(feature = "alloc")]
use {abi::PAGE_SIZE, alloc::vec::Vec};

/// An owned device capability: one frame of device space (registers, not
/// RAM), claimed exclusively. Given back (`frame_free`) on drop.
///
/// Map it with [`DeviceRegion::from_frame`] (or claim and map a range at
/// once with [`DeviceRegion::new`]); there is no way to get a slice of it.
#[derive(Debug)]
pub struct DeviceFrame {
    handle: Handle,
}

impl DeviceFrame {
    /// Claims the device frame at physical address `phys` (page aligned).
    ///
    /// Fails with the kernel's error (`FrameInUse` while another process
    /// holds it, `PermissionDenied` unless the caller is a driver or for
    /// the kernel's own interrupt controllers, ...), or with
    /// `InvalidFrame` if `phys` is RAM: the RAM frame is given back at once
    /// (allocate RAM with [`Frame::alloc_at`]). Costs one `cap_info`
    /// call besides the claim.
    pub fn claim(phys: u64) -> Result<DeviceFrame, Error> {
        match claim_at(phys)? {
            Claimed::Device(handle) => Ok(DeviceFrame { handle }),
            Claimed::Ram(handle) => {
                give_back(handle);
                Err(Error::InvalidFrame)
            }
        }
    }

    /// The capability.
    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// Physical address of the frame (`frame_phys`).
    pub fn phys(&self) -> Result<u64, Error> {
        crate::sys::frame_phys(self.handle)
    }
}

impl Drop for DeviceFrame {
    fn drop(&mut self) {
        // SAFETY: no reference into device memory exists: a `DeviceRegion`
        // (which owns its frames, so it is gone by now) offers volatile
        // accesses only, and a mapping made by hand with `sys::map` gives
        // only an address, whose use is its maker's `unsafe` step.
        let _ = unsafe { crate::sys::frame_free(self.handle) };
    }
}

/// The address of a naturally aligned `T` at `offset` in the `len` bytes
/// mapped at `base`.
///
/// # Panics
/// If the `T` is not inside the `len` bytes or not aligned.
fn element<T>(what: &str, base: u64, len: usize, offset: usize) -> *mut T {
    let size = core::mem::size_of::<T>();
    assert!(
        offset.checked_add(size).is_some_and(|end| end <= len),
        "{what} access at {offset:#x} (+{size}) outside {len:#x} bytes"
    );
    let address = base + offset as u64;
    assert!(
        address.is_multiple_of(size as u64),
        "misaligned {what} access at offset {offset:#x}"
    );
    address as *mut T
}

/// Memory-mapped device registers at a physical range, mapped uncached.
/// (With libos's `alloc` feature: it keeps one capability per page.)
#[cfg(feature = "alloc")]
#[derive(Debug)]
pub struct DeviceRegion {
    /// One capability per page (a device capability names one frame).
    frames: Vec<DeviceFrame>,
    /// Virtual address of `phys`.
    address: u64,
    phys: u64,
    len: usize,
}

#[cfg(feature = "alloc")]
impl DeviceRegion {
    /// Claims and maps the `len` bytes at physical address `phys` (widened
    /// to whole pages). Fails with the kernel's error for the first page it
    /// cannot claim (`FrameInUse` if another process holds it,
    /// `PermissionDenied` for kernel-reserved memory), or with
    /// `InvalidFrame` if any page is RAM; pages already claimed are given
    /// back.
    pub fn new(phys: u64, len: usize) -> Result<DeviceRegion, Error> {
        if len == 0 {
            return Err(Error::InvalidArgument);
        }
        let base = phys & !(PAGE_SIZE - 1);
        let end = phys.checked_add(len as u64).ok_or(Error::InvalidArgument)?;
        let pages = (end - base).div_ceil(PAGE_SIZE);
        let mut frames = Vec::new();
        frames
            .try_reserve_exact(pages as usize)
            .map_err(|_| Error::OutOfMemory)?;
        // Claim every page before taking address space: callers retry on
        // `FrameInUse`, and address space (with the page tables under it)
        // is never given back, so a failed claim must not consume any.
        // The kind is checked once for the whole range (what
        // `DeviceFrame::claim` does per page), before any frame is mapped
        // or leaves this function; a RAM page goes back with the rest.
        let before = crate::sys::frame_stats().device_by_caller;
        for i in 0..pages {
            let handle = crate::sys::frame_alloc_at(base + i * PAGE_SIZE)?;
            frames.push(DeviceFrame { handle });
        }
        if crate::sys::frame_stats().device_by_caller != before + pages {
            return Err(Error::InvalidFrame);
        }
        let address = reserve_pages(pages)?;
        for (i, frame) in frames.iter().enumerate() {
            crate::sys::map(
                frame.handle(),
                address + i as u64 * PAGE_SIZE,
                MapFlags::WRITE | MapFlags::UNCACHED,
            )?;
        }
        Ok(DeviceRegion {
            frames,
            address: address + (phys - base),
            phys,
            len,
        })
    }

    /// Maps a claimed device frame (the whole page, from offset 0). On
    /// failure the frame is given back.
    pub fn from_frame(frame: DeviceFrame) -> Result<DeviceRegion, Error> {
        let phys = frame.phys()?;
        let address = reserve_pages(1)?;
        crate::sys::map(
            frame.handle(),
            address,
            MapFlags::WRITE | MapFlags::UNCACHED,
        )?;
        Ok(DeviceRegion {
            frames: alloc::vec![frame],
            address,
            phys,
            len: PAGE_SIZE as usize,
        })
    }

    /// Physical address of offset 0.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty (never: `new` refuses `len == 0`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Pages (and capabilities) it holds.
    pub fn pages(&self) -> usize {
        self.frames.len()
    }

    /// The device capability of page `i` (what `irq_bind` asks for).
    pub fn handle(&self, i: usize) -> Option<Handle> {
        self.frames.get(i).map(DeviceFrame::handle)
    }

    /// Raw pointer to offset 0, for driver code with its own MMIO layer
    /// (a driver crate's register structs). Dereferencing it is the
    /// caller's `unsafe` step: volatile accesses only, inside
    /// [`len`](Self::len) bytes, while `self` is alive.
    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.address as *mut u8
    }

    /// Pointer to a naturally aligned `T` at `offset`.
    ///
    /// # Panics
    /// If `T` at `offset` is not inside the region or not aligned.
    fn register<T>(&self, offset: usize) -> *mut T {
        element("device", self.address, self.len, offset)
    }

    /// Reads a byte at `offset`. Panics outside the region.
    pub fn read8(&self, offset: usize) -> u8 {
        // SAFETY: `register` checked bounds and alignment; the page is
        // mapped for as long as `self` holds its frame.
        unsafe { self.register::<u8>(offset).read_volatile() }
    }

    /// Reads a `u16` at `offset` (aligned). Panics outside the region.
    pub fn read16(&self, offset: usize) -> u16 {
        // SAFETY: as `read8`.
        unsafe { self.register::<u16>(offset).read_volatile() }
    }

    /// Reads a `u32` at `offset` (aligned). Panics outside the region.
    pub fn read32(&self, offset: usize) -> u32 {
        // SAFETY: as `read8`.
        unsafe { self.register::<u32>(offset).read_volatile() }
    }

    /// Reads a `u64` at `offset` (aligned). Panics outside the region.
    pub fn read64(&self, offset: usize) -> u64 {
        // SAFETY: as `read8`.
        unsafe { self.register::<u64>(offset).read_volatile() }
    }

    /// Writes a byte at `offset`. Panics outside the region.
    pub fn write8(&self, offset: usize, value: u8) {
        // SAFETY: as `read8`; the page is mapped writable.
        unsafe { self.register::<u8>(offset).write_volatile(value) }
    }

    /// Writes a `u16` at `offset` (aligned). Panics outside the region.
    pub fn write16(&self, offset: usize, value: u16) {
        // SAFETY: as `write8`.
        unsafe { self.register::<u16>(offset).write_volatile(value) }
    }

    /// Writes a `u32` at `offset` (aligned). Panics outside the region.
    pub fn write32(&self, offset: usize, value: u32) {
        // SAFETY: as `write8`.
        unsafe { self.register::<u32>(offset).write_volatile(value) }
    }

    /// Writes a `u64` at `offset` (aligned). Panics outside the region.
    pub fn write64(&self, offset: usize, value: u64) {
        // SAFETY: as `write8`.
        unsafe { self.register::<u64>(offset).write_volatile(value) }
    }
}

/// Physically contiguous RAM for a device to read or write, mapped
/// writable (write-back: x86 DMA is cache coherent).
///
/// A device given [`phys`](DmaBuffer::phys) may write the buffer at any
/// time, so it is never seen as a slice: it is read with volatile loads
/// ([`read8`](DmaBuffer::read8).. and [`copy_to`](DmaBuffer::copy_to)) and
/// written with volatile stores ([`write8`](DmaBuffer::write8).. and
/// [`copy_from`](DmaBuffer::copy_from)). Reads start with an acquire fence
/// and writes end with a release fence, so that they stay after the
/// access that showed the device was done (a status register) and before
/// the one that hands the buffer over (a doorbell), including ordinary
/// memory accesses around them. Volatile accesses keep their program
/// order among themselves (and with [`DeviceRegion`]'s), and x86 keeps
/// loads after loads and stores after stores, so on x86 the fences cost no
/// instruction; they only stop the compiler from moving accesses across.
///
/// Made with [`for_device`](DmaBuffer::for_device), it is also mapped into
/// that device's DMA address space (`iomap`) at the I/O address
/// [`bus`](DmaBuffer::bus) gives, which is what the device must be told;
/// behind an IOMMU the device reaches nothing else. Dropping it frees the
/// frames, and the kernel takes them out of the device's reach (and
/// flushes the IOMMU) before they can be reused.
#[derive(Debug)]
pub struct DmaBuffer {
    frame: Frame,
    address: u64,
    phys: u64,
    bus: u64,
}

impl DmaBuffer {
    /// `count` contiguous zeroed frames, the first aligned to `align`
    /// frames (a power of two), the last byte below `max_phys` (0 = no
    /// limit), mapped writable at an address chosen by libos, and in no
    /// device's DMA address space (its [`bus`](Self::bus) address is its
    /// physical one, which only a device without an IOMMU reaches).
    pub fn new(count: u64, align: u64, max_phys: u64) -> Result<DmaBuffer, Error> {
        let frame = Frame::alloc_contiguous(count, align, max_phys)?;
        let phys = frame.phys()?;
        let address = reserve_pages(count)?;
        crate::sys::map(frame.handle(), address, MapFlags::WRITE)?;
        Ok(DmaBuffer {
            frame,
            address,
            phys,
            bus: phys,
        })
    }

    /// As [`new`](Self::new), and mapped for the PCI function of `device`
    /// (the capability to its configuration page) to do what `flags`
    /// allow, at an I/O address equal to the physical one (unique, as the
    /// frames are, and nothing the driver did not know: a libOS policy,
    /// not the kernel's). Where no IOMMU translates the function's DMA
    /// (`NotSupported`) the device is given the physical address, and
    /// reaches all of memory.
    pub fn for_device(
        device: Handle,
        count: u64,
        align: u64,
        max_phys: u64,
        flags: abi::IoFlags,
    ) -> Result<DmaBuffer, Error> {
        let buffer = DmaBuffer::new(count, align, max_phys)?;
        // SAFETY: the buffer's memory is only reached through volatile
        // accesses and copies (never a reference), so the device may write
        // it at any time.
        match unsafe { crate::sys::iomap(device, buffer.frame.handle(), buffer.phys, flags) } {
            Ok(()) | Err(Error::NotSupported) => Ok(buffer),
            Err(e) => Err(e),
        }
    }

    /// Physical address of the first byte.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// The address the device must be given for the first byte: its I/O
    /// address in the device's DMA address space (the physical address
    /// where no IOMMU translates, or for a buffer made with `new`).
    pub fn bus(&self) -> u64 {
        self.bus
    }

    /// The capability to its frames (for `iomap` at other addresses).
    pub fn handle(&self) -> abi::Handle {
        self.frame.handle()
    }

    /// Virtual address of the first byte (for driver code with its own
    /// accessors: volatile accesses only, inside [`len`](Self::len)
    /// bytes, while `self` is alive).
    pub fn address(&self) -> u64 {
        self.address
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.frame.len()
    }

    /// Whether it is empty (never: the kernel refuses `count == 0`).
    pub fn is_empty(&self) -> bool {
        self.frame.is_empty()
    }

    /// Raw pointer to the first byte (see [`address`](Self::address)).
    pub fn as_ptr(&self) -> *const u8 {
        self.address as *const u8
    }

    /// Pointer to a naturally aligned `T` at `offset`.
    ///
    /// # Panics
    /// If `T` at `offset` is not inside the buffer or not aligned.
    fn element<T>(&self, offset: usize) -> *mut T {
        element("DMA buffer", self.address, self.len(), offset)
    }

    /// Checks that `count` bytes from `offset` are inside the buffer.
    ///
    /// # Panics
    /// If they are not.
    fn check_range(&self, offset: usize, count: usize) {
        assert!(
            offset
                .checked_add(count)
                .is_some_and(|end| end <= self.len()),
            "DMA buffer copy at {offset:#x} (+{count}) outside {:#x} bytes",
            self.len()
        );
    }

    /// Reads the `T` at `offset` (aligned), after an acquire fence.
    ///
    /// # Panics
    /// If it is not inside the buffer or not aligned.
    fn read<T: Copy>(&self, offset: usize) -> T {
        let at = self.element::<T>(offset);
        fence(Ordering::Acquire);
        // SAFETY: `element` checked bounds and alignment; the buffer is
        // mapped for as long as `self` owns its frame, and is only ever
        // accessed through raw pointers (no reference a device write
        // could invalidate).
        unsafe { at.read_volatile() }
    }

    /// Writes `value` at `offset` (aligned), then a release fence.
    ///
    /// # Panics
    /// If it is not inside the buffer or not aligned.
    fn write<T: Copy>(&mut self, offset: usize, value: T) {
        let at = self.element::<T>(offset);
        // SAFETY: as `read`; the buffer is mapped writable, and `&mut self`
        // makes this the program's only access.
        unsafe { at.write_volatile(value) };
        fence(Ordering::Release);
    }

    /// Reads a byte at `offset`. Panics outside the buffer.
    pub fn read8(&self, offset: usize) -> u8 {
        self.read(offset)
    }

    /// Reads a `u16` at `offset` (aligned). Panics outside the buffer.
    pub fn read16(&self, offset: usize) -> u16 {
        self.read(offset)
    }

    /// Reads a `u32` at `offset` (aligned). Panics outside the buffer.
    pub fn read32(&self, offset: usize) -> u32 {
        self.read(offset)
    }

    /// Reads a `u64` at `offset` (aligned). Panics outside the buffer.
    pub fn read64(&self, offset: usize) -> u64 {
        self.read(offset)
    }

    /// Writes a byte at `offset`. Panics outside the buffer.
    pub fn write8(&mut self, offset: usize, value: u8) {
        self.write(offset, value)
    }

    /// Writes a `u16` at `offset` (aligned). Panics outside the buffer.
    pub fn write16(&mut self, offset: usize, value: u16) {
        self.write(offset, value)
    }

    /// Writes a `u32` at `offset` (aligned). Panics outside the buffer.
    pub fn write32(&mut self, offset: usize, value: u32) {
        self.write(offset, value)
    }

    /// Writes a `u64` at `offset` (aligned). Panics outside the buffer.
    pub fn write64(&mut self, offset: usize, value: u64) {
        self.write(offset, value)
    }

    /// Copies `out.len()` bytes from `offset` into `out`, one volatile
    /// byte load each. Panics if the range is outside the buffer.
    pub fn copy_to(&self, offset: usize, out: &mut [u8]) {
        self.check_range(offset, out.len());
        fence(Ordering::Acquire);
        for (i, byte) in out.iter_mut().enumerate() {
            // SAFETY: in bounds (checked above); as `read`.
            *byte = unsafe { self.as_ptr().add(offset + i).read_volatile() };
        }
    }

    /// Copies `data` to `offset`, one volatile byte store each. Panics if
    /// the range is outside the buffer.
    pub fn copy_from(&mut self, offset: usize, data: &[u8]) {
        self.check_range(offset, data.len());
        let to = self.address as *mut u8;
        for (i, &byte) in data.iter().enumerate() {
            // SAFETY: in bounds (checked above); as `write`.
            unsafe { to.add(offset + i).write_volatile(byte) };
        }
        fence(Ordering::Release);
    }
}

// Dropping a `DeviceRegion` or `DmaBuffer` drops its frames: `frame_free`
// removes the mappings made through them, then gives the frames back. No
// reference into them can exist: they hand out none.
