//! I/O address spaces: which RAM frames each PCI function may reach by DMA
//! (`iomap`/`iounmap`), and the rule that a frame leaves every device's
//! reach before it can be reused.
//!
//! A PCI function is named by its configuration page, the device frame a
//! driver claims with `frame_alloc_at` (its *device capability*). Behind an
//! IOMMU ([`Platform::io_translated`]) the function starts with an empty
//! DMA address space; a holder of its device capability maps frames it
//! holds into it at I/O addresses it chooses, page by page as the platform
//! walks them ([`Platform::io_map`]). Each `iomap` is one [`IoMap`] record,
//! kept here by function and first I/O address, and it counts as a mapping
//! of *both* capabilities (their `mapped` count), so every path that lets
//! a capability go (`frame_free`, a move in a message, `frame_seal`'s
//! refusal, the fast IPC path's refusal) already knows to look here.
//!
//! A blocked transfer is told to whoever asked (`iofault_bind`): the
//! kernel reads the IOMMU's fault record and [`Kernel::io_fault`] puts a
//! kernel-made message (`RECV_IRQ`, words: the I/O address, and the reason
//! with [`abi::IOFAULT_WRITE`]) on the bound endpoint.
//!
//! The ordering rule, which the host model checks on every free: a record
//! goes (its pages unmapped, then the function's IOTLB flushed,
//! [`Platform::io_flush`]) before the capability it names leaves its
//! holder's table (freed, moved, or its holder ending), so before the
//! frames can return to the allocator.
use super::{require, CapKind, Kernel, Platform, PAGE};
use abi::{Error, Handle, IoFlags, Rights};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// One `iomap`: `pages` frames from `first` (all of capability `cap`'s)
/// mapped at consecutive I/O addresses of a function's space from the
/// record's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoMap {
    /// The process that made it (it holds both capabilities).
    pub pid: u64,
    /// Its handle to the function's device capability.
    pub device: Handle,
    /// Its handle to the RAM frames.
    pub cap: Handle,
    /// First frame.
    pub first: u64,
    /// Frames.
    pub pages: u64,
    /// What the device may do with them.
    pub flags: IoFlags,
}

/// Every function's `iomap` records: function (configuration page's
/// physical address) -> first I/O address -> record.
pub type IoSpaces = BTreeMap<u64, BTreeMap<u64, IoMap>>;

/// Where a function's blocked transfers are told (`iofault_bind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoFaultBinding {
    /// The process that bound it (its end unbinds).
    pub pid: u64,
    /// Its handle to the device (the binding lapses when it goes).
    pub device: Handle,
    /// The endpoint.
    pub ep: u64,
    /// The send capability's badge.
    pub badge: u64,
}

impl<P: Platform> Kernel<P> {
    /// The function whose device capability `device` of `pid` is, checked
    /// as `iomap` and `iounmap` check it: held (`BadCapability`), a device
    /// page (`InvalidArgument`), with `MAP|WRITE` (`PermissionDenied`),
    /// translated by an IOMMU (`NotSupported`).
    fn io_function(&mut self, pid: u64, device: Handle) -> Result<u64, Error> {
        let cap = *self.caller(pid)?.caps.get(device)?;
        let CapKind::Device { frame } = cap.kind else {
            return Err(Error::InvalidArgument);
        };
        require(cap.rights, Rights::MAP | Rights::WRITE)?;
        let function = frame * PAGE;
        if !self.platform.io_translated(function) {
            return Err(Error::NotSupported);
        }
        Ok(function)
    }

