//! exo's system-call ABI: the one contract between the kernel and libOSes.
//!
//! Everything a program and the kernel must agree on is defined here, once:
//! the syscall table (one row per call: [`Sysnum`], the typed decoders
//! [`Call`], the argument description traces use, [`Sysnum::args`], and
//! the raw stubs in [`raw`]), error codes ([`Error`], decoded by programs
//! as [`SysError`], which keeps unknown codes), the opaque frame
//! capability ([`Handle`]), map flags ([`MapFlags`]), rights ([`Rights`]),
//! the frame counters ([`FrameStats`]), what a capability is ([`CapInfo`]),
//! the address-space layout and
//! per-process bounds every program and the kernel share ([`USER_MIN`],
//! [`bounds`], ...), and the trace-record format ([`trace`]).
//!
//! `unsafe` is denied in this crate except in [`raw`], the stubs around the
//! `syscall` instruction.
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
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod raw;
mod table;
pub mod trace;

pub use table::{
    Arg, Call, LocalCall, SwitchingCall, Sysnum, MAX_LOCAL_ARGS, SWITCHING, SWITCHING_MASK,
};

/// Size of a page and of a physical frame.
pub const PAGE_SIZE: u64 = 4096;

/// First address above the user half: user mappings must lie below it.
pub const USER_TOP: u64 = 0x0000_8000_0000_0000;

/// Longest process name the kernel keeps (bytes, ASCII without spaces).
pub const MAX_NAME_LEN: usize = 32;

/// Longest buffer one `debug_write` accepts.
pub const MAX_DEBUG_WRITE: u64 = 4096;

/// Lowest user address a program may be loaded at or map at (the pages
/// below stay unmapped, so a null pointer always faults).
pub const USER_MIN: u64 = 0x1_0000;

/// End of the range `map` accepts (exclusive): the lower half minus its
/// last page, so that no `syscall` can sit at the very top and return to a
/// non-canonical address.
pub const USER_MAP_TOP: u64 = USER_TOP - PAGE_SIZE;

/// Top of every program's stack (exclusive).
pub const USER_STACK_TOP: u64 = 0x0000_7fff_ffff_0000;

/// Pages of every program's stack, below [`USER_STACK_TOP`]; the page
/// below them stays unmapped (the guard).
pub const USER_STACK_PAGES: u64 = 16;

/// Longest argument string a program can be given.
pub const MAX_ARGS: usize = 1024;

/// Largest `frame_alloc_contiguous` request (frames): 16 MiB.
pub const MAX_CONTIGUOUS_FRAMES: u64 = 4096;

/// Per-process bounds: what one process may hold at once. Each costs
/// kernel heap, so together with [`MAX_PROCESSES`] they bound it.
pub mod bounds {
    /// Capabilities in one process's table.
    pub const CAPS: usize = 1024;
    /// `map` mappings (each names a record by an 11-bit page-table tag).
    pub const MAPPINGS: usize = 2048;
    /// Page-table frames of one address space.
    pub const PAGE_TABLES: u64 = 1024;
    /// Messages waiting in one endpoint's queue.
    pub const QUEUE: usize = 16;
    /// Endpoints one process may own (each queue costs kernel heap: with
    /// every queue full, 64 processes at every bound must fit the kernel's
    /// 16 MiB heap; 64 endpoints each did not, `test-bounds` showed).
    pub const ENDPOINTS: usize = 16;
    /// Interrupt vectors bound (`irq_bind`) through one device page at
    /// once: a driver cannot take every vector.
    pub const IRQS_PER_DEVICE: usize = 8;
    /// Pages one `protect` call may change (the kernel walks each twice
    /// with interrupts off).
    pub const PROTECT_PAGES: u64 = 4096;
    /// Pages one `page_bits` call reports (two bits each in one register).
    pub const PAGE_BITS_PAGES: u64 = 32;
    /// Handles one bulk call takes or gives (`frame_alloc_many`'s frames,
    /// `map_many`'s and `free_many`'s handles): 8 KiB of handle array.
    pub const BULK: usize = 1024;
    /// Pages one `map_many` or `unmap_many` call maps or unmaps (16 MiB).
    pub const BULK_PAGES: u64 = 4096;
    /// `iomap` mappings one process holds at once, over all its devices
    /// (each costs a record, and the device's page tables a few frames).
    pub const IOMAPS: usize = 256;
}

