//! The bulk memory calls: what a library OS heap needs to grow and shrink
//! by many pages in four kernel entries instead of two per page.
//!
//! - `frame_alloc_many(count)`: `count` zeroed frames as few capabilities,
//!   pooled zeroed blocks of [`BLOCK`] frames first (no zeroing on the call
//!   path when the pool has them), single frames for the rest;
//! - `map_many(handles, vaddr, flags)`: the capabilities' frames back to
//!   back from `vaddr`, one `map` record each;
//! - `unmap_many(vaddr, pages)`: every `map` mapping that tiles the range;
//! - `free_many(handles)`: the capabilities, their mappings first.
//!
//! Each is all-or-nothing (every handle, right and page is checked before
//! anything changes, and a failure part-way, out of memory, undoes what was
//! done) and bounded ([`abi::bounds::BULK`] handles or frames,
//! [`abi::bounds::BULK_PAGES`] pages per call). This module owns their
//! semantics; copying the handle arrays in and out of user memory is the
//! kernel's (the caller passes the results through `write`, or the
//! handles already read).
use super::{install, page_flags, require, unmap_at, AddressSpace, Kernel, Platform, Proc, PAGE};
use crate::zero_pool::BLOCK;
use abi::bounds::{BULK, BULK_PAGES};
use abi::{Error, Handle, MapFlags, Rights, USER_MAP_TOP, USER_MIN};
use alloc::vec::Vec;

impl<P: Platform> Kernel<P> {
    /// `frame_alloc_many(count, out)`: `count` (1 to [`BULK`]) zeroed RAM
    /// frames, as `count / BLOCK` capabilities of a block each (a block the
    /// pool does not have and the allocator cannot give aligned becomes
    /// single frames) and one capability per remaining frame; `write`
    /// stores the handles (the kernel copies them to the caller's `out`).
    /// Returns how many handles there are. All or nothing: on
    /// `OutOfMemory`, `CapTableFull` or a failing `write` every capability
    /// taken goes back.
    pub fn frame_alloc_many(
        &mut self,
        pid: u64,
        count: u64,
        write: impl FnOnce(&mut Proc<P>, &[u64]) -> Result<(), Error>,
    ) -> Result<u64, Error> {
        if count == 0 || count > BULK as u64 {
            return Err(Error::InvalidArgument);
        }
        self.caller(pid)?;
        let mut handles = Vec::new();
        handles
            .try_reserve(count as usize)
            .map_err(|_| Error::OutOfMemory)?;
        let taken = self.take_many(pid, count, &mut handles);
        let written = taken.and_then(|()| write(self.caller(pid)?, &handles));
        match written {
            Ok(()) => Ok(handles.len() as u64),
            Err(e) => {
                for &h in &handles {
                    // Just granted and mapped nowhere: cannot fail.
                    let _ = self.frame_free(pid, Handle::from_raw(h));
                }
                Err(e)
            }
        }
    }

    /// Grants `count` zeroed frames to `pid`, pushing each handle.
    fn take_many(&mut self, pid: u64, count: u64, handles: &mut Vec<u64>) -> Result<(), Error> {
        let mut singles = count % BLOCK;
        for _ in 0..count / BLOCK {
            match self.platform.alloc_block() {
                Ok(first) => handles.push(self.grant_ram(pid, first, BLOCK)?),
                // No aligned block free: single frames will do.
                Err(_) => singles += BLOCK,
            }
        }
        for _ in 0..singles {
            let frame = self.platform.alloc().map_err(super::alloc_error)?;
            handles.push(self.grant_ram(pid, frame, 1)?);
        }
        Ok(())
    }

