//! Four-level page tables for user address spaces. Each process gets its
//! own PML4 whose upper half is the kernel's (shared, never user-accessible)
//! and whose lower half it owns. Tables are reached through the physical
//! memory offset mapping; their frames are the kernel's, counted per space.
use crate::memory;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::{PageTable, PageTableFlags as F, PhysFrame};
use x86_64::PhysAddr;

pub use exo_core::object::{MapError, PageFlags, Tag, TAGS};

/// Page-table frames one address space may use (bounds kernel memory spent
/// on behalf of one process: 1024 tables map well over 1 GiB sparse).
pub const MAX_TABLES: u64 = abi::bounds::PAGE_TABLES;

/// A user address space.
pub struct AddressSpace {
    pml4: u64,
    tables: u64,
}

fn table(phys: u64) -> &'static mut PageTable {
    // SAFETY: `phys` is a page-table frame owned by an AddressSpace (or the
    // kernel's PML4); it is mapped at the offset and only touched with the
    // kernel lock held, on one CPU.
    unsafe { &mut *(memory::phys_to_virt(phys) as *mut PageTable) }
}

/// A page table as raw entries, for the hot paths (`map`, `unmap`), which
/// need nothing of `PageTableEntry` but its bits.
fn entries(phys: u64) -> &'static mut [u64; 512] {
    // SAFETY: as for `table`: a page-table frame of ours at the offset
    // mapping, 4 KiB = 512 entries, touched only under the kernel lock.
    unsafe { &mut *(memory::phys_to_virt(phys) as *mut [u64; 512]) }
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
/// Where the tag lives: bits 52..=62, ignored by the MMU (bit 63 is NX)
/// as long as CR4.PKE is off, which the kernel never sets (with protection
/// keys, bits 59..=62 would pick a key).
const TAG_SHIFT: u32 = 52;
const TAG_MASK: u64 = 0x7ff;
const _: () = assert!(TAGS == 1 << 11, "tags are PTE bits 52..=62");

/// The tag a leaf entry carries, if any.
fn tag_of(entry: u64) -> Option<Tag> {
    (entry & TAGGED != 0).then_some(((entry >> TAG_SHIFT) & TAG_MASK) as Tag)
}

impl AddressSpace {
    /// A new space: empty lower half, the kernel's upper half.
    pub fn new() -> Result<Self, MapError> {
        let pml4 = memory::alloc_kernel_frame().map_err(|_| MapError::OutOfMemory)?;
        let (current, _) = Cr3::read();
        let kernel = table(current.start_address().as_u64());
        let new = table(pml4);
        for i in 256..512 {
            new[i] = kernel[i].clone();
        }
        Ok(AddressSpace { pml4, tables: 1 })
    }

    /// Page-table frames in use.
    pub fn tables(&self) -> u64 {
        self.tables
    }

    /// Makes this the active address space.
    pub fn activate(&self) {
        let (current, _) = Cr3::read();
        if current.start_address().as_u64() != self.pml4 {
            let frame = PhysFrame::containing_address(PhysAddr::new(self.pml4));
            // SAFETY: the PML4 maps the whole kernel half like every other
            // space, so the kernel keeps running after the switch.
            unsafe { Cr3::write(frame, Cr3Flags::empty()) };
        }
    }

    fn is_active(&self) -> bool {
        Cr3::read().0.start_address().as_u64() == self.pml4
    }

    /// Walks to the level-1 table of `vaddr` (a lower-half address),
    /// creating the tables that are missing. Non-leaf entries are 0 or
    /// present (this module writes no others).
    #[inline]
    fn walk_create(&mut self, vaddr: u64) -> Result<u64, MapError> {
        let mut phys = self.pml4;
        for level in [4, 3, 2] {
            let entry = &mut entries(phys)[index(vaddr, level)];
            if *entry == 0 {
                if self.tables >= MAX_TABLES {
                    return Err(MapError::OutOfMemory);
                }
                let new = memory::alloc_kernel_frame().map_err(|_| MapError::OutOfMemory)?;
                self.tables += 1;
                *entry = new | (F::PRESENT | F::WRITABLE | F::USER_ACCESSIBLE).bits();
            }
            phys = *entry & ADDR_MASK;
        }
        Ok(phys)
    }

