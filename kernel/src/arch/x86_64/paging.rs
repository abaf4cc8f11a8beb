//! Four-level page tables for user address spaces. Each process gets its
//! own PML4 whose upper half is the kernel's (shared, never user-accessible)
//! and whose lower half it owns. Tables are reached through the physical
//! memory offset mapping; their frames are the kernel's, counted per space.
//!
//! A table below the PML4 lives only while it maps something: the entry
//! that points to it keeps, in bits the MMU ignores, how many of its 512
//! entries are in use, so `map` adds one and `unmap` takes one without
//! scanning the table. The level-1 table an unmap empties stays linked as
//! the space's one *idle* table (the next mapping nearby, libos's next
//! fresh address or the same address again, reuses it without allocating
//! and zeroing tables); when another table empties, the idle one is freed
//! if it is still empty, with its parents if that empties them. So a space
//! holds at most one empty level-1 table (and its empty parents) beyond
//! what its mappings need. Before a freed table's frame goes
//! back to the allocator the entry naming it is cleared and the address
//! flushed with `invlpg`, which also drops every paging-structure-cache
//! entry of the current address space (Intel SDM 3A §4.10.4.1; on AMD, the
//! cached upper-level entries for that address, which are the only ones
//! through the freed tables that any address in their range can use), so
//! no cached walk can reach the frame once it is reused. A space that is
//! not in CR3 has nothing cached: loading CR3 (no PCIDs) drops every
//! non-global TLB and every paging-structure-cache entry.
use crate::memory;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::{PageTableFlags as F, PhysFrame};
use x86_64::PhysAddr;

pub use exo_core::object::{MapError, PageFlags, Tag, TAGS};

/// Page-table frames one address space may use (bounds kernel memory spent
/// on behalf of one process: 1024 tables map well over 1 GiB sparse).
pub const MAX_TABLES: u64 = abi::bounds::PAGE_TABLES;

/// A user address space.
///
/// Invariant: `pml4` and every table reachable from its lower-half entries
/// (0..256) are kernel frames this space allocated ([`memory::alloc_kernel_frame`])
/// and that nothing else refers to; a table stays allocated while an entry
/// points to it (until [`destroy`](Self::destroy) or the unmap that
/// empties it). Every lower-half entry above level 1 that points to a
/// table carries that table's count of non-zero entries (bits 52..=61),
/// and `tables` counts the PML4 and every table reachable from it. So a `&self` borrow may read them and a
/// `&mut self` borrow may write them. Its upper-half entries are copies of
/// the boot PML4's: the kernel's tables, shared by every space and never
/// written after boot. (The MMU also sets accessed and dirty bits in the
/// entries it uses; nothing here reads those bits.)
pub struct AddressSpace {
    pml4: u64,
    tables: u64,
    /// The 2 MiB region (`vaddr >> 21`) of the idle level-1 table, or
    /// [`NO_IDLE`].
    idle: u64,
    /// The pages of the exception handler the delivery fast path trusts
    /// (entry, stack, save area; see [`crate::exception`]), and its slot
    /// there, or [`NO_WATCH`]: a `protect` or `unmap` of one of them, or
    /// the end of the space, disarms the slot before it returns.
    watch: [u64; 3],
    watch_slot: usize,
}

/// No watched handler.
const NO_WATCH: usize = usize::MAX;

/// No idle table (no lower-half region has this number).
const NO_IDLE: u64 = u64::MAX;

/// The page table at physical address `phys` as raw entries, writable.
///
/// # Safety
/// `phys` is the address of a page-table frame (RAM, mapped at the
/// physical-memory offset), and no other reference to that frame is used
/// while the returned one lives.
#[inline]
unsafe fn entries<'a>(phys: u64) -> &'a mut [u64; 512] {
    // SAFETY: the frame is 4 KiB of mapped RAM = 512 aligned entries (the
    // caller's guarantee), and the caller gives us exclusive use of it.
    unsafe { &mut *(memory::phys_to_virt(phys) as *mut [u64; 512]) }
}

/// The page table at physical address `phys` as raw entries, read-only.
///
/// # Safety
/// `phys` is the address of a page-table frame (RAM, mapped at the
/// physical-memory offset), and nothing writes that frame while the
/// returned reference lives.
#[inline]
unsafe fn entries_ref<'a>(phys: u64) -> &'a [u64; 512] {
    // SAFETY: the frame is 4 KiB of mapped RAM = 512 aligned entries, and
    // the caller guarantees no writer while the reference lives.
    unsafe { &*(memory::phys_to_virt(phys) as *const [u64; 512]) }
}

