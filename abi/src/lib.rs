//! exo's system-call ABI: the one contract between the kernel and libOSes.
//!
//! Everything a program and the kernel must agree on is defined here, once:
//! syscall numbers ([`Sysnum`]), error codes ([`Error`], decoded by
//! programs as [`SysError`], which keeps unknown codes), the opaque frame
//! capability ([`Handle`]), map flags ([`MapFlags`]), rights ([`Rights`]),
//! the frame counters ([`FrameStats`]), the per-syscall argument description
//! that the tracer and decoder share ([`Sysnum::args`]), the trace-record
//! format ([`trace`]) and the raw `syscall` stubs ([`raw`]).
//!
//! # Calling convention
//! `syscall` with `rax` = number and arguments in `rdi, rsi, rdx, r10, r8, r9`.
//! On return `rax` is 0 or an [`Error`] code and `rdx` holds the value (a
//! handle, a physical address, a pid...). `rcx` and `r11` are clobbered (the
//! CPU uses them); every other register is preserved.
//!
//! Numbers and codes are explicit discriminants and never reused: changing
//! one is an ABI break. Tests pin every value.
#![no_std]
#![deny(missing_docs)]

pub mod raw;
pub mod trace;

/// Size of a page and of a physical frame.
pub const PAGE_SIZE: u64 = 4096;

/// First address above the user half: user mappings must lie below it.
pub const USER_TOP: u64 = 0x0000_8000_0000_0000;

/// Longest process name the kernel keeps (bytes, ASCII without spaces).
pub const MAX_NAME_LEN: usize = 32;

/// Longest buffer one `debug_write` accepts.
pub const MAX_DEBUG_WRITE: u64 = 4096;

/// Declares a `#[repr(u64)]` enum with explicit values and its checked
/// conversion from the raw register value, from one list, so the two cannot
/// drift apart.
macro_rules! abi_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:expr, $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u64)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $value, )*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The stable name used in traces and documentation.
            pub const fn name(self) -> &'static str {
                match self { $( $name::$variant => $text, )* }
            }

            /// Looks a value up by its [`name`](Self::name).
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $( $text => Some($name::$variant), )* _ => None }
            }
        }

        impl TryFrom<u64> for $name {
            /// The raw value that names nothing.
            type Error = u64;
            fn try_from(raw: u64) -> Result<Self, u64> {
                match raw { $( $value => Ok($name::$variant), )* other => Err(other) }
            }
        }
    };
}