    /// The leaf entry of `vaddr`, if its tables exist. Lower half only:
    /// the upper half holds the kernel's tables, with huge pages this walk
    /// does not understand (following one would read device memory).
    #[inline]
    fn leaf(&self, vaddr: u64) -> Option<&'static mut u64> {
        if vaddr >= LOWER_HALF_END {
            return None;
        }
        let mut phys = self.pml4;
        for level in [4, 3, 2] {
            let entry = entries(phys)[index(vaddr, level)];
            if entry == 0 {
                return None;
            }
            phys = entry & ADDR_MASK;
        }
        Some(&mut entries(phys)[index(vaddr, 1)])
    }

    /// Maps the user page at `vaddr` to frame `phys`, tagged with `tag` if
    /// given (`map` syscall mappings). The caller has checked that `vaddr`
    /// is a page-aligned lower-half address.
    pub fn map(
        &mut self,
        vaddr: u64,
        phys: u64,
        flags: PageFlags,
        tag: Option<Tag>,
    ) -> Result<(), MapError> {
        let pt = self.walk_create(vaddr)?;
        let entry = &mut entries(pt)[index(vaddr, 1)];
        if *entry != 0 {
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
        Ok(())
    }

    /// Whether `vaddr`'s page is mapped.
    pub fn is_mapped(&self, vaddr: u64) -> bool {
        self.translate(vaddr).is_some()
    }

    /// Removes the mapping of `vaddr`'s page; returns the frame it mapped.
    pub fn unmap(&mut self, vaddr: u64) -> Option<u64> {
        let entry = self.leaf(vaddr)?;
        if *entry == 0 {
            return None;
        }
        let phys = *entry & ADDR_MASK;
        *entry = 0;
        self.flush(vaddr);
        Some(phys)
    }

    /// Removes the mapping of `vaddr`'s page if it carries a tag that
    /// `accept` accepts; returns the tag.
    pub fn unmap_tagged(&mut self, vaddr: u64, accept: impl FnOnce(Tag) -> bool) -> Option<Tag> {
        let entry = self.leaf(vaddr)?;
        let tag = tag_of(*entry)?;
        if !accept(tag) {
            return None;
        }
        *entry = 0;
        self.flush(vaddr);
        Some(tag)
    }

    /// The frame `vaddr`'s page maps to and its tag, read-only (for the
    /// invariant checks): `None` if not mapped.
    pub fn frame_and_tag(&self, vaddr: u64) -> Option<(u64, Option<Tag>)> {
        let entry = *self.leaf(vaddr)?;
        (entry != 0).then(|| (entry & ADDR_MASK, tag_of(entry)))
    }

    /// Drops the TLB entry of `vaddr` if this space is the active one
    /// (switching spaces flushes the rest: no PCIDs, no global user pages).
    #[inline]
    fn flush(&self, vaddr: u64) {
        if self.is_active() {
            x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(vaddr));
        }
    }

    /// The frame and flags `vaddr`'s page maps to (user pages only).
    pub fn translate(&self, vaddr: u64) -> Option<(u64, PageFlags)> {
        let entry = *self.leaf(vaddr)?;
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

    /// Frees every lower-half table and the PML4. Leaf frames belong to
    /// their owners (capabilities, the program image) and are not touched.
    pub fn destroy(self, kernel_pml4: u64) {
        if self.is_active() {
            let frame = PhysFrame::containing_address(PhysAddr::new(kernel_pml4));
            // SAFETY: the kernel's own PML4 maps the kernel half.
            unsafe { Cr3::write(frame, Cr3Flags::empty()) };
        }
        free_level(self.pml4, 4, 0..256);
        memory::free_kernel_frame(self.pml4);
    }
}

fn free_level(phys: u64, level: u32, range: core::ops::Range<usize>) {
    for i in range {
        let entry = &mut table(phys)[i];
        if entry.is_unused() {
            continue;
        }
        let child = entry.addr().as_u64();
        entry.set_unused();
        if level > 2 {
            free_level(child, level - 1, 0..512);
        }
        memory::free_kernel_frame(child);
    }
}

/// The PML4 the kernel booted with (upper half only is used).
pub fn current_pml4() -> u64 {
    Cr3::read().0.start_address().as_u64()
}

/// Translates a kernel virtual address through the active page tables
/// (huge pages included), for `sys_info`.
pub fn translate_kernel(vaddr: u64) -> Option<u64> {
    let mut phys = current_pml4();
    for level in (1..=4).rev() {
        let entry = &table(phys)[index(vaddr, level)];
        let flags = entry.flags();
        if !flags.contains(F::PRESENT) {
            return None;
        }
        let size = 1u64 << (12 + 9 * (level - 1));
        if level == 1 || flags.contains(F::HUGE_PAGE) {
            return Some(entry.addr().as_u64() + (vaddr & (size - 1)));
        }
        phys = entry.addr().as_u64();
    }
    None
}

static BOOT_PML4: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Remembers the PML4 the kernel booted with.
pub fn init() {
    BOOT_PML4.store(current_pml4(), core::sync::atomic::Ordering::Relaxed);
}

/// The PML4 the kernel booted with (its frame is reserved RAM).
pub fn current_kernel_pml4() -> u64 {
    BOOT_PML4.load(core::sync::atomic::Ordering::Relaxed)
}
