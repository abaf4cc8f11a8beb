//! Physical memory: the boot map turned into exo-core's [`MemoryMap`], the
//! frame allocator that owns every RAM frame, the kernel heap, and access to
//! physical memory through the bootloader's offset mapping.
//!
//! Accounting: `total = free + reserved + kernel + held by processes`. The
//! kernel's own frames (heap, allocator storage, page tables) are counted in
//! `kernel`; frames held through capabilities are counted by `process`.
//! `free` is what programs can get: the allocator's free frames plus the
//! pool of pre-zeroed frames (allocated in the allocator's view, nobody's;
//! see [`exo_core::zero_pool`]), whose size `zeroed` reports.
//!
//! Zeroing: a frame comes from the pool, zeroed while the CPU had nothing
//! better to do ([`refill_zero_pool`]: at a timer tick that interrupts a
//! program, and when a program yields), or, when the pool is empty, is
//! zeroed on the call path with `rep stosq`. Blocks of 64 frames for
//! `frame_alloc_many` are pooled the same way ([`refill_zero_blocks`]: at
//! a `yield` and in the idle loop).
use crate::kprintln;
use alloc::vec::Vec;
use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use exo_core::frame_alloc::{self, AllocError, FrameAllocator};
use exo_core::memmap::{FrameClass, MemoryMap, Region, RegionKind};
use exo_core::zero_pool::ZeroPool;
use spin::Mutex;
use talc::{ErrOnOom, Span, Talc, Talck};

/// Frame size.
pub const PAGE: u64 = 4096;

static PHYS_OFFSET: AtomicU64 = AtomicU64::new(0);

/// The allocator and the kernel's own count, under one lock.
pub struct Frames {
    /// The frame allocator.
    pub alloc: FrameAllocator<'static>,
    /// Frames the kernel allocated for itself.
    pub kernel: u64,
    /// Zeroed frames, allocated from `alloc`, nobody's yet.
    pub pool: ZeroPool,
}

/// The one frame allocator.
pub static FRAMES: Mutex<Option<Frames>> = Mutex::new(None);

/// Runs `f` on the frame allocator.
pub fn frames<R>(f: impl FnOnce(&mut Frames) -> R) -> R {
    f(FRAMES.lock().as_mut().expect("memory::init not called"))
}

/// Virtual address of physical address `phys` (all RAM is mapped there,
/// once [`init`] has run).
pub fn phys_to_virt(phys: u64) -> *mut u8 {
    (PHYS_OFFSET.load(Ordering::Relaxed) + phys) as *mut u8
}

/// Whether [`phys_to_virt`] works yet (after [`init`]: the offset is in the
/// kernel half, never 0).
pub fn phys_mapped() -> bool {
    PHYS_OFFSET.load(Ordering::Relaxed) != 0
}

#[global_allocator]
static HEAP: Talck<spin::Mutex<()>, ErrOnOom> = Talc::new(ErrOnOom).lock();

/// A small static arena so that the heap works before the frame allocator
/// exists (building the memory map needs a Vec). Only [`init_boot_heap`]
/// names it, and only once ([`BOOT_ARENA_CLAIMED`]).
static mut BOOT_ARENA: [u8; 256 * 1024] = [0; 256 * 1024];

/// Set by the one claim of [`BOOT_ARENA`].
static BOOT_ARENA_CLAIMED: AtomicBool = AtomicBool::new(false);

/// Frames given to the heap once the allocator is up.
const HEAP_FRAMES: u64 = 4096; // 16 MiB: see process::MAX_PROCESSES

/// Gives the heap its boot arena. A second call panics (the arena would
/// be handed to the heap twice).
pub fn init_boot_heap() {
    assert!(
        !BOOT_ARENA_CLAIMED.swap(true, Ordering::Relaxed),
        "boot heap claimed twice"
    );
    // SAFETY: nothing but this function names BOOT_ARENA, and the flag
    // above lets it through once: the heap becomes the arena's only user.
    unsafe {
        HEAP.lock()
            .claim(Span::from_array(&raw mut BOOT_ARENA))
            .expect("boot heap");
    }
}