/// In the second word of an `iofault_bind` message (below the bit: the
/// IOMMU's fault reason): the blocked transfer was a write to memory.
pub const IOFAULT_WRITE: u64 = 1 << 8;

/// The lowest I/O virtual address `iomap` takes: page 0 stays unmapped in
/// every device's DMA address space, so a device given a null address
/// faults instead of reaching memory.
pub const IOVA_MIN: u64 = PAGE_SIZE;
/// The end of the I/O virtual addresses `iomap` takes (39 bits: what every
/// VT-d unit translates with three-level tables).
pub const IOVA_TOP: u64 = 1 << 39;

/// `send`/`call`/`reply` flag: the capability is copied (both hold it),
/// not moved.
pub const SEND_COPY: u64 = 1 << 0;
/// `send` flag: on a full queue, wait for room instead of `WouldBlock`.
pub const SEND_BLOCK: u64 = 1 << 1;
/// `send`/`call`/`reply` flag: the capability travels with only the
/// [`Rights`] in bits 8..16 of the flags (see [`send_rights`]): a
/// non-empty subset of the held ones (`InvalidArgument` if empty or
/// without a capability, `PermissionDenied` if not held).
pub const SEND_RIGHTS: u64 = 1 << 2;
/// Where [`SEND_RIGHTS`] finds the rights in the flags.
pub const SEND_RIGHTS_SHIFT: u32 = 8;
/// Every flag bit `send`, `call` and `reply` may carry about the
/// capability ([`SEND_COPY`], [`SEND_RIGHTS`] and its rights).
pub const SEND_CAP_FLAGS: u64 = SEND_COPY | SEND_RIGHTS | (Rights::ALL.bits() << SEND_RIGHTS_SHIFT);

/// The flags that send a capability with only `rights` ([`SEND_RIGHTS`]).
pub const fn send_rights(rights: Rights) -> u64 {
    SEND_RIGHTS | (rights.bits() << SEND_RIGHTS_SHIFT)
}

/// Syscall numbers that named a call once and never will again: they
/// answer `UnknownSyscall`. 10 and 11 were `cap_transfer` and `cap_recv`,
/// the open inbox (any process could queue capabilities into any other's
/// without consent or accounting); a capability now travels in a message
/// on an endpoint.
pub const RETIRED: &[u64] = &[10, 11];
/// In a received message's flags: it came from `call`, and the receiver
/// owes the caller a `reply`.
pub const RECV_CALL: u64 = 1 << 0;
/// Where a device's MSI goes to reach the (one) CPU's local APIC
/// (destination 0); the data is the vector `irq_bind` gave.
pub const MSI_ADDRESS: u64 = 0xfee0_0000;
/// In a received message's flags: the kernel made it for an interrupt
/// bound with `irq_bind` (words: the vector, how many interrupts); no
/// program can send one.
pub const RECV_IRQ: u64 = 1 << 1;
/// `recv` timeout that never expires.
pub const FOREVER: u64 = u64::MAX;

/// Processes the kernel runs at once.
pub const MAX_PROCESSES: usize = 64;

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
        /// The frame is allocated or claimed by another process (a reserved
        /// frame is `PermissionDenied`).
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
        /// The machine cannot do it: `iomap`/`iounmap` on a device whose DMA
        /// no IOMMU translates (no DMAR, translation off, or not a PCI
        /// function's configuration page).
        NotSupported = 14, "NotSupported",
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
            /// Whether no bit is set.
            pub const fn is_empty(self) -> bool {
                self.0 == 0
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
    /// What `iomap` lets a device do with the frames it maps. At least one
    /// is needed; each needs the capability's right of the same name.
    pub struct IoFlags {
        /// The device may read them (DMA from memory: a transmit buffer).
        const READ = 1 << 0, "READ";
        /// The device may write them (DMA to memory: a receive buffer).
        const WRITE = 1 << 1, "WRITE";
    }
}

