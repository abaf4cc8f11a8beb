//! Syscall semantics across processes against a reference model, and
//! planted bugs that the invariant check must catch.
use super::model::{ModelPlatform, KEPT_DEVICE_PAGE, TRANSLATED_FUNCTIONS};
use super::space::ModelSpace;
use super::*;
use abi::{Error, Handle, MapFlags, Rights};
use endpoint::{Outcome, Received};
use proptest::prelude::*;
use std::collections::{BTreeMap, VecDeque};
use std::vec::Vec;

const FRAMES: u64 = 96;
const FIRST_RAM: u64 = 0x100;
const MAP_BASE: u64 = 0x4000_0000;
/// Slots are 4 pages apart, so that runs of up to 8 pages overlap others.
const SLOT: u64 = 4 * PAGE;

type K = Kernel<ModelPlatform>;

#[derive(Clone, Copy, Debug, PartialEq)]
struct MCap {
    first: u64,
    count: u64,
    rights: Rights,
    device: bool,
}

#[derive(Default, Debug)]
struct MProc {
    driver: bool,
    caps: BTreeMap<u64, MCap>,
    /// Capabilities sent to its (published) endpoint, not yet received,
    /// each with its sender.
    queue: VecDeque<(u64, MCap)>,
    /// Mapping start -> (handle, pages, first frame, flags).
    maps: BTreeMap<u64, (u64, u64, u64, PageFlags)>,
    /// Pages `protect` changed -> their flags now (`None`: no access).
    /// Entries of pages no longer mapped are stale and ignored; `map`
    /// drops those of the pages it maps.
    prot: BTreeMap<u64, Option<PageFlags>>,
}

#[derive(Default, Debug)]
struct Model {
    procs: BTreeMap<u64, MProc>,
    /// First frame -> references (tables and queues).
    refs: BTreeMap<u64, u64>,
    /// RAM frames held (each once).
    held: u64,
    free_at_start: u64,
    /// `iomap` records: function -> first I/O address -> record.
    io: BTreeMap<u64, BTreeMap<u64, MIo>>,
}

/// An `iomap` record in the model.
#[derive(Clone, Copy, Debug, PartialEq)]
struct MIo {
    pid: u64,
    dev: u64,
    cap: u64,
    first: u64,
    pages: u64,
    flags: abi::IoFlags,
}

/// Where `iomap` ops map: slots 4 pages apart (runs of up to 9 overlap),
/// and three addresses the rule refuses or allows only for one page.
fn io_address(slot: u64) -> u64 {
    match slot {
        0..=5 => 0x10_0000 + slot * SLOT,
        6 => 0,
        7 => abi::IOVA_TOP - PAGE,
        _ => 0x10_0000 + 0x123,
    }
}

impl Model {
    /// Forgets the `iomap` records `doomed` picks.
    fn io_forget(&mut self, doomed: impl Fn(&MIo) -> bool) {
        for space in self.io.values_mut() {
            space.retain(|_, r| !doomed(r));
        }
        self.io.retain(|_, s| !s.is_empty());
    }
    fn add_ref(&mut self, c: &MCap) {
        *self.refs.entry(c.first).or_insert(0) += 1;
    }
    fn own_new(&mut self, c: &MCap) {
        assert!(!self.refs.contains_key(&c.first), "{c:?} handed out twice");
        self.refs.insert(c.first, 1);
        if !c.device {
            self.held += c.count;
        }
    }
    fn drop_ref(&mut self, c: &MCap) {
        let n = self.refs.get_mut(&c.first).expect("referenced");
        *n -= 1;
        if *n == 0 {
            self.refs.remove(&c.first);
            if !c.device {
                self.held -= c.count;
            }
        }
    }
    fn ram_frame_in_use(&self, frame: u64) -> bool {
        self.procs.values().any(|p| {
            p.caps
                .values()
                .chain(p.queue.iter().map(|(_, c)| c))
                .any(|c| !c.device && (c.first..c.first + c.count).contains(&frame))
        })
    }
    /// Every device frame somebody claims (held or in flight).
    fn claimed_devices(&self) -> alloc::collections::BTreeSet<u64> {
        self.procs
            .values()
            .flat_map(|p| p.caps.values().chain(p.queue.iter().map(|(_, c)| c)))
            .filter(|c| c.device)
            .map(|c| c.first)
            .collect()
    }
    fn device_claimed(&self, frame: u64) -> bool {
        self.procs.values().any(|p| {
            p.caps
                .values()
                .chain(p.queue.iter().map(|(_, c)| c))
                .any(|c| c.device && c.first == frame)
        })
    }
}

#[derive(Clone, Debug)]
enum Op {
    Spawn {
        driver: bool,
    },
    Alloc {
        p: usize,
    },
    AllocAt {
        p: usize,
        which: u8,
        n: u64,
    },
    Contig {
        p: usize,
        count: u64,
        align_log: u32,
    },
    Free {
        p: usize,
        h: usize,
    },
    Phys {
        p: usize,
        h: usize,
    },
    Info {
        p: usize,
        h: usize,
    },
    Map {
        p: usize,
        h: usize,
        slot: u64,
        flags: u64,
    },
    Unmap {
        p: usize,
        slot: u64,
        odd: u8,
    },
    Transfer {
        p: usize,
        h: usize,
        to: usize,
        rights: u64,
        mv: bool,
    },
    Recv {
        p: usize,
    },
    Protect {
        p: usize,
        slot: u64,
        offset: u64,
        pages: u64,
        prot: u64,
    },
    Seal {
        p: usize,
        h: usize,
    },
    Exit {
        p: usize,
    },
    AllocMany {
        p: usize,
        count: u64,
        fail_write: bool,
    },
    MapMany {
        p: usize,
        hs: Vec<usize>,
        slot: u64,
        flags: u64,
    },
    UnmapMany {
        p: usize,
        slot: u64,
        pages: u64,
    },
    FreeMany {
        p: usize,
        hs: Vec<usize>,
    },
    IoMap {
        p: usize,
        dev: usize,
        h: usize,
        slot: u64,
        flags: u64,
    },
    IoUnmap {
        p: usize,
        dev: usize,
        slot: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => any::<bool>().prop_map(|driver| Op::Spawn { driver }),
        6 => (0..4usize).prop_map(|p| Op::Alloc { p }),
        3 => (0..4usize, 0..4u8, 0..FRAMES + 4).prop_map(|(p, which, n)| Op::AllocAt { p, which, n }),
        3 => (0..4usize, 1..10u64, 0..4u32).prop_map(|(p, count, align_log)| Op::Contig { p, count, align_log }),
        5 => (0..4usize, 0..12usize).prop_map(|(p, h)| Op::Free { p, h }),
        2 => (0..4usize, 0..12usize).prop_map(|(p, h)| Op::Phys { p, h }),
        2 => (0..4usize, 0..12usize).prop_map(|(p, h)| Op::Info { p, h }),
        8 => (0..4usize, 0..12usize, 0..8u64, 0..9u64).prop_map(|(p, h, slot, flags)| Op::Map { p, h, slot, flags }),
        5 => (0..4usize, 0..8u64, 0..6u8).prop_map(|(p, slot, odd)| Op::Unmap { p, slot, odd }),
        5 => (0..4usize, 0..12usize, 0..4usize, 0..=32u64, any::<bool>())
            .prop_map(|(p, h, to, rights, mv)| Op::Transfer { p, h, to, rights, mv }),
        4 => (0..4usize).prop_map(|p| Op::Recv { p }),
        5 => (0..4usize, 0..8u64, 0..4u64, 0..7u64, 0..5u64)
            .prop_map(|(p, slot, offset, pages, prot)| Op::Protect { p, slot, offset, pages, prot }),
        3 => (0..4usize, 0..12usize).prop_map(|(p, h)| Op::Seal { p, h }),
        1 => (0..4usize).prop_map(|p| Op::Exit { p }),
        3 => (0..4usize, prop_oneof![0..8u64, 60..100u64], prop::bool::weighted(0.1))
            .prop_map(|(p, count, fail_write)| Op::AllocMany { p, count, fail_write }),
        4 => (0..4usize, prop::collection::vec(0..14usize, 0..5), 0..8u64, 0..9u64)
            .prop_map(|(p, hs, slot, flags)| Op::MapMany { p, hs, slot, flags }),
        3 => (0..4usize, 0..8u64, prop_oneof![0..12u64, 60..80u64])
            .prop_map(|(p, slot, pages)| Op::UnmapMany { p, slot, pages }),
        3 => (0..4usize, prop::collection::vec(0..14usize, 0..5)).prop_map(|(p, hs)| Op::FreeMany { p, hs }),
        8 => (0..4usize, 0..3usize, 0..8usize, 0..9u64, 0..5u64)
            .prop_map(|(p, dev, h, slot, flags)| Op::IoMap { p, dev, h, slot, flags }),
        3 => (0..4usize, 0..3usize, 0..9u64).prop_map(|(p, dev, slot)| Op::IoUnmap { p, dev, slot }),
    ]
}

struct World {
    k: K,
    m: Model,
    /// Each process's endpoint (published under its name `p<pid>`): its
    /// receive capability.
    eps: BTreeMap<u64, Handle>,
    /// (sender, receiver) -> the sender's send capability to the
    /// receiver's endpoint (found by name: badged with the sender's pid).
    sends: BTreeMap<(u64, u64), Handle>,
}

impl World {
    fn new() -> Self {
        let k = Kernel::new(ModelPlatform::new(FRAMES), 7);
        let free_at_start = k.stats(0).free;
        let mut w = World {
            k,
            m: Model {
                free_at_start,
                ..Model::default()
            },
            eps: BTreeMap::new(),
            sends: BTreeMap::new(),
        };
        w.spawn(false);
        w.spawn(true);
        // The driver holds a function the model IOMMU translates, so that
        // `iomap` has something to work on from the first step.
        // Now and then the model IOMMU has no frame for a table: `iomap`
        // must undo what it mapped.
        w.k.platform.io_fail_every = 7;
        let driver = *w.m.procs.keys().last().expect("spawned");
        let dev = w.k.frame_alloc_at(driver, TRANSLATED_FUNCTIONS.start);
        w.granted(driver, dev.expect("a free device page"), true, 1);
        w
    }

    /// A RAM handle of `pid` (its `i`th), or past those any handle.
    fn ram_handle(&self, pid: u64, i: usize) -> u64 {
        let ram: Vec<u64> = self.m.procs[&pid]
            .caps
            .iter()
            .filter(|(_, c)| !c.device)
            .map(|(&h, _)| h)
            .collect();
        ram.get(i)
            .copied()
            .unwrap_or_else(|| self.handle(pid, i - ram.len()))
    }

    fn spawn(&mut self, driver: bool) {
        let space = ModelSpace::default();
        if let Some(p) = self.k.new_process("p", space, driver) {
            let pid = self.k.admit(p);
            self.k.procs_mut().get_mut(pid).unwrap().name = std::format!("p{pid}");
            let ep = self.k.endpoint_create(pid, true).expect("an endpoint");
            self.eps.insert(pid, Handle::from_raw(ep));
            self.m.procs.insert(
                pid,
                MProc {
                    driver,
                    ..MProc::default()
                },
            );
        }
    }

    fn pid(&self, p: usize) -> Option<u64> {
        let pids: Vec<u64> = self.m.procs.keys().copied().collect();
        (!pids.is_empty()).then(|| pids[p % pids.len()])
    }

    /// A handle of `pid`: one it holds, or (past the end) a forged one.
    fn handle(&self, pid: u64, h: usize) -> u64 {
        let caps: Vec<u64> = self.m.procs[&pid].caps.keys().copied().collect();
        caps.get(h).copied().unwrap_or(0x5eed_0000 + h as u64)
    }

