//! A bounded slab: values stored at small, stable indices, with O(1)
//! insert and remove. The kernel keeps a process's `map` records in one and
//! writes a record's index into the ignored bits of the mapping's
//! page-table entry, so `unmap` finds its record with the page walk it does
//! anyway (no search tree on the memory path).
//!
//! Indices are reused after removal, lowest-freed-last (a stack); slots are
//! allocated lazily, and growth reports failure instead of aborting.
use alloc::vec::Vec;

/// Why an insert failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlabError {
    /// `capacity` values are stored already.
    Full,
    /// The heap could not grow the slot array.
    OutOfMemory,
}

/// Up to `capacity` values at indices `0..capacity`.
#[derive(Debug)]
pub struct Slab<T> {
    slots: Vec<Option<T>>,
    /// Indices of empty slots below `slots.len()`.
    vacant: Vec<u32>,
    live: usize,
    capacity: usize,
}

impl<T> Slab<T> {
    /// An empty slab for at most `capacity` values (`capacity <= 2^32`).
    pub fn new(capacity: usize) -> Self {
        Slab {
            slots: Vec::new(),
            vacant: Vec::new(),
            live: 0,
            capacity,
        }
    }

    /// Stores `value`; returns its index.
    ///
    /// # Errors
    /// [`SlabError::Full`] at capacity; [`SlabError::OutOfMemory`] if the
    /// slot array cannot grow. The slab is unchanged on error.
    #[inline]
    pub fn insert(&mut self, value: T) -> Result<usize, SlabError> {
        if let Some(i) = self.vacant.pop() {
            let i = i as usize;
            self.slots[i] = Some(value);
            self.live += 1;
            return Ok(i);
        }
        if self.slots.len() >= self.capacity {
            return Err(SlabError::Full);
        }
        // The vacant list must be able to hold every index later, so that
        // `remove` never allocates.
        self.slots
            .try_reserve(1)
            .map_err(|_| SlabError::OutOfMemory)?;
        self.vacant
            .try_reserve(self.slots.len() + 1 - self.vacant.len())
            .map_err(|_| SlabError::OutOfMemory)?;
        self.slots.push(Some(value));
        self.live += 1;
        Ok(self.slots.len() - 1)
    }

    /// The value at `index`, if any.
    #[inline]
    pub fn get(&self, index: usize) -> Option<&T> {
        self.slots.get(index)?.as_ref()
    }

    /// The value at `index`, if any.
    #[inline]
    pub fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        self.slots.get_mut(index)?.as_mut()
    }

    /// Takes the value at `index` out; its index becomes free.
    #[inline]
    pub fn remove(&mut self, index: usize) -> Option<T> {
        let value = self.slots.get_mut(index)?.take()?;
        // Never allocates: `insert` reserved room for every index.
        self.vacant.push(index as u32);
        self.live -= 1;
        Some(value)
    }

    /// Stored values.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Indices and values, in index order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().map(|v| (i, v)))
    }

    /// Indices holding a value for which `f` is true, in index order.
    pub fn indices_where(&self, mut f: impl FnMut(&T) -> bool) -> Vec<usize> {
        self.iter().filter(|(_, v)| f(v)).map(|(i, _)| i).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn indices_are_small_and_reused() {
        let mut s = Slab::new(3);
        assert_eq!(s.insert('a'), Ok(0));
        assert_eq!(s.insert('b'), Ok(1));
        assert_eq!(s.insert('c'), Ok(2));
        assert_eq!(s.insert('d'), Err(SlabError::Full));
        assert_eq!(s.remove(1), Some('b'));
        assert_eq!(s.remove(1), None);
        assert_eq!(s.get(1), None);
        assert_eq!(s.insert('e'), Ok(1));
        assert_eq!(s.len(), 3);
        assert_eq!(s.remove(7), None);
        let all: Vec<_> = s.iter().map(|(i, v)| (i, *v)).collect();
        assert_eq!(all, [(0, 'a'), (1, 'e'), (2, 'c')]);
        assert_eq!(s.indices_where(|v| *v != 'e'), [0, 2]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8),
        Remove(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            any::<u8>().prop_map(Op::Insert),
            (0usize..20).prop_map(Op::Remove),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::fuzz_cases(2000)))]
        /// Against a map from index to value: same contents, indices below
        /// capacity, never two values at one index.
        #[test]
        fn matches_a_map(ops in proptest::collection::vec(op(), 0..200)) {
            const CAP: usize = 16;
            let mut s = Slab::new(CAP);
            let mut model: BTreeMap<usize, u8> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(v) => match s.insert(v) {
                        Ok(i) => {
                            prop_assert!(i < CAP);
                            prop_assert!(model.insert(i, v).is_none());
                        }
                        Err(e) => {
                            prop_assert_eq!(e, SlabError::Full);
                            prop_assert_eq!(model.len(), CAP);
                        }
                    },
                    Op::Remove(i) => prop_assert_eq!(s.remove(i), model.remove(&i)),
                }
                prop_assert_eq!(s.len(), model.len());
                let got: Vec<_> = s.iter().map(|(i, v)| (i, *v)).collect();
                let want: Vec<_> = model.iter().map(|(i, v)| (*i, *v)).collect();
                prop_assert_eq!(got, want);
            }
        }
    }
}