    /// `iomap`: see the syscall table. Checked in this order: the device
    /// capability ([`io_function`](Self::io_function)), the frames' (held,
    /// RAM, `MAP` and the rights `flags` need), the address rule, the
    /// caller's bound, then that nothing is mapped there.
    pub fn iomap(
        &mut self,
        pid: u64,
        device: Handle,
        cap: Handle,
        iova: u64,
        flags: IoFlags,
    ) -> Result<u64, Error> {
        let function = self.io_function(pid, device)?;
        let p = self.caller(pid)?;
        let held = *p.caps.get(cap)?;
        let CapKind::Ram { first, count } = held.kind else {
            return Err(Error::InvalidArgument);
        };
        require(held.rights, Rights::MAP)?;
        if flags.contains(IoFlags::READ) {
            require(held.rights, Rights::READ)?;
        }
        if flags.contains(IoFlags::WRITE) {
            require(held.rights, Rights::WRITE)?;
        }
        io_range(iova, count)?;
        if p.iomaps >= abi::bounds::IOMAPS {
            return Err(Error::OutOfMemory);
        }
        if (0..count).any(|i| self.platform.io_is_mapped(function, iova + i * PAGE)) {
            return Err(Error::AlreadyMapped);
        }
        for i in 0..count {
            let at = iova + i * PAGE;
            if self
                .platform
                .io_map(function, at, first + i, flags)
                .is_err()
            {
                // Only table frames can run out: nothing mapped survives.
                for j in 0..i {
                    self.platform.io_unmap(function, iova + j * PAGE);
                }
                self.platform.io_flush(function);
                return Err(Error::OutOfMemory);
            }
        }
        // An IOMMU may cache "not present" (VT-d's caching mode, which
        // emulators set): the device sees the new pages after a flush.
        self.platform.io_flush(function);
        self.iomaps.entry(function).or_default().insert(
            iova,
            IoMap {
                pid,
                device,
                cap,
                first,
                pages: count,
                flags,
            },
        );
        let p = self.caller(pid)?;
        p.iomaps += 1;
        for h in [device, cap] {
            if let Ok(c) = p.caps.get_mut(h) {
                c.mapped += 1;
            }
        }
        Ok(0)
    }

    /// `iounmap`: the record starting at `iova` in the function's space,
    /// whoever of its holders made it.
    pub fn iounmap(&mut self, pid: u64, device: Handle, iova: u64) -> Result<u64, Error> {
        let function = self.io_function(pid, device)?;
        io_range(iova, 1)?;
        let record = self
            .iomaps
            .get_mut(&function)
            .and_then(|space| space.remove(&iova))
            .ok_or(Error::NotMapped)?;
        self.io_unmapped(function, iova, record);
        self.platform.io_flush(function);
        self.forget_empty(function);
        Ok(0)
    }

    /// Removes (and flushes) every record of `pid` through `handle`, as the
    /// device or as the frames: `handle` is leaving `pid`'s table.
    pub(super) fn io_unmap_handle(&mut self, pid: u64, handle: Handle) {
        self.io_remove_where(|r| r.pid == pid && (r.device == handle || r.cap == handle));
    }

    /// Removes (and flushes) every record of `pid`, which is ending: before
    /// any frame it held can be freed.
    pub(super) fn end_iomaps(&mut self, pid: u64) {
        self.io_remove_where(|r| r.pid == pid);
        self.io_faults.retain(|_, b| b.pid != pid);
    }

    /// Removes the records `doomed` picks, then flushes each function
    /// that lost one (one invalidation per function, before returning).
    fn io_remove_where(&mut self, doomed: impl Fn(&IoMap) -> bool) {
        let mut gone: Vec<(u64, u64, IoMap)> = Vec::new();
        for (&function, space) in self.iomaps.iter_mut() {
            space.retain(|&iova, r| {
                if doomed(r) {
                    gone.push((function, iova, *r));
                    false
                } else {
                    true
                }
            });
        }
        for &(function, iova, record) in &gone {
            self.io_unmapped(function, iova, record);
        }
        // `gone` is in function order (the map's): one flush each.
        let mut functions: Vec<u64> = gone.iter().map(|g| g.0).collect();
        functions.dedup();
        for function in functions {
            self.platform.io_flush(function);
            self.forget_empty(function);
        }
    }

