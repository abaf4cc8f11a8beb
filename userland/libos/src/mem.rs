//! RAM frames and mappings as owned values: freed and unmapped on drop.
//!
//! [`Frame`] owns one RAM frame capability (one frame, or a contiguous
//! run); dropping it gives the capability back. [`Mapping`] maps a frame
//! into the address space and borrows it mutably, so the frame cannot be
//! freed (which would unmap the pages) while the mapping's slices are
//! alive, and no second mapping can change the bytes under them. Addresses
//! come from a bump allocator over [`MAP_AREA_BASE`]..[`MAP_AREA_LIMIT`],
//! with an unmapped guard page after each mapping; they are never reused.
//!
//! A `Frame` is always RAM, so a `Mapping`'s slices are plain memory.
//! Device space (registers, where a read has side effects) is a different
//! type, [`DeviceFrame`](crate::DeviceFrame), mapped only by
//! [`DeviceRegion`](crate::DeviceRegion), which offers volatile accesses
//! and never a reference.

use crate::ipc::SendCap;
use crate::Error;
use abi::{CapKindCode, Handle, MapFlags, Rights, PAGE_SIZE};
use core::marker::PhantomData;
use core::sync::atomic::{AtomicU64, Ordering};

/// Start of the area [`Mapping`] picks addresses from.
pub const MAP_AREA_BASE: u64 = 0x0000_2000_0000_0000;
/// End of that area (exclusive).
pub const MAP_AREA_LIMIT: u64 = 0x0000_3000_0000_0000;

/// Next free address of the mapping area.
static NEXT_ADDRESS: AtomicU64 = AtomicU64::new(MAP_AREA_BASE);

/// Reserves `pages` pages of virtual address space (plus a guard page that
/// stays unmapped) and returns the first address.
pub fn reserve_pages(pages: u64) -> Result<u64, Error> {
    let bytes = pages
        .checked_add(1)
        .and_then(|p| p.checked_mul(PAGE_SIZE))
        .ok_or(Error::InvalidArgument)?;
    let mut start = NEXT_ADDRESS.load(Ordering::Relaxed);
    loop {
        let end = start
            .checked_add(bytes)
            .filter(|&end| end <= MAP_AREA_LIMIT)
            .ok_or(Error::OutOfMemory)?;
        match NEXT_ADDRESS.compare_exchange(start, end, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return Ok(start),
            Err(now) => start = now,
        }
    }
}

/// Whether `frame_alloc_at` gave a RAM or a device capability (the
/// kernel's answer is a handle; [`cap_info`](crate::sys::cap_info) says
/// which).
pub(crate) enum Claimed {
    /// Free RAM.
    Ram(Handle),
    /// Device space (a hole in the memory map), claimed exclusively.
    Device(Handle),
}

/// Claims the frame at `phys` with `frame_alloc_at` and says what it is.
pub(crate) fn claim_at(phys: u64) -> Result<Claimed, Error> {
    let handle = crate::sys::frame_alloc_at(phys)?;
    match crate::sys::cap_info(handle) {
        Ok(info) if info.cap_kind() == Some(CapKindCode::Device) => Ok(Claimed::Device(handle)),
        Ok(_) => Ok(Claimed::Ram(handle)),
        Err(e) => {
            give_back(handle);
            Err(e)
        }
    }
}

/// The frames `handle` names if it is RAM (a frame or a contiguous run):
/// what [`Frame::from_raw`] and [`Mapping::from_handle`] ask the kernel.
/// `InvalidFrame` for any other kind (device space, or a kind this libos
/// does not know).
fn ram_pages(handle: Handle) -> Result<u64, Error> {
    let info = crate::sys::cap_info(handle)?;
    match info.cap_kind() {
        Some(CapKindCode::RamFrame | CapKindCode::RamRun) => Ok(info.frames),
        _ => Err(Error::InvalidFrame),
    }
}

/// Gives back a capability claimed by mistake (the wrong kind).
pub(crate) fn give_back(handle: Handle) {
    // SAFETY: the handle was just claimed and never mapped: no reference
    // into a mapping of it exists.
    let _ = unsafe { crate::sys::frame_free(handle) };
}

/// An owned RAM frame capability: one frame or a physically contiguous run.
/// Given back to the kernel (`frame_free`) on drop.
///
/// Always RAM, never device space (that is a
/// [`DeviceFrame`](crate::DeviceFrame)): the constructors check it, and
/// [`from_raw`](Frame::from_raw) asks the kernel.
#[derive(Debug)]
pub struct Frame {
    handle: Handle,
    pages: u64,
}

impl Frame {
    /// Any free RAM frame, zeroed.
    pub fn alloc() -> Result<Frame, Error> {
        Ok(Frame {
            handle: crate::sys::frame_alloc()?,
            pages: 1,
        })
    }