    /// Records a capability the kernel just granted.
    fn granted(&mut self, pid: u64, h: u64, device: bool, count: u64) {
        let first = self
            .k
            .frame_phys(pid, Handle::from_raw(h))
            .expect("fresh cap has MAP")
            / PAGE;
        let c = MCap {
            first,
            count,
            rights: Rights::WRITABLE,
            device,
        };
        if !device {
            for f in first..first + count {
                assert!(!self.m.ram_frame_in_use(f), "frame {f:#x} handed out twice");
            }
        }
        self.m.own_new(&c);
        self.m.procs.get_mut(&pid).unwrap().caps.insert(h, c);
    }

    /// `from` sends capability `h` (with `flags`) to `to`'s endpoint,
    /// through a send capability found by name.
    fn give(&mut self, from: u64, h: Handle, to: u64, flags: u64) -> Result<Outcome, Error> {
        let name = std::format!("p{to}");
        let send = Handle::from_raw(self.k.endpoint_lookup(from, name.as_bytes())?);
        let r = self.k.send(from, send, [0, 0], h.raw(), flags);
        self.k.frame_free(from, send).expect("a send capability");
        r
    }

    /// What `pid`'s endpoint has: the capability that came with it.
    fn take(&mut self, pid: u64) -> Result<Handle, Error> {
        match self.k.recv(pid, self.eps[&pid], 0, 0)? {
            Outcome::Done(got) if got.cap != 0 => Ok(Handle::from_raw(got.cap)),
            other => panic!("no capability: {other:?}"),
        }
    }

    fn remove_cap(&mut self, pid: u64, h: u64) {
        let p = self.m.procs.get_mut(&pid).unwrap();
        let c = p.caps.remove(&h).unwrap();
        p.maps.retain(|_, m| m.0 != h);
        self.m.drop_ref(&c);
        self.m
            .io_forget(|r| r.pid == pid && (r.dev == h || r.cap == h));
    }

    /// A device handle of `pid` (its `i`th device capability), or past
    /// those any handle, held or forged.
    fn device_handle(&self, pid: u64, i: usize) -> u64 {
        let devices: Vec<u64> = self.m.procs[&pid]
            .caps
            .iter()
            .filter(|(_, c)| c.device)
            .map(|(&h, _)| h)
            .collect();
        devices
            .get(i)
            .copied()
            .unwrap_or_else(|| self.handle(pid, i - devices.len()))
    }

