//! The live endpoints by id: a slot table in which an id names its slot
//! (the low [`SLOT_BITS`] bits) and a serial number (the bits above, one
//! per endpoint ever created), so that finding an endpoint, as the IPC
//! fast path does at every crossing, is one index and one compare, with no
//! tree to walk. Ids are never reused: a freed slot is taken again under a
//! new serial, and an id of the endpoint that had it finds nothing.
//! Iteration is in id order, which is creation order (as with the ordered
//! map this replaced), so that everything done to several endpoints
//! (a process ending, the invariant checks) happens in the same order.
use super::endpoint::Endpoint;
use alloc::vec::Vec;

/// Bits of an id that name its slot: room for every endpoint that can be
/// live at once (`abi::bounds::ENDPOINTS` per process).
pub const SLOT_BITS: u32 = 16;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
const _: () = assert!(
    abi::bounds::ENDPOINTS * abi::MAX_PROCESSES <= 1 << SLOT_BITS,
    "every live endpoint needs a slot"
);

/// The table: `slots[i]` holds the endpoint whose id names slot `i`, with
/// that id.
#[derive(Default)]
pub struct Endpoints {
    slots: Vec<Option<(u64, Endpoint)>>,
    /// Empty slots below `slots.len()`, the most recently freed last.
    free: Vec<usize>,
    /// The serial of the next endpoint (the first is 1, so no id is 0).
    serial: u64,
}

impl Endpoints {
    /// No endpoints.
    pub fn new() -> Self {
        Endpoints {
            slots: Vec::new(),
            free: Vec::new(),
            serial: 1,
        }
    }

    /// The id the next [`insert`](Self::insert) gives.
    pub fn next_id(&self) -> u64 {
        let slot = self.free.last().copied().unwrap_or(self.slots.len());
        (self.serial << SLOT_BITS) | slot as u64
    }

    /// Adds `e` under [`next_id`](Self::next_id), which it returns.
    pub fn insert(&mut self, e: Endpoint) -> u64 {
        let id = self.next_id();
        self.serial += 1;
        match self.free.pop() {
            Some(slot) => self.slots[slot] = Some((id, e)),
            None => self.slots.push(Some((id, e))),
        }
        id
    }

    /// Endpoint `id`, if live.
    #[inline(always)]
    pub fn get(&self, id: &u64) -> Option<&Endpoint> {
        match self.slots.get((id & SLOT_MASK) as usize) {
            Some(Some((at, e))) if at == id => Some(e),
            _ => None,
        }
    }

    /// Endpoint `id`, if live.
    #[inline(always)]
    pub fn get_mut(&mut self, id: &u64) -> Option<&mut Endpoint> {
        match self.slots.get_mut((id & SLOT_MASK) as usize) {
            Some(Some((at, e))) if at == id => Some(e),
            _ => None,
        }
    }

    /// Whether endpoint `id` is live.
    pub fn contains_key(&self, id: &u64) -> bool {
        self.get(id).is_some()
    }

    /// Takes endpoint `id` out (its slot is free again).
    pub fn remove(&mut self, id: &u64) -> Option<Endpoint> {
        let slot = (id & SLOT_MASK) as usize;
        match self.slots.get(slot) {
            Some(Some((at, _))) if at == id => {}
            _ => return None,
        }
        let (_, e) = self.slots[slot].take()?;
        self.free.push(slot);
        Some(e)
    }

    /// The live endpoints with their ids, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&u64, &Endpoint)> {
        let mut live: Vec<(&u64, &Endpoint)> = self
            .slots
            .iter()
            .filter_map(|s| s.as_ref().map(|(id, e)| (id, e)))
            .collect();
        live.sort_unstable_by_key(|&(id, _)| *id);
        live.into_iter()
    }

    /// The live ids, in order.
    pub fn keys(&self) -> impl Iterator<Item = &u64> {
        self.iter().map(|(id, _)| id)
    }

    /// The live endpoints, in id order.
    pub fn values(&self) -> impl Iterator<Item = &Endpoint> {
        self.iter().map(|(_, e)| e)
    }

    /// The live endpoints, in id order, mutably.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Endpoint> {
        let mut live: Vec<(u64, &mut Endpoint)> = self
            .slots
            .iter_mut()
            .filter_map(|s| s.as_mut().map(|(id, e)| (*id, e)))
            .collect();
        live.sort_unstable_by_key(|&(id, _)| id);
        live.into_iter().map(|(_, e)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::{BTreeMap, VecDeque};
    use proptest::prelude::*;

    fn endpoint(owner: u64) -> Endpoint {
        Endpoint {
            owner,
            queue: VecDeque::new(),
            blocked: VecDeque::new(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::fuzz_cases(256)))]
        /// Inserts, removals (of live ids, dead ones and ids never given)
        /// and look-ups against an ordered map: the same endpoints, in the
        /// same order, and no id ever given twice.
        #[test]
        fn endpoints_match_a_map(ops in prop::collection::vec((0..3u8, 0..64usize, any::<u64>()), 1..300)) {
            let mut table = Endpoints::new();
            let mut map: BTreeMap<u64, u64> = BTreeMap::new();
            let mut given: Vec<u64> = Vec::new();
            for (op, pick, junk) in ops {
                match op {
                    0 => {
                        let id = table.next_id();
                        prop_assert_eq!(table.insert(endpoint(junk)), id);
                        prop_assert!(!given.contains(&id) && id != 0);
                        given.push(id);
                        map.insert(id, junk);
                    }
                    1 if !given.is_empty() => {
                        let id = given[pick % given.len()];
                        prop_assert_eq!(table.remove(&id).map(|e| e.owner), map.remove(&id));
                    }
                    _ => {
                        let removed = table.remove(&junk).map(|e| e.owner);
                        prop_assert_eq!(removed, map.remove(&junk));
                    }
                }
                for id in given.iter().chain([junk, junk & SLOT_MASK].iter()) {
                    prop_assert_eq!(table.get(id).map(|e| e.owner), map.get(id).copied());
                    prop_assert_eq!(table.contains_key(id), map.contains_key(id));
                }
                let order: Vec<(u64, u64)> = table.iter().map(|(&id, e)| (id, e.owner)).collect();
                prop_assert_eq!(order, map.iter().map(|(&id, &o)| (id, o)).collect::<Vec<_>>());
                let owners: Vec<u64> = table.values_mut().map(|e| e.owner).collect();
                prop_assert_eq!(owners, map.values().copied().collect::<Vec<_>>());
            }
        }
    }
}