    /// The free RAM frame at physical address `phys` (page aligned).
    ///
    /// Fails with the kernel's error (`FrameInUse` if it is allocated,
    /// `PermissionDenied` if reserved, ...), or with `InvalidFrame` if
    /// `phys` is device space, which the kernel gives a driver for a hole
    /// in the memory map: that capability is given back at once (claim
    /// device space with [`DeviceFrame::claim`](crate::DeviceFrame::claim)).
    /// Costs one `cap_info` call besides the claim.
    pub fn alloc_at(phys: u64) -> Result<Frame, Error> {
        match claim_at(phys)? {
            Claimed::Ram(handle) => Ok(Frame { handle, pages: 1 }),
            Claimed::Device(handle) => {
                give_back(handle);
                Err(Error::InvalidFrame)
            }
        }
    }

    /// `count` physically contiguous zeroed frames; see
    /// [`sys::frame_alloc_contiguous`](crate::sys::frame_alloc_contiguous).
    pub fn alloc_contiguous(count: u64, align: u64, max_phys: u64) -> Result<Frame, Error> {
        Ok(Frame {
            handle: crate::sys::frame_alloc_contiguous(count, align, max_phys)?,
            pages: count,
        })
    }

    /// Takes ownership of a raw capability (for instance one that came
    /// with a message, [`Msg::cap`](crate::ipc::Msg::cap)); its size comes from the
    /// kernel ([`sys::cap_info`](crate::sys::cap_info)). `InvalidFrame` if
    /// it is not RAM (a device capability is a
    /// [`DeviceFrame`](crate::DeviceFrame)), `BadCapability` if the caller
    /// holds no such handle; on an error the handle stays the caller's.
    ///
    /// # Safety
    /// The caller owns `handle`: nothing else frees it or relies on its
    /// mappings. If another process may write the frame (it was shared
    /// with `WRITE`), its mappings must be read only through volatile
    /// accesses ([`Mapping::volatile_read`]), never through slices.
    pub unsafe fn from_raw(handle: Handle) -> Result<Frame, Error> {
        let pages = ram_pages(handle)?;
        Ok(Frame { handle, pages })
    }

    /// Gives the capability up without freeing it.
    pub fn into_raw(self) -> Handle {
        let handle = self.handle;
        core::mem::forget(self);
        handle
    }

    /// The capability.
    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// Frames the capability names.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        (self.pages * PAGE_SIZE) as usize
    }

    /// Whether it names no frame (never, for frames the kernel gave).
    pub fn is_empty(&self) -> bool {
        self.pages == 0
    }

    /// Physical address of the first frame (what a device needs for DMA).
    pub fn phys(&self) -> Result<u64, Error> {
        crate::sys::frame_phys(self.handle)
    }

    /// Makes the frames code, for good ([`crate::sys::frame_seal`]): from
    /// now on they map executable, never writable, in every process. Takes
    /// `&mut self`, so no [`Mapping`] of it is alive (the kernel refuses a
    /// mapped capability anyway).
    pub fn seal(&mut self) -> Result<(), Error> {
        crate::sys::frame_seal(self.handle)
    }

    /// Sends the frame, with only `rights`, in a message of `words`
    /// through `to`; the caller no longer holds it (its mappings are gone:
    /// they borrowed `self`). On failure the frame comes back with the
    /// error.
    pub fn send(self, to: &SendCap, words: [u64; 2], rights: Rights) -> Result<(), (Error, Frame)> {
        // SAFETY: `self` is consumed, so no `Mapping` of it is alive; the
        // move ends our access, so the receiver's writes cannot be seen.
        match unsafe { to.send_with(words, self.handle, abi::send_rights(rights)) } {
            Ok(()) => {
                core::mem::forget(self);
                Ok(())
            }
            Err(e) => Err((e, self)),
        }
    }

    /// Sends a copy of the capability with only `rights` in a message of
    /// `words` through `to`; both processes hold the frame.
    ///
    /// # Safety
    /// If `rights` include `WRITE`, the receiver may write the frame at any
    /// time: from now on read its mappings only through volatile accesses
    /// ([`Mapping::volatile_read`]), never through slices.
    pub unsafe fn share(&self, to: &SendCap, words: [u64; 2], rights: Rights) -> Result<(), Error> {
        let flags = abi::SEND_COPY | abi::send_rights(rights);
        // SAFETY: no move, so no mapping goes; the caller accepts the
        // contract on concurrent writes.
        unsafe { to.send_with(words, self.handle, flags) }
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        // SAFETY: every `Mapping` of this frame borrows it, so none is
        // alive; nothing else owns the handle (see `from_raw`).
        let _ = unsafe { crate::sys::frame_free(self.handle) };
    }
}

/// A RAM frame mapped into the address space; unmapped on drop.
///
/// It borrows the [`Frame`] it maps mutably (or, through
/// [`from_handle`](Mapping::from_handle), maps a handle the caller vouches
/// for), so the frame outlives the mapping and is mapped only once at a
/// time. Read [`Frame::phys`] before mapping, or use [`Mapping::handle`].
#[derive(Debug)]
pub struct Mapping<'frame> {
    handle: Handle,
    address: u64,
    len: usize,
    flags: MapFlags,
    _frame: PhantomData<&'frame mut Frame>,
}