abi_flags! {
    /// What a capability allows. Transfers may only keep or drop rights.
    ///
    /// W^X holds per frame, in every process at once: no capability has
    /// both `WRITE` and `EXEC`, and all capabilities to the same frames
    /// agree on which of the two they may have. Allocation grants
    /// [`Rights::WRITABLE`]; `frame_seal` turns the only capability to some
    /// frames, while nothing maps it, into [`Rights::EXECUTABLE`] (WRITE
    /// gone, EXEC gained), for good. So a frame mapped writable anywhere
    /// is mapped executable nowhere, and the other way round.
    pub struct Rights {
        /// Read: with `MAP`, needed for any mapping (every mapping is
        /// readable).
        const READ = 1 << 0, "READ";
        /// Map writable.
        const WRITE = 1 << 1, "WRITE";
        /// Map at all (with `READ`), and learn the physical address
        /// (`frame_phys`, `cap_info`).
        const MAP = 1 << 2, "MAP";
        /// Hand on to another process (in a message: `send`, `call`,
        /// `reply`).
        const TRANSFER = 1 << 3, "TRANSFER";
        /// Map executable (only after `frame_seal`: never with `WRITE`).
        const EXEC = 1 << 4, "EXEC";
    }
}

impl Rights {
    /// What allocation grants (and a device claim): everything but `EXEC`.
    pub const WRITABLE: Rights = Rights(Rights::ALL.0 & !Rights::EXEC.0);
    /// What `frame_seal` leaves: everything but `WRITE`.
    pub const EXECUTABLE: Rights = Rights(Rights::ALL.0 & !Rights::WRITE.0);
}

/// The kernel's frame counters, written by `frame_stats`.
///
/// Conservation: `free + reserved + kernel + held_by_all == total` always.
/// `free` counts every frame a program can get, `zeroed` of them included.
/// `IntoBytes` proves at compile time that it has no padding, so the kernel
/// copies it out as bytes without `unsafe`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, zerocopy::IntoBytes, zerocopy::Immutable)]
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
    /// Of `free`, frames the kernel has zeroed already (its pool of
    /// pre-zeroed frames: taken from the allocator, held by nobody).
    pub zeroed: u64,
    /// RAM frames the caller sent (endpoint queues) that nobody has received yet: still charged to it, and
    /// back when it ends first.
    pub queued_by_caller: u64,
}

/// The save area of an exception delivered to a library OS (see
/// `exc_handler`), and the context `resume` loads: the interrupted
/// registers in the kernel's trap-frame order (the kernel const-asserts
/// that its `TrapFrame` has these offsets), then the page-fault address and
/// the pending word. No padding (see [`FrameStats`]); `FromBytes` lets the kernel read one
/// back from user memory without `unsafe`.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    zerocopy::IntoBytes,
    zerocopy::FromBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
#[repr(C)]
#[allow(missing_docs)]
pub struct ExceptionFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// The CPU exception's vector (one of [`EXCEPTION_VECTORS`]).
    pub vector: u64,
    /// The CPU's error code (0 for vectors that push none).
    pub error: u64,
    /// Where it happened (for a trap such as #BP, the next instruction).
    pub rip: u64,
    /// The user code selector (written for information; `resume` ignores it).
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    /// The user stack selector (as `cs`).
    pub ss: u64,
    /// The faulting address of a page fault (vector 14), else 0.
    pub cr2: u64,
    /// Non-zero while a delivery is pending: the kernel sets it when it
    /// writes the frame and enters the handler; the handler clears it
    /// when it resumes (`resume` does, and a library OS that resumes in
    /// ring 3 by itself clears it first). A fault while it is set is a
    /// nested fault and ends the process.
    pub pending: u64,
}