/// Entry `i` of the page table at `phys`, read with a volatile load: for
/// the kernel's tables, in which the MMU sets accessed and dirty bits at any
/// time while the kernel runs (so no reference to them may be held).
///
/// # Safety
/// `phys` is the address of a page-table frame (RAM, mapped at the
/// physical-memory offset).
unsafe fn read_entry(phys: u64, i: usize) -> u64 {
    let table = memory::phys_to_virt(phys) as *const u64;
    // SAFETY: the frame is mapped RAM of 512 aligned entries (the caller's
    // guarantee), and `i % 512` is one of them.
    unsafe { table.add(i % 512).read_volatile() }
}

fn index(vaddr: u64, level: u32) -> usize {
    ((vaddr >> (12 + 9 * (level - 1))) & 0x1ff) as usize
}

/// The physical-address bits of an entry.
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// Software bit (ignored by the MMU): the page was mapped by the `map`
/// syscall and its entry carries a [`Tag`].
const TAGGED: u64 = 1 << 9;
/// End of the lower half (exclusive): the only part these walks follow.
const LOWER_HALF_END: u64 = 0x0000_8000_0000_0000;
/// A non-leaf entry's count of the non-zero entries of the table it points
/// to: bits 52..=61 (0..=512), ignored by the MMU in entries that point to
/// a table (as the tag's bits are in leaves).
const COUNT_ONE: u64 = 1 << 52;
const COUNT_MASK: u64 = 0x3ff << 52;
/// Where the tag lives: bits 52..=62, ignored by the MMU (bit 63 is NX)
/// as long as CR4.PKE is off, which the kernel never sets (with protection
/// keys, bits 59..=62 would pick a key).
const TAG_SHIFT: u32 = 52;
const TAG_MASK: u64 = 0x7ff;
/// Every bit of a leaf that says whether and how it is tagged.
const TAG_BITS: u64 = TAGGED | (TAG_MASK << TAG_SHIFT);
const _: () = assert!(TAGS == 1 << 11, "tags are PTE bits 52..=62");

/// The access bits `protect` rewrites in a leaf.
const ACCESS: u64 = F::USER_ACCESSIBLE.bits() | F::WRITABLE.bits() | F::NO_EXECUTE.bits();

/// What `to` sets of [`ACCESS`]. No access is a present, supervisor-only,
/// read-only, non-executable leaf.
fn access_bits(to: abi::Protection) -> u64 {
    let f = match to {
        abi::Protection::None => F::NO_EXECUTE,
        abi::Protection::Read => F::USER_ACCESSIBLE | F::NO_EXECUTE,
        abi::Protection::Write => F::USER_ACCESSIBLE | F::WRITABLE | F::NO_EXECUTE,
        abi::Protection::Exec => F::USER_ACCESSIBLE,
    };
    f.bits()
}

/// Bytes of a page.
const PAGE: u64 = 4096;

/// Above this many pages `protect` reloads CR3 (drops every non-global TLB
/// entry at once) instead of one `invlpg` a page: Linux's default ceiling
/// (`tlb_single_page_flush_ceiling`). On hardware an `invlpg` costs some
/// 100-250 cycles; a CR3 reload without PCIDs about as much as two, plus a
/// TLB refill (a page walk, tens of cycles with warm paging-structure
/// caches) for every page the program touches again afterwards.
const FLUSH_ALL_ABOVE: u64 = 33;

/// The tag a leaf entry carries, if any.
fn tag_of(entry: u64) -> Option<Tag> {
    (entry & TAGGED != 0).then_some(((entry >> TAG_SHIFT) & TAG_MASK) as Tag)
}

impl AddressSpace {
    /// A new space: empty lower half, the kernel's upper half.
    pub fn new() -> Result<Self, MapError> {
        // Captured before the first space exists, so it is no space's PML4.
        let kernel = boot_pml4();
        SPACES_EXIST.store(true, core::sync::atomic::Ordering::Relaxed);
        let pml4 = memory::alloc_kernel_frame().map_err(|_| MapError::OutOfMemory)?;
        // SAFETY: `pml4` was just allocated to us (zeroed) and nothing else
        // knows of it yet.
        let new = unsafe { entries(pml4) };
        for (i, entry) in new.iter_mut().enumerate().skip(256) {
            // SAFETY: `kernel` is the boot PML4, a page-table frame.
            *entry = unsafe { read_entry(kernel, i) };
        }
        Ok(AddressSpace {
            pml4,
            tables: 1,
            idle: NO_IDLE,
            watch: [0; 3],
            watch_slot: NO_WATCH,
        })
    }

    /// Page-table frames in use.
    pub fn tables(&self) -> u64 {
        self.tables
    }