/// Converts the bootloader's regions: usable stays usable; what the
/// bootloader used (kernel image, page tables, boot info, ramdisk) and what
/// firmware keeps (ACPI, NVS, reserved low memory, reserved ranges that
/// touch RAM) is reserved RAM; free-standing firmware "reserved" ranges above
/// 1 MiB and UEFI MMIO ranges are device space, so they stay out of the map
/// (holes) and can be claimed as device frames.
fn convert(regions: &MemoryRegions) -> MemoryMap {
    // Physical page 0 (the real-mode interrupt table) is reported usable,
    // but a DMA address of 0 reads as "null" to many devices and drivers:
    // keep it reserved, as Linux keeps its low pages.
    let page_zero = Region::reserved(0, PAGE);
    // A firmware-"reserved" range that touches usable RAM is RAM the
    // firmware keeps (SeaBIOS's ACPI tables just below the top of low RAM);
    // one standing alone above 1 MiB is an MMIO window (q35's ECAM at
    // 0xb0000000: BIOS type 2 under SeaBIOS, UEFI type 0 under OVMF).
    let touches_ram = |start: u64, end: u64| {
        regions
            .iter()
            .any(|u| u.kind == MemoryRegionKind::Usable && (u.end == start || u.start == end))
    };
    MemoryMap::new(
        core::iter::once(page_zero).chain(regions.iter().filter_map(|r| {
            let kind = match r.kind {
                MemoryRegionKind::Usable => RegionKind::Usable,
                MemoryRegionKind::Bootloader => RegionKind::Reserved,
                MemoryRegionKind::UnknownBios(2) | MemoryRegionKind::UnknownUefi(0)
                    if r.start >= 0x10_0000 && !touches_ram(r.start, r.end) =>
                {
                    return None
                }
                MemoryRegionKind::UnknownUefi(11 | 12) => return None,
                _ => RegionKind::Reserved,
            };
            Some(Region {
                start: r.start,
                end: r.end,
                kind,
            })
        })),
    )
}

/// Prints the memory map by kind and builds the allocator. A second call
/// panics (it would build a second allocator over frames already in use).
///
/// # Safety
/// `regions` is the bootloader's memory map and `phys_offset` the offset at
/// which the bootloader mapped all of physical memory: every frame the map
/// calls usable is RAM that nothing else uses, and is mapped there.
pub unsafe fn init(regions: &MemoryRegions, phys_offset: u64) {
    assert!(FRAMES.lock().is_none(), "memory::init called twice");
    assert_ne!(phys_offset, 0, "physical memory mapped at 0");
    PHYS_OFFSET.store(phys_offset, Ordering::Relaxed);
    summarize(regions);
    let map = convert(regions);
    let words = frame_alloc::storage_words(&map);
    let storage_phys =
        frame_alloc::find_storage(&map, words).expect("no usable memory for the frame bitmap");
    // SAFETY: `find_storage` chose usable RAM, which nothing uses yet (the
    // caller's guarantee; the bootloader's allocations are reserved in the
    // map) and which is mapped at the physical offset; we mark those frames
    // allocated right below, so nothing else ever gets them.
    let storage: &'static mut [u64] =
        unsafe { core::slice::from_raw_parts_mut(phys_to_virt(storage_phys) as *mut u64, words) };
    let mut alloc = FrameAllocator::new(&map, storage).expect("frame allocator");
    let storage_frames = (words as u64 * 8).div_ceil(PAGE);
    for i in 0..storage_frames {
        alloc
            .alloc_at(storage_phys / PAGE + i)
            .expect("bitmap storage frames");
    }
    *FRAMES.lock() = Some(Frames {
        alloc,
        kernel: storage_frames,
        pool: ZeroPool::new(),
    });

    // The real heap: contiguous frames, used through the offset mapping.
    let heap_base = frames(|f| {
        let base = f.alloc.alloc_contiguous(HEAP_FRAMES, 1, None).ok()?;
        f.kernel += HEAP_FRAMES;
        Some(base * PAGE)
    })
    .expect("no memory for the kernel heap");
    // SAFETY: those frames were just allocated to the kernel and are mapped.
    unsafe {
        HEAP.lock()
            .claim(Span::from_base_size(
                phys_to_virt(heap_base),
                (HEAP_FRAMES * PAGE) as usize,
            ))
            .expect("heap");
    }
    let stats = counters();
    kprintln!(
        "frames: total {} ({} MiB), free {}, reserved {}, kernel {} (bitmap {} KiB, heap {} MiB)",
        stats.total,
        stats.total * PAGE / (1024 * 1024),
        stats.free,
        stats.reserved,
        stats.kernel,
        words * 8 / 1024,
        HEAP_FRAMES * PAGE / (1024 * 1024),
    );
}

