//! Processes as the object model sees them, and the table of live ones.
use super::ledger::Cap;
use crate::captable::CapTable;
use crate::slab::Slab;
use abi::Handle;
use alloc::string::String;
use alloc::vec::Vec;

/// A mapping made with `map`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapRecord {
    /// Its first page.
    pub start: u64,
    /// The capability it maps through.
    pub handle: Handle,
    /// Pages mapped from the start address.
    pub pages: u64,
}

/// How a process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// It called `exit(code)`.
    Exited(u64),
    /// The kernel ended it for a fault.
    Faulted(String),
}

/// A library OS: its address space `S`, saved registers `R`, capabilities,
/// `map` records, private frames and what it is blocked on.
pub struct Process<S, R> {
    /// Process id (never reused).
    pub pid: u64,
    /// Name from the ramdisk.
    pub name: String,
    /// Saved user registers while it is not running.
    pub regs: R,
    /// Its address space.
    pub space: S,
    /// Its capabilities.
    pub caps: CapTable<Cap>,
    /// Its `map` mappings. Each mapped page's leaf carries the index of
    /// its record as a tag.
    pub mappings: Slab<super::procs::MapRecord>,
    /// Frames of its program image and stack (owned, not capabilities).
    pub private: Vec<u64>,
    /// How many `iomap` records it made (the kernel keeps them by
    /// function: [`super::IoSpaces`]).
    pub iomaps: usize,
    /// What it is blocked on (`None`: runnable).
    pub wait: Option<super::endpoint::Wait>,
    /// The process whose `call` it received last and has not answered.
    pub reply_to: Option<u64>,
    /// The endpoint `endpoint_lookup` of its name finds.
    pub published: Option<u64>,
    /// May claim device frames. Without an IOMMU a device that can DMA can
    /// reach all of memory, so driving hardware is a privilege the person
    /// booting grants, not something a program can take.
    pub driver: bool,
}

impl<S, R: Default> Process<S, R> {
    /// A process with nothing yet: no capabilities, mappings or frames.
    pub fn new(pid: u64, name: &str, space: S, driver: bool, key: u64) -> Self {
        Process {
            pid,
            name: name.into(),
            regs: R::default(),
            space,
            caps: CapTable::new(abi::bounds::CAPS, key),
            mappings: Slab::new(abi::bounds::MAPPINGS),
            private: Vec::new(),
            iomaps: 0,
            wait: None,
            reply_to: None,
            published: None,
            driver,
        }
    }
}

/// Two processes borrowed at once (the running one first).
pub type Pair<'a, S, R> = (&'a mut Process<S, R>, &'a mut Process<S, R>);

/// The live processes, in pid order. Pids only grow, so a new process is
/// appended; a lookup by pid is a binary search over at most
/// [`abi::MAX_PROCESSES`] entries, and the running process (every
/// syscall's caller) is found through a cached index, checked by pid.
pub struct Procs<S, R> {
    list: Vec<Process<S, R>>,
    /// Index of the running process in `list`: a hint, right unless a
    /// process below it has ended since (then the search finds it).
    running: usize,
    /// Index of the process that ran before the running one (a hint for
    /// [`running_and_mut`](Self::running_and_mut): in a round trip the
    /// other side is the one that ran last), checked by pid like `running`.
    previous: usize,
    /// Index of the process [`running_and_mut`](Self::running_and_mut)
    /// found last: a hint for [`switch_to`](Self::switch_to), checked by
    /// pid like `running`.
    found: usize,
}

impl<S, R> Default for Procs<S, R> {
    fn default() -> Self {
        Procs {
            // Never reallocates: the kernel refuses beyond MAX_PROCESSES.
            list: Vec::with_capacity(abi::MAX_PROCESSES),
            running: 0,
            previous: 0,
            found: 0,
        }
    }
}

impl<S, R> Procs<S, R> {
    #[inline]
    fn index(&self, pid: u64) -> Option<usize> {
        self.list.binary_search_by_key(&pid, |p| p.pid).ok()
    }

    /// Live processes.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether none is left.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Process `pid`.
    pub fn get(&self, pid: u64) -> Option<&Process<S, R>> {
        self.list.get(self.index(pid)?)
    }

    /// Process `pid`.
    pub fn get_mut(&mut self, pid: u64) -> Option<&mut Process<S, R>> {
        let i = self.index(pid)?;
        self.list.get_mut(i)
    }

    /// Process `pid`, without a search when it is the running one.
    #[inline]
    pub fn running_mut(&mut self, pid: u64) -> Option<&mut Process<S, R>> {
        let i = self.running;
        if self.list.get(i).is_some_and(|p| p.pid == pid) {
            return self.list.get_mut(i);
        }
        self.get_mut(pid)
    }

