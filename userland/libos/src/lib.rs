//! libos: the library OS every exo program links.
//!
//! exo's kernel only hands out frames as capabilities and checks their use;
//! everything a program expects from an "OS" lives here, in user space,
//! as ordinary library code the program could replace:
//!
//! - [`sys`]: one wrapper per system call, returning `Result<_, Error>`
//!   ([`Error`] keeps every code the kernel returns, even one this ABI
//!   does not define: [`Error::Unknown`]);
//! - [`entry!`]: the `_start` that runs `main` and exits with its result;
//! - [`print!`]/[`println!`]: the kernel console (`debug_write`);
//! - a panic handler that prints the panic and exits with
//!   [`abi::exit_code::PANIC`] (feature `panic-handler`);
//! - a global heap (`alloc` works) that maps frames on demand and gives
//!   a large allocation's frames back when it is freed ([`heap`], feature
//!   `heap`);
//! - owned RAM frames and mappings ([`Frame`], [`Mapping`]) and, as types
//!   of their own, device memory ([`DeviceFrame`], [`DeviceRegion`]) and
//!   DMA buffers ([`DmaBuffer`]), freed and unmapped on drop.
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! use libos::{println, Frame, Mapping, MapFlags};
//!
//! libos::entry!(main);
//!
//! fn main() -> Result<(), libos::Error> {
//!     let mut frame = Frame::alloc()?;
//!     let mut page = Mapping::new(&mut frame, MapFlags::WRITE)?;
//!     page.as_mut_slice()[0] = 42;
//!     println!("hello from pid {}", libos::sys::getpid());
//!     Ok(())
//! }
//! ```
//!
//! # Features: what a program can bring itself
//!
//! The parts a program may want to replace are cargo features, all on by
//! default; depend on libos with `default-features = false` and list the
//! ones you keep:
//!
//! - `panic-handler`: libos's `#[panic_handler]`. Off, the program
//!   defines its own (with it on, a second one is a duplicate lang item).
//! - `heap`: libos's `#[global_allocator]` (implies `alloc`). Off, a
//!   program that allocates defines its own.
//! - `alloc`: libos's parts that allocate ([`DeviceRegion`]). Without it
//!   libos does not link the `alloc` crate, so a program that never
//!   allocates needs no allocator at all.
//!
//! # The address ranges libos takes
//!
//! libos picks virtual addresses in two fixed areas of the lower half;
//! a program that maps pages itself ([`Mapping::new_at`], [`sys::map`])
//! keeps clear of them:
//!
//! - the heap: from `heap::HEAP_BASE` = `0x1000_0000_0000` up to
//!   [`mem::MAP_AREA_BASE`], grown upwards as needed (only with `heap`);
//! - [`Mapping::new`] and the device and DMA types: from
//!   [`mem::MAP_AREA_BASE`] = `0x2000_0000_0000` to [`mem::MAP_AREA_LIMIT`]
//!   = `0x3000_0000_0000`, each mapping followed by an unmapped guard
//!   page, never reused.
//!
//! The kernel puts the program's segments where its ELF says (the
//! linker's default is near `0x20_0000`) and its stack below
//! [`abi::USER_STACK_TOP`]; everything else below `abi::USER_MAP_TOP`
//! is the program's.
//!
//! Principles: safe wrappers wherever the kernel's checks make a call
//! harmless; `unsafe` exactly where a call can pull memory from under live
//! references (see [`sys`]); slices only over RAM that nothing else
//! writes (device registers and DMA buffers get volatile accessors); no
//! policy the kernel does not need.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod demand;
pub mod device;
pub mod exception;
#[cfg(feature = "heap")]
pub mod heap;
pub mod ipc;
pub mod mem;
pub mod print;
pub mod sys;

pub use abi;
pub use abi::raw;
pub use abi::{CapInfo, CapKindCode, FrameStats, Handle, MapFlags, Rights, SysInfo, PAGE_SIZE};
#[cfg(feature = "alloc")]
pub use device::DeviceRegion;
pub use device::{DeviceFrame, DmaBuffer};
pub use mem::{Frame, Mapping};

/// A system call's error, as every libos call returns it: each code the
/// ABI defines ([`abi::Error`]) by name, and [`Error::Unknown`]`(code)`
/// for one it does not (a newer kernel's), so no code is lost or mistaken
/// for another. Decode a raw `rax` with [`Error::check`]; print it with
/// `Display` (the name, or `Unknown(code)`). It is [`abi::SysError`], the
/// open counterpart of the kernel's closed [`abi::Error`], generated from
/// the same list.
pub use abi::SysError as Error;

/// Defines the program's entry point: `_start` calls `$main`, a
/// `fn() -> Result<(), E>` for any error type `E` that implements
/// [`core::fmt::Display`]: [`Error`] (a failed system call), the
/// program's own error type, or a `&'static str`. `Ok` exits with 0;
/// `Err(e)` prints `error: {e}` and exits with 1.
///
/// The kernel enters `_start` with the stack aligned as after a `call`,
/// the pid in `rdi` (also available from [`sys::getpid`]) and the program's
/// argument string in `rsi`/`rdx` (see [`args`]).
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// The program's entry point (see `libos::entry!`). Not `pub`:
        /// `#[no_mangle]` already exports it, and nothing should call it.
        #[no_mangle]
        extern "C" fn _start(pid: u64, args: *const u8, args_len: usize) -> ! {
            let main: fn() -> ::core::result::Result<(), _> = $main;
            // SAFETY: these are the registers the kernel started us with.
            unsafe { $crate::run(main, pid, args, args_len) }
        }
    };
}

static ARGS: spin::Once<&'static str> = spin::Once::new();

/// The argument string the program was started with (`cargo xtask run
/// --args NAME=...`; empty if none, or if it is not UTF-8).
pub fn args() -> &'static str {
    ARGS.get().copied().unwrap_or("")
}

/// Runs `main` and exits with its result (what [`entry!`] expands to).
///
/// # Safety
/// `args` and `len` must be what the kernel passed to `_start` (`rsi`,
/// `rdx`): null/0, or `len` bytes that stay untouched for the program's
/// life. Call it once, from `_start`.
#[doc(hidden)]
pub unsafe fn run<E: core::fmt::Display>(
    main: fn() -> Result<(), E>,
    _pid: u64,
    args: *const u8,
    len: usize,
) -> ! {
    let text = if args.is_null() || len == 0 {
        ""
    } else {
        // SAFETY: the kernel copied `len` bytes of arguments to the top of
        // our stack, above the initial stack pointer: nothing overwrites
        // them, and they live as long as the program.
        let bytes = unsafe { core::slice::from_raw_parts(args, len) };
        core::str::from_utf8(bytes).unwrap_or("")
    };
    ARGS.call_once(|| text);
    match main() {
        Ok(()) => sys::exit(abi::exit_code::SUCCESS),
        Err(e) => {
            println!("error: {e}");
            sys::exit(1)
        }
    }
}

/// Prints the panic and exits with [`abi::exit_code::PANIC`] (feature
/// `panic-handler`).
#[cfg(feature = "panic-handler")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("panic: {info}");
    sys::exit(abi::exit_code::PANIC)
}