    /// Makes this the active address space.
    pub fn activate(&self) {
        if active_pml4() != self.pml4 {
            // `pml4` is a frame address the allocator gave (page-aligned,
            // below the physical address width): no check on the switch
            // path.
            let frame = PhysFrame::containing_address(PhysAddr::new_truncate(self.pml4));
            // SAFETY: the PML4 maps the whole kernel half like every other
            // space, so the kernel keeps running after the switch.
            unsafe { Cr3::write(frame, Cr3Flags::empty()) };
        }
    }

    fn is_active(&self) -> bool {
        active_pml4() == self.pml4
    }

    /// The PML4's physical address (names the space while it lives).
    pub fn pml4(&self) -> u64 {
        self.pml4
    }

    /// Watches `pages` (page-aligned) for the exception fast path's slot
    /// `slot`, replacing any earlier watch.
    pub fn watch(&mut self, pages: [u64; 3], slot: usize) {
        self.watch = pages;
        self.watch_slot = slot;
    }

    /// Ends the watch, disarming its slot if this space still owns it.
    #[cold]
    pub fn unwatch(&mut self) {
        if self.watch_slot != NO_WATCH {
            crate::exception::fast_disarm(self.watch_slot, self.pml4);
            self.watch_slot = NO_WATCH;
        }
    }

    /// Called before the leaf of page `vaddr` changes (protect, unmap):
    /// ends the watch if `vaddr` is a watched page.
    #[inline(always)]
    fn leaf_changes(&mut self, vaddr: u64) {
        if self.watch_slot != NO_WATCH && self.watch.contains(&(vaddr & !0xfff)) {
            self.unwatch();
        }
    }

    /// Walks to the level-1 table of `vaddr` (a lower-half address),
    /// creating the tables that are missing (`map` when the read-only walk
    /// finds one missing); returns the level-2 entry and the level-1 table.
    /// Non-leaf entries are 0 or present (this module writes no others); a
    /// new table counts as one more entry of its parent. Only lower-half
    /// entries of the PML4 are followed whatever `vaddr` is: an upper-half
    /// address would walk (and write) the kernel's shared tables. On
    /// failure, tables this walk created and left empty are freed again.
    #[inline(never)]
    fn create_path(&mut self, vaddr: u64) -> Result<(*mut u64, u64), MapError> {
        let vaddr = vaddr & (LOWER_HALF_END - 1);
        // The entry naming `phys` (null for the PML4): where `phys`'s count
        // is kept.
        let mut slot: *mut u64 = core::ptr::null_mut();
        let mut phys = self.pml4;
        for level in [4, 3, 2] {
            // SAFETY: `phys` is this space's PML4 or one of its lower-half
            // tables (invariant; `vaddr` was cut to the lower half), and
            // `&mut self` excludes every other use while `entry` lives (this
            // iteration).
            let entry = &mut unsafe { entries(phys) }[index(vaddr, level)];
            if *entry == 0 {
                if self.tables >= MAX_TABLES {
                    return Err(self.created_nothing(vaddr));
                }
                let Ok(new) = memory::alloc_kernel_frame() else {
                    return Err(self.created_nothing(vaddr));
                };
                self.tables += 1;
                *entry = new | (F::PRESENT | F::WRITABLE | F::USER_ACCESSIBLE).bits();
                if !slot.is_null() {
                    // SAFETY: `slot` is the entry of the table above that
                    // names `phys` (another frame than `entry`'s).
                    unsafe { *slot += COUNT_ONE };
                }
            }
            phys = *entry & ADDR_MASK;
            slot = entry;
        }
        // `slot` is the level-2 entry now.
        Ok((slot, phys))
    }

    /// `map` where a table is missing: creates the path, then maps (the
    /// second walk finds every table).
    #[inline(never)]
    fn map_creating(
        &mut self,
        vaddr: u64,
        phys: u64,
        flags: PageFlags,
        tag: Option<Tag>,
    ) -> Result<(), MapError> {
        self.create_path(vaddr)?;
        exo_core::object::AddressSpace::map(self, vaddr, phys, flags, tag)
    }

    /// After a failed [`create_path`](Self::create_path): frees the empty
    /// tables it may have left on `vaddr`'s path.
    #[cold]
    fn created_nothing(&mut self, vaddr: u64) -> MapError {
        self.reclaim(vaddr);
        MapError::OutOfMemory
    }