    /// The index of `pid` if `hint` is it, else by search.
    #[inline(always)]
    fn index_hinted(&self, hint: usize, pid: u64) -> Option<usize> {
        if self.list.get(hint).is_some_and(|p| p.pid == pid) {
            return Some(hint);
        }
        self.index(pid)
    }

    /// The running process `pid` and process `other` at once (no search
    /// when `other` ran before the running one; and
    /// [`switch_to`](Self::switch_to) `other` then finds it without one);
    /// `None` if either is not live or they are the same.
    #[inline(always)]
    pub fn running_and_mut(&mut self, pid: u64, other: u64) -> Option<Pair<'_, S, R>> {
        let i = self.index_hinted(self.running, pid)?;
        let j = self.index_hinted(self.previous, other)?;
        self.found = j;
        if i < j {
            let (low, high) = self.list.split_at_mut(j);
            Some((&mut low[i], &mut high[0]))
        } else if j < i {
            let (low, high) = self.list.split_at_mut(i);
            Some((&mut high[0], &mut low[j]))
        } else {
            None
        }
    }

    /// Adds a process; its pid must be above every live one.
    pub(super) fn push(&mut self, proc: Process<S, R>) {
        debug_assert!(self.list.last().is_none_or(|l| l.pid < proc.pid));
        self.list.push(proc);
    }

    /// Takes process `pid` out.
    pub(super) fn remove(&mut self, pid: u64) -> Option<Process<S, R>> {
        let i = self.index(pid)?;
        Some(self.list.remove(i))
    }

    /// Process `pid`, which runs from now on (one look-up for both).
    #[inline]
    pub fn switch_to(&mut self, pid: u64) -> Option<&mut Process<S, R>> {
        let i = self.index_hinted(self.found, pid)?;
        self.previous = self.running;
        self.running = i;
        self.list.get_mut(i)
    }

    /// Live processes in pid order.
    pub fn values(&self) -> impl Iterator<Item = &Process<S, R>> {
        self.list.iter()
    }

    /// Live processes in pid order, mutably.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Process<S, R>> {
        self.list.iter_mut()
    }

    /// The runnable pid that runs after `after` (round robin in pid
    /// order), skipping blocked ones.
    pub fn next_after(&self, after: u64) -> Option<u64> {
        let runnable = |p: &&Process<S, R>| p.wait.is_none();
        self.list
            .iter()
            .filter(runnable)
            .find(|p| p.pid > after)
            .or(self.list.iter().find(runnable))
            .map(|p| p.pid)
    }

    /// Records that `pid` runs now (through `Kernel::set_current`, which
    /// keeps the running pid with it).
    pub(super) fn set_running(&mut self, pid: u64) {
        if let Some(i) = self.index(pid) {
            self.running = i;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::fuzz_cases(256)))]
        /// Look-ups (plain, the running process's, the scheduler's switch)
        /// against a set of live pids, as processes come and go.
        #[test]
        fn pid_lookups_match_a_set(ops in prop::collection::vec((any::<bool>(), 0..300u64, 0..64usize), 1..300)) {
            let mut procs: Procs<(), ()> = Procs::default();
            let mut live = BTreeSet::new();
            let mut next = 1u64;
            for (add, step, victim) in ops {
                if add && live.len() < abi::MAX_PROCESSES {
                    next += 1 + step;
                    procs.push(Process::new(next, "p", (), false, 1));
                    live.insert(next);
                } else if let Some(&pid) = live.iter().nth(victim % live.len().max(1)) {
                    prop_assert_eq!(procs.remove(pid).map(|p| p.pid), Some(pid));
                    live.remove(&pid);
                }
                for &pid in &live {
                    prop_assert_eq!(procs.switch_to(pid).map(|p| p.pid), Some(pid));
                    prop_assert_eq!(procs.running_mut(pid).map(|p| p.pid), Some(pid));
                    prop_assert_eq!(procs.get(pid).map(|p| p.pid), Some(pid));
                }
                // The pair look-up, then a switch through its hint, for
                // every pair (the running process first).
                for &a in &live {
                    for &b in &live {
                        procs.switch_to(a);
                        let pair = procs.running_and_mut(a, b).map(|(x, y)| (x.pid, y.pid));
                        prop_assert_eq!(pair, (a != b).then_some((a, b)));
                        prop_assert_eq!(procs.switch_to(b).map(|p| p.pid), Some(b));
                        prop_assert_eq!(procs.running_mut(b).map(|p| p.pid), Some(b));
                    }
                    prop_assert!(procs.running_and_mut(a, next + 1).is_none());
                }
                prop_assert!(procs.get(next + 1).is_none() && procs.get(0).is_none());
                let order: Vec<u64> = procs.values().map(|p| p.pid).collect();
                prop_assert_eq!(order, live.iter().copied().collect::<Vec<_>>());
            }
        }
    }
}
