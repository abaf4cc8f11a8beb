//! `exo-bench`: host benchmarks of exo's frame allocator against its peers.
//!
//! `exo-bench alloc [--json] [--only NAME] [--allocator NAME]` runs every
//! workload (or those whose name contains `NAME`) with every allocator (or
//! the one named, e.g. `exo` for a profile under callgrind) on 16 GiB of frames
//! (4 Mi frames, one usable region) with each allocator side by side and
//! prints a table of nanoseconds per operation (one `alloc`, `free`,
//! contiguous alloc or contiguous free is one operation). With `--json` it
//! also prints one JSON object per measured cell.
//!
//! Allocators:
//! - `exo`: [`exo_core::frame_alloc::FrameAllocator`].
//! - `seed`: the seed's algorithm, restated below ([`Seed`]).
//! - `bitmap-allocator`: the crate's `BitAlloc16M` (the smallest of its
//!   fixed-capacity cascades that holds 4 Mi bits), a 16-ary tree of `u16`s.
//! - `buddy_system_allocator`: its `FrameAllocator` (free lists in
//!   `BTreeSet`s), used with single frames.
//!
//! Workloads:
//! - `seq-fill-free`: allocate every frame, then free them all in order.
//! - `churn-50`, `churn-99`: at 50% / 99% fill, free a random held frame and
//!   allocate one, over and over.
//! - `low-frame-churn`: with every frame allocated, free one low frame and
//!   allocate again (getting it back), over and over.
//! - `contig-64`: 25% of memory in single frames, 25% in 64-frame runs
//!   aligned to 64; free a random run and allocate a new one, over and over.
//! - `runs-C-aA-P` (for example `runs-16-a16-50`): a driver's runs among
//!   scattered single frames. 1/8 of memory in runs of `C` frames aligned
//!   to `A`, allocated first; every other frame allocated singly, then
//!   random single frames freed until `P`% of memory is held; then free a
//!   random run and allocate a new one, over and over. The free single
//!   frames are scattered, so almost every fit is a run just freed: the
//!   cost is finding it among the fragments. `-xB`: free `B` random runs,
//!   then allocate `B` (so that most allocations do not get back the run
//!   freed last; `-x16` frees more runs than exo keeps unpublished).
//!
//! Each cell runs a warm-up, then several timed batches, and reports the
//! fastest batch (the least disturbed by whatever else the machine runs).
#![forbid(unsafe_code)]

use bitmap_allocator::BitAlloc;
use exo_core::frame_alloc::{self, FrameAllocator};
use exo_core::memmap::{MemoryMap, Region, RegionKind, FRAME_SIZE};
use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Frames in 16 GiB.
const FRAMES: u64 = 4 << 20;

/// Timed batches per cell.
const BATCHES: usize = 11;

/// Timed fill-and-free repetitions for `seq-fill-free` (after one warm-up).
const SEQ_REPS: usize = 5;

/// Target wall time of one timed batch.
const BATCH_TIME: Duration = Duration::from_millis(40);

/// Target wall time of a warm-up.
const WARMUP_TIME: Duration = Duration::from_millis(150);

/// Single-frame and contiguous operations, as each allocator offers them.
trait Frames {
    /// Allocates one frame.
    fn alloc(&mut self) -> Option<u64>;
    /// Frees one frame.
    fn free(&mut self, frame: u64);
    /// Allocates `count` frames whose first is a multiple of `1 << shift`;
    /// `None` if out of memory. Only called when [`Frames::HAS_CONTIGUOUS`].
    fn alloc_run(&mut self, count: u64, shift: u32) -> Option<u64>;
    /// Frees a run that [`Frames::alloc_run`] returned for `count` and
    /// `shift`.
    fn free_run(&mut self, first: u64, count: u64, shift: u32);
    /// Whether the allocator can allocate contiguous runs.
    const HAS_CONTIGUOUS: bool = true;
}

struct Exo<'a>(FrameAllocator<'a>);

impl Frames for Exo<'_> {
    #[inline]
    fn alloc(&mut self) -> Option<u64> {
        self.0.alloc().ok()
    }
    #[inline]
    fn free(&mut self, frame: u64) {
        let freed = self.0.free(frame);
        debug_assert!(freed.is_ok());
    }
    #[inline]
    fn alloc_run(&mut self, count: u64, shift: u32) -> Option<u64> {
        self.0.alloc_contiguous(count, 1 << shift, None).ok()
    }
    #[inline]
    fn free_run(&mut self, first: u64, count: u64, _: u32) {
        let freed = self.0.free_range(first, count);
        debug_assert!(freed.is_ok());
    }
}

