//! The syscall table: every system call described once, as one row.
//!
//! A row gives the number, the stable name, whether the raw stub is `safe`
//! or `unsafe` to call, the stub's name, the typed arguments (each with the
//! [`ArgKind`] that traces print it as) and the [`RetKind`] of the value a
//! success returns. Rows sit in one of two sections:
//! - `local`: calls that always return to their caller. The kernel's direct
//!   path (registers in, `sysretq` out) serves them when tracing is off;
//! - `switching`: calls that may end in another process (`exit`, `yield`).
//!   They always take the trap-frame path.
//!
//! From the table the [`syscalls!`] macro generates:
//! - [`Sysnum`] (numbers, names, [`Sysnum::ALL`] in number order,
//!   [`Sysnum::args`], [`Sysnum::ret`], [`Sysnum::switches`]);
//! - the typed decoders [`LocalCall::decode`], [`SwitchingCall::decode`]
//!   and [`Call::decode`], which validate every argument type (flags,
//!   rights, booleans) before any handler runs;
//! - the routing facts the kernel's entry stub needs ([`SWITCHING`],
//!   [`MAX_LOCAL_ARGS`]);
//! - the raw user stubs in [`crate::raw`], typed, `unsafe` exactly
//!   where the row says so.
//!
//! Adding a syscall is one row here, one kernel handler (the kernel's
//! `match` on [`LocalCall`] or [`SwitchingCall`] is exhaustive, so the
//! compiler points at it) and one libos wrapper.
use crate::{ArgKind, Error, Handle, IoFlags, MapFlags, Protection, RetKind, Rights};

/// A syscall argument type: how a register decodes into it (with every
/// validation a type can make on its own) and back.
pub trait Arg: Copy {
    /// The register value as this type; `InvalidArgument` if it names no
    /// value of the type (undefined flag bits, a boolean other than 0/1).
    fn decode(raw: u64) -> Result<Self, Error>;
    /// The register value.
    fn raw(self) -> u64;
}

impl Arg for u64 {
    #[inline(always)]
    fn decode(raw: u64) -> Result<Self, Error> {
        Ok(raw)
    }
    #[inline(always)]
    fn raw(self) -> u64 {
        self
    }
}

impl Arg for bool {
    #[inline(always)]
    fn decode(raw: u64) -> Result<Self, Error> {
        match raw {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Error::InvalidArgument),
        }
    }
    #[inline(always)]
    fn raw(self) -> u64 {
        u64::from(self)
    }
}

impl Arg for Handle {
    #[inline(always)]
    fn decode(raw: u64) -> Result<Self, Error> {
        Ok(Handle::from_raw(raw))
    }
    #[inline(always)]
    fn raw(self) -> u64 {
        Handle::raw(self)
    }
}

impl Arg for MapFlags {
    /// Undefined bits and `WRITE|EXEC` (W^X) are refused.
    #[inline(always)]
    fn decode(raw: u64) -> Result<Self, Error> {
        match MapFlags::from_bits(raw) {
            Some(f) if !f.contains(MapFlags::WRITE.union(MapFlags::EXEC)) => Ok(f),
            _ => Err(Error::InvalidArgument),
        }
    }
    #[inline(always)]
    fn raw(self) -> u64 {
        self.bits()
    }
}

impl Arg for IoFlags {
    /// Undefined bits and no access at all are refused.
    #[inline(always)]
    fn decode(raw: u64) -> Result<Self, Error> {
        match IoFlags::from_bits(raw) {
            Some(f) if !f.is_empty() => Ok(f),
            _ => Err(Error::InvalidArgument),
        }
    }
    #[inline(always)]
    fn raw(self) -> u64 {
        self.bits()
    }
}

impl Arg for Protection {
    /// A value other than the four is refused.
    #[inline(always)]
    fn decode(raw: u64) -> Result<Self, Error> {
        Protection::ALL
            .get(raw as usize)
            .copied()
            .filter(|_| raw < 4)
            .ok_or(Error::InvalidArgument)
    }
    #[inline(always)]
    fn raw(self) -> u64 {
        self as u64
    }
}

impl Arg for Rights {
    #[inline(always)]
    fn decode(raw: u64) -> Result<Self, Error> {
        Rights::from_bits(raw).ok_or(Error::InvalidArgument)
    }
    #[inline(always)]
    fn raw(self) -> u64 {
        self.bits()
    }
}