impl<'frame> Mapping<'frame> {
    /// Maps `frame` at an address chosen by libos.
    pub fn new(frame: &'frame mut Frame, flags: MapFlags) -> Result<Self, Error> {
        let address = reserve_pages(frame.pages)?;
        Self::new_at(frame, address, flags)
    }

    /// Maps `frame` at `address` (page aligned and free). Keep clear of
    /// libos's own areas ([`HEAP_BASE`](crate::heap::HEAP_BASE) up to
    /// [`MAP_AREA_LIMIT`]): a page taken there stops the heap (or a later
    /// [`Mapping::new`]) at it.
    pub fn new_at(frame: &'frame mut Frame, address: u64, flags: MapFlags) -> Result<Self, Error> {
        crate::sys::map(frame.handle, address, flags)?;
        Ok(Mapping {
            handle: frame.handle,
            address,
            len: frame.len(),
            flags,
            _frame: PhantomData,
        })
    }
}

impl Mapping<'static> {
    /// Maps every frame of a RAM capability (its size comes from the
    /// kernel, [`sys::cap_info`](crate::sys::cap_info)), at `address` or
    /// (if `None`) at an address chosen by libos. `InvalidFrame` if the
    /// capability is not RAM (map device capabilities with
    /// [`DeviceRegion`](crate::DeviceRegion)).
    ///
    /// # Safety
    /// `handle` must stay live (not freed, not moved away) as long as the
    /// mapping. If anything else may write the frames meanwhile (another
    /// process, another mapping), access them only through volatile
    /// accesses, never through slices.
    pub unsafe fn from_handle(
        handle: Handle,
        address: Option<u64>,
        flags: MapFlags,
    ) -> Result<Self, Error> {
        let pages = ram_pages(handle)?;
        let address = match address {
            Some(a) => a,
            None => reserve_pages(pages)?,
        };
        crate::sys::map(handle, address, flags)?;
        Ok(Mapping {
            handle,
            address,
            len: (pages * PAGE_SIZE) as usize,
            flags,
            _frame: PhantomData,
        })
    }
}

impl Mapping<'_> {
    /// The capability it maps through.
    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// Virtual address of the first byte.
    pub fn address(&self) -> u64 {
        self.address
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it maps nothing (never, for mappings the kernel made).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The flags it was mapped with.
    pub fn flags(&self) -> MapFlags {
        self.flags
    }

    /// Raw pointer to the first byte.
    pub fn as_ptr(&self) -> *const u8 {
        self.address as *const u8
    }

    /// Raw mutable pointer to the first byte (writes fault unless mapped
    /// with `WRITE`).
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.address as *mut u8
    }

    /// The mapped bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` bytes from `address` are mapped readable for as
        // long as `self` lives (the frame is borrowed or vouched for), and
        // they are RAM: a `Frame` is never device space (its constructors,
        // `Frame::from_raw` and `from_handle` check). Only
        // this mapping can write them: the frame is borrowed mutably, and a
        // frame shared with a writer is the caller's duty (`share`,
        // `from_raw`, `from_handle`).
        unsafe { core::slice::from_raw_parts(self.as_ptr(), self.len) }
    }

    /// The mapped bytes, writable.
    ///
    /// # Panics
    /// If the mapping is not writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        assert!(
            self.flags.contains(MapFlags::WRITE),
            "as_mut_slice on a read-only mapping"
        );
        // SAFETY: as `as_slice`, and the pages are writable; `&mut self`
        // makes this the only slice of this mapping.
        unsafe { core::slice::from_raw_parts_mut(self.as_mut_ptr(), self.len) }
    }

    /// Copies bytes from `offset` into `out` with volatile reads: for
    /// memory another process may be writing.
    ///
    /// # Panics
    /// If the range is outside the mapping.
    pub fn volatile_read(&self, offset: usize, out: &mut [u8]) {
        let end = offset.checked_add(out.len());
        assert!(
            end.is_some_and(|e| e <= self.len),
            "read outside the mapping"
        );
        for (i, byte) in out.iter_mut().enumerate() {
            // SAFETY: in bounds (checked above) of a readable mapping.
            *byte = unsafe { self.as_ptr().add(offset + i).read_volatile() };
        }
    }

    /// Copies `data` to `offset` with volatile writes: for memory another
    /// process may be reading.
    ///
    /// # Panics
    /// If the range is outside the mapping or the mapping is not writable.
    pub fn volatile_write(&mut self, offset: usize, data: &[u8]) {
        let end = offset.checked_add(data.len());
        assert!(
            end.is_some_and(|e| e <= self.len),
            "write outside the mapping"
        );
        assert!(
            self.flags.contains(MapFlags::WRITE),
            "volatile_write on a read-only mapping"
        );
        for (i, &byte) in data.iter().enumerate() {
            // SAFETY: in bounds (checked above) of a writable mapping.
            unsafe { self.as_mut_ptr().add(offset + i).write_volatile(byte) };
        }
    }
}

impl Drop for Mapping<'_> {
    fn drop(&mut self) {
        // SAFETY: every slice of this mapping borrows `self`, so none is
        // alive.
        let _ = unsafe { crate::sys::unmap(self.address) };
    }
}