    /// What `iomap`/`iounmap` say of device handle `dev` of `pid`: the
    /// function, or the error.
    fn model_function(&self, pid: u64, dev: u64) -> Result<u64, Error> {
        let d = self.m.procs[&pid]
            .caps
            .get(&dev)
            .ok_or(Error::BadCapability)?;
        if !d.device {
            return Err(Error::InvalidArgument);
        }
        if !d.rights.contains(Rights::MAP | Rights::WRITE) {
            return Err(Error::PermissionDenied);
        }
        let function = d.first * PAGE;
        if !TRANSLATED_FUNCTIONS.contains(&function) {
            return Err(Error::NotSupported);
        }
        Ok(function)
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Spawn { driver } => self.spawn(driver),
            Op::Alloc { p } => {
                let Some(pid) = self.pid(p) else { return };
                let free = self.k.stats(0).free;
                let r = self.k.frame_alloc(pid);
                if free == 0 {
                    assert_eq!(r, Err(Error::OutOfMemory));
                } else {
                    self.granted(pid, r.expect("a frame is free"), false, 1);
                }
            }
            Op::AllocAt { p, which, n } => {
                let Some(pid) = self.pid(p) else { return };
                let (phys, kind) = match which {
                    0 => ((FIRST_RAM + n) * PAGE, 0),
                    1 => (0xff * PAGE, 1),
                    2 => ((0x10 + n % 4) * PAGE, 2),
                    _ => (KEPT_DEVICE_PAGE, 3),
                };
                let r = self.k.frame_alloc_at(pid, phys);
                let frame = phys / PAGE;
                let driver = self.m.procs[&pid].driver;
                let want = match kind {
                    // Past the end of RAM is a hole in the map: device space.
                    0 if frame >= FIRST_RAM + FRAMES => {
                        if !driver {
                            Err(Error::PermissionDenied)
                        } else if self.m.device_claimed(frame) {
                            Err(Error::FrameInUse)
                        } else {
                            Ok(())
                        }
                    }
                    0 if self.m.ram_frame_in_use(frame) => Err(Error::FrameInUse),
                    0 => Ok(()),
                    1 => Err(Error::PermissionDenied),
                    2 if !driver => Err(Error::PermissionDenied),
                    2 if self.m.device_claimed(frame) => Err(Error::FrameInUse),
                    2 => Ok(()),
                    _ => Err(Error::PermissionDenied),
                };
                match (want, r) {
                    (Ok(()), Ok(h)) => {
                        self.granted(pid, h, kind == 2 || frame >= FIRST_RAM + FRAMES, 1)
                    }
                    (Err(e), got) => assert_eq!(got, Err(e), "alloc_at {phys:#x}"),
                    (Ok(()), Err(e)) => panic!("alloc_at {phys:#x}: {e:?}"),
                }
            }
            Op::Contig {
                p,
                count,
                align_log,
            } => {
                let Some(pid) = self.pid(p) else { return };
                let align = 1 << align_log;
                if let Ok(h) = self.k.frame_alloc_contiguous(pid, count, align, 0) {
                    self.granted(pid, h, false, count);
                    let first = self.m.procs[&pid].caps[&h].first;
                    assert_eq!(first % align, 0, "alignment");
                }
            }
            Op::Free { p, h } => {
                let Some(pid) = self.pid(p) else { return };
                let h = self.handle(pid, h);
                let live = self.m.procs[&pid].caps.contains_key(&h);
                let r = self.k.frame_free(pid, Handle::from_raw(h));
                if live {
                    assert_eq!(r, Ok(0));
                    self.remove_cap(pid, h);
                } else {
                    assert_eq!(r, Err(Error::BadCapability));
                }
            }
            Op::Phys { p, h } => {
                let Some(pid) = self.pid(p) else { return };
                let h = self.handle(pid, h);
                let want = match self.m.procs[&pid].caps.get(&h) {
                    None => Err(Error::BadCapability),
                    Some(c) if !c.rights.contains(Rights::MAP) => Err(Error::PermissionDenied),
                    Some(c) => Ok(c.first * PAGE),
                };
                assert_eq!(self.k.frame_phys(pid, Handle::from_raw(h)), want);
            }
            Op::Info { p, h } => {
                let Some(pid) = self.pid(p) else { return };
                let h = self.handle(pid, h);
                let want = self.m.procs[&pid].caps.get(&h).map(|c| {
                    let kind = match (c.device, c.count) {
                        (true, _) => abi::CapKindCode::Device,
                        (false, 1) => abi::CapKindCode::RamFrame,
                        (false, _) => abi::CapKindCode::RamRun,
                    };
                    abi::CapInfo {
                        kind: kind as u64,
                        frames: c.count,
                        rights: c.rights.bits(),
                        phys: if c.rights.contains(Rights::MAP) {
                            c.first * PAGE
                        } else {
                            abi::CapInfo::PHYS_HIDDEN
                        },
                    }
                });
                let got = self.k.cap_info(pid, Handle::from_raw(h));
                assert_eq!(got, want.ok_or(Error::BadCapability), "cap_info {h:#x}");
            }
            Op::Map { p, h, slot, flags } => {
                let Some(pid) = self.pid(p) else { return };
                let h = self.handle(pid, h);
                // Decoded as the syscall table decodes it.
                let Ok(flags) = <MapFlags as abi::Arg>::decode(flags) else {
                    return;
                };
                let vaddr = MAP_BASE + slot * SLOT;
                let r = self.k.map(pid, Handle::from_raw(h), vaddr, flags);
                let mp = &self.m.procs[&pid];
                let want = match mp.caps.get(&h) {
                    None => Err(Error::BadCapability),
                    Some(c) => {
                        let overlaps = mp.maps.iter().any(|(&s, &(_, n, _, _))| {
                            s < vaddr + c.count * PAGE && vaddr < s + n * PAGE
                        });
                        if !c.rights.contains(Rights::MAP | Rights::READ)
                            || (flags.contains(MapFlags::WRITE)
                                && !c.rights.contains(Rights::WRITE))
                        {
                            Err(Error::PermissionDenied)
                        } else if c.device && flags.contains(MapFlags::EXEC) {
                            Err(Error::InvalidArgument)
                        } else if flags.contains(MapFlags::EXEC) && !c.rights.contains(Rights::EXEC)
                        {
                            Err(Error::PermissionDenied)
                        } else if overlaps {
                            Err(Error::AlreadyMapped)
                        } else {
                            Ok(*c)
                        }
                    }
                };
                match (want, r) {
                    (Ok(c), Ok(0)) => {
                        let pf = PageFlags {
                            write: flags.contains(MapFlags::WRITE),
                            exec: flags.contains(MapFlags::EXEC),
                            uncached: c.device || flags.contains(MapFlags::UNCACHED),
                        };
                        let mp = self.m.procs.get_mut(&pid).unwrap();
                        mp.maps.insert(vaddr, (h, c.count, c.first, pf));
                        for i in 0..c.count {
                            mp.prot.remove(&(vaddr + i * PAGE));
                        }
                    }
                    (Err(e), got) => assert_eq!(got, Err(e), "map {h:#x} at {vaddr:#x}"),
                    (Ok(_), got) => panic!("map {h:#x} at {vaddr:#x}: {got:?}"),
                }
            }
            Op::Protect {
                p,
                slot,
                offset,
                pages,
                prot,
            } => {
                let Some(pid) = self.pid(p) else { return };
                // Decoded as the syscall table decodes it.
                let Ok(to) = <abi::Protection as abi::Arg>::decode(prot) else {
                    return;
                };
                let vaddr = MAP_BASE + slot * SLOT + offset * PAGE;
                let r = self.k.protect(pid, vaddr, pages, to);
                let mp = self.m.procs.get_mut(&pid).unwrap();
                let needed = match to {
                    abi::Protection::Write => Rights::WRITE,
                    abi::Protection::Exec => Rights::EXEC,
                    _ => Rights::READ,
                };
                let mut want = if pages == 0 {
                    Err(Error::InvalidArgument)
                } else {
                    Ok(0)
                };
                let mut changes = Vec::new();
                for i in 0..pages {
                    if want.is_err() {
                        break;
                    }
                    let page = vaddr + i * PAGE;
                    let found = mp
                        .maps
                        .iter()
                        .find(|(&s, &(_, n, _, _))| s <= page && page < s + n * PAGE);
                    match found {
                        None => want = Err(Error::NotMapped),
                        Some((_, &(h, _, _, pf))) => {
                            if !mp.caps[&h].rights.contains(needed) {
                                want = Err(Error::PermissionDenied);
                            }
                            let now = match to {
                                abi::Protection::None => None,
                                _ => Some(PageFlags {
                                    write: to == abi::Protection::Write,
                                    exec: to == abi::Protection::Exec,
                                    uncached: pf.uncached,
                                }),
                            };
                            changes.push((page, now));
                        }
                    }
                }
                assert_eq!(r, want, "protect {vaddr:#x} +{pages} {to:?}");
                if want.is_ok() {
                    mp.prot.extend(changes);
                }
            }
            Op::Unmap { p, slot, odd } => {
                let Some(pid) = self.pid(p) else { return };
                let vaddr = match odd {
                    0 => MAP_BASE + slot * SLOT + 1,
                    1 => abi::USER_MAP_TOP,
                    2 => 0xffff_8000_0000_0000,
                    3 => MAP_BASE + slot * SLOT + PAGE,
                    _ => MAP_BASE + slot * SLOT,
                };
                let r = self.k.unmap(pid, vaddr);
                if odd <= 2 {
                    assert_eq!(r, Err(Error::InvalidAddress), "unmap {vaddr:#x}");
                    return;
                }
                let mp = self.m.procs.get_mut(&pid).unwrap();
                if mp.maps.remove(&vaddr).is_some() {
                    assert_eq!(r, Ok(0));
                } else {
                    assert_eq!(r, Err(Error::NotMapped), "unmap {vaddr:#x}");
                }
            }
            Op::Transfer {
                p,
                h,
                to,
                rights,
                mv,
            } => {
                let (Some(pid), Some(target)) = (self.pid(p), self.pid(to)) else {
                    return;
                };
                let h = self.handle(pid, h);
                // 32: the capability keeps its rights (no `SEND_RIGHTS`).
                let restrict = rights < 32;
                let rights = Rights::from_bits(rights & 31).unwrap();
                let mut flags = if mv { 0 } else { abi::SEND_COPY };
                if restrict {
                    flags |= abi::send_rights(rights);
                }
                let send = match self.sends.get(&(pid, target)) {
                    Some(&s) => s,
                    None => {
                        let name = std::format!("p{target}");
                        let s = Handle::from_raw(
                            self.k
                                .endpoint_lookup(pid, name.as_bytes())
                                .expect("published"),
                        );
                        self.sends.insert((pid, target), s);
                        s
                    }
                };
                let r = self.k.send(pid, send, [h, 0], h, flags);
                let full = self.m.procs[&target].queue.len() >= abi::bounds::QUEUE;
                let want = match self.m.procs[&pid].caps.get(&h) {
                    _ if full => Err(Error::WouldBlock),
                    None => Err(Error::BadCapability),
                    Some(c) if !c.rights.contains(Rights::TRANSFER) => Err(Error::PermissionDenied),
                    Some(_) if restrict && rights.is_empty() => Err(Error::InvalidArgument),
                    Some(c) if restrict && !c.rights.contains(rights) => {
                        Err(Error::PermissionDenied)
                    }
                    Some(&c) => Ok(c),
                };
                match (want, r) {
                    (Ok(c), Ok(Outcome::Done(got))) => {
                        assert_eq!(got, Received::default());
                        let sent = MCap {
                            rights: if restrict { rights } else { c.rights },
                            ..c
                        };
                        self.m.add_ref(&sent);
                        self.m
                            .procs
                            .get_mut(&target)
                            .unwrap()
                            .queue
                            .push_back((pid, sent));
                        if mv {
                            self.remove_cap(pid, h);
                        }
                    }
                    (Err(e), got) => assert_eq!(got, Err(e)),
                    (Ok(_), got) => panic!("send: {got:?}"),
                }
            }
            Op::Recv { p } => {
                let Some(pid) = self.pid(p) else { return };
                let r = self.k.recv(pid, self.eps[&pid], 0, 0);
                let mp = self.m.procs.get_mut(&pid).unwrap();
                match mp.queue.pop_front() {
                    None => assert_eq!(r, Err(Error::WouldBlock)),
                    Some((from, c)) => {
                        let Ok(Outcome::Done(got)) = r else {
                            panic!("a capability waits: {r:?}");
                        };
                        // The badge is the sender's pid, stamped by lookup.
                        assert_eq!((got.badge, got.flags), (from, 0));
                        assert!(
                            mp.caps.insert(got.cap, c).is_none(),
                            "handle reused while live"
                        );
                    }
                }
            }
            Op::Seal { p, h } => {
                let Some(pid) = self.pid(p) else { return };
                let h = self.handle(pid, h);
                let r = self.k.frame_seal(pid, Handle::from_raw(h));
                let mp = &self.m.procs[&pid];
                let want = match mp.caps.get(&h) {
                    None => Err(Error::BadCapability),
                    Some(c) if c.device => Err(Error::InvalidArgument),
                    Some(c) if !c.rights.contains(Rights::WRITE) => Err(Error::PermissionDenied),
                    Some(_) if mp.maps.values().any(|m| m.0 == h) => Err(Error::AlreadyMapped),
                    Some(_)
                        if self
                            .m
                            .io
                            .values()
                            .flat_map(|s| s.values())
                            .any(|r| r.pid == pid && r.cap == h) =>
                    {
                        Err(Error::AlreadyMapped)
                    }
                    Some(c) if self.m.refs[&c.first] > 1 => Err(Error::FrameInUse),
                    Some(_) => Ok(0),
                };
                assert_eq!(r, want, "seal {h:#x}");
                if r.is_ok() {
                    let c = self
                        .m
                        .procs
                        .get_mut(&pid)
                        .unwrap()
                        .caps
                        .get_mut(&h)
                        .unwrap();
                    let sealed = c.rights.bits() & Rights::EXECUTABLE.bits() | Rights::EXEC.bits();
                    c.rights = Rights::from_bits(sealed).unwrap();
                }
            }
            Op::AllocMany {
                p,
                count,
                fail_write,
            } => {
                let Some(pid) = self.pid(p) else { return };
                let free = self.k.stats(0).free;
                let mut got = Vec::new();
                let r = self.k.frame_alloc_many(pid, count, |_, hs| {
                    got.extend_from_slice(hs);
                    if fail_write {
                        Err(Error::InvalidAddress)
                    } else {
                        Ok(())
                    }
                });
                let want = if count == 0 {
                    Err(Error::InvalidArgument)
                } else if free < count {
                    Err(Error::OutOfMemory)
                } else if fail_write {
                    Err(Error::InvalidAddress)
                } else {
                    Ok(got.len() as u64)
                };
                assert_eq!(r, want, "frame_alloc_many({count})");
                if r.is_err() {
                    assert_eq!(
                        self.k.stats(0).free,
                        free,
                        "a refused frame_alloc_many gives back"
                    );
                    return;
                }
                let mut frames = 0;
                for &h in &got {
                    let info = self.k.cap_info(pid, Handle::from_raw(h)).expect("granted");
                    assert!(info.frames == 1 || info.frames == crate::zero_pool::BLOCK);
                    assert_eq!(info.phys / PAGE % info.frames, 0, "a block is aligned");
                    self.granted(pid, h, false, info.frames);
                    frames += info.frames;
                }
                assert_eq!(frames, count);
            }
            Op::MapMany {
                p,
                ref hs,
                slot,
                flags,
            } => {
                let Some(pid) = self.pid(p) else { return };
                let Ok(flags) = <MapFlags as abi::Arg>::decode(flags) else {
                    return;
                };
                let handles: Vec<u64> = hs.iter().map(|&h| self.handle(pid, h)).collect();
                let raw: Vec<Handle> = handles.iter().map(|&h| Handle::from_raw(h)).collect();
                let vaddr = MAP_BASE + slot * SLOT;
                let r = self.k.map_many(pid, &raw, vaddr, flags);
                let mp = &self.m.procs[&pid];
                let mut want = if handles.is_empty() {
                    Err(Error::InvalidArgument)
                } else {
                    Ok(0)
                };
                let mut pages = 0;
                for h in &handles {
                    if want.is_err() {
                        break;
                    }
                    match mp.caps.get(h) {
                        None => want = Err(Error::BadCapability),
                        Some(c) => {
                            if !c.rights.contains(Rights::MAP | Rights::READ)
                                || (flags.contains(MapFlags::WRITE)
                                    && !c.rights.contains(Rights::WRITE))
                            {
                                want = Err(Error::PermissionDenied);
                            } else if c.device && flags.contains(MapFlags::EXEC) {
                                want = Err(Error::InvalidArgument);
                            } else if flags.contains(MapFlags::EXEC)
                                && !c.rights.contains(Rights::EXEC)
                            {
                                want = Err(Error::PermissionDenied);
                            }
                            pages += c.count;
                        }
                    }
                }
                let end = vaddr + pages * PAGE;
                let overlaps = mp
                    .maps
                    .iter()
                    .any(|(&s, &(_, n, _, _))| s < end && vaddr < s + n * PAGE);
                if want.is_ok() && overlaps {
                    want = Err(Error::AlreadyMapped);
                }
                assert_eq!(r, want, "map_many {handles:x?} at {vaddr:#x}");
                if want.is_ok() {
                    let mut at = vaddr;
                    let mp = self.m.procs.get_mut(&pid).unwrap();
                    for h in &handles {
                        let c = mp.caps[h];
                        let pf = PageFlags {
                            write: flags.contains(MapFlags::WRITE),
                            exec: flags.contains(MapFlags::EXEC),
                            uncached: c.device || flags.contains(MapFlags::UNCACHED),
                        };
                        mp.maps.insert(at, (*h, c.count, c.first, pf));
                        for i in 0..c.count {
                            mp.prot.remove(&(at + i * PAGE));
                        }
                        at += c.count * PAGE;
                    }
                }
            }
            Op::UnmapMany { p, slot, pages } => {
                let Some(pid) = self.pid(p) else { return };
                let vaddr = MAP_BASE + slot * SLOT;
                let r = self.k.unmap_many(pid, vaddr, pages);
                let mp = self.m.procs.get_mut(&pid).unwrap();
                let end = vaddr + pages * PAGE;
                let mut starts = Vec::new();
                let mut page = vaddr;
                let mut want = if pages == 0 {
                    Err(Error::InvalidArgument)
                } else {
                    Ok(0)
                };
                while want.is_ok() && page < end {
                    match mp.maps.get(&page) {
                        Some(&(_, n, _, _)) => {
                            starts.push(page);
                            page += n * PAGE;
                        }
                        None => want = Err(Error::NotMapped),
                    }
                }
                if want.is_ok() && page != end {
                    want = Err(Error::InvalidArgument);
                }
                assert_eq!(r, want, "unmap_many {vaddr:#x} +{pages}");
                if want.is_ok() {
                    for s in starts {
                        mp.maps.remove(&s);
                    }
                }
            }
            Op::FreeMany { p, ref hs } => {
                let Some(pid) = self.pid(p) else { return };
                let handles: Vec<u64> = hs.iter().map(|&h| self.handle(pid, h)).collect();
                let raw: Vec<Handle> = handles.iter().map(|&h| Handle::from_raw(h)).collect();
                let r = self.k.free_many(pid, &raw);
                let mp = &self.m.procs[&pid];
                let mut sorted = handles.clone();
                sorted.sort_unstable();
                sorted.dedup();
                let want = if handles.is_empty() {
                    Err(Error::InvalidArgument)
                } else if handles.iter().any(|h| !mp.caps.contains_key(h))
                    || sorted.len() != handles.len()
                {
                    Err(Error::BadCapability)
                } else {
                    Ok(0)
                };
                assert_eq!(r, want, "free_many {handles:x?}");
                if want.is_ok() {
                    for h in handles {
                        self.remove_cap(pid, h);
                    }
                }
            }
            Op::IoMap {
                p,
                dev,
                h,
                slot,
                flags,
            } => {
                let Some(pid) = self.pid(p) else { return };
                let Ok(flags) = <abi::IoFlags as abi::Arg>::decode(flags) else {
                    return;
                };
                let (dev, h) = (self.device_handle(pid, dev), self.ram_handle(pid, h));
                let iova = io_address(slot);
                let failures = self.k.platform.io_failures;
                let r = self
                    .k
                    .iomap(pid, Handle::from_raw(dev), Handle::from_raw(h), iova, flags);
                let want = self.model_function(pid, dev).and_then(|function| {
                    let c = *self.m.procs[&pid]
                        .caps
                        .get(&h)
                        .ok_or(Error::BadCapability)?;
                    if c.device {
                        return Err(Error::InvalidArgument);
                    }
                    if !c.rights.contains(Rights::MAP)
                        || (flags.contains(abi::IoFlags::READ) && !c.rights.contains(Rights::READ))
                        || (flags.contains(abi::IoFlags::WRITE)
                            && !c.rights.contains(Rights::WRITE))
                    {
                        return Err(Error::PermissionDenied);
                    }
                    let end = iova + c.count * PAGE;
                    if !iova.is_multiple_of(PAGE) || iova < abi::IOVA_MIN || end > abi::IOVA_TOP {
                        return Err(Error::InvalidAddress);
                    }
                    let overlaps = self.m.io.get(&function).is_some_and(|space| {
                        space
                            .iter()
                            .any(|(&at, r)| at < end && iova < at + r.pages * PAGE)
                    });
                    if overlaps {
                        return Err(Error::AlreadyMapped);
                    }
                    Ok((function, c))
                });
                let injected = self.k.platform.io_failures != failures;
                match (want, r) {
                    (Ok(_), Err(Error::OutOfMemory)) if injected => {}
                    (Ok((function, c)), Ok(0)) => {
                        let record = MIo {
                            pid,
                            dev,
                            cap: h,
                            first: c.first,
                            pages: c.count,
                            flags,
                        };
                        self.m.io.entry(function).or_default().insert(iova, record);
                    }
                    (Err(e), got) => assert_eq!(got, Err(e), "iomap {dev:#x} {h:#x} {iova:#x}"),
                    (Ok(_), got) => panic!("iomap {dev:#x} {h:#x} {iova:#x}: {got:?}"),
                }
            }
            Op::IoUnmap { p, dev, slot } => {
                let Some(pid) = self.pid(p) else { return };
                let dev = self.device_handle(pid, dev);
                let iova = io_address(slot);
                let r = self.k.iounmap(pid, Handle::from_raw(dev), iova);
                let want = self.model_function(pid, dev).and_then(|function| {
                    if !iova.is_multiple_of(PAGE) || !(abi::IOVA_MIN..abi::IOVA_TOP).contains(&iova)
                    {
                        return Err(Error::InvalidAddress);
                    }
                    match self.m.io.get(&function).and_then(|s| s.get(&iova)) {
                        Some(_) => Ok(function),
                        None => Err(Error::NotMapped),
                    }
                });
                match want {
                    Ok(function) => {
                        assert_eq!(r, Ok(0), "iounmap {iova:#x}");
                        let space = self.m.io.get_mut(&function).unwrap();
                        space.remove(&iova);
                        if space.is_empty() {
                            self.m.io.remove(&function);
                        }
                    }
                    Err(e) => assert_eq!(r, Err(e), "iounmap {dev:#x} {iova:#x}"),
                }
            }
            Op::Exit { p } => {
                let Some(pid) = self.pid(p) else { return };
                let (ended, space) = self.k.end(pid, Ending::Exited(0)).expect("alive");
                assert_eq!(ended.pid, pid);
                assert!(
                    space.is_empty(),
                    "every mapping removed before the space goes"
                );
                let mp = self.m.procs.remove(&pid).unwrap();
                for c in mp.caps.values().chain(mp.queue.iter().map(|(_, c)| c)) {
                    self.m.drop_ref(c);
                }
                self.m.io_forget(|r| r.pid == pid);
                self.eps.remove(&pid);
                self.sends.retain(|&(from, to), _| from != pid && to != pid);
                // What it sent that others have not received goes too.
                let mut sent = Vec::new();
                for q in self.m.procs.values_mut() {
                    q.queue.retain(|&(from, c)| {
                        if from == pid {
                            sent.push(c);
                            false
                        } else {
                            true
                        }
                    });
                }
                for c in &sent {
                    self.m.drop_ref(c);
                }
            }
        }
    }

    /// `step`, and then: the platform heard `device_released` exactly for
    /// the device pages nobody claims any more.
    fn step_checked(&mut self, op: &Op) {
        let before = self.m.claimed_devices();
        self.step(op);
        let after = self.m.claimed_devices();
        let mut heard = core::mem::take(&mut self.k.platform.released);
        heard.sort_unstable();
        let want: Vec<u64> = before.difference(&after).map(|f| f * PAGE).collect();
        assert_eq!(heard, want, "device pages released by {op:?}");
    }

    /// The kernel against the model, and its own invariant check.
    fn check(&self) {
        if let Err(why) = self.k.check_invariants() {
            panic!("invariant check: {why}");
        }
        assert!(
            self.k.platform.bugs.is_empty(),
            "{:?}",
            self.k.platform.bugs
        );
        // The iomap records, and the model IOMMU's translations: exactly
        // those pages, every unmap flushed.
        let mut want_io = BTreeMap::new();
        let mut want_records = BTreeMap::new();
        for (&function, space) in &self.m.io {
            for (&iova, r) in space {
                for i in 0..r.pages {
                    want_io.insert((function, iova + i * PAGE), (r.first + i, r.flags));
                }
                want_records.insert(
                    (function, iova),
                    (r.pid, r.dev, r.cap, r.first, r.pages, r.flags),
                );
            }
        }
        assert_eq!(self.k.platform.io, want_io, "IOMMU translations");
        assert!(self.k.platform.io_stale.is_empty(), "an unmap not flushed");
        let got_records: BTreeMap<_, _> = self
            .k
            .io_spaces()
            .iter()
            .flat_map(|(&f, s)| {
                s.iter().map(move |(&iova, r)| {
                    (
                        (f, iova),
                        (
                            r.pid,
                            r.device.raw(),
                            r.cap.raw(),
                            r.first,
                            r.pages,
                            r.flags,
                        ),
                    )
                })
            })
            .collect();
        assert_eq!(got_records, want_records, "iomap records");
        let s = self.k.stats(0);
        assert_eq!(s.free, self.m.free_at_start - self.m.held, "free frames");
        assert_eq!(s.held_by_all, self.m.held);
        for (&pid, mp) in &self.m.procs {
            let s = self.k.stats(pid);
            // Its own RAM, and RAM it sent that others have not received
            // yet (still charged to it).
            let sent: u64 = self
                .m
                .procs
                .values()
                .flat_map(|q| q.queue.iter())
                .filter(|&&(from, c)| from == pid && !c.device)
                .map(|(_, c)| c.count)
                .sum();
            let ram: u64 = mp
                .caps
                .values()
                .filter(|c| !c.device)
                .map(|c| c.count)
                .sum::<u64>();
            assert_eq!(s.queued_by_caller, sent, "pid {pid}: queued");
            let dev = mp.caps.values().filter(|c| c.device).count() as u64;
            assert_eq!(
                (s.held_by_caller, s.device_by_caller),
                (ram, dev),
                "pid {pid}"
            );
            let mut want = Vec::new();
            for (&start, &(_, pages, first, flags)) in &mp.maps {
                for i in 0..pages {
                    let page = start + i * PAGE;
                    let now = mp.prot.get(&page).copied().unwrap_or(Some(flags));
                    want.push((page, (first + i) * PAGE, now));
                }
            }
            let got: Vec<_> = self.k.procs().get(pid).unwrap().space.leaves().collect();
            assert_eq!(got, want, "pid {pid}: leaves");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::fuzz_cases(256)))]

    #[test]
    fn syscalls_across_processes_match_the_model(ops in prop::collection::vec(op(), 1..120)) {
        let mut w = World::new();
        w.check();
        for op in &ops {
            w.step_checked(op);
            w.check();
        }
        // Everything comes back when every process ends.
        let pids: Vec<u64> = w.m.procs.keys().copied().collect();
        for pid in pids {
            w.step_checked(&Op::Exit { p: w.m.procs.keys().position(|&p| p == pid).unwrap() });
            w.check();
        }
        prop_assert_eq!(w.k.stats(0).free, w.m.free_at_start);
    }
}

