//! growstack: a stack that grows on fault. A 1 MiB region is reserved
//! with nothing mapped; a recursion runs on it from its top, and each page
//! it reaches first faults (the very first on the `call` that pushes onto
//! it): the handler maps a zeroed frame there and resumes. The libos
//! resumes in ring 3 without writing to the interrupted stack, so a fault
//! with `rsp` on an unmapped page resumes like any other. A fault below
//! the region (its guard) would end the program. Checks the recursion's
//! result, that it used a fraction of the region, one frame per page it
//! reached, and that every frame goes back.
#![no_std]
#![no_main]

use abi::MapFlags;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use libos::exception::{self, Action, ExceptionFrame};
use libos::{println, sys, Error, Handle};

libos::entry!(main);

const PAGE: u64 = 4096;
const STACK_PAGES: u64 = 256;
/// The region: `STACK_PAGES` pages; the stack starts at its top.
const STACK_BASE: u64 = 0x0000_2400_0000_0000;
const STACK_TOP: u64 = STACK_BASE + STACK_PAGES * PAGE;
/// Depth of the recursion and bytes each level keeps on the stack.
const DEPTH: u64 = 64;
const FRAME_BYTES: usize = 2048;

/// The frames the handler mapped (handles) and where, in order.
static FRAMES: [AtomicU64; STACK_PAGES as usize] =
    [const { AtomicU64::new(0) }; STACK_PAGES as usize];
static PAGES: [AtomicU64; STACK_PAGES as usize] =
    [const { AtomicU64::new(0) }; STACK_PAGES as usize];
static USED: AtomicU64 = AtomicU64::new(0);

fn handler(f: &mut ExceptionFrame) -> Action {
    let page = f.cr2 & !(PAGE - 1);
    // A not-present fault (error bit 0 clear) inside the region.
    if f.vector != 14 || f.error & 1 != 0 || !(STACK_BASE..STACK_TOP).contains(&page) {
        return Action::Kill;
    }
    let used = USED.load(Relaxed);
    let Ok(frame) = sys::frame_alloc() else {
        return Action::Kill;
    };
    if sys::map(frame, page, MapFlags::WRITE).is_err() {
        return Action::Kill;
    }
    FRAMES[used as usize].store(frame.raw(), Relaxed);
    PAGES[used as usize].store(page, Relaxed);
    USED.store(used + 1, Relaxed);
    Action::Resume
}

/// Keeps `FRAME_BYTES` on the stack per level: sum of `n*k + k` over levels.
#[inline(never)]
fn deep(n: u64) -> u64 {
    let mut local = [0u8; FRAME_BYTES];
    for (k, b) in local.iter_mut().enumerate() {
        *b = (n as usize + k) as u8;
    }
    let local = core::hint::black_box(local);
    let here: u64 = local.iter().map(|&b| u64::from(b)).sum();
    if n == 0 {
        here
    } else {
        here + deep(n - 1)
    }
}

extern "C" fn on_new_stack() -> u64 {
    deep(DEPTH)
}

/// The same sum, computed without the stack.
fn expected() -> u64 {
    (0..=DEPTH)
        .map(|n| {
            (0..FRAME_BYTES)
                .map(|k| u64::from((n as usize + k) as u8))
                .sum::<u64>()
        })
        .sum()
}

fn main() -> Result<(), Error> {
    let before = sys::frame_stats().held_by_caller;
    exception::register(handler)?;
    let sum: u64;
    // SAFETY: switches rsp to the top of the reserved region (16-aligned,
    // nothing there yet: the handler maps each page on first touch), calls
    // a C-ABI function there and switches back; r12 (callee-saved) keeps
    // our own rsp across the call.
    unsafe {
        core::arch::asm!(
            "mov r12, rsp",
            "mov rsp, {top}",
            "call {f}",
            "mov rsp, r12",
            top = in(reg) STACK_TOP,
            f = sym on_new_stack,
            out("r12") _,
            out("rax") sum,
            clobber_abi("C"),
        );
    }
    let used = USED.load(Relaxed);
    let held = sys::frame_stats().held_by_caller - before;
    exception::unregister()?;
    println!(
        "growstack: {used} pages mapped on fault for {} KiB of frames ({STACK_PAGES} pages reserved)",
        DEPTH * FRAME_BYTES as u64 / 1024
    );
    let line =
        |what: &str, ok: bool| println!("growstack: {what}: {}", if ok { "ok" } else { "FAILED" });
    let sum_ok = sum == expected();
    let grew = used > DEPTH * FRAME_BYTES as u64 / PAGE && used < STACK_PAGES / 2;
    line("the recursion's result is right", sum_ok);
    line(
        "the stack grew page by page, a fraction of the region",
        grew,
    );
    line("one frame per page reached", held == used);
    for i in 0..used {
        // SAFETY: nothing runs on the region any more.
        unsafe {
            sys::unmap(PAGES[i as usize].load(Relaxed))?;
            sys::frame_free(Handle::from_raw(FRAMES[i as usize].load(Relaxed)))?;
        }
    }
    let back = sys::frame_stats().held_by_caller == before;
    line("every frame given back", back);
    if sum_ok && grew && held == used && back {
        println!("growstack: ok");
        Ok(())
    } else {
        Err(Error::InvalidArgument)
    }
}