/// The seed's algorithm, from `shared/seed/frame_allocator.txt`, restated
/// faithfully for this benchmark only (it is not exo's code): a flat bitmap
/// (1 = used) of a fixed 16 GiB; `allocate` scans words linearly from the
/// word of a next-free hint to the end, then wraps around from 0, and sets
/// the hint just past the frame it took; `deallocate` ignores a double
/// free, and moves the hint back to the freed frame if that is lower. It has
/// no contiguous allocation.
struct Seed {
    bitmap: Vec<u64>,
    free_frames: usize,
    next_free_hint: usize,
}

/// The seed's fixed bitmap size: 16 GiB of frames.
const SEED_BITMAP_WORDS: usize = (FRAMES / 64) as usize;

impl Seed {
    /// The seed's `init` for one usable region `[0, frames)`: everything
    /// used, then the usable frames freed.
    fn new(frames: usize) -> Seed {
        let mut seed = Seed {
            bitmap: vec![!0u64; SEED_BITMAP_WORDS],
            free_frames: 0,
            next_free_hint: 0,
        };
        for frame in 0..frames.min(SEED_BITMAP_WORDS * 64) {
            seed.mark_free(frame);
            seed.free_frames += 1;
        }
        seed
    }

    fn allocate(&mut self) -> Option<usize> {
        if self.free_frames == 0 {
            return None;
        }
        let start_word = self.next_free_hint / 64;
        for word_idx in (start_word..SEED_BITMAP_WORDS).chain(0..start_word) {
            if self.bitmap[word_idx] != !0u64 {
                let bit = (!self.bitmap[word_idx]).trailing_zeros() as usize;
                let frame = word_idx * 64 + bit;
                self.mark_used(frame);
                self.free_frames -= 1;
                self.next_free_hint = frame + 1;
                return Some(frame);
            }
        }
        None
    }

    fn deallocate(&mut self, frame: usize) {
        if frame >= SEED_BITMAP_WORDS * 64 || !self.is_allocated(frame) {
            return; // the seed ignores double frees
        }
        self.mark_free(frame);
        self.free_frames += 1;
        if frame < self.next_free_hint {
            self.next_free_hint = frame;
        }
    }

    fn is_allocated(&self, frame: usize) -> bool {
        self.bitmap[frame / 64] & (1 << (frame % 64)) != 0
    }

    fn mark_used(&mut self, frame: usize) {
        self.bitmap[frame / 64] |= 1 << (frame % 64);
    }

    fn mark_free(&mut self, frame: usize) {
        self.bitmap[frame / 64] &= !(1 << (frame % 64));
    }
}

impl Frames for Seed {
    const HAS_CONTIGUOUS: bool = false;
    #[inline]
    fn alloc(&mut self) -> Option<u64> {
        self.allocate().map(|f| f as u64)
    }
    #[inline]
    fn free(&mut self, frame: u64) {
        self.deallocate(frame as usize);
    }
    fn alloc_run(&mut self, _: u64, _: u32) -> Option<u64> {
        None
    }
    fn free_run(&mut self, _: u64, _: u64, _: u32) {}
}

/// `bitmap_allocator`'s 16 Mi-bit cascade (1 = free), boxed: it is 2 MiB.
struct BitmapAllocator(Box<bitmap_allocator::BitAlloc16M>);

impl Frames for BitmapAllocator {
    #[inline]
    fn alloc(&mut self) -> Option<u64> {
        self.0.alloc().map(|f| f as u64)
    }
    #[inline]
    fn free(&mut self, frame: u64) {
        let freed = self.0.dealloc(frame as usize);
        debug_assert!(freed);
    }
    #[inline]
    fn alloc_run(&mut self, count: u64, shift: u32) -> Option<u64> {
        self.0
            .alloc_contiguous(None, count as usize, shift as usize)
            .map(|f| f as u64)
    }
    #[inline]
    fn free_run(&mut self, first: u64, count: u64, _: u32) {
        let freed = self.0.dealloc_contiguous(first as usize, count as usize);
        debug_assert!(freed);
    }
}

/// `buddy_system_allocator`'s frame allocator (orders up to 2^32 frames).
struct Buddy(buddy_system_allocator::FrameAllocator<33>);