/// A world with one mapped frame in each of two processes, one shared.
fn busy_world() -> World {
    let mut w = World::new();
    for op in [
        Op::Alloc { p: 0 },
        Op::Map {
            p: 0,
            h: 0,
            slot: 0,
            flags: 1,
        },
        Op::Transfer {
            p: 0,
            h: 0,
            to: 1,
            rights: 0xf,
            mv: false,
        },
        Op::Recv { p: 1 },
        Op::Map {
            p: 1,
            h: 0,
            slot: 2,
            flags: 0,
        },
    ] {
        w.step(&op);
    }
    w.check();
    w
}

#[test]
fn planted_leaf_corruption_is_caught() {
    let mut w = busy_world();
    let pid = w.pid(0).unwrap();
    w.k.procs_mut()
        .get_mut(pid)
        .unwrap()
        .space
        .corrupt(MAP_BASE, 0x1234_5000);
    let why = w.k.check_invariants().unwrap_err();
    assert!(why.contains("expected frame"), "{why}");
}

#[test]
fn planted_leak_is_caught() {
    let mut w = busy_world();
    // A frame taken from the allocator that nobody accounts for.
    w.k.platform.alloc().unwrap();
    let why = w.k.check_invariants().unwrap_err();
    assert!(why.contains("conservation"), "{why}");
}

#[test]
fn planted_ledger_miscount_is_caught() {
    let mut w = busy_world();
    let first = w.m.refs.keys().next().copied().unwrap();
    w.k.ledger.shared.insert(first, 5);
    let why = w.k.check_invariants().unwrap_err();
    assert!(why.contains("references"), "{why}");
}

#[test]
fn planted_mapping_count_is_caught() {
    let mut w = busy_world();
    let pid = w.pid(0).unwrap();
    let p = w.k.procs_mut().get_mut(pid).unwrap();
    let h = p.caps.iter().next().map(|(h, _)| h).unwrap();
    p.caps.get_mut(h).unwrap().mapped += 1;
    let why = w.k.check_invariants().unwrap_err();
    assert!(why.contains("counts"), "{why}");
}

#[test]
fn a_refused_multi_page_map_maps_nothing() {
    let mut w = World::new();
    let pid = w.pid(0).unwrap();
    let one = w.k.frame_alloc(pid).unwrap();
    w.k.map(
        pid,
        Handle::from_raw(one),
        MAP_BASE + 2 * PAGE,
        MapFlags::NONE,
    )
    .unwrap();
    let run = w.k.frame_alloc_contiguous(pid, 4, 1, 0).unwrap();
    assert_eq!(
        w.k.map(pid, Handle::from_raw(run), MAP_BASE, MapFlags::WRITE),
        Err(Error::AlreadyMapped)
    );
    assert_eq!(w.k.procs().get(pid).unwrap().space.len(), 1);
    w.k.check_invariants().unwrap();
}

#[test]
fn planted_write_exec_on_one_frame_is_caught() {
    let mut w = busy_world();
    // Process 1 holds a read-only copy of process 0's writable frame: give
    // it EXEC as if a transfer had amplified its rights.
    let pid = w.pid(1).unwrap();
    let p = w.k.procs_mut().get_mut(pid).unwrap();
    let h = p
        .caps
        .iter()
        .find(|(_, c)| matches!(c.kind, CapKind::Ram { .. }))
        .map(|(h, _)| h)
        .unwrap();
    p.caps.get_mut(h).unwrap().rights = Rights::EXECUTABLE;
    let why = w.k.check_invariants().unwrap_err();
    assert!(why.contains("W^X"), "{why}");
}