    /// Frees the tables on `vaddr`'s path that map nothing, bottom up
    /// (their entries cleared and the address flushed first, see the
    /// module documentation), leaving the PML4.
    #[inline(never)]
    fn reclaim(&mut self, vaddr: u64) {
        let vaddr = vaddr & (LOWER_HALF_END - 1);
        // The PML4, and the tables below it on the path (0 = none).
        let mut path = [self.pml4, 0, 0, 0];
        for (i, level) in [4, 3, 2].into_iter().enumerate() {
            // SAFETY: `path[i]` is this space's PML4 or one of its
            // lower-half tables; `&mut self` excludes writers.
            let entry = unsafe { entries_ref(path[i]) }[index(vaddr, level)];
            if entry == 0 {
                break;
            }
            path[i + 1] = entry & ADDR_MASK;
        }
        let mut freed = [0u64; 3];
        let mut n = 0;
        // Bottom up: the table at path[i + 1] hangs off entry `index(vaddr,
        // 4 - i)` of path[i], which holds its count.
        for i in (0..3).rev() {
            let (table, child) = (path[i], path[i + 1]);
            if child == 0 {
                continue;
            }
            // SAFETY: `table` is a table of this space on the path; `&mut
            // self` excludes every other use while `entry` lives.
            let entry = &mut unsafe { entries(table) }[index(vaddr, 4 - i as u32)];
            if *entry & COUNT_MASK != 0 {
                break;
            }
            *entry = 0;
            freed[n] = child;
            n += 1;
            if i > 0 {
                // SAFETY: `path[i - 1]` is the table above `table`.
                let up = &mut unsafe { entries(path[i - 1]) }[index(vaddr, 5 - i as u32)];
                *up -= COUNT_ONE;
            }
        }
        if n == 0 {
            return;
        }
        // Nothing points to the freed tables any more; no cached walk may
        // either before their frames are reused.
        self.flush(vaddr);
        for &table in &freed[..n] {
            // SAFETY: `table` was a table of this space (so a kernel frame
            // from `alloc_kernel_frame`); the entry naming it is cleared and
            // flushed above, and it mapped nothing: nothing refers to it.
            unsafe { memory::free_kernel_frame(table) };
        }
        self.tables -= n as u64;
    }

    /// Takes one from the count of `vaddr`'s level-1 table (kept in its
    /// level-2 entry `pde`) after a leaf of it was cleared, and flushes
    /// `vaddr`. A table left empty becomes the idle one (see the module
    /// documentation).
    ///
    /// # Safety
    /// `pde` points to the level-2 entry on `vaddr`'s path in this space.
    #[inline(always)]
    unsafe fn leaf_cleared(&mut self, pde: *mut u64, vaddr: u64) {
        // SAFETY: `pde` is an entry of a table of this space (the caller's
        // guarantee); `&mut self` excludes every other use while it lives.
        let pde = unsafe { &mut *pde };
        *pde -= COUNT_ONE;
        let empty = *pde & COUNT_MASK == 0;
        self.flush(vaddr);
        if empty && vaddr >> 21 != self.idle {
            self.went_idle(vaddr);
        }
    }

    /// `vaddr`'s level-1 table just emptied and is not the idle one: it
    /// becomes the idle one, and the previous idle table is freed if it
    /// is still empty.
    #[inline(never)]
    fn went_idle(&mut self, vaddr: u64) {
        let old = core::mem::replace(&mut self.idle, vaddr >> 21);
        if old != NO_IDLE {
            self.reclaim(old << 21);
        }
    }

    /// The level-2 entry (a pointer into its table, valid while `self`
    /// is) and the level-1 table on `vaddr`'s path, if the tables exist.
    /// Lower half only: the upper half holds the kernel's tables, with huge
    /// pages this walk does not understand (following one would read
    /// device memory).
    #[inline(always)]
    fn leaf_path(&self, vaddr: u64) -> Option<(*mut u64, u64)> {
        if vaddr >= LOWER_HALF_END {
            return None;
        }
        let mut slot = core::ptr::null_mut();
        let mut phys = self.pml4;
        for level in [4, 3, 2] {
            // A pointer, no reference: the caller may write through it
            // later, under `&mut self`.
            // SAFETY: `phys` is this space's PML4 or one of its lower-half
            // tables (invariant, `vaddr` is lower half): 512 entries mapped
            // at the offset, and `index` is below 512.
            slot = unsafe { (memory::phys_to_virt(phys) as *mut u64).add(index(vaddr, level)) };
            // SAFETY: `slot` is an entry of that table; `&self` excludes
            // writers while we read.
            let entry = unsafe { slot.read() };
            if entry == 0 {
                return None;
            }
            phys = entry & ADDR_MASK;
        }
        Some((slot, phys))
    }

