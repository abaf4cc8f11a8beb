//! What the object model needs of an address space, as a trait: map a leaf
//! (optionally tagged with a mapping record's index), unmap, unmap a tagged
//! leaf, translate, read a leaf's frame and tag. The kernel implements it
//! on real x86_64 page tables (`arch::paging`); [`ModelSpace`] implements
//! it on a map, for host tests, with the page-table quota modelled: a
//! space may use [`abi::bounds::PAGE_TABLES`] tables, and a table counts
//! only while it maps something (the kernel frees the tables unmaps leave
//! empty, keeping at most one empty level-1 table for reuse).
use abi::Protection;
use alloc::collections::{BTreeMap, BTreeSet};

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
    /// The frame page `vaddr` maps and how, if ring 3 may access it at
    /// all (a page protected to [`Protection::None`] gives `None`).
    fn translate(&self, vaddr: u64) -> Option<(u64, PageFlags)>;
    /// Changes how mapped page `vaddr` may be used, keeping its frame, tag
    /// and cache mode, and flushes it from the TLB; false if nothing is
    /// mapped there. [`Protection::None`] keeps the leaf (so `unmap`,
    /// `unmap_tagged` and `frame_and_tag` still find it) but makes it
    /// inaccessible to ring 3 and to [`translate`](Self::translate).
    fn protect(&mut self, vaddr: u64, to: Protection) -> bool;
    /// The accessed and dirty bits of mapped page `vaddr`, cleared (and
    /// the page flushed from the TLB) if `clear`; `None` if nothing is
    /// mapped there.
    fn accessed_dirty(&mut self, vaddr: u64, clear: bool) -> Option<(bool, bool)>;
    /// Changes pages `vaddr, vaddr + 4096, ...` (`pages` of them) to `to`,
    /// all or none: first every page must be mapped (else `NotMapped`)
    /// and carry a tag (else `PermissionDenied`, a program-image page)
    /// that `allow` accepts (else its error; it is asked once per run of
    /// pages with the same tag), checked in address order; then every
    /// page changes, and the TLB is flushed before it returns. This
    /// default does it page by page ([`protect`](Self::protect)); an
    /// implementation may walk each page table once.
    fn protect_range(
        &mut self,
        vaddr: u64,
        pages: u64,
        to: Protection,
        mut allow: impl FnMut(Tag) -> Result<(), abi::Error>,
    ) -> Result<(), abi::Error> {
        let mut checked = None;
        for i in 0..pages {
            let (_, tag) = self
                .frame_and_tag(vaddr + i * PAGE)
                .ok_or(abi::Error::NotMapped)?;
            let tag = tag.ok_or(abi::Error::PermissionDenied)?;
            if checked != Some(tag) {
                allow(tag)?;
                checked = Some(tag);
            }
        }
        for i in 0..pages {
            self.protect(vaddr + i * PAGE, to);
        }
        Ok(())
    }
}

/// Bytes of a page.
const PAGE: u64 = abi::PAGE_SIZE;

/// An address space as a map from page to leaf, with the tables an x86_64
/// four-level space would need for those leaves counted against a quota.
/// For host tests.
#[derive(Debug, Default)]
pub struct ModelSpace {
    leaves: BTreeMap<u64, (u64, PageFlags, Option<Tag>)>,
    /// Leaves protected to no access.
    inaccessible: BTreeSet<u64>,
    /// Accessed and dirty bits of leaves that have any (the MMU's part:
    /// set by [`ModelSpace::touch`]).
    touched: BTreeMap<u64, (bool, bool)>,
    /// Leaves under each table below the root, keyed by level and the
    /// address bits above the table's span.
    tables: BTreeMap<(u32, u64), u64>,
    /// Most tables, the root included (0 = [`abi::bounds::PAGE_TABLES`]):
    /// a `map` that needs more says `OutOfMemory`.
    pub max_tables: u64,
}

