//! The object model's invariants, checked against every table: frame
//! conservation, the ledger against the capabilities that exist, device
//! claims, W^X per frame (no run named with both WRITE and EXEC), and each
//! process's `map` records against its capabilities (rights included) and
//! its address space. The kernel runs the check periodically and at the
//! end of a run; the host tests run it after every step.
use super::{AddressSpace, Cap, CapKind, Kernel, Platform, Process, PAGE};
use abi::Rights;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;

impl<P: Platform> Kernel<P> {
    /// Checks conservation and the ledger against every table; returns a
    /// description of the first violation.
    pub fn check_invariants(&self) -> Result<(), String> {
        let s = self.stats(0);
        let allocated = s.total - s.free - s.reserved;
        if s.zeroed > s.free {
            return Err(format!(
                "zeroed pool of {} frames larger than free {}",
                s.zeroed, s.free
            ));
        }
        if allocated != s.kernel + s.held_by_all {
            return Err(format!(
                "conservation broken: total {} != free {} + reserved {} + kernel {} + held {}",
                s.total, s.free, s.reserved, s.kernel, s.held_by_all
            ));
        }
        // Count the references each run has in tables and queues, and
        // which of WRITE and EXEC they hold (W^X per frame: never both).
        let mut refs: BTreeMap<u64, (CapKind, u64)> = BTreeMap::new();
        let mut write_exec: BTreeMap<u64, (bool, bool)> = BTreeMap::new();
        let mut private = 0;
        // Queued messages' capabilities, charged to their senders.
        let queued: alloc::vec::Vec<Cap> = self.queued_caps().map(|(_, c)| c).collect();
        for (i, proc) in self.procs.values().enumerate() {
            private += proc.private.len() as u64;
            let extra = if i == 0 { &queued[..] } else { &[][..] };
            let caps = proc.caps.iter().map(|(_, c)| c).chain(extra.iter());
            for cap in caps {
                let kind = cap.kind;
                if !kind.is_frames() {
                    continue;
                }
                let entry = refs.entry(kind.frames().0).or_insert((kind, 0));
                if entry.0 != kind {
                    return Err(format!(
                        "frame {:#x} named as {:?} and as {kind:?}",
                        kind.frames().0,
                        entry.0
                    ));
                }
                entry.1 += 1;
                let we = write_exec.entry(kind.frames().0).or_insert((false, false));
                we.0 |= cap.rights.contains(Rights::WRITE);
                we.1 |= cap.rights.contains(Rights::EXEC);
                if *we == (true, true) {
                    return Err(format!(
                        "W^X broken: frame run {:#x} is named with WRITE and with EXEC",
                        kind.frames().0
                    ));
                }
            }
            for &frame in &proc.private {
                if self.platform.is_free(frame) {
                    return Err(format!(
                        "pid {}: private frame {frame:#x} is free",
                        proc.pid
                    ));
                }
            }
        }
        if private != self.ledger.held_private {
            return Err(format!(
                "processes hold {private} private frames, ledger says {}",
                self.ledger.held_private
            ));
        }
        let mut ram = 0;
        for (first, (kind, n)) in &refs {
            let extra = self.ledger.shared.get(first).copied().unwrap_or(0);
            if extra + 1 != *n {
                return Err(format!(
                    "frame run {first:#x}: {n} references, ledger says {}",
                    extra + 1
                ));
            }
            match *kind {
                CapKind::Device { frame } => {
                    if !self.ledger.devices.contains(&frame) {
                        return Err(format!("device frame {frame:#x} held but not claimed"));
                    }
                }
                CapKind::Ram { first, count } => {
                    ram += count;
                    if (0..count).any(|i| self.platform.is_free(first + i)) {
                        return Err(format!("frame run {first:#x} held but free"));
                    }
                }
                CapKind::EndpointRecv { .. } | CapKind::EndpointSend { .. } => {}
            }
        }
        if self.ledger.shared.keys().any(|k| !refs.contains_key(k)) {
            return Err("the ledger lists a shared run no capability names".into());
        }
        if self.ledger.devices.iter().any(|d| !refs.contains_key(d)) {
            return Err("a device claim outlived its capabilities".into());
        }
        for proc in self.procs.values() {
            check_mappings(proc, &self.iomaps)?;
        }
        self.check_iomaps()?;
        self.check_endpoints()?;
        if ram != self.ledger.held_ram {
            return Err(format!(
                "capabilities name {ram} RAM frames, ledger says {}",
                self.ledger.held_ram
            ));
        }
        Ok(())
    }
}

