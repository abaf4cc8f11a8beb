//! What the object model needs of an address space, as a trait: map a leaf
//! (optionally tagged with a mapping record's index), unmap, unmap a tagged
//! leaf, translate, read a leaf's frame and tag. The kernel implements it
//! on real x86_64 page tables (`arch::paging`); [`ModelSpace`] implements
//! it on a map, for host tests.
use alloc::collections::BTreeMap;

/// How a user page is mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageFlags {
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
    /// Uncached (PCD|PWT on x86_64: UC with the default PAT).
    pub uncached: bool,
}

/// Why a mapping could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// The page is already mapped.
    AlreadyMapped,
    /// No frame for a page table, or the space's table quota is spent.
    OutOfMemory,
}

/// A small number kept in a leaf entry: the index of the process's record
/// of the `map` call that made the mapping, so `unmap` finds the record
/// with the walk it makes anyway.
pub type Tag = u16;

/// Largest tag plus one (11 bits on x86_64: PTE bits 52..=62).
pub const TAGS: usize = 1 << 11;

/// A user address space, as the object model uses it. Addresses are page
/// aligned user addresses; implementations may assume the callers checked
/// that (the object model does).
pub trait AddressSpace {
    /// Maps page `vaddr` to frame `phys` with `flags`, carrying `tag`.
    fn map(
        &mut self,
        vaddr: u64,
        phys: u64,
        flags: PageFlags,
        tag: Option<Tag>,
    ) -> Result<(), MapError>;
    /// Whether page `vaddr` is mapped.
    fn is_mapped(&self, vaddr: u64) -> bool;
    /// Unmaps page `vaddr` (and flushes it from the TLB); the frame it
    /// mapped, if any.
    fn unmap(&mut self, vaddr: u64) -> Option<u64>;
    /// Unmaps page `vaddr` only if it carries a tag that `accept` takes;
    /// returns that tag.
    fn unmap_tagged(&mut self, vaddr: u64, accept: impl FnOnce(Tag) -> bool) -> Option<Tag>;
    /// The frame page `vaddr` maps and its tag.
    fn frame_and_tag(&self, vaddr: u64) -> Option<(u64, Option<Tag>)>;
    /// The frame page `vaddr` maps and how.
    fn translate(&self, vaddr: u64) -> Option<(u64, PageFlags)>;
}

/// An address space as a map from page to leaf, with a bound on leaves
/// standing in for the page-table quota. For host tests.
#[derive(Debug, Default)]
pub struct ModelSpace {
    leaves: BTreeMap<u64, (u64, PageFlags, Option<Tag>)>,
    /// Most leaves (0 = no bound): beyond it `map` says `OutOfMemory`.
    pub max_leaves: usize,
}

impl ModelSpace {
    /// Mapped pages.
    pub fn len(&self) -> usize {
        self.leaves.len()
    }
    /// Whether nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }
    /// Every leaf, for tests that compare against a model.
    pub fn leaves(&self) -> impl Iterator<Item = (u64, u64, PageFlags)> + '_ {
        self.leaves.iter().map(|(&v, &(p, f, _))| (v, p, f))
    }
    /// Rewrites the frame of a leaf behind the object model's back (to show
    /// that the invariant check notices).
    pub fn corrupt(&mut self, vaddr: u64, phys: u64) {
        if let Some(leaf) = self.leaves.get_mut(&vaddr) {
            leaf.0 = phys;
        }
    }
}

impl AddressSpace for ModelSpace {
    fn map(
        &mut self,
        vaddr: u64,
        phys: u64,
        flags: PageFlags,
        tag: Option<Tag>,
    ) -> Result<(), MapError> {
        if self.leaves.contains_key(&vaddr) {
            return Err(MapError::AlreadyMapped);
        }
        if self.max_leaves != 0 && self.leaves.len() >= self.max_leaves {
            return Err(MapError::OutOfMemory);
        }
        self.leaves.insert(vaddr, (phys, flags, tag));
        Ok(())
    }
    fn is_mapped(&self, vaddr: u64) -> bool {
        self.leaves.contains_key(&vaddr)
    }
    fn unmap(&mut self, vaddr: u64) -> Option<u64> {
        self.leaves.remove(&vaddr).map(|(p, _, _)| p)
    }
    fn unmap_tagged(&mut self, vaddr: u64, accept: impl FnOnce(Tag) -> bool) -> Option<Tag> {
        let tag = self.leaves.get(&vaddr)?.2?;
        if !accept(tag) {
            return None;
        }
        self.leaves.remove(&vaddr);
        Some(tag)
    }
    fn frame_and_tag(&self, vaddr: u64) -> Option<(u64, Option<Tag>)> {
        self.leaves.get(&vaddr).map(|&(p, _, t)| (p, t))
    }
    fn translate(&self, vaddr: u64) -> Option<(u64, PageFlags)> {
        self.leaves.get(&vaddr).map(|&(p, f, _)| (p, f))
    }
}