impl Frames for Buddy {
    #[inline]
    fn alloc(&mut self) -> Option<u64> {
        self.0.alloc(1).map(|f| f as u64)
    }
    #[inline]
    fn free(&mut self, frame: u64) {
        self.0.dealloc(frame as usize, 1);
    }
    #[inline]
    fn alloc_run(&mut self, count: u64, shift: u32) -> Option<u64> {
        // Buddy blocks are powers of two aligned to their size: ask for a
        // block of at least the alignment (the crate rounds up to a power
        // of two itself).
        let size = count.max(1 << shift) as usize;
        self.0.alloc(size).map(|f| f as u64)
    }
    #[inline]
    fn free_run(&mut self, first: u64, count: u64, shift: u32) {
        self.0
            .dealloc(first as usize, count.max(1 << shift) as usize);
    }
}

/// The allocators, in table order.
#[derive(Clone, Copy)]
enum Allocator {
    Exo,
    Seed,
    Bitmap,
    Buddy,
}

const ALLOCATORS: [Allocator; 4] = [
    Allocator::Exo,
    Allocator::Seed,
    Allocator::Bitmap,
    Allocator::Buddy,
];

impl Allocator {
    fn name(self) -> &'static str {
        match self {
            Allocator::Exo => "exo",
            Allocator::Seed => "seed",
            Allocator::Bitmap => "bitmap-allocator",
            Allocator::Buddy => "buddy_system_allocator",
        }
    }

    /// Builds a fresh allocator with all 16 GiB free and runs `workload` on
    /// it.
    fn run(self, workload: Workload) -> Option<f64> {
        match self {
            Allocator::Exo => {
                let map = sixteen_gib();
                let mut storage = vec![0u64; frame_alloc::storage_words(&map)];
                let alloc =
                    FrameAllocator::new(&map, &mut storage).expect("storage sized for the map");
                workload.run(&mut Exo(alloc))
            }
            Allocator::Seed => workload.run(&mut Seed::new(FRAMES as usize)),
            Allocator::Bitmap => {
                let mut bitmap = Box::new(bitmap_allocator::BitAlloc16M::DEFAULT);
                bitmap.insert(0..FRAMES as usize);
                workload.run(&mut BitmapAllocator(bitmap))
            }
            Allocator::Buddy => {
                let mut buddy = buddy_system_allocator::FrameAllocator::<33>::new();
                buddy.add_frame(0, FRAMES as usize);
                workload.run(&mut Buddy(buddy))
            }
        }
    }
}

/// One usable region of 16 GiB.
fn sixteen_gib() -> MemoryMap {
    MemoryMap::new([Region {
        start: 0,
        end: FRAMES * FRAME_SIZE,
        kind: RegionKind::Usable,
    }])
}

/// xorshift64* (Vigna), seeded: the same sequence for every allocator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-enough index below `n`.
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

#[derive(Clone, Copy)]
enum Workload {
    SeqFillFree,
    Churn {
        percent: u64,
    },
    LowFrameChurn,
    Contig64,
    Runs {
        count: u64,
        shift: u32,
        percent: u64,
        batch: usize,
    },
}

const WORKLOADS: [Workload; 18] = [
    Workload::SeqFillFree,
    Workload::Churn { percent: 50 },
    Workload::Churn { percent: 99 },
    Workload::LowFrameChurn,
    Workload::Contig64,
    runs(64, 6, 50, 1),
    runs(16, 4, 50, 1),
    runs(16, 4, 90, 1),
    runs(64, 0, 50, 1),
    runs(64, 0, 90, 1),
    runs(2, 0, 90, 1),
    runs(16, 4, 50, 4),
    runs(16, 4, 90, 4),
    runs(64, 0, 50, 4),
    runs(64, 0, 90, 4),
    runs(200, 0, 50, 4),
    runs(16, 4, 50, 16),
    runs(64, 0, 50, 16),
];

/// A [`Workload::Runs`].
const fn runs(count: u64, shift: u32, percent: u64, batch: usize) -> Workload {
    Workload::Runs {
        count,
        shift,
        percent,
        batch,
    }
}