/// Byte offsets of [`ExceptionFrame`]'s fields (for assembly: the
/// kernel's delivery fast path, a library OS's ring-3 resume).
#[allow(missing_docs)]
pub mod exc_offsets {
    use super::ExceptionFrame as F;
    use core::mem::offset_of;
    pub const R15: usize = offset_of!(F, r15);
    pub const R14: usize = offset_of!(F, r14);
    pub const R13: usize = offset_of!(F, r13);
    pub const R12: usize = offset_of!(F, r12);
    pub const R11: usize = offset_of!(F, r11);
    pub const R10: usize = offset_of!(F, r10);
    pub const R9: usize = offset_of!(F, r9);
    pub const R8: usize = offset_of!(F, r8);
    pub const RBP: usize = offset_of!(F, rbp);
    pub const RDI: usize = offset_of!(F, rdi);
    pub const RSI: usize = offset_of!(F, rsi);
    pub const RDX: usize = offset_of!(F, rdx);
    pub const RCX: usize = offset_of!(F, rcx);
    pub const RBX: usize = offset_of!(F, rbx);
    pub const RAX: usize = offset_of!(F, rax);
    pub const VECTOR: usize = offset_of!(F, vector);
    pub const ERROR: usize = offset_of!(F, error);
    pub const RIP: usize = offset_of!(F, rip);
    pub const CS: usize = offset_of!(F, cs);
    pub const RFLAGS: usize = offset_of!(F, rflags);
    pub const RSP: usize = offset_of!(F, rsp);
    pub const SS: usize = offset_of!(F, ss);
    pub const CR2: usize = offset_of!(F, cr2);
    pub const PENDING: usize = offset_of!(F, pending);
}

/// What `protect` makes of pages: no access at all, read-only, read and
/// write, read and execute (never write and execute: W^X).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u64)]
pub enum Protection {
    /// No access: the page stays mapped (its frame, record and tag are
    /// kept, so `unmap`, `frame_free` and exit find it), but any access
    /// from ring 3 is a page fault with the present bit set, and the
    /// kernel's copies refuse it.
    None = 0,
    /// Read-only.
    Read = 1,
    /// Read and write (needs the capability's `WRITE` right).
    Write = 2,
    /// Read and execute (needs the `EXEC` right: sealed frames only).
    Exec = 3,
}

impl Protection {
    /// Every value, in code order.
    pub const ALL: [Protection; 4] = [
        Protection::None,
        Protection::Read,
        Protection::Write,
        Protection::Exec,
    ];
}

/// The vectors delivered to a registered handler: #DE (0), #BP (3), #UD
/// (6), #NM (7), #GP (13), #PF (14), #AC (17). Any other exception in ring 3
/// (#DB from the trap flag, say) ends the process as without a handler.
pub const EXCEPTION_VECTORS: [u64; 7] = [0, 3, 6, 7, 13, 14, 17];

/// The RFLAGS bits `resume` takes from the context: exactly those a ring-3
/// `popfq` can change (CF, PF, AF, ZF, SF, TF, DF, OF, AC, ID), so resuming
/// grants nothing the program could not do itself. IF is always set (and
/// bit 1); IOPL, NT, RF, VM, VIF and VIP are always clear. TF is kept (a
/// debugger single-steps through it: the #DB comes in ring 3 after one
/// instruction), as is AC (a ring-3 `popfq` sets it too).
pub const RESUME_RFLAGS: u64 =
    0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x400 | 0x800 | 0x4_0000 | 0x20_0000;