/// The tables below the root that map `vaddr`: (level, key) for the
/// level-3, level-2 and level-1 table.
fn path(vaddr: u64) -> [(u32, u64); 3] {
    [(3, vaddr >> 39), (2, vaddr >> 30), (1, vaddr >> 21)]
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
    /// Page tables in use, the root included.
    pub fn tables(&self) -> u64 {
        1 + self.tables.len() as u64
    }
    fn remove_leaf(&mut self, vaddr: u64) {
        self.inaccessible.remove(&vaddr);
        self.touched.remove(&vaddr);
        for key in path(vaddr) {
            if let Some(n) = self.tables.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    self.tables.remove(&key);
                }
            }
        }
    }
    /// Every leaf, for tests that compare against a model (a page with no
    /// access has `None` flags).
    pub fn leaves(&self) -> impl Iterator<Item = (u64, u64, Option<PageFlags>)> + '_ {
        self.leaves
            .iter()
            .map(|(&v, &(p, f, _))| (v, p, (!self.inaccessible.contains(&v)).then_some(f)))
    }
    /// What the MMU does on an access to mapped page `vaddr`: sets its
    /// accessed bit, and its dirty bit for a write.
    pub fn touch(&mut self, vaddr: u64, write: bool) {
        if self.leaves.contains_key(&vaddr) {
            let bits = self.touched.entry(vaddr).or_insert((false, false));
            bits.0 = true;
            bits.1 |= write;
        }
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
        let max = match self.max_tables {
            0 => abi::bounds::PAGE_TABLES,
            n => n,
        };
        let new = path(vaddr)
            .iter()
            .filter(|k| !self.tables.contains_key(k))
            .count() as u64;
        if self.tables() + new > max {
            return Err(MapError::OutOfMemory);
        }
        for key in path(vaddr) {
            *self.tables.entry(key).or_insert(0) += 1;
        }
        self.leaves.insert(vaddr, (phys, flags, tag));
        Ok(())
    }
    fn is_mapped(&self, vaddr: u64) -> bool {
        self.leaves.contains_key(&vaddr)
    }
    fn unmap(&mut self, vaddr: u64) -> Option<u64> {
        let (p, _, _) = self.leaves.remove(&vaddr)?;
        self.remove_leaf(vaddr);
        Some(p)
    }
    fn unmap_tagged(&mut self, vaddr: u64, accept: impl FnOnce(Tag) -> bool) -> Option<Tag> {
        let tag = self.leaves.get(&vaddr)?.2?;
        if !accept(tag) {
            return None;
        }
        self.leaves.remove(&vaddr);
        self.remove_leaf(vaddr);
        Some(tag)
    }
    fn frame_and_tag(&self, vaddr: u64) -> Option<(u64, Option<Tag>)> {
        self.leaves.get(&vaddr).map(|&(p, _, t)| (p, t))
    }
    fn translate(&self, vaddr: u64) -> Option<(u64, PageFlags)> {
        if self.inaccessible.contains(&vaddr) {
            return None;
        }
        self.leaves.get(&vaddr).map(|&(p, f, _)| (p, f))
    }
    fn protect(&mut self, vaddr: u64, to: Protection) -> bool {
        let Some(leaf) = self.leaves.get_mut(&vaddr) else {
            return false;
        };
        leaf.1.write = to == Protection::Write;
        leaf.1.exec = to == Protection::Exec;
        if to == Protection::None {
            self.inaccessible.insert(vaddr);
        } else {
            self.inaccessible.remove(&vaddr);
        }
        true
    }
    fn accessed_dirty(&mut self, vaddr: u64, clear: bool) -> Option<(bool, bool)> {
        if !self.leaves.contains_key(&vaddr) {
            return None;
        }
        let bits = self.touched.get(&vaddr).copied().unwrap_or((false, false));
        if clear {
            self.touched.remove(&vaddr);
        }
        Some(bits)
    }
}