abi_enum! {
    /// System-call numbers (`rax` at `syscall`).
    pub enum Sysnum {
        /// `debug_write(ptr, len)`: write `len` bytes of user memory to the
        /// kernel console (COM1). `len <= MAX_DEBUG_WRITE`.
        DebugWrite = 0, "debug_write",
        /// `exit(code)`: end the calling process; never returns. Every frame
        /// and capability it holds goes back.
        Exit = 1, "exit",
        /// `yield()`: give the CPU to the next runnable process.
        Yield = 2, "yield",
        /// `frame_alloc() -> handle`: any free RAM frame, zeroed.
        FrameAlloc = 3, "frame_alloc",
        /// `frame_alloc_at(phys) -> handle`: the frame at physical address
        /// `phys` (page aligned). Free RAM gives a RAM capability; a hole in
        /// the memory map (device space) gives an exclusive device capability.
        FrameAllocAt = 4, "frame_alloc_at",
        /// `frame_free(handle)`: give a capability back. The frame returns to
        /// the allocator when its last holder frees it. Mappings of it made
        /// through this handle are removed first.
        FrameFree = 5, "frame_free",
        /// `frame_phys(handle) -> phys`: the physical address (what a device
        /// needs for DMA).
        FramePhys = 6, "frame_phys",
        /// `frame_alloc_contiguous(count, align, max_phys) -> handle`:
        /// `count` physically contiguous zeroed frames, the first aligned to
        /// `align` frames (a power of two), the last byte below `max_phys`
        /// (0 = no limit). For DMA buffers.
        FrameAllocContiguous = 7, "frame_alloc_contiguous",
        /// `map(handle, vaddr, flags)`: map the capability's frames at user
        /// address `vaddr` with [`MapFlags`]. Device frames are always uncached.
        Map = 8, "map",
        /// `unmap(vaddr)`: remove the mapping that starts at `vaddr`.
        Unmap = 9, "unmap",
        /// `cap_transfer(handle, pid, rights, flags)`: hand the capability
        /// to process `pid` with `rights` (a subset of the held rights). With
        /// [`TRANSFER_MOVE`] the caller's handle dies; otherwise both hold it.
        CapTransfer = 10, "cap_transfer",
        /// `cap_recv() -> handle`: take the oldest capability sent to the
        /// caller; `WouldBlock` if none is waiting.
        CapRecv = 11, "cap_recv",
        /// `process_find(name_ptr, name_len) -> pid`: a live process by name.
        ProcessFind = 12, "process_find",
        /// `frame_stats(out_ptr)`: write a [`FrameStats`] to user memory.
        FrameStats = 13, "frame_stats",
        /// `trace_ctl(on)`: switch syscall tracing on (1) or off (0).
        TraceCtl = 14, "trace_ctl",
        /// `getpid() -> pid`: the caller's process id (the cheapest call).
        GetPid = 15, "getpid",
        /// `sys_info(out_ptr)`: write a [`SysInfo`] to user memory: where
        /// the kernel's own physical pages are (an exokernel exposes names,
        /// not abstractions: a libOS may look, never touch).
        SysInfo = 16, "sys_info",
    }
}