/// W^X per frame, the whole story of a frame that becomes code: written
/// through one mapping, refused as an executable alias, sealed only when
/// alone and unmapped, then executable (also in another process) and never
/// writable again, anywhere.
#[test]
fn w_xor_x_holds_per_frame_across_mappings_and_processes() {
    let mut w = World::new();
    let (a, b) = (w.pid(0).unwrap(), w.pid(1).unwrap());
    let h = Handle::from_raw(w.k.frame_alloc(a).unwrap());
    let (at, alias) = (MAP_BASE, MAP_BASE + SLOT);
    w.k.map(a, h, at, MapFlags::WRITE).unwrap();
    // The alias the hostile review used: the same frame, executable.
    assert_eq!(
        w.k.map(a, h, alias, MapFlags::EXEC),
        Err(Error::PermissionDenied)
    );
    assert_eq!(w.k.frame_seal(a, h), Err(Error::AlreadyMapped));
    w.k.unmap(a, at).unwrap();
    // Shared (a read-only copy queued for b): not alone, so not sealable.
    let copy_ro = abi::SEND_COPY | abi::send_rights(Rights::READ | Rights::MAP);
    w.give(a, h, b, copy_ro).unwrap();
    assert_eq!(w.k.frame_seal(a, h), Err(Error::FrameInUse));
    let copy = w.take(b).unwrap();
    w.k.frame_free(b, copy).unwrap();
    assert_eq!(w.k.frame_seal(a, h), Ok(0));
    assert_eq!(w.k.frame_seal(a, h), Err(Error::PermissionDenied));
    assert_eq!(
        w.k.map(a, h, at, MapFlags::WRITE),
        Err(Error::PermissionDenied)
    );
    w.k.map(a, h, alias, MapFlags::EXEC).unwrap();
    // Handed on, it stays code: WRITE cannot come back with it.
    assert_eq!(
        w.give(a, h, b, abi::SEND_COPY | abi::send_rights(Rights::WRITABLE)),
        Err(Error::PermissionDenied)
    );
    w.give(
        a,
        h,
        b,
        abi::SEND_COPY | abi::send_rights(Rights::EXECUTABLE),
    )
    .unwrap();
    let code = w.take(b).unwrap();
    w.k.map(b, code, at, MapFlags::EXEC).unwrap();
    assert_eq!(
        w.k.map(b, code, alias, MapFlags::WRITE),
        Err(Error::PermissionDenied)
    );
    w.k.check_invariants().unwrap();
}

#[test]
fn cap_info_reports_kind_size_rights_and_phys_by_the_map_rule() {
    use abi::{CapInfo, CapKindCode};
    let mut w = World::new();
    let (a, b) = (w.pid(0).unwrap(), w.pid(1).unwrap());
    let one = Handle::from_raw(w.k.frame_alloc(a).unwrap());
    let run = Handle::from_raw(w.k.frame_alloc_contiguous(a, 4, 4, 0).unwrap());
    let info = w.k.cap_info(a, one).unwrap();
    assert_eq!(info.cap_kind(), Some(CapKindCode::RamFrame));
    assert_eq!((info.frames, info.rights()), (1, Some(Rights::WRITABLE)));
    assert_eq!(info.phys(), w.k.frame_phys(a, one).ok());
    let info = w.k.cap_info(a, run).unwrap();
    assert_eq!(info.cap_kind(), Some(CapKindCode::RamRun));
    assert_eq!(info.frames, 4);
    // A copy without MAP: its holder learns kind, size and rights, not
    // where the frames are.
    w.give(a, run, b, abi::SEND_COPY | abi::send_rights(Rights::READ))
        .unwrap();
    let got = w.take(b).unwrap();
    let info = w.k.cap_info(b, got).unwrap();
    assert_eq!(
        info,
        CapInfo {
            kind: CapKindCode::RamRun as u64,
            frames: 4,
            rights: Rights::READ.bits(),
            phys: CapInfo::PHYS_HIDDEN,
        }
    );
    assert_eq!(w.k.frame_phys(b, got), Err(Error::PermissionDenied));
    // A device page (the second process is a driver).
    let dev = Handle::from_raw(w.k.frame_alloc_at(b, 0x11 * PAGE).unwrap());
    let info = w.k.cap_info(b, dev).unwrap();
    assert_eq!(info.cap_kind(), Some(CapKindCode::Device));
    assert_eq!((info.frames, info.phys()), (1, Some(0x11 * PAGE)));
    // Someone else's handle, a freed one, a forged one.
    assert_eq!(w.k.cap_info(b, one), Err(Error::BadCapability));
    w.k.frame_free(a, one).unwrap();
    assert_eq!(w.k.cap_info(a, one), Err(Error::BadCapability));
    assert_eq!(
        w.k.cap_info(a, Handle::from_raw(0x5eed)),
        Err(Error::BadCapability)
    );
    w.k.check_invariants().unwrap();
}

/// `SEND_RIGHTS` asking for no rights (useless), for rights not held, or
/// with no capability is refused, and nothing moves.
#[test]
fn a_send_with_no_rights_or_more_rights_is_refused_and_nothing_moves() {
    let mut w = World::new();
    let (a, b) = (w.pid(0).unwrap(), w.pid(1).unwrap());
    let h = Handle::from_raw(w.k.frame_alloc(a).unwrap());
    for mode in [0, abi::SEND_COPY] {
        let none = mode | abi::send_rights(Rights::NONE);
        assert_eq!(w.give(a, h, b, none), Err(Error::InvalidArgument));
        assert_eq!(
            w.give(a, Handle::from_raw(0x5eed), b, none),
            Err(Error::BadCapability)
        );
        assert_eq!(
            w.give(a, Handle::from_raw(0), b, abi::send_rights(Rights::READ)),
            Err(Error::InvalidArgument)
        );
    }
    // A read-only copy cannot be widened on the way on.
    w.give(
        a,
        h,
        b,
        abi::SEND_COPY | abi::send_rights(Rights::READ | Rights::TRANSFER),
    )
    .unwrap();
    let ro = w.take(b).unwrap();
    assert_eq!(
        w.give(b, ro, a, abi::send_rights(Rights::READ | Rights::WRITE)),
        Err(Error::PermissionDenied)
    );
    // Nothing was sent, and the handles are still their holders'.
    assert_eq!(w.k.recv(a, w.eps[&a], 0, 0), Err(Error::WouldBlock));
    assert!(w.k.frame_phys(a, h).is_ok());
    assert_eq!(
        w.k.cap_info(b, ro).unwrap().rights(),
        Some(Rights::READ | Rights::TRANSFER)
    );
    w.k.check_invariants().unwrap();
}

#[test]
fn a_million_map_unmap_cycles_at_fresh_addresses_fit_the_table_quota() {
    // What `test-pagetables` does on the real kernel: libos takes a fresh
    // address for every mapping; tables left empty stop counting.
    let mut w = World::new();
    let pid = w.pid(0).unwrap();
    let h = Handle::from_raw(w.k.frame_alloc(pid).unwrap());
    let base = 0x2000_0000_0000u64;
    for i in 0..1_000_000u64 {
        let at = base + i * 2 * PAGE;
        assert_eq!(w.k.map(pid, h, at, MapFlags::NONE), Ok(0), "cycle {i}");
        assert_eq!(w.k.unmap(pid, at), Ok(0));
    }
    let space = &w.k.procs().get(pid).unwrap().space;
    assert_eq!(space.tables(), 1);
    // Held at once, the quota still binds: mappings 2 MiB apart need a
    // level-1 table each, plus the level-3 table and (past 512) a second
    // level-2 one: 1 + 1 + 2 + 1020 = 1024 tables.
    let mut i = 0;
    let err = loop {
        match w.k.map(pid, h, 0x4000_0000 + i * (2 << 20), MapFlags::NONE) {
            Ok(_) => i += 1,
            Err(e) => break e,
        }
    };
    assert_eq!((err, i), (Error::OutOfMemory, 1020));
    w.k.check_invariants().unwrap();
}

/// Endpoints: a published service answers a badged call; a capability
/// travels with a message and is charged to its sender while queued.
#[test]
fn endpoint_call_reply_and_a_queued_capability() {
    let mut w = World::new();
    let (a, b) = (w.pid(0).unwrap(), w.pid(1).unwrap());
    w.k.procs_mut().get_mut(a).unwrap().name = "server".into();
    let recv = Handle::from_raw(w.k.endpoint_create(a, true).unwrap());
    let send = Handle::from_raw(w.k.endpoint_lookup(b, b"server").unwrap());
    // b calls: nobody waits yet, so it is queued and b blocks.
    assert_eq!(w.k.call(b, send, [1, 2], 0, 0), Ok(Outcome::Blocked));
    assert!(w.k.procs().get(b).unwrap().wait.is_some());
    w.k.check_invariants().unwrap();
    let Ok(Outcome::Done(got)) = w.k.recv(a, recv, 0, 0) else {
        panic!("the call is queued");
    };
    assert_eq!(
        (got.badge, got.words, got.flags),
        (b, [1, 2], abi::RECV_CALL)
    );
    assert_eq!(w.k.reply(a, [3, 4], 0, 0), Ok(Outcome::Woke(b)));
    let regs = w.k.procs().get(b).unwrap().regs;
    assert_eq!((regs.rax, regs.values), (0, [0, 3, 4, 0, 0]));
    assert_eq!(w.k.reply(a, [0, 0], 0, 0), Err(Error::InvalidArgument));

    // A 4-frame run sent to a's endpoint: b's until received, back to
    // the allocator when b ends with it still queued.
    let free = w.k.stats(0).free;
    let run = w.k.frame_alloc_contiguous(b, 4, 1, 0).unwrap();
    let held = w.k.stats(b).held_by_caller;
    assert_eq!(
        w.k.send(b, send, [0, 0], run, 0),
        Ok(Outcome::Done(Received::default()))
    );
    let after = w.k.stats(b);
    assert_eq!(
        (after.held_by_caller, after.queued_by_caller),
        (held - 4, 4)
    );
    w.k.check_invariants().unwrap();
    w.k.end(b, Ending::Exited(0)).unwrap();
    w.m.procs.remove(&b);
    w.k.check_invariants().unwrap();
    assert_eq!(w.k.stats(0).free, free);
    assert_eq!(w.k.recv(a, recv, 0, 0), Err(Error::WouldBlock));
}

/// A caller blocked on an endpoint whose owner dies wakes with
/// `NoSuchProcess`; a timed-out recv wakes with `WouldBlock`; a send
/// through the receive capability or to a dead endpoint is refused.
#[test]
fn endpoint_owner_death_timeouts_and_refusals() {
    let mut w = World::new();
    let (a, b) = (w.pid(0).unwrap(), w.pid(1).unwrap());
    let recv = Handle::from_raw(w.k.endpoint_create(a, false).unwrap());
    let send = w.k.endpoint_mint(a, recv, 9).unwrap();
    assert_eq!(
        w.k.send(a, recv, [0, 0], 0, 0),
        Err(Error::PermissionDenied)
    );
    // Hand the send capability to b in a message.
    w.give(a, Handle::from_raw(send), b, 0).unwrap();
    let bsend = w.take(b).unwrap();
    assert_eq!(w.k.recv(a, recv, 5, 100), Ok(Outcome::Blocked));
    assert!(!w.k.tick(104));
    assert!(w.k.tick(105));
    assert_eq!(
        w.k.procs().get(a).unwrap().regs.rax,
        Error::WouldBlock as u64
    );
    // b calls, a receives (a reply is owed), a dies: b wakes.
    assert_eq!(w.k.call(b, bsend, [1, 1], 0, 0), Ok(Outcome::Blocked));
    assert!(matches!(w.k.recv(a, recv, 0, 0), Ok(Outcome::Done(_))));
    w.k.check_invariants().unwrap();
    w.k.end(a, Ending::Exited(0)).unwrap();
    w.m.procs.remove(&a);
    let regs = w.k.procs().get(b).unwrap().regs;
    assert_eq!(regs.rax, Error::NoSuchProcess as u64);
    assert!(w.k.procs().get(b).unwrap().wait.is_none());
    assert_eq!(w.k.send(b, bsend, [0, 0], 0, 0), Err(Error::NoSuchProcess));
    w.k.check_invariants().unwrap();
}