    /// The level-1 table holding the leaf entry of `vaddr`, if the tables
    /// exist (see [`leaf_path`](Self::leaf_path)).
    #[inline]
    fn leaf_table(&self, vaddr: u64) -> Option<u64> {
        self.leaf_path(vaddr).map(|(_, pt)| pt)
    }

    /// The leaf entry of `vaddr` (a copy), if its tables exist.
    #[inline]
    fn leaf(&self, vaddr: u64) -> Option<u64> {
        let pt = self.leaf_table(vaddr)?;
        // SAFETY: `pt` is a level-1 table of this space; `&self` excludes
        // writers.
        Some(unsafe { entries_ref(pt) }[index(vaddr, 1)])
    }

    /// The leaf entry of `vaddr` in its level-1 table `pt`, writable while
    /// `self` stays borrowed. (Two steps, not one `Option<&mut u64>`: the
    /// compiler re-checks such a result for null, one instruction on the
    /// `unmap` path.)
    ///
    /// # Safety
    /// `pt` is `self.leaf_table(vaddr)`.
    #[inline]
    unsafe fn leaf_in(&mut self, pt: u64, vaddr: u64) -> &mut u64 {
        // SAFETY: `pt` is a level-1 table of this space (the caller's
        // guarantee); the result borrows `self` mutably, which excludes
        // every other use of the table while it lives.
        let table = unsafe { entries(pt) };
        &mut table[index(vaddr, 1)]
    }

    /// Drops the TLB entry of `vaddr` (and the paging-structure caches,
    /// see the module documentation). Needed only if this space is the
    /// active one (switching spaces flushes the rest: no PCIDs, no global
    /// user pages); for another space it only drops an entry of the active
    /// one, which is harmless, and it is cheaper than reading CR3 to find
    /// out on the `unmap` path, where the space is nearly always active.
    #[inline(always)]
    fn flush(&self, vaddr: u64) {
        x86_64::instructions::tlb::flush(x86_64::VirtAddr::new_truncate(vaddr));
    }

    /// Frees every lower-half table and the PML4 (switching to the boot
    /// PML4 first if this space is active). Leaf frames belong to their
    /// owners (capabilities, the program image) and are not touched.
    pub fn destroy(mut self) {
        self.unwatch();
        if self.is_active() {
            let frame = PhysFrame::containing_address(PhysAddr::new(boot_pml4()));
            // SAFETY: the boot PML4 maps the kernel half (every space's
            // upper half is a copy of it), so the kernel keeps running; it
            // is no space's PML4, so the frees below do not touch it.
            unsafe { Cr3::write(frame, Cr3Flags::empty()) };
        }
        // SAFETY: the PML4 and its lower-half tables are this space's alone
        // (invariant), no longer in CR3, and `self` is consumed: nothing
        // reaches them after this.
        unsafe {
            free_level(self.pml4, 4, 0..256);
            memory::free_kernel_frame(self.pml4);
        }
    }
}

/// What the object model uses of an address space, on real page tables.
impl exo_core::object::AddressSpace for AddressSpace {
    /// Maps the user page at `vaddr` to frame `phys`, tagged with `tag` if
    /// given (`map` syscall mappings). The caller has checked that `vaddr`
    /// is a page-aligned lower-half address (one that is not gets the page
    /// at `vaddr` modulo 2^47 mapped: never an entry of the kernel half).
    fn map(
        &mut self,
        vaddr: u64,
        phys: u64,
        flags: PageFlags,
        tag: Option<Tag>,
    ) -> Result<(), MapError> {
        debug_assert!(vaddr < LOWER_HALF_END);
        // The common case is one read-only walk; creating tables (and
        // mapping then) is out of line, so this path saves no registers
        // for it.
        let Some((pde, pt)) = self.leaf_path(vaddr & (LOWER_HALF_END - 1)) else {
            return self.map_creating(vaddr, phys, flags, tag);
        };
        // SAFETY: `pt` is a level-1 table of this space; `&mut self`
        // excludes every other use while `entry` lives.
        let entry = &mut unsafe { entries(pt) }[index(vaddr, 1)];
        if *entry != 0 {
            // Not a table this walk created (those are empty).
            return Err(MapError::AlreadyMapped);
        }
        let mut f = F::PRESENT | F::USER_ACCESSIBLE;
        if flags.write {
            f |= F::WRITABLE;
        }
        if !flags.exec {
            f |= F::NO_EXECUTE;
        }
        if flags.uncached {
            f |= F::NO_CACHE | F::WRITE_THROUGH;
        }
        let tag = match tag {
            Some(t) => TAGGED | ((u64::from(t) & TAG_MASK) << TAG_SHIFT),
            None => 0,
        };
        *entry = (phys & ADDR_MASK) | f.bits() | tag;
        // SAFETY: `pde` is the level-2 entry naming `pt` (another frame).
        unsafe { *pde += COUNT_ONE };
        Ok(())
    }