    /// Unmaps a removed record's pages and uncounts it from its maker's
    /// capabilities (those still in its table). The caller flushes.
    fn io_unmapped(&mut self, function: u64, iova: u64, record: IoMap) {
        for i in 0..record.pages {
            self.platform.io_unmap(function, iova + i * PAGE);
        }
        if let Some(p) = self.procs.get_mut(record.pid) {
            p.iomaps = p.iomaps.saturating_sub(1);
            for h in [record.device, record.cap] {
                if let Ok(c) = p.caps.get_mut(h) {
                    c.mapped = c.mapped.saturating_sub(1);
                }
            }
        }
    }

    fn forget_empty(&mut self, function: u64) {
        if self.iomaps.get(&function).is_some_and(|s| s.is_empty()) {
            self.iomaps.remove(&function);
        }
    }

    /// Every `iomap` record, by function and first I/O address.
    pub fn io_spaces(&self) -> &IoSpaces {
        &self.iomaps
    }

    /// `iofault_bind`: the device checks of `iomap`, then `ep` (a send
    /// capability; 0 unbinds the caller's binding). One binding per
    /// function: another live holder's is `FrameInUse`.
    pub fn iofault_bind(&mut self, pid: u64, device: Handle, ep: Handle) -> Result<u64, Error> {
        let function = self.io_function(pid, device)?;
        if ep.raw() == 0 {
            if self.io_faults.get(&function).is_some_and(|b| b.pid == pid) {
                self.io_faults.remove(&function);
            }
            return Ok(0);
        }
        let (ep, badge) = self.send_target(pid, ep)?;
        if !self.endpoints.contains_key(&ep) {
            return Err(Error::NoSuchProcess);
        }
        if let Some(b) = self.io_faults.get(&function).copied() {
            if b.pid != pid && self.binding_holds(function, &b) {
                return Err(Error::FrameInUse);
            }
        }
        self.io_faults.insert(
            function,
            IoFaultBinding {
                pid,
                device,
                ep,
                badge,
            },
        );
        Ok(0)
    }

    /// Whether `b`'s maker still holds the device through its handle.
    fn binding_holds(&self, function: u64, b: &IoFaultBinding) -> bool {
        self.procs.get(b.pid).is_some_and(|p| {
            p.caps.get(b.device).is_ok_and(|c| {
                c.kind
                    == (CapKind::Device {
                        frame: function / PAGE,
                    })
            })
        })
    }

    /// The IOMMU blocked a transfer of `function` to or from `iova`
    /// (`reason`: the unit's fault reason): tells the bound endpoint, if
    /// its binder still holds the device. Whether a message went out (a
    /// full queue drops it: the kernel's report is the record of it).
    pub fn io_fault(&mut self, function: u64, iova: u64, write: bool, reason: u8) -> bool {
        let Some(b) = self.io_faults.get(&function).copied() else {
            return false;
        };
        if !self.binding_holds(function, &b) {
            self.io_faults.remove(&function);
            return false;
        }
        let msg = super::Message {
            badge: b.badge,
            words: [
                iova,
                u64::from(reason) | if write { abi::IOFAULT_WRITE } else { 0 },
            ],
            cap: None,
            from: b.pid,
            call: false,
            irq: true,
        };
        match self.deliver(b.ep, msg) {
            Ok(_) => true,
            Err((Error::NoSuchProcess, _)) => {
                self.io_faults.remove(&function);
                false
            }
            Err(_) => false,
        }
    }

    /// Where each function's faults are told.
    pub fn io_fault_bindings(&self) -> &BTreeMap<u64, IoFaultBinding> {
        &self.io_faults
    }
}

/// The I/O address rule: `iova` page aligned and `pages` pages from it
/// inside `[IOVA_MIN, IOVA_TOP)`.
fn io_range(iova: u64, pages: u64) -> Result<(), Error> {
    if !iova.is_multiple_of(PAGE) || iova < abi::IOVA_MIN {
        return Err(Error::InvalidAddress);
    }
    iova.checked_add(pages * PAGE)
        .filter(|&end| end <= abi::IOVA_TOP)
        .map(drop)
        .ok_or(Error::InvalidAddress)
}