impl Workload {
    fn name(self) -> String {
        match self {
            Workload::SeqFillFree => "seq-fill-free".into(),
            Workload::Churn { percent } => format!("churn-{percent}"),
            Workload::LowFrameChurn => "low-frame-churn".into(),
            Workload::Contig64 => "contig-64".into(),
            Workload::Runs {
                count,
                shift,
                percent,
                batch: 1,
            } => format!("runs-{count}-a{}-{percent}", 1u64 << shift),
            Workload::Runs {
                count,
                shift,
                percent,
                batch,
            } => format!("runs-{count}-a{}-{percent}-x{batch}", 1u64 << shift),
        }
    }

    /// Runs the workload on `a` (all frames free) and returns the fastest
    /// batch's nanoseconds per operation, or `None` if `a` cannot do it.
    fn run<A: Frames>(self, a: &mut A) -> Option<f64> {
        match self {
            Workload::SeqFillFree => Some(seq_fill_free(a)),
            Workload::Churn { percent } => Some(churn(a, percent)),
            Workload::LowFrameChurn => Some(low_frame_churn(a)),
            Workload::Contig64 => A::HAS_CONTIGUOUS.then(|| contig_64(a)),
            Workload::Runs {
                count,
                shift,
                percent,
                batch,
            } => A::HAS_CONTIGUOUS.then(|| run_runs(a, count, shift, percent, batch)),
        }
    }
}