    /// `map_many(handles, vaddr, flags)`: maps each capability (1 to
    /// [`BULK`] of them, at most [`BULK_PAGES`] pages in all) in order, back
    /// to back from `vaddr`, as `map` would one at a time (the same rights,
    /// address rule and errors; one record each). Everything is checked
    /// before anything is mapped; a failure part-way (out of page-table
    /// memory) unmaps what it mapped.
    pub fn map_many(
        &mut self,
        pid: u64,
        handles: &[Handle],
        vaddr: u64,
        flags: MapFlags,
    ) -> Result<u64, Error> {
        if handles.is_empty() || handles.len() > BULK {
            return Err(Error::InvalidArgument);
        }
        let p = self.caller(pid)?;
        let mut pages = 0u64;
        for &h in handles {
            let cap = p.caps.get(h)?;
            require(cap.rights, Rights::MAP | Rights::READ)?;
            if flags.contains(MapFlags::WRITE) {
                require(cap.rights, Rights::WRITE)?;
            }
            if flags.contains(MapFlags::EXEC) {
                if matches!(cap.kind, super::CapKind::Device { .. }) {
                    return Err(Error::InvalidArgument);
                }
                require(cap.rights, Rights::EXEC)?;
            }
            pages += cap.kind.frames().1;
        }
        if pages > BULK_PAGES {
            return Err(Error::InvalidArgument);
        }
        if p.mappings.len() + handles.len() > abi::bounds::MAPPINGS {
            return Err(Error::OutOfMemory);
        }
        if !vaddr.is_multiple_of(PAGE) || vaddr < USER_MIN {
            return Err(Error::InvalidAddress);
        }
        let end = vaddr
            .checked_add(pages * PAGE)
            .filter(|&end| end <= USER_MAP_TOP)
            .ok_or(Error::InvalidAddress)?;
        let mut page = vaddr;
        while page < end {
            if p.space.is_mapped(page) {
                return Err(Error::AlreadyMapped);
            }
            page += PAGE;
        }
        let mut at = vaddr;
        for (i, &h) in handles.iter().enumerate() {
            // Looked up above: live.
            let cap = p.caps.get_mut(h)?;
            let device = matches!(cap.kind, super::CapKind::Device { .. });
            let (first, count) = cap.kind.frames();
            let done = install(
                &mut p.space,
                &mut p.mappings,
                h,
                first,
                count,
                at,
                page_flags(flags, device),
            );
            match done {
                Ok(()) => cap.mapped += 1,
                Err(e) => {
                    // Undo the mappings made so far (their starts are the
                    // sizes of the handles before this one).
                    let mut start = vaddr;
                    for &prev in &handles[..i] {
                        let pages = p.caps.get(prev).map_or(0, |c| c.kind.frames().1);
                        unmap_at(p, start);
                        start += pages * PAGE;
                    }
                    return Err(e);
                }
            }
            at += count * PAGE;
        }
        Ok(0)
    }

    /// `unmap_many(vaddr, pages)`: removes the `map` mappings that tile
    /// `[vaddr, vaddr + pages)` (1 to [`BULK_PAGES`] pages;
    /// `InvalidArgument` otherwise). The address rule is `unmap`'s
    /// (`InvalidAddress`); the range must start a mapping and every
    /// mapping's end must start the next one or end the range: a page that
    /// starts no mapping is `NotMapped`, a mapping that reaches past the
    /// range `InvalidArgument`. Checked before anything is removed.
    pub fn unmap_many(&mut self, pid: u64, vaddr: u64, pages: u64) -> Result<u64, Error> {
        if !vaddr.is_multiple_of(PAGE) || !(USER_MIN..USER_MAP_TOP).contains(&vaddr) {
            return Err(Error::InvalidAddress);
        }
        if pages == 0 || pages > BULK_PAGES {
            return Err(Error::InvalidArgument);
        }
        let end = vaddr
            .checked_add(pages * PAGE)
            .filter(|&end| end <= USER_MAP_TOP)
            .ok_or(Error::InvalidAddress)?;
        let p = self.caller(pid)?;
        let mut page = vaddr;
        while page < end {
            page += record_at(p, page).ok_or(Error::NotMapped)? * PAGE;
        }
        if page != end {
            return Err(Error::InvalidArgument);
        }
        let mut page = vaddr;
        while page < end {
            let Some(len) = record_at(p, page) else { break };
            unmap_at(p, page);
            page += len * PAGE;
        }
        Ok(0)
    }

    /// `free_many(handles)`: frees each capability (1 to [`BULK`] of them)
    /// as `frame_free` does, its mappings first. All are checked first: a
    /// handle the caller does not hold, or one listed twice, is
    /// `BadCapability` and nothing is freed.
    pub fn free_many(&mut self, pid: u64, handles: &[Handle]) -> Result<u64, Error> {
        if handles.is_empty() || handles.len() > BULK {
            return Err(Error::InvalidArgument);
        }
        let p = self.caller(pid)?;
        let mut raw = Vec::new();
        raw.try_reserve(handles.len())
            .map_err(|_| Error::OutOfMemory)?;
        for &h in handles {
            p.caps.get(h)?;
            raw.push(h.raw());
        }
        raw.sort_unstable();
        if raw.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::BadCapability);
        }
        for &h in handles {
            // Checked above: live, and each once.
            self.frame_free(pid, h)?;
        }
        Ok(0)
    }
}

/// The length in pages of the `map` mapping that starts at `vaddr`, if
/// one does.
fn record_at<S: AddressSpace, R>(p: &super::Process<S, R>, vaddr: u64) -> Option<u64> {
    let (_, tag) = p.space.frame_and_tag(vaddr)?;
    let record = p.mappings.get(usize::from(tag?))?;
    (record.start == vaddr).then_some(record.pages)
}