/// Declares the error codes from one list: the closed [`Error`] (through
/// `abi_enum!`: what the kernel returns and counts, `e as u64`) and the
/// open [`SysError`] a program decodes (the same variants, plus
/// [`SysError::Unknown`] for codes the list lacks), with the conversions.
macro_rules! abi_errors {
    (
        $(#[$meta:meta])*
        pub enum Error {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal, $text:literal, )*
        }
        $(#[$ometa:meta])*
        pub enum SysError;
    ) => {
        abi_enum! {
            $(#[$meta])*
            pub enum Error {
                $( $(#[$vmeta])* $variant = $value, $text, )*
            }
        }

        $(#[$ometa])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum SysError {
            $( $(#[$vmeta])* $variant, )*
            /// A nonzero code this ABI does not define (a newer kernel's, or
            /// a value that never came from a kernel), kept as it came.
            Unknown(u64),
        }

        impl From<Error> for SysError {
            fn from(e: Error) -> SysError {
                match e { $( Error::$variant => SysError::$variant, )* }
            }
        }

        impl SysError {
            /// The code's meaning in this ABI: `None` for [`Unknown`](Self::Unknown).
            pub const fn known(self) -> Option<Error> {
                match self {
                    $( SysError::$variant => Some(Error::$variant), )*
                    SysError::Unknown(_) => None,
                }
            }

            /// The numeric code (what the kernel put in `rax`).
            pub const fn code(self) -> u64 {
                match self {
                    $( SysError::$variant => $value, )*
                    SysError::Unknown(code) => code,
                }
            }
        }
    };
}

abi_errors! {
    /// Error codes (`rax` after `syscall`; 0 means success): the closed set
    /// this ABI defines. The kernel returns and counts these; a program
    /// decodes `rax` into a [`SysError`], which also keeps codes this list
    /// lacks.
    pub enum Error {
        /// The syscall number names no syscall.
        UnknownSyscall = 1, "UnknownSyscall",
        /// The handle does not name a live capability of the caller.
        BadCapability = 2, "BadCapability",
        /// No free frame (or no contiguous run) satisfies the request, or the
        /// caller's kernel-memory quota is spent.
        OutOfMemory = 3, "OutOfMemory",
        /// The frame is allocated, claimed by another process, or reserved.
        FrameInUse = 4, "FrameInUse",
        /// The physical address is beyond the machine's physical address width.
        InvalidFrame = 5, "InvalidFrame",
        /// The capability lacks the right the operation needs, or the target
        /// is kernel-reserved memory.
        PermissionDenied = 6, "PermissionDenied",
        /// A virtual address or user buffer is outside the user half,
        /// non-canonical, unaligned or unmapped.
        InvalidAddress = 7, "InvalidAddress",
        /// An argument is malformed (bad flags, zero or huge count, bad
        /// alignment, W+X).
        InvalidArgument = 8, "InvalidArgument",
        /// Something is already mapped at that virtual address.
        AlreadyMapped = 9, "AlreadyMapped",
        /// Nothing is mapped at that virtual address.
        NotMapped = 10, "NotMapped",
        /// No live process has that id or name.
        NoSuchProcess = 11, "NoSuchProcess",
        /// Nothing to receive yet; try again later.
        WouldBlock = 12, "WouldBlock",
        /// The capability table (or the receiver's queue) is full.
        CapTableFull = 13, "CapTableFull",
    }

    /// A syscall's error as a program sees it: every [`Error`] under the
    /// same name, plus [`Unknown`](SysError::Unknown) for a code this ABI
    /// does not define, so that nothing a kernel says is lost or
    /// mistaken for another error. libos calls it `libos::Error`.
    ///
    /// Decode `rax` with [`SysError::check`] (or [`SysError::from_code`]);
    /// [`code`](SysError::code) gives the number back. Those never build
    /// `Unknown` of a defined code; a hand-made `Unknown(4)` is not equal
    /// to `FrameInUse` (compare [`code`](SysError::code)s for that).
    pub enum SysError;
}

impl SysError {
    /// Decodes a syscall's `rax`: 0 is success, any other value an error,
    /// [`Unknown`](Self::Unknown) if this ABI does not define it.
    pub fn check(rax: u64) -> Result<(), SysError> {
        match rax {
            0 => Ok(()),
            code => Err(SysError::from_code(code)),
        }
    }

    /// The error with code `code`: the [`Error`] of that value, or
    /// [`Unknown(code)`](Self::Unknown) (also for 0, which means success and
    /// names no error).
    pub fn from_code(code: u64) -> SysError {
        match Error::try_from(code) {
            Ok(e) => e.into(),
            Err(code) => SysError::Unknown(code),
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A defined error prints as its [`name`](Error::name), an unknown one as
/// `Unknown(code)`, the code in decimal.
impl core::fmt::Display for SysError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.known() {
            Some(e) => f.write_str(e.name()),
            None => write!(f, "Unknown({})", self.code()),
        }
    }
}

/// An unforgeable frame capability, as user space sees it: an opaque number.
///
/// It only *names* an entry of the caller's capability table in the kernel;
/// the kernel honours it only if that entry is live and its generation (and
/// the per-process scramble) match. Holding one proves nothing by itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct Handle(u64);

impl Handle {
    /// Wraps a raw register value (for instance one returned by `frame_alloc`).
    pub const fn from_raw(raw: u64) -> Self {
        Handle(raw)
    }
    /// The raw register value.
    pub const fn raw(self) -> u64 {
        self.0
    }
}

impl core::fmt::Debug for Handle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Handle({:#x})", self.0)
    }
}

/// Declares a bit-flag newtype with named bits and a checked constructor.
macro_rules! abi_flags {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* const $flag:ident = $value:expr, $text:literal; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(u64);

        impl $name {
            $( $(#[$fmeta])* pub const $flag: $name = $name($value); )*
            /// No bits.
            pub const NONE: $name = $name(0);
            /// Every defined bit.
            pub const ALL: $name = $name(0 $(| $value)*);
            /// Named bits, for printing.
            pub const NAMES: &'static [($name, &'static str)] = &[$(($name::$flag, $text)),*];

            /// The flags in `raw`, or `None` if it has undefined bits.
            pub const fn from_bits(raw: u64) -> Option<Self> {
                if raw & !Self::ALL.0 == 0 { Some($name(raw)) } else { None }
            }
            /// The raw bits.
            pub const fn bits(self) -> u64 {
                self.0
            }
            /// Whether every bit of `other` is set in `self`.
            pub const fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }
            /// Union.
            pub const fn union(self, other: $name) -> $name {
                $name(self.0 | other.0)
            }
            /// Intersection.
            pub const fn intersect(self, other: $name) -> $name {
                $name(self.0 & other.0)
            }
        }

        impl core::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, rhs: $name) -> $name {
                self.union(rhs)
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write_flag_names(f, self.0, Self::NAMES.iter().map(|(v, n)| (v.0, *n)))
            }
        }
    };
}

/// Writes `A|B|C` for the set bits (or `0`), plus any unnamed bits in hex.
pub fn write_flag_names<'a>(
    out: &mut dyn core::fmt::Write,
    bits: u64,
    names: impl Iterator<Item = (u64, &'a str)>,
) -> core::fmt::Result {
    let mut rest = bits;
    let mut first = true;
    for (value, name) in names {
        if bits & value == value && value != 0 {
            if !first {
                out.write_char('|')?;
            }
            out.write_str(name)?;
            first = false;
            rest &= !value;
        }
    }
    if rest != 0 {
        if !first {
            out.write_char('|')?;
        }
        write!(out, "{rest:#x}")?;
        first = false;
    }
    if first {
        out.write_char('0')?;
    }
    Ok(())
}

abi_flags! {
    /// How `map` maps a frame. Readable is implied; `WRITE|EXEC` is refused.
    pub struct MapFlags {
        /// Writable.
        const WRITE = 1 << 0, "WRITE";
        /// Executable.
        const EXEC = 1 << 1, "EXEC";
        /// Uncached (forced on for device frames).
        const UNCACHED = 1 << 2, "UNCACHED";
    }
}

abi_flags! {
    /// What a capability allows. Transfers may only keep or drop rights.
    pub struct Rights {
        /// Map readable.
        const READ = 1 << 0, "READ";
        /// Map writable.
        const WRITE = 1 << 1, "WRITE";
        /// Map at all (and `frame_phys`).
        const MAP = 1 << 2, "MAP";
        /// Hand on to another process.
        const TRANSFER = 1 << 3, "TRANSFER";
    }
}

/// `cap_transfer` flag: the caller gives its own handle up.
pub const TRANSFER_MOVE: u64 = 1;

/// The kernel's frame counters, written by `frame_stats`.
///
/// Conservation: `free + reserved + kernel + held_by_all == total` always.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct FrameStats {
    /// RAM frames the allocator manages (usable + reserved).
    pub total: u64,
    /// Frames free to allocate.
    pub free: u64,
    /// Frames reserved by the memory map (kernel image, bootloader, ...).
    pub reserved: u64,
    /// Frames the kernel allocated for itself (heap, page tables, stacks).
    pub kernel: u64,
    /// RAM frames held through capabilities by all processes.
    pub held_by_all: u64,
    /// RAM frames held through capabilities by the caller.
    pub held_by_caller: u64,
    /// Device frames (not RAM) claimed by the caller.
    pub device_by_caller: u64,
}

/// Machine facts, written by `sys_info`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SysInfo {
    /// Physical address width of the CPU (bits).
    pub phys_addr_bits: u64,
    /// A physical page of the kernel's code (reserved: never allocatable).
    pub kernel_image_phys: u64,
    /// The kernel's boot page-table root (reserved).
    pub kernel_pml4_phys: u64,
    /// Where the boot ramdisk lies in physical memory (reserved).
    pub ramdisk_phys: u64,
    /// Timer interrupts per second.
    pub tick_hz: u64,
}

/// How an argument is decoded and printed in traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// A capability handle (hex).
    Handle,
    /// A physical address (hex).
    Phys,
    /// A virtual address or user pointer (hex).
    Addr,
    /// A byte count or number (decimal).
    Num,
    /// [`MapFlags`] by name.
    MapFlags,
    /// [`Rights`] by name.
    Rights,
    /// A process id (decimal).
    Pid,
    /// Transfer flags (`MOVE`).
    TransferFlags,
}