    /// Whether `vaddr`'s page is mapped (accessible or not).
    fn is_mapped(&self, vaddr: u64) -> bool {
        self.leaf(vaddr).is_some_and(|entry| entry != 0)
    }

    /// Rewrites the access bits of `vaddr`'s leaf (keeping frame, tag,
    /// cache mode, accessed and dirty) and flushes it. No access is a
    /// present, supervisor-only, read-only, non-executable leaf: ring 3
    /// faults on it (present bit set in the error code), `translate`
    /// refuses it, and every walk that frees or checks leaves still sees
    /// it. The kernel never touches user addresses directly, so a
    /// supervisor page in the lower half is reachable by nobody.
    fn protect(&mut self, vaddr: u64, to: abi::Protection) -> bool {
        self.leaf_changes(vaddr);
        let Some((_, pt)) = self.leaf_path(vaddr) else {
            return false;
        };
        // SAFETY: `pt` is the level-1 table of `vaddr` just found.
        let entry = unsafe { self.leaf_in(pt, vaddr) };
        if *entry == 0 {
            return false;
        }
        *entry = (*entry & !ACCESS) | access_bits(to);
        self.flush(vaddr);
        true
    }

    /// `protect` of a run of pages, one walk per level-1 table and pass:
    /// the first pass walks to each table and checks its leaves in the
    /// run, the second rewrites them (walking again to every table but
    /// the first, so a run within one table is walked once); then one
    /// flush (see [`FLUSH_ALL_ABOVE`]).
    fn protect_range(
        &mut self,
        vaddr: u64,
        pages: u64,
        to: abi::Protection,
        mut allow: impl FnMut(Tag) -> Result<(), abi::Error>,
    ) -> Result<(), abi::Error> {
        if pages > abi::bounds::PROTECT_PAGES || vaddr >= LOWER_HALF_END {
            return Err(abi::Error::InvalidArgument);
        }
        let end = vaddr + pages * PAGE;
        // The part of the run in `page`'s level-1 table: the next page
        // after it, and the leaves' indices.
        let part = |page: u64| {
            let stop = end.min(((page >> 21) + 1) << 21);
            (stop, index(page, 1), index(stop - PAGE, 1) + 1)
        };
        // The tag bits of the last leaf whose tag `allow` accepted (none
        // yet: no leaf has these bits), so a run of one mapping's leaves
        // costs a mask and a compare each; an empty or untagged leaf never
        // matches.
        let mut checked = u64::MAX;
        let mut first_table = 0;
        let mut page = vaddr;
        while page < end {
            let (_, pt) = self.leaf_path(page).ok_or(abi::Error::NotMapped)?;
            if page == vaddr {
                first_table = pt;
            }
            let (stop, first, last) = part(page);
            // SAFETY: `pt` is a level-1 table of this space; `&mut self`
            // excludes writers while the copy is read.
            let leaves = unsafe { entries_ref(pt) };
            for &entry in &leaves[first..last] {
                if entry & TAG_BITS != checked {
                    if entry == 0 {
                        return Err(abi::Error::NotMapped);
                    }
                    allow(tag_of(entry).ok_or(abi::Error::PermissionDenied)?)?;
                    checked = entry & TAG_BITS;
                }
            }
            page = stop;
        }
        let len = pages * PAGE;
        if self.watch_slot != NO_WATCH && self.watch.iter().any(|w| w.wrapping_sub(vaddr) < len) {
            self.unwatch();
        }
        let bits = access_bits(to);
        let mut page = vaddr;
        while page < end {
            // Found by the first pass (nothing has freed a table since).
            let pt = if page == vaddr {
                first_table
            } else if let Some((_, pt)) = self.leaf_path(page) {
                pt
            } else {
                break;
            };
            let (stop, first, last) = part(page);
            // SAFETY: `pt` is a level-1 table of this space; `&mut self`
            // excludes every other use.
            let leaves = unsafe { entries(pt) };
            for entry in &mut leaves[first..last] {
                *entry = (*entry & !ACCESS) | bits;
            }
            page = stop;
        }
        if pages > FLUSH_ALL_ABOVE {
            if self.is_active() {
                let (frame, flags) = Cr3::read();
                // SAFETY: the same PML4 again: the mappings do not change,
                // the TLB and paging-structure caches are dropped.
                unsafe { Cr3::write(frame, flags) };
            }
        } else {
            for i in 0..pages {
                self.flush(vaddr + i * PAGE);
            }
        }
        Ok(())
    }