fn summarize(regions: &MemoryRegions) {
    let mut kinds: Vec<(MemoryRegionKind, usize, u64)> = Vec::new();
    for r in regions.iter() {
        match kinds.iter_mut().find(|(k, _, _)| *k == r.kind) {
            Some(entry) => {
                entry.1 += 1;
                entry.2 += r.end - r.start;
            }
            None => kinds.push((r.kind, 1, r.end - r.start)),
        }
    }
    kprintln!("memory map: {} regions", regions.len());
    for (kind, count, bytes) in &kinds {
        kprintln!(
            "  {:<18} {:>4} regions {:>10} KiB",
            kind_name(*kind),
            count,
            bytes / 1024
        );
    }
    let usable: u64 = kinds
        .iter()
        .filter(|(k, _, _)| *k == MemoryRegionKind::Usable)
        .map(|(_, _, b)| b)
        .sum();
    kprintln!("  usable: {} MiB", usable / (1024 * 1024));
}

fn kind_name(kind: MemoryRegionKind) -> alloc::string::String {
    use alloc::format;
    match kind {
        MemoryRegionKind::Usable => "usable".into(),
        MemoryRegionKind::Bootloader => "bootloader".into(),
        MemoryRegionKind::UnknownBios(t) => format!("bios type {t}"),
        MemoryRegionKind::UnknownUefi(t) => format!("uefi type {t}"),
        _ => "other".into(),
    }
}

/// Allocates one zeroed frame: from the pool if it has one (no zeroing
/// here), else from the allocator, zeroed now. The caller owns it.
#[inline]
pub fn alloc_zeroed() -> Result<u64, AllocError> {
    let (frame, zeroed) = frames(|f| f.pool.alloc(&mut f.alloc))?;
    if !zeroed {
        // SAFETY: just taken from the allocator: RAM nobody else holds.
        unsafe { zero_frames(frame * PAGE, 1) };
    }
    Ok(frame)
}

/// Tops the pool of zeroed frames up by at most `budget` frames (each
/// costs one `rep stosq` of 4 KiB); returns how many it added. For the
/// moments the CPU would otherwise wait: a timer tick that interrupted a
/// program, a program's `yield`, and the idle loop.
///
/// Call it with the frame allocator's lock not held.
pub fn refill_zero_pool(budget: usize) -> usize {
    frames(|f| {
        f.pool.refill(&mut f.alloc, budget, |frame| {
            // SAFETY: `refill` passes each frame just taken from the
            // allocator, before the pool holds it: RAM nobody else holds.
            unsafe { zero_frames(frame * PAGE, 1) }
        })
    })
}

/// Tops the pool's zeroed blocks (64 frames each, for `frame_alloc_many`)
/// up by at most `budget` blocks; returns how many it added. Each block
/// costs a `rep stosq` of 256 KiB, so only where a program would not be
/// waiting: a `yield` (one block) and the idle loop.
///
/// Call it with the frame allocator's lock not held.
pub fn refill_zero_blocks(budget: usize) -> usize {
    frames(|f| {
        f.pool.refill_blocks(&mut f.alloc, budget, |first, count| {
            // SAFETY: `refill_blocks` passes each block just taken from the
            // allocator, before the pool holds it: RAM nobody else holds.
            unsafe { zero_frames(first * PAGE, count) }
        })
    })
}

/// Allocates one zeroed frame for the kernel's own use (page tables).
pub fn alloc_kernel_frame() -> Result<u64, AllocError> {
    let frame = alloc_zeroed()?;
    frames(|f| f.kernel += 1);
    Ok(frame * PAGE)
}

/// Returns a frame from [`alloc_kernel_frame`].
///
/// # Safety
/// `phys` came from [`alloc_kernel_frame`] and nothing uses the frame any
/// more: it can be handed out (and overwritten) at once.
pub unsafe fn free_kernel_frame(phys: u64) {
    frames(|f| {
        f.alloc.free(phys / PAGE).expect("kernel frame freed twice");
        f.kernel -= 1;
    });
}

/// Zeroes `count` frames starting at physical address `phys`.
///
/// # Safety
/// `phys` is page aligned, and the `count` frames from it are RAM that the
/// caller owns and nothing else uses (typically: just taken from the
/// allocator, not yet mapped or granted).
pub unsafe fn zero_frames(phys: u64, count: u64) {
    // SAFETY: the caller's guarantee; all RAM is mapped at the offset, so
    // the frames are kernel-mapped memory we may overwrite.
    unsafe { crate::arch::zero::zero_pages(phys_to_virt(phys), count) };
}

/// What a frame is, for the allocate-at-address policy.
pub fn classify(frame: u64) -> FrameClass {
    frames(|f| f.alloc.classify(frame))
}

/// The counters, without the per-process part.
pub fn counters() -> abi::FrameStats {
    frames(|f| abi::FrameStats {
        total: f.alloc.total(),
        free: f.alloc.free_frames() + f.pool.len() as u64,
        reserved: f.alloc.reserved(),
        kernel: f.kernel,
        zeroed: f.pool.len() as u64,
        ..Default::default()
    })
}