/// What a successful call returns in `rdx`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetKind {
    /// Nothing (printed as `0`).
    None,
    /// A handle.
    Handle,
    /// A physical address.
    Phys,
    /// A process id.
    Pid,
}

impl Sysnum {
    /// The named arguments of this syscall, in register order.
    pub const fn args(self) -> &'static [(&'static str, ArgKind)] {
        use ArgKind::*;
        match self {
            Sysnum::DebugWrite => &[("ptr", Addr), ("len", Num)],
            Sysnum::Exit => &[("code", Num)],
            Sysnum::Yield | Sysnum::CapRecv | Sysnum::GetPid | Sysnum::FrameAlloc => &[],
            Sysnum::FrameAllocAt => &[("phys", Phys)],
            Sysnum::FrameFree | Sysnum::FramePhys => &[("cap", Handle)],
            Sysnum::FrameAllocContiguous => &[("count", Num), ("align", Num), ("max_phys", Phys)],
            Sysnum::Map => &[("cap", Handle), ("vaddr", Addr), ("flags", MapFlags)],
            Sysnum::Unmap => &[("vaddr", Addr)],
            Sysnum::CapTransfer => &[
                ("cap", Handle),
                ("pid", Pid),
                ("rights", Rights),
                ("flags", TransferFlags),
            ],
            Sysnum::ProcessFind => &[("name", Addr), ("len", Num)],
            Sysnum::FrameStats | Sysnum::SysInfo => &[("out", Addr)],
            Sysnum::TraceCtl => &[("on", Num)],
        }
    }

    /// What the call returns in `rdx` on success.
    pub const fn ret(self) -> RetKind {
        match self {
            Sysnum::FrameAlloc
            | Sysnum::FrameAllocAt
            | Sysnum::FrameAllocContiguous
            | Sysnum::CapRecv => RetKind::Handle,
            Sysnum::FramePhys => RetKind::Phys,
            Sysnum::ProcessFind | Sysnum::GetPid => RetKind::Pid,
            _ => RetKind::None,
        }
    }
}

