//! Capabilities and the frame-ownership ledger: who names which run of
//! frames, so that a run can be shared and returns to the allocator only
//! when its last holder lets go.
use abi::Rights;
use alloc::collections::{BTreeMap, BTreeSet};

/// What a capability names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapKind {
    /// `count` physically contiguous RAM frames from `first` (1 for
    /// `frame_alloc`).
    Ram {
        /// First frame number.
        first: u64,
        /// Frames.
        count: u64,
    },
    /// A device frame (not RAM): always mapped uncached.
    Device {
        /// Frame number.
        frame: u64,
    },
    /// The receive capability of endpoint `ep` (held by its owner only).
    EndpointRecv {
        /// Endpoint id (never reused).
        ep: u64,
    },
    /// A send capability to endpoint `ep`, with the badge every message
    /// sent through it carries.
    EndpointSend {
        /// Endpoint id.
        ep: u64,
        /// Chosen by whoever minted it.
        badge: u64,
    },
}

impl CapKind {
    /// First frame and frame count (0 frames for an endpoint).
    pub fn frames(&self) -> (u64, u64) {
        match *self {
            CapKind::Ram { first, count } => (first, count),
            CapKind::Device { frame } => (frame, 1),
            CapKind::EndpointRecv { .. } | CapKind::EndpointSend { .. } => (0, 0),
        }
    }

    /// Whether it names frames (RAM or a device page), which the ledger
    /// counts, rather than an endpoint.
    pub fn is_frames(&self) -> bool {
        matches!(self, CapKind::Ram { .. } | CapKind::Device { .. })
    }
}

/// A capability: what it names and what it allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap {
    /// The frames.
    pub kind: CapKind,
    /// The rights.
    pub rights: Rights,
    /// Live mappings made through this handle: `map` records and `iomap`
    /// records (which count for the device's handle and the frames'), so
    /// `frame_free` and a move only look for them when there are some.
    pub mapped: u32,
}

/// References to runs beyond the first, device claims and the RAM count.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Runs named by more than one capability (in tables or queues),
    /// keyed by first frame: how many references beyond the first. A run
    /// held by exactly one capability has no entry, so allocating and
    /// freeing an unshared frame touch no map.
    pub(super) shared: BTreeMap<u64, u64>,
    /// Claimed device frames (exclusive: one claim until every reference
    /// to it is gone).
    pub(super) devices: BTreeSet<u64>,
    /// RAM frames held through capabilities (each counted once).
    pub(super) held_ram: u64,
    /// Private frames of all processes.
    pub(super) held_private: u64,
}

/// What dropping a reference left to do.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Dropped {
    /// Others still name the run (or it was not frames).
    Nothing,
    /// The last reference to a device page went: nobody claims it now.
    Device {
        /// The frame.
        frame: u64,
    },
    /// The last reference to RAM went: give the run back to the allocator.
    FreeRam {
        /// First frame.
        first: u64,
        /// Frames.
        count: u64,
    },
}

impl Ledger {
    /// Adds a reference to a run some capability already names.
    pub(super) fn add_ref(&mut self, kind: CapKind) {
        if !kind.is_frames() {
            return;
        }
        *self.shared.entry(kind.frames().0).or_insert(0) += 1;
    }

    /// Registers a run just taken from the allocator, or a device claim.
    pub(super) fn own_new(&mut self, kind: CapKind) {
        match kind {
            CapKind::Ram { count, .. } => self.held_ram += count,
            CapKind::Device { frame } => {
                self.devices.insert(frame);
            }
            CapKind::EndpointRecv { .. } | CapKind::EndpointSend { .. } => {}
        }
    }

    /// Drops one reference; says whether RAM must go back.
    pub(super) fn drop_ref(&mut self, kind: CapKind) -> Dropped {
        if !kind.is_frames() {
            return Dropped::Nothing;
        }
        let (first, count) = kind.frames();
        if let Some(extra) = self.shared.get_mut(&first) {
            *extra -= 1;
            if *extra == 0 {
                self.shared.remove(&first);
            }
            return Dropped::Nothing;
        }
        match kind {
            CapKind::Device { frame } => {
                self.devices.remove(&frame);
                Dropped::Device { frame }
            }
            CapKind::Ram { .. } => {
                self.held_ram -= count;
                Dropped::FreeRam { first, count }
            }
            CapKind::EndpointRecv { .. } | CapKind::EndpointSend { .. } => Dropped::Nothing,
        }
    }

    /// Whether a device frame is claimed by anybody.
    pub(super) fn device_claimed(&self, frame: u64) -> bool {
        self.devices.contains(&frame)
    }
}