/// Endpoint operations at random, from several processes (creating,
/// minting, sending with and without capabilities, receiving, calling,
/// replying, timing out, freeing and ending), with the invariant check
/// (conservation, every queued capability counted, every wait answerable)
/// after each step and every frame back at the end.
#[derive(Clone, Debug)]
enum EpOp {
    Create {
        p: usize,
        publish: bool,
    },
    Mint {
        p: usize,
        e: usize,
        badge: u64,
    },
    Lookup {
        p: usize,
        of: usize,
    },
    Send {
        p: usize,
        s: usize,
        cap: bool,
        copy: bool,
        block: bool,
    },
    Call {
        p: usize,
        s: usize,
        cap: bool,
    },
    Recv {
        p: usize,
        e: usize,
        timeout: u64,
    },
    Reply {
        p: usize,
        cap: bool,
    },
    /// `reply_recv`, through the fast path first.
    ReplyRecv {
        p: usize,
        e: usize,
        cap: bool,
    },
    Tick {
        by: u64,
    },
    FreeAny {
        p: usize,
        h: usize,
    },
    Alloc {
        p: usize,
    },
    Exit {
        p: usize,
    },
    Spawn,
}

fn ep_op() -> impl Strategy<Value = EpOp> {
    prop_oneof![
        2 => (0..4usize, any::<bool>()).prop_map(|(p, publish)| EpOp::Create { p, publish }),
        3 => (0..4usize, 0..4usize, 0..4u64).prop_map(|(p, e, badge)| EpOp::Mint { p, e, badge }),
        2 => (0..4usize, 0..4usize).prop_map(|(p, of)| EpOp::Lookup { p, of }),
        5 => (0..4usize, 0..8usize, any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(p, s, cap, copy, block)| EpOp::Send { p, s, cap, copy, block }),
        3 => (0..4usize, 0..8usize, any::<bool>()).prop_map(|(p, s, cap)| EpOp::Call { p, s, cap }),
        5 => (0..4usize, 0..4usize, 0..3u64).prop_map(|(p, e, timeout)| EpOp::Recv { p, e, timeout }),
        3 => (0..4usize, any::<bool>()).prop_map(|(p, cap)| EpOp::Reply { p, cap }),
        3 => (0..4usize, 0..4usize, any::<bool>()).prop_map(|(p, e, cap)| EpOp::ReplyRecv { p, e, cap }),
        2 => (1..4u64).prop_map(|by| EpOp::Tick { by }),
        2 => (0..4usize, 0..16usize).prop_map(|(p, h)| EpOp::FreeAny { p, h }),
        3 => (0..4usize).prop_map(|p| EpOp::Alloc { p }),
        1 => (0..4usize).prop_map(|p| EpOp::Exit { p }),
        1 => Just(EpOp::Spawn),
    ]
}

/// The handles of `pid` whose kind matches `want`.
fn handles_of(k: &K, pid: u64, want: fn(&CapKind) -> bool) -> Vec<Handle> {
    k.procs()
        .get(pid)
        .map(|p| {
            p.caps
                .iter()
                .filter(|(_, c)| want(&c.kind))
                .map(|(h, _)| h)
                .collect()
        })
        .unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::fuzz_cases(256)))]
    #[test]
    fn endpoint_operations_keep_the_invariants(ops in prop::collection::vec(ep_op(), 1..150)) {
        let mut k: K = Kernel::new(ModelPlatform::new(FRAMES), 3);
        let free_at_start = k.stats(0).free;
        let mut now = 0u64;
        let spawn = |k: &mut K| {
            if let Some(p) = k.new_process("p", ModelSpace::default(), false) {
                k.admit(p);
            }
        };
        for _ in 0..3 {
            spawn(&mut k);
        }
        let runnable = |k: &K| -> Vec<u64> {
            k.procs().values().filter(|p| p.wait.is_none()).map(|p| p.pid).collect()
        };
        for op in &ops {
            // Only a runnable process makes calls (as on the machine).
            let pids = runnable(&k);
            let pick = |i: usize| (!pids.is_empty()).then(|| pids[i % pids.len()]);
            let is_recv = |c: &CapKind| matches!(c, CapKind::EndpointRecv { .. });
            let is_send = |c: &CapKind| matches!(c, CapKind::EndpointSend { .. });
            let is_ram = |c: &CapKind| matches!(c, CapKind::Ram { .. });
            match *op {
                EpOp::Create { p, publish } => {
                    if let Some(pid) = pick(p) {
                        let _ = k.endpoint_create(pid, publish);
                    }
                }
                EpOp::Mint { p, e, badge } => {
                    if let Some(pid) = pick(p) {
                        let recvs = handles_of(&k, pid, is_recv);
                        if let Some(&h) = recvs.get(e % recvs.len().max(1)) {
                            let _ = k.endpoint_mint(pid, h, badge);
                        }
                    }
                }
                EpOp::Lookup { p, of } => {
                    if let Some(pid) = pick(p) {
                        let names = ["p"];
                        let _ = of;
                        let _ = k.endpoint_lookup(pid, names[0].as_bytes());
                    }
                }
                EpOp::Send { p, s, cap, copy, block } => {
                    if let Some(pid) = pick(p) {
                        let sends = handles_of(&k, pid, is_send);
                        let rams = handles_of(&k, pid, is_ram);
                        if let Some(&h) = sends.get(s % sends.len().max(1)) {
                            let c = if cap { rams.first().map_or(0, |h| h.raw()) } else { 0 };
                            let flags = (u64::from(copy) * abi::SEND_COPY) | (u64::from(block) * abi::SEND_BLOCK);
                            let _ = k.send(pid, h, [1, 2], c, flags);
                        }
                    }
                }
                EpOp::Call { p, s, cap } => {
                    if let Some(pid) = pick(p) {
                        let sends = handles_of(&k, pid, is_send);
                        let rams = handles_of(&k, pid, is_ram);
                        if let Some(&h) = sends.get(s % sends.len().max(1)) {
                            let c = if cap { rams.first().map_or(0, |h| h.raw()) } else { 0 };
                            // The fast path first (it takes moves).
                            if k.call_fast(pid, h, [3, 4], c).is_none() {
                                let _ = k.call(pid, h, [3, 4], c, 0);
                            }
                        }
                    }
                }
                EpOp::Recv { p, e, timeout } => {
                    if let Some(pid) = pick(p) {
                        let recvs = handles_of(&k, pid, is_recv);
                        if let Some(&h) = recvs.get(e % recvs.len().max(1)) {
                            let _ = k.recv(pid, h, timeout, now);
                        }
                    }
                }
                EpOp::Reply { p, cap } => {
                    if let Some(pid) = pick(p) {
                        let rams = handles_of(&k, pid, is_ram);
                        let c = if cap { rams.first().map_or(0, |h| h.raw()) } else { 0 };
                        let _ = k.reply(pid, [5, 6], c, 0);
                    }
                }
                EpOp::ReplyRecv { p, e, cap } => {
                    if let Some(pid) = pick(p) {
                        let recvs = handles_of(&k, pid, is_recv);
                        let rams = handles_of(&k, pid, is_ram);
                        if let Some(&h) = recvs.get(e % recvs.len().max(1)) {
                            let c = if cap { rams.first().map_or(0, |h| h.raw()) } else { 0 };
                            if k.reply_recv_fast(pid, h, [7, 8], c).is_none() {
                                let _ = k.reply_recv(pid, h, [7, 8], c, 0, now);
                            }
                        }
                    }
                }
                EpOp::Tick { by } => {
                    now += by;
                    k.tick(now);
                }
                EpOp::FreeAny { p, h } => {
                    if let Some(pid) = pick(p) {
                        let all = handles_of(&k, pid, |_| true);
                        if let Some(&h) = all.get(h % all.len().max(1)) {
                            prop_assert_eq!(k.frame_free(pid, h), Ok(0));
                        }
                    }
                }
                EpOp::Alloc { p } => {
                    if let Some(pid) = pick(p) {
                        let _ = k.frame_alloc_contiguous(pid, 1 + p as u64, 1, 0);
                    }
                }
                EpOp::Exit { p } => {
                    // Any process may end (a blocked one too: killed).
                    let all: Vec<u64> = k.procs().values().map(|q| q.pid).collect();
                    if !all.is_empty() {
                        let pid = all[p % all.len()];
                        k.end(pid, Ending::Exited(0));
                    }
                }
                EpOp::Spawn => spawn(&mut k),
            }
            if let Err(why) = k.check_invariants() {
                return Err(TestCaseError::fail(format!("after {op:?}: {why}")));
            }
        }
        let all: Vec<u64> = k.procs().values().map(|q| q.pid).collect();
        for pid in all {
            k.end(pid, Ending::Exited(0));
            if let Err(why) = k.check_invariants() {
                return Err(TestCaseError::fail(format!("ending {pid}: {why}")));
            }
        }
        prop_assert_eq!(k.stats(0).free, free_at_start);
        prop_assert!(k.platform.bugs.is_empty(), "{:?}", k.platform.bugs);
    }
}

#[test]
fn page_bits_report_and_clear_what_the_mmu_set() {
    let mut w = World::new();
    let pid = w.pid(0).unwrap();
    let h = w.k.frame_alloc(pid).unwrap();
    let h2 = w.k.frame_alloc(pid).unwrap();
    w.k.map(pid, Handle::from_raw(h), MAP_BASE, MapFlags::WRITE)
        .unwrap();
    w.k.map(pid, Handle::from_raw(h2), MAP_BASE + PAGE, MapFlags::WRITE)
        .unwrap();
    assert_eq!(w.k.page_bits(pid, MAP_BASE, 2, false), Ok(0));
    let space = &mut w.k.procs_mut().get_mut(pid).unwrap().space;
    space.touch(MAP_BASE, false);
    space.touch(MAP_BASE + PAGE, true);
    // Page 0 accessed; page 1 accessed and dirty.
    assert_eq!(w.k.page_bits(pid, MAP_BASE, 2, false), Ok(0b1101));
    assert_eq!(w.k.page_bits(pid, MAP_BASE + PAGE, 1, false), Ok(0b11));
    // A range running into an unmapped page clears nothing.
    assert_eq!(w.k.page_bits(pid, MAP_BASE, 3, true), Err(Error::NotMapped));
    assert_eq!(w.k.page_bits(pid, MAP_BASE, 2, true), Ok(0b1101));
    assert_eq!(w.k.page_bits(pid, MAP_BASE, 2, false), Ok(0));
    // No access keeps the leaf: its bits are still there to read.
    w.k.procs_mut()
        .get_mut(pid)
        .unwrap()
        .space
        .touch(MAP_BASE, true);
    w.k.protect(pid, MAP_BASE, 1, abi::Protection::None)
        .unwrap();
    assert_eq!(w.k.page_bits(pid, MAP_BASE, 1, false), Ok(0b11));
    assert_eq!(
        w.k.page_bits(pid, MAP_BASE + 1, 1, false),
        Err(Error::InvalidAddress)
    );
    assert_eq!(
        w.k.page_bits(pid, MAP_BASE, 0, false),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        w.k.page_bits(pid, MAP_BASE, 33, false),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        w.k.page_bits(pid, abi::USER_MAP_TOP - PAGE, 2, false),
        Err(Error::InvalidAddress)
    );
    // Unmapping drops the bits with the leaf.
    w.k.unmap(pid, MAP_BASE).unwrap();
    assert_eq!(
        w.k.page_bits(pid, MAP_BASE, 1, false),
        Err(Error::NotMapped)
    );
    w.k.check_invariants().unwrap();
}