/// Exit codes a program passes to `exit` by convention.
pub mod exit_code {
    /// The program did what it set out to do.
    pub const SUCCESS: u64 = 0;
    /// The program's panic handler ran.
    pub const PANIC: u64 = 101;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysnum_values_are_pinned() {
        let expected: &[(u64, &str)] = &[
            (0, "debug_write"),
            (1, "exit"),
            (2, "yield"),
            (3, "frame_alloc"),
            (4, "frame_alloc_at"),
            (5, "frame_free"),
            (6, "frame_phys"),
            (7, "frame_alloc_contiguous"),
            (8, "map"),
            (9, "unmap"),
            (10, "cap_transfer"),
            (11, "cap_recv"),
            (12, "process_find"),
            (13, "frame_stats"),
            (14, "trace_ctl"),
            (15, "getpid"),
            (16, "sys_info"),
        ];
        assert_eq!(Sysnum::ALL.len(), expected.len());
        for (&s, &(value, name)) in Sysnum::ALL.iter().zip(expected) {
            assert_eq!(s as u64, value);
            assert_eq!(s.name(), name);
            assert_eq!(Sysnum::try_from(value), Ok(s));
            assert_eq!(Sysnum::from_name(name), Some(s));
            assert!(s.args().len() <= 6);
        }
        assert_eq!(Sysnum::try_from(17), Err(17));
        assert_eq!(Sysnum::try_from(u64::MAX), Err(u64::MAX));
    }