/// Machine facts, written by `sys_info` (no padding: see [`FrameStats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, zerocopy::IntoBytes, zerocopy::Immutable)]
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
    /// Physical address of PCI segment 0's configuration space under ECAM
    /// (bus 0's; bus `b`, device `d`, function `f` is the page at
    /// `ecam_phys + (b << 20 | d << 15 | f << 12)`), from ACPI's MCFG; 0 if
    /// the machine has none.
    pub ecam_phys: u64,
    /// The first bus ECAM decodes.
    pub ecam_bus_start: u64,
    /// The last bus ECAM decodes (inclusive).
    pub ecam_bus_end: u64,
}

/// What a capability names, as [`CapInfo::kind`] reports it. Codes are
/// never reused; a code this list lacks is a kind a newer kernel added
/// (later issues add endpoints and PCI functions), which
/// [`CapInfo::cap_kind`] returns as `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u64)]
pub enum CapKindCode {
    /// One RAM frame (`frame_alloc`, RAM from `frame_alloc_at`, or a
    /// contiguous run of one frame: the kernel does not tell those apart).
    RamFrame = 1,
    /// A physically contiguous run of more than one RAM frame
    /// (`frame_alloc_contiguous`).
    RamRun = 2,
    /// A device page (not RAM; always mapped uncached).
    Device = 3,
    /// An endpoint's receive capability (only its creator holds one).
    EndpointRecv = 4,
    /// A send capability to an endpoint (its badge is not shown: only the
    /// receiver learns it).
    EndpointSend = 5,
}

impl CapKindCode {
    /// Every kind, in code order.
    pub const ALL: [CapKindCode; 5] = [
        CapKindCode::RamFrame,
        CapKindCode::RamRun,
        CapKindCode::Device,
        CapKindCode::EndpointRecv,
        CapKindCode::EndpointSend,
    ];

    /// The kind with this code, if this ABI defines it.
    pub fn from_code(code: u64) -> Option<Self> {
        CapKindCode::ALL.into_iter().find(|k| *k as u64 == code)
    }
}

/// What a capability is, written by `cap_info` (no padding: see
/// [`FrameStats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, zerocopy::IntoBytes, zerocopy::Immutable)]
#[repr(C)]
pub struct CapInfo {
    /// The kind's [`CapKindCode`] (raw, so that a newer kernel's kind is
    /// not lost).
    pub kind: u64,
    /// Frames the capability names (1 for a frame or a device page).
    pub frames: u64,
    /// The rights the caller holds on it ([`Rights`] bits).
    pub rights: u64,
    /// Physical address of the first frame, or [`CapInfo::PHYS_HIDDEN`]:
    /// the rule of `frame_phys`, which needs the `MAP` right (a kind
    /// without a physical address would report it hidden too).
    pub phys: u64,
}

impl CapInfo {
    /// [`phys`](Self::phys) when the holder may not know the address (never
    /// a page address: it is not page aligned).
    pub const PHYS_HIDDEN: u64 = u64::MAX;

    /// The kind, if this ABI defines its code.
    pub fn cap_kind(&self) -> Option<CapKindCode> {
        CapKindCode::from_code(self.kind)
    }

    /// The rights, if every bit is one this ABI defines.
    pub fn rights(&self) -> Option<Rights> {
        Rights::from_bits(self.rights)
    }

