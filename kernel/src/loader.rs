//! The ELF loader's kernel half: a validated load plan
//! (`exo_core::elf::validate`) copied into fresh private frames of a new
//! process, its stack and argument string laid out, its first registers
//! set. Everything it takes is accounted by the object model; on any
//! failure it is all given back.
use crate::arch::gdt::UserSegments;
use crate::arch::paging::AddressSpace;
use crate::arch::syscall::{USER_CS, USER_SS};
use crate::arch::trap::TrapFrame;
use crate::memory::{self, PAGE};
use crate::process::{Kernel, Process};
use abi::{MAX_ARGS, USER_STACK_PAGES, USER_STACK_TOP};
use alloc::string::String;
use exo_core::object::AddressSpace as _;
use exo_core::object::PageFlags;

/// The page just below every program's stack, which the loader leaves
/// unmapped: a page fault in it is (almost surely) a stack overflow.
pub const STACK_GUARD: core::ops::Range<u64> =
    USER_STACK_TOP - (USER_STACK_PAGES + 1) * PAGE..USER_STACK_TOP - USER_STACK_PAGES * PAGE;

/// Loads a program as a new process. On error nothing is kept.
///
/// `args` (at most [`MAX_ARGS`] bytes) is copied to the top of the new
/// stack; the program starts with `rdi` = pid, `rsi` = the arguments'
/// address and `rdx` = their length (the SysV argument registers, so
/// `_start(pid, ptr, len)` receives them).
pub fn spawn(
    k: &mut Kernel,
    name: &str,
    image: &[u8],
    args: &[u8],
    driver: bool,
) -> Result<u64, String> {
    if args.len() > MAX_ARGS {
        return Err(alloc::format!("arguments longer than {MAX_ARGS} bytes"));
    }
    let plan = exo_core::elf::validate(image).map_err(|e| alloc::format!("{e}"))?;
    let too_many = || alloc::format!("more than {} processes", abi::MAX_PROCESSES);
    // Checked before the space is built: a refused `new_process` would
    // drop it, leaking its PML4.
    if !k.has_room_for_a_process() {
        return Err(too_many());
    }
    let space = AddressSpace::new().map_err(|_| String::from("out of memory"))?;
    let Some(mut proc) = k.new_process(name, space, driver) else {
        return Err(too_many());
    };
    if let Err(e) = load_segments(k, &mut proc, &plan, image) {
        let space = k.release(proc);
        crate::process::destroy_space(space);
        return Err(e);
    }
    // Arguments at the top of the stack, 16-byte aligned below them.
    let args_at = USER_STACK_TOP - (args.len() as u64).div_ceil(16) * 16;
    if !args.is_empty() {
        let (phys, _) = proc
            .space
            .translate(args_at & !(PAGE - 1))
            .expect("stack mapped");
        // SAFETY: the top stack page was just mapped to a fresh frame of
        // this process; MAX_ARGS < PAGE keeps the copy inside it.
        unsafe {
            core::ptr::copy_nonoverlapping(
                args.as_ptr(),
                memory::phys_to_virt(phys + (args_at & (PAGE - 1))),
                args.len(),
            );
        }
    }
    proc.regs.segments = UserSegments::NULL;
    proc.regs.frame = TrapFrame {
        rip: plan.entry,
        cs: USER_CS,
        rflags: 0x202,
        // As if `_start` had been called: rsp = 8 mod 16.
        rsp: args_at - 8,
        ss: USER_SS,
        rdi: proc.pid,
        rsi: if args.is_empty() { 0 } else { args_at },
        rdx: args.len() as u64,
        ..TrapFrame::default()
    };
    Ok(k.admit(proc))
}

/// Maps the program's segments and its stack into `proc`, on fresh frames.
fn load_segments(
    k: &mut Kernel,
    proc: &mut Process,
    plan: &exo_core::elf::LoadPlan,
    image: &[u8],
) -> Result<(), String> {
    for seg in &plan.segments {
        let data = seg.data(image).ok_or("segment outside the file")?;
        let flags = PageFlags {
            write: seg.writable,
            exec: seg.executable,
            uncached: false,
        };
        for page in seg.pages().step_by(PAGE as usize) {
            let phys = private_frame(k, proc)?;
            // Copy the part of the file that falls into this page.
            let file_start = seg.vaddr;
            let file_end = seg.vaddr + data.len() as u64;
            let lo = page.max(file_start);
            let hi = (page + PAGE).min(file_end);
            if lo < hi {
                let src = &data[(lo - file_start) as usize..(hi - file_start) as usize];
                // SAFETY: `phys` is a frame just allocated to this process,
                // mapped at the offset; the copy stays inside it.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        src.as_ptr(),
                        memory::phys_to_virt(phys + (lo - page)),
                        src.len(),
                    );
                }
            }
            proc.space
                .map(page, phys, flags, None)
                .map_err(|e| alloc::format!("mapping segment page {page:#x}: {e:?}"))?;
        }
    }
    let flags = PageFlags {
        write: true,
        exec: false,
        uncached: false,
    };
    for i in 1..=USER_STACK_PAGES {
        let phys = private_frame(k, proc)?;
        proc.space
            .map(USER_STACK_TOP - i * PAGE, phys, flags, None)
            .map_err(|e| alloc::format!("mapping the stack: {e:?}"))?;
    }
    Ok(())
}

fn private_frame(k: &mut Kernel, proc: &mut Process) -> Result<u64, String> {
    k.private_frame(proc)
        .map(|frame| frame * PAGE)
        .map_err(|_| String::from("out of memory"))
}