    /// Reads (and, if `clear`, clears and flushes) the accessed and dirty
    /// bits the MMU keeps in `vaddr`'s leaf.
    fn accessed_dirty(&mut self, vaddr: u64, clear: bool) -> Option<(bool, bool)> {
        let (_, pt) = self.leaf_path(vaddr)?;
        // SAFETY: `pt` is the level-1 table of `vaddr` just found.
        let entry = unsafe { self.leaf_in(pt, vaddr) };
        if *entry == 0 {
            return None;
        }
        let ad = (F::ACCESSED | F::DIRTY).bits();
        let bits = *entry & ad;
        if clear && bits != 0 {
            *entry &= !ad;
            self.flush(vaddr);
        }
        Some((bits & F::ACCESSED.bits() != 0, bits & F::DIRTY.bits() != 0))
    }

    /// Removes the mapping of `vaddr`'s page; returns the frame it mapped.
    fn unmap(&mut self, vaddr: u64) -> Option<u64> {
        self.leaf_changes(vaddr);
        let (pde, pt) = self.leaf_path(vaddr)?;
        // SAFETY: `pt` is the level-1 table of `vaddr` just found.
        let entry = unsafe { self.leaf_in(pt, vaddr) };
        if *entry == 0 {
            return None;
        }
        let phys = *entry & ADDR_MASK;
        *entry = 0;
        // SAFETY: `pde` is the level-2 entry on `vaddr`'s path.
        unsafe { self.leaf_cleared(pde, vaddr) };
        Some(phys)
    }

    /// Removes the mapping of `vaddr`'s page if it carries a tag that
    /// `accept` accepts; returns the tag. (Inlined into `unmap`'s one
    /// caller: it is the hot path.)
    #[inline(always)]
    fn unmap_tagged(&mut self, vaddr: u64, accept: impl FnOnce(Tag) -> bool) -> Option<Tag> {
        let (pde, pt) = self.leaf_path(vaddr)?;
        // SAFETY: `pt` is the level-1 table of `vaddr` just found.
        let entry = unsafe { self.leaf_in(pt, vaddr) };
        let tag = tag_of(*entry)?;
        if !accept(tag) {
            return None;
        }
        *entry = 0;
        // SAFETY: `pde` is the level-2 entry on `vaddr`'s path.
        unsafe { self.leaf_cleared(pde, vaddr) };
        // Only a leaf that really went disarms a watch (a refused unmap of
        // a handler page leaves the fast path armed); still before the
        // call returns to ring 3.
        self.leaf_changes(vaddr);
        Some(tag)
    }

    /// The frame `vaddr`'s page maps to and its tag, read-only (for the
    /// invariant checks): `None` if not mapped.
    fn frame_and_tag(&self, vaddr: u64) -> Option<(u64, Option<Tag>)> {
        let entry = self.leaf(vaddr)?;
        (entry != 0).then(|| (entry & ADDR_MASK, tag_of(entry)))
    }

    /// The frame and flags `vaddr`'s page maps to (user pages only).
    fn translate(&self, vaddr: u64) -> Option<(u64, PageFlags)> {
        let entry = self.leaf(vaddr)?;
        let f = F::from_bits_truncate(entry);
        if !f.contains(F::PRESENT | F::USER_ACCESSIBLE) {
            return None;
        }
        Some((
            entry & ADDR_MASK,
            PageFlags {
                write: f.contains(F::WRITABLE),
                exec: !f.contains(F::NO_EXECUTE),
                uncached: f.contains(F::NO_CACHE),
            },
        ))
    }
}

/// Clears entries `range` of the level-`level` table at `phys` and frees
/// the tables they point to, recursively down to (not including) the leaf
/// frames.
///
/// # Safety
/// `phys` and the tables under entries `range` belong to one address space
/// being destroyed: they came from [`memory::alloc_kernel_frame`], nothing
/// else refers to them, and nothing (no reference, not CR3) uses them again.
unsafe fn free_level(phys: u64, level: u32, range: core::ops::Range<usize>) {
    for i in range {
        // SAFETY: the caller gives us `phys` alone; `entry` lives until the
        // recursion, which touches only other (child) frames.
        let entry = &mut unsafe { entries(phys) }[i];
        if *entry == 0 {
            continue;
        }
        let child = *entry & ADDR_MASK;
        *entry = 0;
        // SAFETY: `child` is a table under `phys` in the same space, so the
        // caller's guarantee covers it; its entry is cleared, so once the
        // recursion has freed what is under it, nothing refers to it and
        // it goes back to the allocator.
        unsafe {
            if level > 2 {
                free_level(child, level - 1, 0..512);
            }
            memory::free_kernel_frame(child);
        }
    }
}