/// A sender blocked on a full queue gets in when another sender's queued
/// messages go with it (the review's scenario), and is woken with rax
/// alone (its `send` stub declares no other register written).
#[test]
fn a_blocked_sender_gets_in_when_room_is_made_by_an_exit() {
    let mut w = World::new();
    let (s, x) = (w.pid(0).unwrap(), w.pid(1).unwrap());
    w.k.procs_mut().get_mut(s).unwrap().name = "server".into();
    let recv = Handle::from_raw(w.k.endpoint_create(s, true).unwrap());
    let xs = Handle::from_raw(w.k.endpoint_lookup(x, b"server").unwrap());
    for i in 0..abi::bounds::QUEUE as u64 {
        assert!(w.k.send(x, xs, [i, 0], 0, 0).is_ok());
    }
    let y = {
        let p = w.k.new_process("y", ModelSpace::default(), false).unwrap();
        w.k.admit(p)
    };
    let ys = Handle::from_raw(w.k.endpoint_lookup(y, b"server").unwrap());
    w.k.procs_mut().get_mut(y).unwrap().regs.values = [9; 5];
    assert_eq!(
        w.k.send(y, ys, [7, 7], 0, abi::SEND_BLOCK),
        Ok(Outcome::Blocked)
    );
    w.k.end(x, Ending::Exited(0)).unwrap();
    w.m.procs.remove(&x);
    let yp = w.k.procs().get(y).unwrap();
    assert!(yp.wait.is_none(), "y got in");
    assert_eq!((yp.regs.rax, yp.regs.values), (0, [0, 9, 9, 9, 9]));
    let Ok(Outcome::Done(got)) = w.k.recv(s, recv, 0, 0) else {
        panic!("y's message is queued");
    };
    assert_eq!((got.badge, got.words), (y, [7, 7]));
    w.k.check_invariants().unwrap();
}