    #[test]
    fn error_values_are_pinned() {
        let names = [
            "UnknownSyscall",
            "BadCapability",
            "OutOfMemory",
            "FrameInUse",
            "InvalidFrame",
            "PermissionDenied",
            "InvalidAddress",
            "InvalidArgument",
            "AlreadyMapped",
            "NotMapped",
            "NoSuchProcess",
            "WouldBlock",
            "CapTableFull",
        ];
        assert_eq!(Error::ALL.len(), names.len());
        for (i, name) in names.iter().enumerate() {
            let code = i as u64 + 1;
            let e = Error::try_from(code).unwrap();
            assert_eq!(e as u64, code);
            assert_eq!(e.name(), *name);
            assert_eq!(Error::from_name(name), Some(e));
            assert_eq!(SysError::check(code), Err(SysError::from(e)));
        }
        assert_eq!(Error::try_from(0), Err(0));
        assert_eq!(Error::try_from(14), Err(14));
        assert_eq!(SysError::check(0), Ok(()));
    }

    #[test]
    fn sys_error_mirrors_every_error() {
        extern crate std;
        use std::string::ToString;
        for &e in Error::ALL {
            let s = SysError::from(e);
            assert_eq!(s.known(), Some(e));
            assert_eq!(s.code(), e as u64);
            assert_eq!(SysError::from_code(e as u64), s);
            assert_eq!(SysError::check(e as u64), Err(s));
            assert_eq!(s.to_string(), e.name());
            assert_eq!(std::format!("{s:?}"), e.name());
        }
    }

    #[test]
    fn sys_error_keeps_unknown_codes() {
        extern crate std;
        use std::string::ToString;
        for code in [14, 15, 100, 1 << 32, u64::MAX] {
            let s = SysError::from_code(code);
            assert_eq!(s, SysError::Unknown(code));
            assert_eq!(SysError::check(code), Err(SysError::Unknown(code)));
            assert_eq!(s.code(), code);
            assert_eq!(s.known(), None);
            assert_ne!(s, SysError::InvalidArgument);
            assert_eq!(s.to_string(), std::format!("Unknown({code})"));
        }
        // 0 is success, never an error; as a code it names nothing.
        assert_eq!(SysError::from_code(0), SysError::Unknown(0));
        // A hand-made `Unknown` of a defined code is another value.
        assert_ne!(SysError::Unknown(4), SysError::FrameInUse);
        assert_eq!(SysError::Unknown(4).code(), SysError::FrameInUse.code());
    }

    #[test]
    fn flags_encode_and_reject_unknown_bits() {
        assert_eq!(MapFlags::WRITE.bits(), 1);
        assert_eq!(MapFlags::EXEC.bits(), 2);
        assert_eq!(MapFlags::UNCACHED.bits(), 4);
        assert_eq!(MapFlags::ALL.bits(), 7);
        assert_eq!(MapFlags::from_bits(8), None);
        assert_eq!(
            MapFlags::from_bits(5),
            Some(MapFlags::WRITE | MapFlags::UNCACHED)
        );
        assert_eq!(Rights::ALL.bits(), 0xf);
        assert!(Rights::ALL.contains(Rights::READ | Rights::MAP));
        assert!(!Rights::READ.contains(Rights::WRITE));
        assert_eq!(Rights::from_bits(0x10), None);
    }

    #[test]
    fn flags_print_by_name() {
        extern crate std;
        use std::format;
        assert_eq!(
            format!("{:?}", MapFlags::WRITE | MapFlags::UNCACHED),
            "WRITE|UNCACHED"
        );
        assert_eq!(format!("{:?}", MapFlags::NONE), "0");
        assert_eq!(format!("{:?}", Rights::ALL), "READ|WRITE|MAP|TRANSFER");
    }

    #[test]
    fn handle_round_trips() {
        let h = Handle::from_raw(0xdead_beef);
        assert_eq!(h.raw(), 0xdead_beef);
    }

    #[test]
    fn frame_stats_layout_is_stable() {
        assert_eq!(core::mem::size_of::<FrameStats>(), 7 * 8);
    }
}