/// Generates everything listed in the module documentation from the table.
macro_rules! syscalls {
    // A call that delivers a message writes more registers: its stub says so.
    (@stub safe, Badge, $num:literal, $name:literal, $fname:ident, ($($a:ident: $t:ty),*)) => {
        #[doc = concat!("`", $name, "`: the raw stub (see [`crate::Sysnum`]). Returns `[rax, rdx, rsi, rdi, r8, r9]`.")]
        #[inline(always)]
        pub fn $fname($($a: $t),*) -> [u64; 6] {
            let regs = syscalls!(@regs $($a)*);
            // SAFETY: the table marks this call safe: it never writes user
            // memory and never removes a mapping; every register it writes
            // is an output of `syscall6_ipc`.
            unsafe { syscall6_ipc($num, regs) }
        }
    };
    (@stub unsafe, Badge, $num:literal, $name:literal, $fname:ident, ($($a:ident: $t:ty),*)) => {
        #[doc = concat!("`", $name, "`: the raw stub (see [`crate::Sysnum`]). Returns `[rax, rdx, rsi, rdi, r8, r9]`.")]
        ///
        /// # Safety
        /// The call moves a capability out of the caller's table (its
        /// mappings go, as with `frame_free`): no live reference may point
        /// into them.
        #[inline(always)]
        pub unsafe fn $fname($($a: $t),*) -> [u64; 6] {
            let regs = syscalls!(@regs $($a)*);
            // SAFETY: the caller's contract, above.
            unsafe { syscall6_ipc($num, regs) }
        }
    };
    (@stub $safety:ident, $r:ident, $num:literal, $name:literal, $fname:ident, ($($a:ident: $t:ty),*)) => {
        syscalls!(@stub $safety, $num, $name, $fname, ($($a: $t),*));
    };
    (@stub safe, $num:literal, $name:literal, $fname:ident, ($($a:ident: $t:ty),*)) => {
        #[doc = concat!("`", $name, "`: the raw stub (see [`crate::Sysnum`]). Returns `(rax, rdx)`.")]
        #[inline(always)]
        pub fn $fname($($a: $t),*) -> (u64, u64) {
            let regs = syscalls!(@regs $($a)*);
            // SAFETY: the table marks this call safe: it never writes user
            // memory and never removes a mapping, so it cannot invalidate
            // anything the caller's Rust code relies on.
            unsafe { syscall6($num, regs) }
        }
    };
    (@stub unsafe, $num:literal, $name:literal, $fname:ident, ($($a:ident: $t:ty),*)) => {
        #[doc = concat!("`", $name, "`: the raw stub (see [`crate::Sysnum`]). Returns `(rax, rdx)`.")]
        ///
        /// # Safety
        /// The call writes user memory or removes mappings (see the
        /// syscall's documentation): no live reference may point into memory
        /// it writes or unmaps, and pointers passed must be valid for it.
        #[inline(always)]
        pub unsafe fn $fname($($a: $t),*) -> (u64, u64) {
            let regs = syscalls!(@regs $($a)*);
            // SAFETY: the caller's contract, above.
            unsafe { syscall6($num, regs) }
        }
    };
    (@regs) => { [0u64; 6] };
    (@regs $a0:ident) => { [Arg::raw($a0), 0, 0, 0, 0, 0] };
    (@regs $a0:ident $a1:ident) => { [Arg::raw($a0), Arg::raw($a1), 0, 0, 0, 0] };
    (@regs $a0:ident $a1:ident $a2:ident) => {
        [Arg::raw($a0), Arg::raw($a1), Arg::raw($a2), 0, 0, 0]
    };
    (@regs $a0:ident $a1:ident $a2:ident $a3:ident) => {
        [Arg::raw($a0), Arg::raw($a1), Arg::raw($a2), Arg::raw($a3), 0, 0]
    };
    (@regs $a0:ident $a1:ident $a2:ident $a3:ident $a4:ident) => {
        [Arg::raw($a0), Arg::raw($a1), Arg::raw($a2), Arg::raw($a3), Arg::raw($a4), 0]
    };
    (@decode $enum:ident, $v:ident, $regs:ident, ()) => { Ok($enum::$v {}) };
    (@decode $enum:ident, $v:ident, $regs:ident, ($a0:ident: $t0:ty)) => {
        Ok($enum::$v { $a0: <$t0 as Arg>::decode($regs[0])? })
    };
    (@decode $enum:ident, $v:ident, $regs:ident, ($a0:ident: $t0:ty, $a1:ident: $t1:ty)) => {
        Ok($enum::$v {
            $a0: <$t0 as Arg>::decode($regs[0])?,
            $a1: <$t1 as Arg>::decode($regs[1])?,
        })
    };
    (@decode $enum:ident, $v:ident, $regs:ident,
        ($a0:ident: $t0:ty, $a1:ident: $t1:ty, $a2:ident: $t2:ty)) => {
        Ok($enum::$v {
            $a0: <$t0 as Arg>::decode($regs[0])?,
            $a1: <$t1 as Arg>::decode($regs[1])?,
            $a2: <$t2 as Arg>::decode($regs[2])?,
        })
    };
    (@decode $enum:ident, $v:ident, $regs:ident,
        ($a0:ident: $t0:ty, $a1:ident: $t1:ty, $a2:ident: $t2:ty, $a3:ident: $t3:ty)) => {
        Ok($enum::$v {
            $a0: <$t0 as Arg>::decode($regs[0])?,
            $a1: <$t1 as Arg>::decode($regs[1])?,
            $a2: <$t2 as Arg>::decode($regs[2])?,
            $a3: <$t3 as Arg>::decode($regs[3])?,
        })
    };
    (@decode $enum:ident, $v:ident, $regs:ident,
        ($a0:ident: $t0:ty, $a1:ident: $t1:ty, $a2:ident: $t2:ty, $a3:ident: $t3:ty, $a4:ident: $t4:ty)) => {
        Ok($enum::$v {
            $a0: <$t0 as Arg>::decode($regs[0])?,
            $a1: <$t1 as Arg>::decode($regs[1])?,
            $a2: <$t2 as Arg>::decode($regs[2])?,
            $a3: <$t3 as Arg>::decode($regs[3])?,
            $a4: <$t4 as Arg>::decode($regs[4])?,
        })
    };
    (@calls $(#[$emeta:meta])* $enum:ident {
        $( $(#[$meta:meta])* $v:ident = $num:literal, $name:literal, $safety:ident
            fn $fname:ident ( $( $a:ident : $t:ty as $k:ident ),* ) -> $r:ident; )*
    }) => {
        $(#[$emeta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $enum {
            $(
                $(#[$meta])*
                $v { $( #[doc = concat!("`", stringify!($a), "`")] $a: $t ),* },
            )*
        }

        impl $enum {
            /// Decodes the registers of call `num`: `UnknownSyscall` if
            /// `num` names no call of this kind, `InvalidArgument` if an
            /// argument is not a value of its type. Registers beyond a
            /// call's arguments are ignored.
            #[inline(always)]
            pub fn decode(num: u64, regs: &[u64; 6]) -> Result<Self, Error> {
                match num {
                    $( $num => syscalls!(@decode $enum, $v, regs, ($($a: $t),*)), )*
                    _ => Err(Error::UnknownSyscall),
                }
            }

            /// The call's number.
            pub const fn sysnum(&self) -> Sysnum {
                match self { $( $enum::$v { .. } => Sysnum::$v, )* }
            }
        }
    };
    (
        local { $( $(#[$lmeta:meta])* $lv:ident = $lnum:literal, $lname:literal, $lsafety:ident
            fn $lfname:ident ( $( $la:ident : $lt:ty as $lk:ident ),* ) -> $lr:ident; )* }
        switching { $( $(#[$smeta:meta])* $sv:ident = $snum:literal, $sname:literal, $ssafety:ident
            fn $sfname:ident ( $( $sa:ident : $st:ty as $sk:ident ),* ) -> $sr:ident; )* }
    ) => {
        /// System-call numbers (`rax` at `syscall`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u64)]
        pub enum Sysnum {
            $( $(#[$lmeta])* $lv = $lnum, )*
            $( $(#[$smeta])* $sv = $snum, )*
        }

        impl Sysnum {
            /// Every syscall, in number order.
            pub const ALL: &'static [Sysnum] = &sorted([$(Sysnum::$lv,)* $(Sysnum::$sv,)*]);

            /// The stable name used in traces and documentation.
            pub const fn name(self) -> &'static str {
                match self {
                    $( Sysnum::$lv => $lname, )*
                    $( Sysnum::$sv => $sname, )*
                }
            }

            /// Looks a syscall up by its [`name`](Self::name).
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $( $lname => Some(Sysnum::$lv), )*
                    $( $sname => Some(Sysnum::$sv), )*
                    _ => None,
                }
            }

            /// The named arguments, in register order, with how traces
            /// print them.
            pub const fn args(self) -> &'static [(&'static str, ArgKind)] {
                match self {
                    $( Sysnum::$lv => &[$((stringify!($la), ArgKind::$lk)),*], )*
                    $( Sysnum::$sv => &[$((stringify!($sa), ArgKind::$sk)),*], )*
                }
            }

            /// What a success returns in `rdx`.
            pub const fn ret(self) -> RetKind {
                match self {
                    $( Sysnum::$lv => RetKind::$lr, )*
                    $( Sysnum::$sv => RetKind::$sr, )*
                }
            }

            /// Whether the call may end in another process (and so always
            /// takes the kernel's trap-frame path).
            pub const fn switches(self) -> bool {
                match self {
                    $( Sysnum::$lv => false, )*
                    $( Sysnum::$sv => true, )*
                }
            }

            /// Whether the raw stub is `unsafe` (the call writes user
            /// memory or removes mappings).
            pub const fn stub_is_unsafe(self) -> bool {
                match self {
                    $( Sysnum::$lv => syscalls!(@is_unsafe $lsafety), )*
                    $( Sysnum::$sv => syscalls!(@is_unsafe $ssafety), )*
                }
            }
        }

        impl TryFrom<u64> for Sysnum {
            /// The raw value that names no syscall.
            type Error = u64;
            fn try_from(raw: u64) -> Result<Self, u64> {
                match raw {
                    $( $lnum => Ok(Sysnum::$lv), )*
                    $( $snum => Ok(Sysnum::$sv), )*
                    other => Err(other),
                }
            }
        }

        /// The numbers of the calls that may switch processes: the kernel's
        /// entry stub sends exactly these to the trap-frame path.
        pub const SWITCHING: &[u64] = &[$($snum),*];

        /// [`SWITCHING`] as a bit mask (bit `n` for call `n`), what the
        /// entry stub tests with one `bt`: every switching call's number is
        /// below 64 (asserted).
        pub const SWITCHING_MASK: u64 = switching_mask(SWITCHING);

        /// Most arguments any `local` call takes: the direct path passes
        /// this many registers (the kernel asserts it is at most four).
        pub const MAX_LOCAL_ARGS: usize = max_len(&[$( {
            let a: &[&str] = &[$(stringify!($la)),*];
            a.len()
        } ),*]);

        syscalls!(@calls
            /// A decoded call that always returns to its caller.
            LocalCall { $( $(#[$lmeta])* $lv = $lnum, $lname, $lsafety
                fn $lfname ( $( $la : $lt as $lk ),* ) -> $lr; )* });
        syscalls!(@calls
            /// A decoded call that may end in another process.
            SwitchingCall { $( $(#[$smeta])* $sv = $snum, $sname, $ssafety
                fn $sfname ( $( $sa : $st as $sk ),* ) -> $sr; )* });

        /// Raw, typed `syscall` stubs, one per row; each returns `(rax, rdx)`
        /// (those that deliver a message, every result register).
        /// Only compiled for x86_64.
        #[cfg(target_arch = "x86_64")]
        #[allow(unsafe_code)]
        pub mod stubs {
            use super::*;
            #[allow(unused_imports)]
            use crate::raw::{syscall6, syscall6_ipc};
            $( syscalls!(@stub $lsafety, $lr, $lnum, $lname, $lfname, ($($la: $lt),*)); )*
            $( syscalls!(@stub $ssafety, $sr, $snum, $sname, $sfname, ($($sa: $st),*)); )*
        }
    };
    (@is_unsafe safe) => { false };
    (@is_unsafe unsafe) => { true };
}

const _: () = assert!(MAX_LOCAL_ARGS <= 4, "the direct path passes four registers");

const fn switching_mask(numbers: &[u64]) -> u64 {
    let mut mask = 0;
    let mut i = 0;
    while i < numbers.len() {
        assert!(
            numbers[i] < 64,
            "a switching call's number must be below 64"
        );
        mask |= 1 << numbers[i];
        i += 1;
    }
    mask
}

/// A decoded call of either kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// One that returns to its caller.
    Local(LocalCall),
    /// One that may end in another process.
    Switching(SwitchingCall),
}

impl Call {
    /// Decodes any call (see [`LocalCall::decode`]).
    #[inline]
    pub fn decode(num: u64, regs: &[u64; 6]) -> Result<Self, Error> {
        if SWITCHING.contains(&num) {
            SwitchingCall::decode(num, regs).map(Call::Switching)
        } else {
            LocalCall::decode(num, regs).map(Call::Local)
        }
    }
}

const fn sorted<const N: usize>(mut a: [Sysnum; N]) -> [Sysnum; N] {
    let mut i = 1;
    while i < N {
        let mut j = i;
        while j > 0 && (a[j - 1] as u64) > (a[j] as u64) {
            let t = a[j];
            a[j] = a[j - 1];
            a[j - 1] = t;
            j -= 1;
        }
        i += 1;
    }
    a
}

const fn max_len(lens: &[usize]) -> usize {
    let mut i = 0;
    let mut max = 0;
    while i < lens.len() {
        if lens[i] > max {
            max = lens[i];
        }
        i += 1;
    }
    max
}

syscalls! {
    local {
        /// `debug_write(ptr, len) -> len`: write `len` bytes of user memory
        /// to the kernel console (COM1). `len <= MAX_DEBUG_WRITE`.
        DebugWrite = 0, "debug_write", safe fn debug_write(ptr: u64 as Addr, len: u64 as Num) -> Count;
        /// `frame_alloc() -> handle`: any free RAM frame, zeroed.
        FrameAlloc = 19, "frame_alloc", safe fn frame_alloc() -> Handle;
        /// `frame_alloc_at(phys) -> handle`: the frame at physical address
        /// `phys` (page aligned). Free RAM gives a RAM capability; a hole in
        /// the memory map (device space) gives an exclusive device
        /// capability (drivers only).
        FrameAllocAt = 20, "frame_alloc_at", safe fn frame_alloc_at(phys: u64 as Phys) -> Handle;
        /// `frame_free(handle)`: give a capability back. The frame returns to
        /// the allocator when its last holder frees it. Mappings of it made
        /// through this handle are removed first.
        FrameFree = 21, "frame_free", unsafe fn frame_free(cap: Handle as Handle) -> None;
        /// `frame_phys(handle) -> phys`: the physical address (what a device
        /// needs for DMA). Needs `MAP`.
        FramePhys = 22, "frame_phys", safe fn frame_phys(cap: Handle as Handle) -> Phys;
        /// `irq_bind(device, ep) -> vector`: a free interrupt vector whose
        /// interrupts become messages on the endpoint of send capability
        /// `ep` (badge: `ep`'s; words: the vector and how many interrupts
        /// the message stands for). Needs a device capability (a driver's);
        /// program the device's MSI with address [`MSI_ADDRESS`](crate::MSI_ADDRESS)
        /// and data = the vector. At most
        /// [`bounds::IRQS_PER_DEVICE`](crate::bounds::IRQS_PER_DEVICE)
        /// vectors per device page (`OutOfMemory`). `ep` = 0 unbinds
        /// every vector the caller bound through `device` and returns how
        /// many (an interrupt on one is then spurious). Unbound when the
        /// caller ends.
        IrqBind = 31, "irq_bind", safe fn irq_bind(device: Handle as Handle, ep: Handle as Handle) -> Count;
        /// `frame_alloc_contiguous(count, align, max_phys) -> handle`:
        /// `count` physically contiguous zeroed frames
        /// (`count <= MAX_CONTIGUOUS_FRAMES`), the first aligned to `align`
        /// frames (a power of two), the last byte below `max_phys`
        /// (0 = no limit). For DMA buffers.
        FrameAllocContiguous = 28, "frame_alloc_contiguous", safe
            fn frame_alloc_contiguous(count: u64 as Num, align: u64 as Num, max_phys: u64 as Phys) -> Handle;
        /// `map(handle, vaddr, flags)`: map the capability's frames at user
        /// address `vaddr` with [`MapFlags`]: needs `READ|MAP`, and `WRITE`
        /// or `EXEC` for those flags (never both: W^X per mapping, and per
        /// frame through the rights, see `frame_seal`). Device frames are
        /// always uncached.
        Map = 8, "map", safe fn map(cap: Handle as Handle, vaddr: u64 as Addr, flags: MapFlags as MapFlags) -> None;
        /// `unmap(vaddr)`: remove the mapping that starts at `vaddr`. The
        /// address rule is `map`'s: an unaligned address or one outside
        /// `[USER_MIN, USER_MAP_TOP)` is `InvalidAddress`; a valid address
        /// where no mapping starts is `NotMapped`.
        Unmap = 9, "unmap", unsafe fn unmap(vaddr: u64 as Addr) -> None;
        /// `process_find(name_ptr, name_len) -> pid`: a live process by name.
        ProcessFind = 12, "process_find", safe fn process_find(name: u64 as Addr, len: u64 as Num) -> Pid;
        /// `frame_stats(out_ptr)`: write a [`FrameStats`](crate::FrameStats)
        /// to user memory.
        FrameStats = 13, "frame_stats", unsafe fn frame_stats(out: u64 as Addr) -> None;
        /// `trace_ctl(on)`: switch syscall tracing on (1) or off (0).
        TraceCtl = 14, "trace_ctl", safe fn trace_ctl(on: bool as Num) -> None;
        /// `getpid() -> pid`: the caller's process id (the cheapest call).
        GetPid = 15, "getpid", safe fn getpid() -> Pid;
        /// `sys_info(out_ptr)`: write a [`SysInfo`](crate::SysInfo) to user
        /// memory: where the kernel's own physical pages are (an exokernel
        /// exposes names, not abstractions: a libOS may look, never touch).
        SysInfo = 16, "sys_info", unsafe fn sys_info(out: u64 as Addr) -> None;
        /// `frame_seal(handle)`: make RAM frames code, for good. The
        /// capability must be the only one to its frames (`FrameInUse`
        /// otherwise), hold `WRITE` (`PermissionDenied`) and not be mapped
        /// (`AlreadyMapped`); a device capability is `InvalidArgument`. It
        /// loses `WRITE` and gains `EXEC` ([`Rights::EXECUTABLE`](crate::Rights::EXECUTABLE)),
        /// and so does every capability later derived from it: W^X per frame.
        FrameSeal = 17, "frame_seal", safe fn frame_seal(cap: Handle as Handle) -> None;
        /// `cap_info(handle, out_ptr)`: write a [`CapInfo`](crate::CapInfo)
        /// to user memory: the capability's kind, size in frames, rights and
        /// (with the `MAP` right, as `frame_phys`) physical address. Needs
        /// no right: a holder may always ask what it holds. The handle is
        /// checked before the buffer.
        CapInfo = 18, "cap_info", unsafe fn cap_info(cap: Handle as Handle, out: u64 as Addr) -> None;
        /// `reply(w0, w1, cap, flags)`: answer the `call` received last
        /// (`InvalidArgument` if none is owed; `NoSuchProcess` if the
        /// caller gave up); the caller wakes with the two words and the
        /// capability (moved, or copied with `SEND_COPY`; `SEND_RIGHTS` as
        /// `send`). One reply is owed at a time: receiving a second call
        /// before answering the first cancels the first (its caller wakes
        /// with `NoSuchProcess`).
        Reply = 23, "reply", unsafe fn reply(w0: u64 as Num, w1: u64 as Num, cap: u64 as Num, flags: u64 as Num) -> None;
        /// `endpoint_create(publish) -> handle`: a new endpoint; the handle
        /// is its receive capability (not transferable). With `publish`,
        /// `endpoint_lookup` of the caller's name finds it.
        EndpointCreate = 24, "endpoint_create", safe fn endpoint_create(publish: bool as Num) -> Handle;
        /// `endpoint_mint(recv, badge) -> handle`: a send capability to the
        /// caller's endpoint, carrying `badge` (transferable).
        EndpointMint = 25, "endpoint_mint", safe fn endpoint_mint(recv: Handle as Handle, badge: u64 as Num) -> Handle;
        /// `endpoint_lookup(name_ptr, len) -> handle`: a send capability to
        /// the endpoint process `name` published, badged with the caller's
        /// pid (stamped by the kernel: not forgeable).
        EndpointLookup = 26, "endpoint_lookup", safe fn endpoint_lookup(name: u64 as Addr, len: u64 as Num) -> Handle;
        /// `exc_handler(entry, stack_top, save)`: register the caller's
        /// exception handler (see [`ExceptionFrame`](crate::ExceptionFrame)):
        /// on a ring-3 fault of [`EXCEPTION_VECTORS`](crate::EXCEPTION_VECTORS)
        /// the kernel writes the interrupted state to `save` and starts
        /// `entry` in ring 3 with `rsp = stack_top - 8`, `rdi = save`. The
        /// entry must be an executable RAM page of the caller, the page under
        /// `stack_top` (16-aligned) and the save area (8-aligned, within one
        /// page) writable RAM pages of the caller: kernel-half or non-canonical addresses
        /// are `InvalidAddress`, unmapped pages `NotMapped`, a page of the
        /// wrong kind (device, read-only, not executable) `PermissionDenied`;
        /// checked again at every delivery. All three 0 unregisters.
        /// Registering also ends a pending delivery (see `resume`).
        ExcHandler = 27, "exc_handler", unsafe
            fn exc_handler(entry: u64 as Addr, stack_top: u64 as Addr, save: u64 as Addr) -> None;
        /// `protect(vaddr, pages, prot)`: change how `pages` pages of the
        /// caller's `map` mappings from `vaddr` may be used, in place
        /// ([`Protection`]: none, read, write, exec), TLB flushed before it
        /// returns. The address rule is `map`'s (`InvalidAddress`); `pages`
        /// from 1 to [`bounds::PROTECT_PAGES`](crate::bounds::PROTECT_PAGES)
        /// (`InvalidArgument`); every page must be mapped by `map`
        /// (`NotMapped`; a program-image page, mapped by no capability, is
        /// `PermissionDenied`) through a capability with the right the
        /// protection needs (`WRITE`, `EXEC`: `PermissionDenied`), so W^X
        /// per frame holds. All pages are checked before any changes.
        Protect = 29, "protect", unsafe
            fn protect(vaddr: u64 as Addr, pages: u64 as Num, prot: Protection as Num) -> None;
        /// `page_bits(vaddr, pages, clear) -> bits`: the hardware accessed
        /// and dirty bits of `pages` (1 to
        /// [`bounds::PAGE_BITS_PAGES`](crate::bounds::PAGE_BITS_PAGES),
        /// else `InvalidArgument`) of the caller's pages from `vaddr`: bit
        /// `2i` is page `i`'s accessed bit, bit `2i + 1` its dirty bit.
        /// With `clear` they are cleared too (and the pages flushed from
        /// the TLB, so the MMU sets them again). The address rule is
        /// `map`'s (`InvalidAddress`); every page must be mapped, with any
        /// protection (`NotMapped`, checked before anything is cleared).
        PageBits = 30, "page_bits", safe
            fn page_bits(vaddr: u64 as Addr, pages: u64 as Num, clear: bool as Num) -> Bits;
        /// `frame_alloc_many(count, out) -> handles`: `count` zeroed RAM
        /// frames (1 to [`bounds::BULK`](crate::bounds::BULK), else
        /// `InvalidArgument`) as few capabilities (`WRITABLE`): one per
        /// block of 64 frames aligned to 64 (zeroed ahead of need when the
        /// kernel's pool has them) and one per remaining frame. Writes the
        /// handles to the `u64` array at `out` (room for `count`) and
        /// returns how many; the capabilities' sizes add up to `count`
        /// (`cap_info` tells each one's). All or nothing: `OutOfMemory`,
        /// `CapTableFull` or a bad `out` (`InvalidAddress`) leaves nothing
        /// allocated.
        FrameAllocMany = 32, "frame_alloc_many", unsafe
            fn frame_alloc_many(count: u64 as Num, out: u64 as Addr) -> Count;
        /// `map_many(handles, count, vaddr, flags)`: `map` each of the
        /// `count` capabilities (1 to [`bounds::BULK`](crate::bounds::BULK))
        /// listed at `handles` back to back from `vaddr`, at most
        /// [`bounds::BULK_PAGES`](crate::bounds::BULK_PAGES) pages in all
        /// (`InvalidArgument`); `map`'s rights, address rule and errors, one
        /// record each. Everything is checked before anything maps.
        MapMany = 33, "map_many", safe
            fn map_many(handles: u64 as Addr, count: u64 as Num, vaddr: u64 as Addr, flags: MapFlags as MapFlags) -> None;
        /// `unmap_many(vaddr, pages)`: remove the `map` mappings that tile
        /// `pages` pages from `vaddr` (1 to
        /// [`bounds::BULK_PAGES`](crate::bounds::BULK_PAGES), else
        /// `InvalidArgument`). `unmap`'s address rule; a page where the
        /// next mapping should start but none does is `NotMapped`, a
        /// mapping reaching past the range `InvalidArgument`. Checked
        /// before anything is removed.
        UnmapMany = 34, "unmap_many", unsafe fn unmap_many(vaddr: u64 as Addr, pages: u64 as Num) -> None;
        /// `free_many(handles, count)`: `frame_free` each of the `count`
        /// capabilities (1 to [`bounds::BULK`](crate::bounds::BULK)) listed
        /// at `handles`. A handle not held, or listed twice, is
        /// `BadCapability` and nothing is freed.
        FreeMany = 35, "free_many", unsafe fn free_many(handles: u64 as Addr, count: u64 as Num) -> None;
        /// `iomap(device, cap, iova, flags)`: let the PCI function of
        /// `device` (the capability to its configuration page, with
        /// `MAP|WRITE`) DMA to the RAM frames of `cap` (with `MAP`, and
        /// `READ`/`WRITE` for [`IoFlags`] `READ`/`WRITE`), at I/O address
        /// `iova` onward in the function's own DMA address space. `iova`
        /// page aligned, the run inside [`IOVA_MIN`](crate::IOVA_MIN)..
        /// [`IOVA_TOP`](crate::IOVA_TOP) (`InvalidAddress`); nothing mapped
        /// there yet, by anyone holding the device (`AlreadyMapped`); a
        /// device frame is `InvalidArgument`; at most
        /// [`bounds::IOMAPS`](crate::bounds::IOMAPS) per process
        /// (`OutOfMemory`). `NotSupported` where no IOMMU translates the
        /// function's DMA (its DMA is then unconfined: see `sys_info`).
        /// The mapping goes, and the IOTLB is invalidated, before
        /// `iounmap`, a `frame_free` of either capability, a transfer of
        /// either, or the caller's end returns: a frame is never reused
        /// while a device can reach it.
        Iomap = 36, "iomap", unsafe
            fn iomap(device: Handle as Handle, cap: Handle as Handle, iova: u64 as Phys, flags: IoFlags as Num) -> None;
        /// `iounmap(device, iova)`: remove the `iomap` mapping that starts
        /// at `iova` in `device`'s DMA address space (the caller's or
        /// another holder's); the IOTLB is invalidated before it returns.
        /// `iomap`'s address rule (`InvalidAddress`); `NotMapped` where
        /// no mapping starts.
        Iounmap = 37, "iounmap", safe fn iounmap(device: Handle as Handle, iova: u64 as Phys) -> None;
        /// `iofault_bind(device, ep)`: each DMA of `device`'s function that
        /// the IOMMU blocks becomes a message on the endpoint of send
        /// capability `ep` (badge: `ep`'s; `RECV_IRQ`, made by the kernel;
        /// words: the I/O address, and the IOMMU's fault reason with
        /// [`IOFAULT_WRITE`](crate::IOFAULT_WRITE) for a write). `iomap`'s
        /// device checks; one binding per function (`FrameInUse` while
        /// another holder's stands); `ep` = 0 unbinds. It lapses when the
        /// caller's handle to the device goes or the caller ends; a fault
        /// that finds the queue full is only reported by the kernel.
        IofaultBind = 38, "iofault_bind", safe fn iofault_bind(device: Handle as Handle, ep: Handle as Handle) -> None;
    }
    switching {
        /// `exit(code)`: end the calling process; never returns. Every frame
        /// and capability it holds goes back.
        Exit = 1, "exit", safe fn exit(code: u64 as Num) -> None;
        /// `yield()`: give the CPU to the next runnable process.
        Yield = 2, "yield", safe fn yield_now() -> None;
        /// `send(ep, w0, w1, cap, flags)`: a message of two words and at
        /// most one capability (handle, 0 = none; moved, or copied with
        /// `SEND_COPY`; with only some of its rights with `SEND_RIGHTS`;
        /// needs `TRANSFER`) through send capability `ep`. A full queue is
        /// `WouldBlock`, or with `SEND_BLOCK` waits for room (senders
        /// waiting on one endpoint get in first come, first served).
        Send = 3, "send", unsafe fn send(ep: Handle as Handle, w0: u64 as Num, w1: u64 as Num, cap: u64 as Num, flags: u64 as Num) -> None;
        /// `recv(ep, timeout) -> badge`: the oldest message on the caller's
        /// endpoint; with none, waits up to `timeout` timer ticks (0: at
        /// once `WouldBlock`; `FOREVER`). Returns the badge in `rdx`, the
        /// words in `rsi` and `rdi`, the capability's new handle in `r8`
        /// (0: none) and flags in `r9` (`RECV_CALL`: a reply is owed).
        Recv = 4, "recv", safe fn recv(ep: Handle as Handle, timeout: u64 as Num) -> Badge;
        /// `call(ep, w0, w1, cap, flags)`: `send`, then wait for the
        /// receiver's `reply`, returned as `recv` returns a message (badge
        /// 0). A full queue is `WouldBlock`.
        Call = 5, "call", unsafe fn call(ep: Handle as Handle, w0: u64 as Num, w1: u64 as Num, cap: u64 as Num, flags: u64 as Num) -> Badge;
        /// `resume(frame_ptr)`: load the user context in the
        /// [`ExceptionFrame`](crate::ExceptionFrame) at `frame_ptr` (the save
        /// area, or any copy) and continue there; on success it does not
        /// return to the caller. The kernel takes the general registers as
        /// they are, refuses a `rip` at or above `USER_MAP_TOP` or an `rsp`
        /// outside the lower half (`InvalidAddress`, and the caller goes on),
        /// keeps only the flags a ring-3 `popfq` may change
        /// ([`RESUME_RFLAGS`](crate::RESUME_RFLAGS): IF is always set,
        /// IOPL, NT, RF, VM, VIF, VIP always clear) and ignores `cs`/`ss`
        /// (always the user selectors). Ends the pending delivery: a fault
        /// after it is delivered again.
        Resume = 6, "resume", unsafe fn resume(frame: u64 as Addr) -> None;
        /// `reply_recv(ep, w0, w1, cap, flags) -> badge`: `reply(w0, w1,
        /// cap, flags)` to the call the caller received last, then
        /// `recv(ep, FOREVER)`, in one crossing (a server's loop, as seL4's
        /// `ReplyRecv`). `ep` (the caller's receive capability) and `flags`
        /// are checked before anything is sent; if the reply fails, its
        /// error comes back and nothing is received. When nothing is
        /// queued, the kernel switches straight to the process it answered.
        /// Returns what `recv` returns.
        ReplyRecv = 7, "reply_recv", unsafe fn reply_recv(ep: Handle as Handle, w0: u64 as Num, w1: u64 as Num, cap: u64 as Num, flags: u64 as Num) -> Badge;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_number_order_and_complete() {
        for w in Sysnum::ALL.windows(2) {
            assert!((w[0] as u64) < (w[1] as u64));
        }
        // Every number below the highest is a call or retired, but for (at
        // most one) gap that rows under way elsewhere may leave.
        let highest = Sysnum::ALL.iter().map(|&s| s as u64).max().unwrap_or(0);
        let gaps = (0..=highest)
            .filter(|&n| Sysnum::try_from(n).is_err() && !crate::RETIRED.contains(&n))
            .count();
        assert!(gaps <= 1, "{gaps} unused numbers below {highest}");
        // A retired number names no call (and never will again).
        for &n in crate::RETIRED {
            assert_eq!(Sysnum::try_from(n), Err(n));
        }
    }

    #[test]
    fn routing_facts_follow_the_table() {
        for &s in Sysnum::ALL {
            assert_eq!(SWITCHING.contains(&(s as u64)), s.switches());
            if !s.switches() {
                assert!(s.args().len() <= MAX_LOCAL_ARGS);
            }
        }
        for n in 0..64u64 {
            assert_eq!(SWITCHING_MASK >> n & 1 == 1, SWITCHING.contains(&n));
        }
    }

    #[test]
    fn decode_checks_types_and_ignores_spare_registers() {
        let junk = u64::MAX;
        assert_eq!(
            Call::decode(8, &[7, 0x40_0000, 1, junk, junk, junk]),
            Ok(Call::Local(LocalCall::Map {
                cap: Handle::from_raw(7),
                vaddr: 0x40_0000,
                flags: MapFlags::WRITE,
            }))
        );
        // W^X and undefined bits.
        assert_eq!(
            LocalCall::decode(8, &[7, 0, 3, 0, 0, 0]),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            LocalCall::decode(8, &[7, 0, 8, 0, 0, 0]),
            Err(Error::InvalidArgument)
        );
        // A protection other than the four.
        assert_eq!(
            LocalCall::decode(29, &[0x40_0000, 1, 4, 0, 0, 0]),
            Err(Error::InvalidArgument)
        );
        // Retired numbers (the open inbox) are unknown.
        for &n in crate::RETIRED {
            assert_eq!(Call::decode(n, &[0; 6]), Err(Error::UnknownSyscall));
        }
        assert_eq!(
            LocalCall::decode(14, &[2, 0, 0, 0, 0, 0]),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            LocalCall::decode(14, &[1, junk, 0, 0, 0, 0]),
            Ok(LocalCall::TraceCtl { on: true })
        );
        // Each kind decodes only its own numbers.
        assert_eq!(LocalCall::decode(1, &[0; 6]), Err(Error::UnknownSyscall));
        assert_eq!(
            SwitchingCall::decode(19, &[0; 6]),
            Err(Error::UnknownSyscall)
        );
        assert_eq!(
            Call::decode(1, &[5, junk, 0, 0, 0, 0]),
            Ok(Call::Switching(SwitchingCall::Exit { code: 5 }))
        );
        let past_the_table = Sysnum::ALL.iter().map(|&s| s as u64).max().unwrap_or(0) + 1;
        assert_eq!(
            Call::decode(past_the_table, &[0; 6]),
            Err(Error::UnknownSyscall)
        );
        assert_eq!(Call::decode(u64::MAX, &[0; 6]), Err(Error::UnknownSyscall));
    }

    #[test]
    fn every_number_decodes_to_its_own_call() {
        for &s in Sysnum::ALL {
            // Zero is a valid value of every argument type but `iomap`'s
            // flags (the fourth argument), where 1 is.
            let call = Call::decode(s as u64, &[0, 0, 0, 1, 0, 0]).expect("decodes");
            let back = match call {
                Call::Local(c) => c.sysnum(),
                Call::Switching(c) => c.sysnum(),
            };
            assert_eq!(back, s);
        }
    }

    #[test]
    fn unsafe_stubs_are_the_ones_that_write_or_unmap() {
        let unsafe_ones: [Sysnum; 16] = [
            Sysnum::Protect,
            Sysnum::ExcHandler,
            Sysnum::Resume,
            Sysnum::FrameFree,
            Sysnum::Unmap,
            Sysnum::FrameStats,
            Sysnum::SysInfo,
            Sysnum::CapInfo,
            // Move a capability out of the caller's table (its mappings go).
            Sysnum::Send,
            Sysnum::Call,
            Sysnum::Reply,
            Sysnum::ReplyRecv,
            // Bulk: writes handles to user memory; unmaps; frees (mappings go).
            Sysnum::FrameAllocMany,
            Sysnum::UnmapMany,
            Sysnum::FreeMany,
            // A device may write the frames at any time (as a peer with WRITE).
            Sysnum::Iomap,
        ];
        for &s in Sysnum::ALL {
            assert_eq!(s.stub_is_unsafe(), unsafe_ones.contains(&s), "{s:?}");
        }
    }
}