/// An interrupt that finds its endpoint's queue full (a program filled it)
/// is not lost: it arrives, with its count, once a `recv` makes room.
#[test]
fn an_interrupt_on_a_full_queue_arrives_later() {
    let mut w = World::new();
    let (d, x) = (w.pid(1).unwrap(), w.pid(0).unwrap());
    assert!(w.k.procs().get(d).unwrap().driver);
    w.k.procs_mut().get_mut(d).unwrap().name = "drv".into();
    let recv = Handle::from_raw(w.k.endpoint_create(d, true).unwrap());
    let to_irq = Handle::from_raw(w.k.endpoint_mint(d, recv, 0xed).unwrap());
    let dev = Handle::from_raw(
        w.k.frame_alloc_at(d, (FIRST_RAM + FRAMES + 1) * PAGE)
            .unwrap(),
    );
    let vector = w.k.irq_bind(d, dev, to_irq).unwrap() as u8;
    let xs = Handle::from_raw(w.k.endpoint_lookup(x, b"drv").unwrap());
    for i in 0..abi::bounds::QUEUE as u64 {
        assert!(w.k.send(x, xs, [i, 0], 0, 0).is_ok());
    }
    assert_eq!(w.k.irq_fire(vector), Some(None));
    assert_eq!(w.k.irq_fire(vector), Some(None));
    w.k.check_invariants().unwrap();
    let mut irq = None;
    for _ in 0..=abi::bounds::QUEUE {
        match w.k.recv(d, recv, 0, 0) {
            Ok(Outcome::Done(got)) if got.flags & abi::RECV_IRQ != 0 => irq = Some(got),
            Ok(Outcome::Done(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    let got = irq.expect("the interrupts came");
    assert_eq!((got.badge, got.words), (0xed, [u64::from(vector), 2]));
    w.k.check_invariants().unwrap();
}

/// Senders blocked on a full queue get in first come, first served (not
/// by pid): three block in the order 3rd, 1st, 2nd spawned, and their
/// messages queue in that order as the receiver makes room.
#[test]
fn blocked_senders_get_in_in_the_order_they_blocked() {
    let mut w = World::new();
    let (s, x) = (w.pid(0).unwrap(), w.pid(1).unwrap());
    w.k.procs_mut().get_mut(s).unwrap().name = "server".into();
    let recv = Handle::from_raw(w.k.endpoint_create(s, true).unwrap());
    let xs = Handle::from_raw(w.k.endpoint_lookup(x, b"server").unwrap());
    for i in 0..abi::bounds::QUEUE as u64 {
        assert!(w.k.send(x, xs, [i, 0], 0, 0).is_ok());
    }
    let senders: Vec<(u64, Handle)> = (0..3)
        .map(|_| {
            let p = w.k.new_process("y", ModelSpace::default(), false).unwrap();
            let pid = w.k.admit(p);
            (
                pid,
                Handle::from_raw(w.k.endpoint_lookup(pid, b"server").unwrap()),
            )
        })
        .collect();
    let order = [2, 0, 1];
    for &i in &order {
        let (pid, h) = senders[i];
        assert_eq!(
            w.k.send(pid, h, [100 + i as u64, 0], 0, abi::SEND_BLOCK),
            Ok(Outcome::Blocked)
        );
    }
    // Each recv makes room for exactly one, the longest waiting.
    for (n, &i) in order.iter().enumerate() {
        assert!(matches!(w.k.recv(s, recv, 0, 0), Ok(Outcome::Done(_))));
        for (j, &(pid, _)) in senders.iter().enumerate() {
            let admitted = order[..=n].contains(&j);
            assert_eq!(
                w.k.procs().get(pid).unwrap().wait.is_none(),
                admitted,
                "{n}: {j}"
            );
        }
        assert!(w.k.procs().get(senders[i].0).unwrap().wait.is_none());
    }
    // The 16 first messages, then the blocked senders' in blocking order.
    for _ in 3..abi::bounds::QUEUE {
        assert!(matches!(w.k.recv(s, recv, 0, 0), Ok(Outcome::Done(_))));
    }
    for &i in &order {
        let Ok(Outcome::Done(got)) = w.k.recv(s, recv, 0, 0) else {
            panic!("queued");
        };
        assert_eq!((got.badge, got.words[0]), (senders[i].0, 100 + i as u64));
    }
    w.k.check_invariants().unwrap();
}

/// A server that receives a second call before answering the first: the
/// first caller's call is cancelled (it wakes with `NoSuchProcess`, and a
/// capability it sent stays where the message put it: received), the
/// reply goes to the second.
#[test]
fn a_second_call_received_before_the_reply_cancels_the_first() {
    let mut w = World::new();
    let (s, a) = (w.pid(0).unwrap(), w.pid(1).unwrap());
    w.k.procs_mut().get_mut(s).unwrap().name = "server".into();
    let recv = Handle::from_raw(w.k.endpoint_create(s, true).unwrap());
    let b = {
        let p = w.k.new_process("b", ModelSpace::default(), false).unwrap();
        w.k.admit(p)
    };
    let as_ = Handle::from_raw(w.k.endpoint_lookup(a, b"server").unwrap());
    let bs = Handle::from_raw(w.k.endpoint_lookup(b, b"server").unwrap());
    assert_eq!(w.k.call(a, as_, [1, 0], 0, 0), Ok(Outcome::Blocked));
    assert_eq!(w.k.call(b, bs, [2, 0], 0, 0), Ok(Outcome::Blocked));
    let Ok(Outcome::Done(first)) = w.k.recv(s, recv, 0, 0) else {
        panic!("a's call");
    };
    assert_eq!((first.badge, first.flags), (a, abi::RECV_CALL));
    assert!(w.k.procs().get(a).unwrap().wait.is_some());
    let Ok(Outcome::Done(second)) = w.k.recv(s, recv, 0, 0) else {
        panic!("b's call");
    };
    assert_eq!((second.badge, second.flags), (b, abi::RECV_CALL));
    let ap = w.k.procs().get(a).unwrap();
    assert!(ap.wait.is_none(), "a's call was cancelled");
    assert_eq!(ap.regs.rax, Error::NoSuchProcess as u64);
    // The reply answers b; nothing is owed after it.
    assert_eq!(w.k.reply(s, [5, 5], 0, 0), Ok(Outcome::Woke(b)));
    let bp = w.k.procs().get(b).unwrap();
    assert_eq!((bp.regs.rax, bp.regs.values[1]), (0, 5));
    assert_eq!(w.k.reply(s, [0, 0], 0, 0), Err(Error::InvalidArgument));
    w.k.check_invariants().unwrap();
}

/// `irq_bind`: only through a device capability the caller holds (another
/// process's handle is refused); at most `IRQS_PER_DEVICE` vectors per
/// device page; `ep` = 0 unbinds them, the vectors free for others and
/// their interrupts spurious (nobody's).
#[test]
fn irq_bindings_are_limited_per_device_and_can_be_released() {
    let mut w = World::new();
    let (x, d) = (w.pid(0).unwrap(), w.pid(1).unwrap());
    let recv = Handle::from_raw(w.k.endpoint_create(d, false).unwrap());
    let to_irq = Handle::from_raw(w.k.endpoint_mint(d, recv, 1).unwrap());
    let dev = Handle::from_raw(
        w.k.frame_alloc_at(d, (FIRST_RAM + FRAMES + 1) * PAGE)
            .unwrap(),
    );
    // A non-holder naming the driver's handles.
    assert_eq!(w.k.irq_bind(x, dev, to_irq), Err(Error::BadCapability));
    let mut vectors = Vec::new();
    for _ in 0..abi::bounds::IRQS_PER_DEVICE {
        vectors.push(w.k.irq_bind(d, dev, to_irq).unwrap() as u8);
    }
    assert_eq!(w.k.irq_bind(d, dev, to_irq), Err(Error::OutOfMemory));
    // Another device page still gets one.
    let dev2 = Handle::from_raw(
        w.k.frame_alloc_at(d, (FIRST_RAM + FRAMES + 2) * PAGE)
            .unwrap(),
    );
    let other = w.k.irq_bind(d, dev2, to_irq).unwrap() as u8;
    assert!(!vectors.contains(&other));
    assert_eq!(
        w.k.irq_bind(d, dev, Handle::from_raw(0)),
        Ok(abi::bounds::IRQS_PER_DEVICE as u64)
    );
    for &v in &vectors {
        assert_eq!(w.k.irq_fire(v), None, "vector {v:#x} unbound");
    }
    assert!(w.k.irq_fire(other).is_some());
    assert_eq!(w.k.irq_bind(d, dev, Handle::from_raw(0)), Ok(0));
    // Released: binding again works, from the lowest free vector.
    assert_eq!(w.k.irq_bind(d, dev, to_irq), Ok(u64::from(vectors[0])));
    w.k.check_invariants().unwrap();
}

/// The IPC fast path does what the general `call` and `reply_recv` do:
/// two worlds driven alike, one through each, end in the same waits,
/// results and reply obligations; where its conditions do not hold it
/// changes nothing.
#[test]
fn the_ipc_fast_path_matches_the_general_path() {
    let setup = || {
        let mut w = World::new();
        let (s, c) = (w.pid(0).unwrap(), w.pid(1).unwrap());
        w.k.procs_mut().get_mut(s).unwrap().name = "server".into();
        let recv = Handle::from_raw(w.k.endpoint_create(s, true).unwrap());
        let send = Handle::from_raw(w.k.endpoint_lookup(c, b"server").unwrap());
        (w, s, c, recv, send)
    };
    let state = |k: &K, pid: u64| {
        let p = k.procs().get(pid).unwrap();
        (p.wait, p.reply_to, p.regs.rax, p.regs.values)
    };
    let (mut fast, s, c, recv, send) = setup();
    let (mut slow, ..) = setup();
    // Nobody receives yet: the fast path declines and changes nothing.
    let before = (state(&fast.k, s), state(&fast.k, c));
    assert_eq!(fast.k.call_fast(c, send, [1, 2], 0), None);
    assert_eq!(fast.k.reply_recv_fast(s, recv, [1, 2], 0), None);
    assert_eq!((state(&fast.k, s), state(&fast.k, c)), before);
    // Through the receive capability, or a handle of the wrong kind.
    assert_eq!(fast.k.call_fast(s, recv, [1, 2], 0), None);
    assert_eq!(fast.k.reply_recv_fast(c, send, [1, 2], 0), None);
    for w in [&mut fast, &mut slow] {
        assert_eq!(w.k.recv(s, recv, abi::FOREVER, 0), Ok(Outcome::Blocked));
    }
    assert_eq!(fast.k.call_fast(c, send, [1, 2], 0), Some(s));
    assert_eq!(slow.k.call(c, send, [1, 2], 0, 0), Ok(Outcome::Woke(s)));
    for pid in [s, c] {
        assert_eq!(state(&fast.k, pid), state(&slow.k, pid));
    }
    assert_eq!(
        state(&fast.k, s).3,
        [c, 1, 2, 0, abi::RECV_CALL],
        "badge (the looker's pid), words, no capability, a reply owed"
    );
    fast.k.check_invariants().unwrap();
    assert_eq!(fast.k.reply_recv_fast(s, recv, [3, 4], 0), Some(c));
    let rr = slow.k.reply_recv(s, recv, [3, 4], 0, 0, 0).unwrap();
    assert_eq!((rr.answered, rr.recv), (c, Ok(Outcome::Blocked)));
    for pid in [s, c] {
        assert_eq!(state(&fast.k, pid), state(&slow.k, pid));
    }
    assert_eq!(state(&fast.k, c).3, [0, 3, 4, 0, 0]);
    fast.k.check_invariants().unwrap();
    // The server waits again and owes nothing: a second answer is refused
    // by both paths.
    assert_eq!(fast.k.reply_recv_fast(s, recv, [5, 6], 0), None);
    assert_eq!(
        slow.k.reply_recv(s, recv, [5, 6], 0, 0, 0),
        Err(Error::InvalidArgument)
    );
    // A queued message: `reply_recv` answers and returns it at once; the
    // fast path declines.
    let (mut w, s, c, recv, send) = setup();
    let x = {
        let p = w.k.new_process("x", ModelSpace::default(), false).unwrap();
        w.k.admit(p)
    };
    let xs = Handle::from_raw(w.k.endpoint_lookup(x, b"server").unwrap());
    assert_eq!(w.k.call(c, send, [1, 0], 0, 0), Ok(Outcome::Blocked));
    assert!(matches!(w.k.recv(s, recv, 0, 0), Ok(Outcome::Done(_))));
    assert_eq!(
        w.k.send(x, xs, [9, 9], 0, 0),
        Ok(Outcome::Done(Received::default()))
    );
    assert_eq!(w.k.reply_recv_fast(s, recv, [2, 0], 0), None);
    let rr = w.k.reply_recv(s, recv, [2, 0], 0, 0, 0).unwrap();
    assert_eq!(rr.answered, c);
    let Ok(Outcome::Done(got)) = rr.recv else {
        panic!("x's message was queued: {:?}", rr.recv);
    };
    assert_eq!((got.badge, got.words), (x, [9, 9]));
    assert_eq!(state(&w.k, c).3, [0, 2, 0, 0, 0]);
    // Bad flags and a bad handle are refused before anything is sent.
    assert_eq!(
        w.k.reply_recv(s, recv, [0, 0], 0, abi::SEND_BLOCK, 0),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        w.k.reply_recv(s, send, [0, 0], 0, 0, 0),
        Err(Error::BadCapability)
    );
    w.k.check_invariants().unwrap();
}

/// A frame capability moved each way through the fast path ends where the
/// general path puts it (same handles, same ledger, same counts); a
/// mapped one, a copy's flags aside, or one without `TRANSFER` is left to
/// the general path with nothing changed.
#[test]
fn the_ipc_fast_path_moves_a_capability_as_the_general_path_does() {
    let setup = || {
        let mut w = World::new();
        let (s, c) = (w.pid(0).unwrap(), w.pid(1).unwrap());
        w.k.procs_mut().get_mut(s).unwrap().name = "server".into();
        let recv = Handle::from_raw(w.k.endpoint_create(s, true).unwrap());
        let send = Handle::from_raw(w.k.endpoint_lookup(c, b"server").unwrap());
        let frame = w.k.frame_alloc(c).unwrap();
        assert_eq!(w.k.recv(s, recv, abi::FOREVER, 0), Ok(Outcome::Blocked));
        (w, s, c, recv, send, frame)
    };
    let state = |k: &K, pid: u64| {
        let p = k.procs().get(pid).unwrap();
        (p.wait, p.reply_to, p.regs.rax, p.regs.values, p.caps.len())
    };
    let (mut fast, s, c, recv, send, frame) = setup();
    let (mut slow, ..) = setup();
    // Mapped: the general path unmaps it; the fast path declines.
    fast.k
        .map(c, Handle::from_raw(frame), MAP_BASE, MapFlags::WRITE)
        .unwrap();
    let before = (state(&fast.k, s), state(&fast.k, c));
    assert_eq!(fast.k.call_fast(c, send, [1, 2], frame), None);
    assert_eq!((state(&fast.k, s), state(&fast.k, c)), before);
    fast.k.unmap(c, MAP_BASE).unwrap();
    // A handle it does not hold.
    assert_eq!(fast.k.call_fast(c, send, [1, 2], frame ^ 0x40), None);
    assert_eq!(fast.k.call_fast(c, send, [1, 2], frame), Some(s));
    assert_eq!(slow.k.call(c, send, [1, 2], frame, 0), Ok(Outcome::Woke(s)));
    for pid in [s, c] {
        assert_eq!(state(&fast.k, pid), state(&slow.k, pid));
    }
    let got = state(&fast.k, s).3[3];
    assert_ne!(got, 0);
    assert_eq!(
        fast.k.stats(s).held_by_caller,
        slow.k.stats(s).held_by_caller
    );
    fast.k.check_invariants().unwrap();
    assert_eq!(fast.k.reply_recv_fast(s, recv, [3, 4], got), Some(c));
    let rr = slow.k.reply_recv(s, recv, [3, 4], got, 0, 0).unwrap();
    assert_eq!((rr.answered, rr.recv), (c, Ok(Outcome::Blocked)));
    for pid in [s, c] {
        assert_eq!(state(&fast.k, pid), state(&slow.k, pid));
        assert_eq!(fast.k.stats(pid), slow.k.stats(pid));
    }
    fast.k.check_invariants().unwrap();
    // Without `TRANSFER`: the fast path declines, changing nothing.
    let back = state(&fast.k, c).3[3];
    let x = {
        let p = fast
            .k
            .new_process("x", ModelSpace::default(), false)
            .unwrap();
        fast.k.admit(p)
    };
    // A read-only copy reaches `x` through an endpoint of its own.
    fast.k.procs_mut().get_mut(x).unwrap().name = "weak".into();
    let x_recv = Handle::from_raw(fast.k.endpoint_create(x, true).unwrap());
    let to_x = Handle::from_raw(fast.k.endpoint_lookup(c, b"weak").unwrap());
    fast.k
        .send(
            c,
            to_x,
            [0, 0],
            back,
            abi::SEND_COPY | abi::send_rights(Rights::READ),
        )
        .unwrap();
    let Ok(Outcome::Done(got)) = fast.k.recv(x, x_recv, 0, 0) else {
        panic!("the copy was queued");
    };
    let weak = got.cap;
    let xs = Handle::from_raw(fast.k.endpoint_lookup(x, b"server").unwrap());
    let before = (state(&fast.k, s), state(&fast.k, x));
    assert_eq!(fast.k.call_fast(x, xs, [0, 0], weak), None);
    assert_eq!((state(&fast.k, s), state(&fast.k, x)), before);
    assert_eq!(
        fast.k.call(x, xs, [0, 0], weak, 0),
        Err(Error::PermissionDenied)
    );
    fast.k.check_invariants().unwrap();
}

#[test]
fn iofault_bindings_tell_the_holder_and_lapse_with_its_handle() {
    let mut w = World::new();
    let driver = *w.m.procs.keys().last().unwrap();
    let other = *w.m.procs.keys().next().unwrap();
    let function = TRANSLATED_FUNCTIONS.start;
    let dev = Handle::from_raw(w.device_handle(driver, 0));
    let recv = Handle::from_raw(w.k.endpoint_create(driver, false).unwrap());
    let send = Handle::from_raw(w.k.endpoint_mint(driver, recv, 0xfa).unwrap());
    assert_eq!(
        w.k.iofault_bind(other, dev, send),
        Err(Error::BadCapability)
    );
    assert_eq!(
        w.k.iofault_bind(driver, send, send),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        w.k.iofault_bind(driver, dev, dev),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        w.k.iofault_bind(driver, dev, recv),
        Err(Error::PermissionDenied)
    );
    assert!(!w.k.io_fault(function, 0x5000, true, 5), "nobody bound yet");
    assert_eq!(w.k.iofault_bind(driver, dev, send), Ok(0));
    assert!(w.k.io_fault(function, 0x5000, true, 5));
    assert!(
        !w.k.io_fault(function + PAGE, 0x5000, false, 6),
        "another function"
    );
    match w.k.recv(driver, recv, 0, 0) {
        Ok(Outcome::Done(got)) => {
            assert_eq!(got.badge, 0xfa);
            assert_eq!(got.words, [0x5000, 5 | abi::IOFAULT_WRITE]);
            assert_eq!(got.flags, abi::RECV_IRQ);
        }
        other => panic!("no fault message: {other:?}"),
    }
    w.check();
    // Unbinding, and binding again.
    assert_eq!(w.k.iofault_bind(driver, dev, Handle::from_raw(0)), Ok(0));
    assert!(!w.k.io_fault(function, 0x5000, true, 5));
    assert_eq!(w.k.iofault_bind(driver, dev, send), Ok(0));
    // Its handle to the device goes: the binding lapses.
    w.k.frame_free(driver, dev).unwrap();
    w.remove_cap(driver, dev.raw());
    assert!(!w.k.io_fault(function, 0x5000, true, 5));
    assert!(w.k.io_fault_bindings().is_empty());
    assert_eq!(w.k.platform.released, [function]);
    w.k.platform.released.clear();
    // Its end unbinds too.
    let dev = Handle::from_raw(w.k.frame_alloc_at(driver, function).unwrap());
    w.granted(driver, dev.raw(), true, 1);
    assert_eq!(w.k.iofault_bind(driver, dev, send), Ok(0));
    let p = w.m.procs.keys().position(|&p| p == driver).unwrap();
    w.step_checked(&Op::Exit { p });
    assert!(w.k.io_fault_bindings().is_empty());
    w.check();
}