/// The PML4 in CR3 now: the running process's, or the boot PML4 when no
/// process runs.
pub fn active_pml4() -> u64 {
    Cr3::read().0.start_address().as_u64()
}

/// Start of the kernel half.
const KERNEL_HALF_START: u64 = 0xffff_8000_0000_0000;

/// Translates a kernel (upper-half) virtual address through the kernel's
/// page tables (huge pages included), for `sys_info`. `None` for a lower-half
/// address, an unmapped one, or before [`memory::init`].
pub fn translate_kernel(vaddr: u64) -> Option<u64> {
    if vaddr < KERNEL_HALF_START || !memory::phys_mapped() {
        return None;
    }
    let mut phys = boot_pml4();
    for level in (1..=4).rev() {
        // SAFETY: `phys` is the boot PML4 or a table of the kernel half
        // under it (present, non-huge entries above level 1 point to page
        // tables, which are RAM), mapped at the offset (checked above).
        let entry = unsafe { read_entry(phys, index(vaddr, level)) };
        let flags = F::from_bits_truncate(entry);
        if !flags.contains(F::PRESENT) {
            return None;
        }
        let size = 1u64 << (12 + 9 * (level - 1));
        if level == 1 || flags.contains(F::HUGE_PAGE) {
            let base = entry & ADDR_MASK & !(size - 1);
            return Some(base + (vaddr & (size - 1)));
        }
        phys = entry & ADDR_MASK;
    }
    None
}

static BOOT_PML4: spin::Once<u64> = spin::Once::new();

/// Captures the boot PML4 early (it is also captured by the first
/// [`AddressSpace::new`], whichever comes first).
pub fn init() {
    boot_pml4();
}

/// The PML4 the kernel booted with (its frame is reserved RAM): the one in
/// CR3 at the first call, which comes before any [`AddressSpace`] exists
/// ([`init`] at boot, or `AddressSpace::new` itself), so it is never a
/// process's.
pub fn boot_pml4() -> u64 {
    *BOOT_PML4.call_once(active_pml4)
}

/// Set by the first [`AddressSpace::new`]: from then on the kernel half's
/// PML4 entries are copied into spaces and must not change.
static SPACES_EXIST: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Maps the device page at `phys` into the kernel half, uncached (PCD|PWT:
/// strong UC under the default PAT, as device registers need: the
/// physical-memory offset mapping is write-back), writable, not
/// executable, and returns its virtual address. It takes a PML4 slot of its
/// own (the highest empty one) and three fresh tables, so it must run
/// before the first address space copies the kernel half: it panics
/// otherwise (a kernel bug, at boot).
pub fn map_kernel_device(phys: u64) -> u64 {
    assert!(
        !SPACES_EXIST.load(core::sync::atomic::Ordering::Relaxed),
        "map_kernel_device after the first address space"
    );
    assert!(phys.is_multiple_of(4096), "device page not page aligned");
    let pml4 = boot_pml4();
    let slot = (256..512)
        .rev()
        // SAFETY: `pml4` is the boot PML4, a page-table frame.
        .find(|&i| unsafe { read_entry(pml4, i) } == 0)
        .expect("no free kernel PML4 slot");
    // Sign-extended: the slot is in the upper half.
    let vaddr = 0xffff_0000_0000_0000 | ((slot as u64) << 39);
    let mut parent = pml4;
    for level in [4, 3, 2] {
        let new = memory::alloc_kernel_frame().expect("no frame for a kernel page table");
        let at = memory::phys_to_virt(parent) as *mut u64;
        // SAFETY: `parent` is the boot PML4 (slot `slot` was empty) or the
        // table made in the previous iteration; entry `index(vaddr, level)`
        // is in it and empty; `new` is a fresh zeroed kernel frame. The
        // kernel half has no user-accessible entries: no USER bit here.
        unsafe {
            at.add(index(vaddr, level))
                .write_volatile(new | (F::PRESENT | F::WRITABLE).bits())
        };
        parent = new;
    }
    let leaf = F::PRESENT | F::WRITABLE | F::NO_CACHE | F::WRITE_THROUGH | F::NO_EXECUTE;
    let at = memory::phys_to_virt(parent) as *mut u64;
    // SAFETY: `parent` is the level-1 table just made; the entry is empty.
    unsafe { at.add(index(vaddr, 1)).write_volatile(phys | leaf.bits()) };
    vaddr
}