    /// The physical address of the first frame, where the holder may know
    /// it.
    pub fn phys(&self) -> Option<u64> {
        (self.phys != Self::PHYS_HIDDEN).then_some(self.phys)
    }
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
    /// A count (bytes written), printed in decimal.
    Count,
    /// A message's badge (more results in other registers), in decimal.
    Badge,
    /// A bit set (`page_bits`), printed in hex.
    Bits,
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
            (3, "send"),
            (4, "recv"),
            (5, "call"),
            (6, "resume"),
            (7, "reply_recv"),
            (8, "map"),
            (9, "unmap"),
            (12, "process_find"),
            (13, "frame_stats"),
            (14, "trace_ctl"),
            (15, "getpid"),
            (16, "sys_info"),
            (17, "frame_seal"),
            (18, "cap_info"),
            (19, "frame_alloc"),
            (20, "frame_alloc_at"),
            (21, "frame_free"),
            (22, "frame_phys"),
            (23, "reply"),
            (24, "endpoint_create"),
            (25, "endpoint_mint"),
            (26, "endpoint_lookup"),
            (27, "exc_handler"),
            (28, "frame_alloc_contiguous"),
            (29, "protect"),
            (30, "page_bits"),
            (31, "irq_bind"),
            (32, "frame_alloc_many"),
            (33, "map_many"),
            (34, "unmap_many"),
            (35, "free_many"),
            (36, "iomap"),
            (37, "iounmap"),
            (38, "iofault_bind"),
        ];
        assert_eq!(Sysnum::ALL.len(), expected.len());
        for (&s, &(value, name)) in Sysnum::ALL.iter().zip(expected) {
            assert_eq!(s as u64, value);
            assert_eq!(s.name(), name);
            assert_eq!(Sysnum::try_from(value), Ok(s));
            assert_eq!(Sysnum::from_name(name), Some(s));
            assert!(s.args().len() <= 6);
            // Every row states its result (no wildcard default).
            let _ = s.ret();
        }
        let next = expected.iter().map(|&(n, _)| n).max().unwrap_or(0) + 1;
        assert_eq!(Sysnum::try_from(next), Err(next));
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
            "NotSupported",
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
        assert_eq!(Error::try_from(15), Err(15));
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
        for code in [15, 16, 100, 1 << 32, u64::MAX] {
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
        assert_eq!(Rights::ALL.bits(), 0x1f);
        assert_eq!(Rights::WRITABLE.bits(), 0xf);
        assert!(!Rights::EXECUTABLE.contains(Rights::WRITE));
        assert!(!Rights::WRITABLE.contains(Rights::EXEC));
        assert!(Rights::ALL.contains(Rights::READ | Rights::MAP));
        assert!(!Rights::READ.contains(Rights::WRITE));
        assert_eq!(Rights::from_bits(0x20), None);
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
        assert_eq!(format!("{:?}", Rights::ALL), "READ|WRITE|MAP|TRANSFER|EXEC");
        assert_eq!(format!("{:?}", Rights::WRITABLE), "READ|WRITE|MAP|TRANSFER");
    }

    #[test]
    fn handle_round_trips() {
        let h = Handle::from_raw(0xdead_beef);
        assert_eq!(h.raw(), 0xdead_beef);
    }

    #[test]
    fn frame_stats_layout_is_stable() {
        assert_eq!(core::mem::size_of::<FrameStats>(), 9 * 8);
    }

    #[test]
    fn cap_info_codes_and_layout_are_pinned() {
        assert_eq!(core::mem::size_of::<CapInfo>(), 4 * 8);
        let codes: [(CapKindCode, u64); 5] = [
            (CapKindCode::RamFrame, 1),
            (CapKindCode::RamRun, 2),
            (CapKindCode::Device, 3),
            (CapKindCode::EndpointRecv, 4),
            (CapKindCode::EndpointSend, 5),
        ];
        for (kind, code) in codes {
            assert_eq!(kind as u64, code);
            assert_eq!(CapKindCode::from_code(code), Some(kind));
        }
        assert_eq!(CapKindCode::from_code(0), None);
        assert_eq!(CapKindCode::from_code(6), None);
        let info = CapInfo {
            kind: 2,
            frames: 16,
            rights: 0x5,
            phys: CapInfo::PHYS_HIDDEN,
        };
        assert_eq!(info.cap_kind(), Some(CapKindCode::RamRun));
        assert_eq!(info.rights(), Some(Rights::READ | Rights::MAP));
        assert_eq!(info.phys(), None);
        assert_eq!(
            CapInfo {
                phys: 0x1000,
                ..info
            }
            .phys(),
            Some(0x1000)
        );
        assert_eq!(
            CapInfo {
                rights: 0x20,
                ..info
            }
            .rights(),
            None
        );
    }
}