/// Runs `step` (which does `ops_per_step` operations) for a warm-up, then
/// [`BATCHES`] timed batches sized from the warm-up's speed; returns the
/// fastest batch's nanoseconds per operation.
fn measure(ops_per_step: u64, mut step: impl FnMut()) -> f64 {
    // Warm-up, doubling until it takes long enough; it also sizes batches.
    let mut steps: u64 = 16;
    let per_step = loop {
        let start = Instant::now();
        for _ in 0..steps {
            step();
        }
        let took = start.elapsed();
        if took >= WARMUP_TIME / 4 || steps >= 1 << 30 {
            break took.as_secs_f64() / steps as f64;
        }
        steps *= 2;
    };
    let batch = ((BATCH_TIME.as_secs_f64() / per_step) as u64).max(1);
    (0..BATCHES)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                step();
            }
            start.elapsed().as_nanos() as f64 / (batch * ops_per_step) as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn seq_fill_free<A: Frames>(a: &mut A) -> f64 {
    // One step fills and empties all of memory: 2 * FRAMES operations.
    let mut rep = || {
        for _ in 0..FRAMES {
            black_box(a.alloc());
        }
        for frame in 0..FRAMES {
            a.free(black_box(frame));
        }
    };
    rep(); // warm-up
    (0..SEQ_REPS)
        .map(|_| {
            let start = Instant::now();
            rep();
            start.elapsed().as_nanos() as f64 / (2 * FRAMES) as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn churn<A: Frames>(a: &mut A, percent: u64) -> f64 {
    let mut held: Vec<u64> = (0..FRAMES * percent / 100)
        .map(|_| a.alloc().expect("fill"))
        .collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ percent);
    // The victim of the next step is loaded a step early, so the harness's
    // cache miss on `held` overlaps with the allocator's work.
    let mut next = rng.below(held.len());
    let mut victim = held[next];
    measure(2, || {
        let i = next;
        let frame = victim;
        next = rng.below(held.len());
        victim = held[next];
        a.free(frame);
        held[i] = black_box(a.alloc().expect("a frame was just freed"));
        if next == i {
            victim = held[i];
        }
    })
}

fn low_frame_churn<A: Frames>(a: &mut A) -> f64 {
    for _ in 0..FRAMES {
        a.alloc().expect("fill");
    }
    let low = black_box(100);
    measure(2, || {
        a.free(low);
        let frame = a.alloc();
        debug_assert_eq!(frame, Some(low));
        black_box(frame);
    })
}

fn contig_64<A: Frames>(a: &mut A) -> f64 {
    for _ in 0..FRAMES / 4 {
        a.alloc().expect("fill");
    }
    let mut runs: Vec<u64> = (0..FRAMES / 4 / 64)
        .map(|_| a.alloc_run(64, 6).expect("fill"))
        .collect();
    debug_assert!(runs.iter().all(|r| r % 64 == 0));
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    measure(2, || {
        let i = rng.below(runs.len());
        a.free_run(runs[i], 64, 6);
        runs[i] = black_box(a.alloc_run(64, 6).expect("a run was just freed"));
    })
}

fn run_runs<A: Frames>(a: &mut A, count: u64, shift: u32, percent: u64, batch: usize) -> f64 {
    let mut runs: Vec<u64> = (0..FRAMES / 8 / count)
        .map(|_| a.alloc_run(count, shift).expect("fill"))
        .collect();
    let mut singles: Vec<u64> = std::iter::from_fn(|| a.alloc()).collect();
    let mut rng = Rng(0x6A09_E667_F3BC_C909 ^ count ^ u64::from(shift) << 8 ^ percent << 16);
    let held = FRAMES * percent / 100;
    let run_frames = runs.len() as u64 * count.max(1 << shift);
    while run_frames + singles.len() as u64 > held {
        let i = rng.below(singles.len());
        a.free(singles.swap_remove(i));
    }
    let mut victims = vec![0; batch];
    measure(2 * batch as u64, || {
        for v in &mut victims {
            // Distinct victims: a run freed twice would be a double free.
            *v = loop {
                let i = rng.below(runs.len());
                if runs[i] != u64::MAX {
                    break i;
                }
            };
            a.free_run(runs[*v], count, shift);
            runs[*v] = u64::MAX;
        }
        for &v in &victims {
            runs[v] = black_box(a.alloc_run(count, shift).expect("a run was just freed"));
        }
    })
}

fn run_alloc(json: bool, only: Option<&str>, allocator: Option<&str>) {
    let words = frame_alloc::storage_words(&sixteen_gib());
    println!(
        "exo frame allocator storage for 16 GiB ({} frames): {} words = {} bytes ({:.1} KiB)",
        FRAMES,
        words,
        words * 8,
        (words * 8) as f64 / 1024.0
    );
    println!(
        "ns per operation (fastest of {BATCHES} batches; an operation is one alloc or free call)"
    );
    println!();
    let header = [
        "workload",
        "exo",
        "seed",
        "bitmap-allocator",
        "buddy_system_allocator",
        "best peer/exo",
        "seed/exo",
    ];
    let widths = [16, 9, 10, 17, 23, 14, 9];
    let row = |cells: &[String]| {
        let mut line = format!("{:<w$}", cells[0], w = widths[0]);
        for (cell, w) in cells[1..].iter().zip(&widths[1..]) {
            line.push_str(&format!(" {cell:>w$}"));
        }
        println!("{line}");
    };
    row(&header.map(String::from));
    let mut json_lines = Vec::new();
    for workload in WORKLOADS {
        if only.is_some_and(|only| !workload.name().contains(only)) {
            continue;
        }
        let results: Vec<Option<f64>> = ALLOCATORS
            .iter()
            .map(|a| {
                allocator
                    .is_none_or(|name| name == a.name())
                    .then(|| a.run(workload))
                    .flatten()
            })
            .collect();
        for (allocator, ns) in ALLOCATORS.iter().zip(&results) {
            if let Some(ns) = ns {
                json_lines.push(format!(
                    "{{\"workload\":\"{}\",\"allocator\":\"{}\",\"ns_per_op\":{:.3}}}",
                    workload.name(),
                    allocator.name(),
                    ns
                ));
            }
        }
        let fmt = |ns: &Option<f64>| ns.map_or_else(|| "n/a".to_string(), |ns| format!("{ns:.2}"));
        let ratio = |num: Option<f64>| match (num, results[0]) {
            (Some(num), Some(exo)) => format!("{:.1}x", num / exo),
            _ => "n/a".to_string(),
        };
        let best_peer = results[2..].iter().flatten().copied().reduce(f64::min);
        let mut cells = vec![workload.name()];
        cells.extend(results.iter().map(fmt));
        cells.push(ratio(best_peer));
        cells.push(ratio(results[1]));
        row(&cells);
    }
    if json {
        println!();
        for line in json_lines {
            println!("{line}");
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: exo-bench alloc [--json] [--only NAME] [--allocator NAME]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut json, mut only, mut alloc, mut allocator) = (false, None, false, None);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "alloc" => alloc = true,
            "--json" => json = true,
            "--only" => match args.next() {
                Some(name) => only = Some(name),
                None => return usage(),
            },
            "--allocator" => match args.next() {
                Some(name) if ALLOCATORS.iter().any(|a| a.name() == name) => allocator = Some(name),
                _ => return usage(),
            },
            _ => return usage(),
        }
    }
    if !alloc {
        return usage();
    }
    // The bitmap-allocator cascade is built as a 2 MiB value: give it room.
    let bench = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || run_alloc(json, only.as_deref(), allocator.as_deref()))
        .expect("spawn the benchmark thread");
    match bench.join() {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