impl<P: Platform> Kernel<P> {
    /// The `iomap` records against the tables and the platform: each names
    /// its maker's live device capability to that function (with
    /// `MAP|WRITE`) and its live RAM capability, whole, with the rights its
    /// flags need; records of one function do not overlap; each page is
    /// mapped in the platform; each process's count is its number of
    /// records; and no function is recorded empty.
    fn check_iomaps(&self) -> Result<(), String> {
        let mut per_pid: BTreeMap<u64, usize> = BTreeMap::new();
        for (&function, space) in &self.iomaps {
            if space.is_empty() {
                return Err(format!("function {function:#x} kept with no iomap"));
            }
            let mut end = 0;
            for (&iova, r) in space {
                if iova < end {
                    return Err(format!(
                        "function {function:#x}: iomaps overlap at {iova:#x}"
                    ));
                }
                end = iova + r.pages * PAGE;
                *per_pid.entry(r.pid).or_insert(0) += 1;
                let proc = self
                    .procs
                    .get(r.pid)
                    .ok_or_else(|| format!("iomap at {iova:#x} of dead pid {}", r.pid))?;
                let dev = proc.caps.get(r.device).map_err(|_| {
                    format!(
                        "pid {}: iomap at {iova:#x} names a dead device handle",
                        r.pid
                    )
                })?;
                if dev.kind
                    != (CapKind::Device {
                        frame: function / PAGE,
                    })
                    || !dev.rights.contains(Rights::MAP | Rights::WRITE)
                {
                    return Err(format!(
                        "pid {}: iomap at {iova:#x} of {function:#x} through {:?}",
                        r.pid, dev
                    ));
                }
                let cap = proc.caps.get(r.cap).map_err(|_| {
                    format!(
                        "pid {}: iomap at {iova:#x} names a dead frame handle",
                        r.pid
                    )
                })?;
                let needs_read = r.flags.contains(abi::IoFlags::READ);
                let needs_write = r.flags.contains(abi::IoFlags::WRITE);
                if cap.kind
                    != (CapKind::Ram {
                        first: r.first,
                        count: r.pages,
                    })
                    || !cap.rights.contains(Rights::MAP)
                    || (needs_read && !cap.rights.contains(Rights::READ))
                    || (needs_write && !cap.rights.contains(Rights::WRITE))
                {
                    return Err(format!(
                        "pid {}: iomap at {iova:#x} ({:?}) through {cap:?}",
                        r.pid, r.flags
                    ));
                }
                // First and last page (as `check_mappings`): a walk each.
                for i in [0, r.pages - 1] {
                    if !self.platform.io_is_mapped(function, iova + i * PAGE) {
                        return Err(format!(
                            "function {function:#x}: page {:#x} of an iomap is not mapped",
                            iova + i * PAGE
                        ));
                    }
                }
            }
        }
        for (&function, b) in &self.io_faults {
            if self.procs.get(b.pid).is_none() {
                return Err(format!(
                    "function {function:#x}: fault binding of dead pid {}",
                    b.pid
                ));
            }
        }
        for proc in self.procs.values() {
            let records = per_pid.get(&proc.pid).copied().unwrap_or(0);
            if proc.iomaps != records {
                return Err(format!(
                    "pid {} counts {} iomaps, {records} records name it",
                    proc.pid, proc.iomaps
                ));
            }
        }
        Ok(())
    }
}

/// A process's `map` records against its capabilities and address space:
/// every record names a live capability, whose `mapped` count is its number
/// of records plus the `iomap` records that name it (as device or frames);
/// the first and last page of each record map the right frames and carry
/// the record's index as their tag.
fn check_mappings<S: AddressSpace, R>(
    proc: &Process<S, R>,
    iomaps: &super::IoSpaces,
) -> Result<(), String> {
    let mut per_handle: BTreeMap<u64, u32> = BTreeMap::new();
    for r in iomaps.values().flat_map(|s| s.values()) {
        if r.pid == proc.pid {
            *per_handle.entry(r.device.raw()).or_insert(0) += 1;
            *per_handle.entry(r.cap.raw()).or_insert(0) += 1;
        }
    }
    for (slot, m) in proc.mappings.iter() {
        let cap = proc.caps.get(m.handle).map_err(|_| {
            format!(
                "pid {}: mapping at {:#x} names a dead handle",
                proc.pid, m.start
            )
        })?;
        *per_handle.entry(m.handle.raw()).or_insert(0) += 1;
        let (first, count) = cap.kind.frames();
        for i in [0, m.pages - 1] {
            let at = m.start + i * PAGE;
            if let Some((_, flags)) = proc.space.translate(at) {
                if (flags.write && !cap.rights.contains(Rights::WRITE))
                    || (flags.exec && !cap.rights.contains(Rights::EXEC))
                {
                    return Err(format!(
                        "pid {}: page {at:#x} is mapped {flags:?} through a capability with {:?}",
                        proc.pid, cap.rights
                    ));
                }
            }
            let want = (first + i) * PAGE;
            match proc.space.frame_and_tag(at) {
                Some((phys, Some(tag)))
                    if phys == want && usize::from(tag) == slot && m.pages == count => {}
                found => {
                    return Err(format!(
                        "pid {}: page {at:#x} of mapping {slot}: expected frame {want:#x} \
                         tagged {slot}, found {found:?}",
                        proc.pid
                    ))
                }
            }
        }
    }
    for (h, cap) in proc.caps.iter() {
        let records = per_handle.get(&h.raw()).copied().unwrap_or(0);
        if cap.mapped != records {
            return Err(format!(
                "pid {}: handle {:#x} counts {} mappings, {} records name it",
                proc.pid,
                h.raw(),
                cap.mapped,
                records
            ));
        }
    }
    Ok(())
}
