//! The syscall trace-record format, version 1: one line per syscall on COM1.
//!
//! ```text
//! @exo-trace 1 pid=2 proc=frames sys=frame_alloc_at args=phys=0xfee00000 ret=BadCapability cycles=812
//! ```
//! Fields are separated by one space and always appear in this order:
//! - `@exo-trace` then the format version ([`VERSION`]);
//! - `pid=` decimal process id; `proc=` process name (no spaces);
//! - `sys=` syscall name ([`crate::Sysnum::name`]), or `unknown#N` for a
//!   number the ABI does not define;
//! - `args=` the named arguments joined by `,` as `name=value` (empty when
//!   the call has none). Handles, addresses and physical addresses are hex
//!   (`0x...`), counts and pids decimal, flags by name (`WRITE|UNCACHED`);
//! - `ret=` `ok` (no value), `ok:VALUE` (a handle or address in hex, a pid
//!   or count in decimal), or the error name ([`crate::Error::name`]);
//! - `cycles=` TSC cycles spent in the kernel for this call.
//!
//! [`write_record`] is the one encoder (the kernel uses it); the host decoder
//! in `tools/trace` parses exactly this.

use crate::{ArgKind, Error, MapFlags, RetKind, Rights, Sysnum};
use core::fmt::{self, Write};

/// First token of every trace line.
pub const PREFIX: &str = "@exo-trace";
/// The format version written after the prefix.
pub const VERSION: u32 = 1;

/// Writes one argument value the way traces print it.
pub fn write_arg(out: &mut dyn Write, kind: ArgKind, value: u64) -> fmt::Result {
    match kind {
        ArgKind::Handle | ArgKind::Phys | ArgKind::Addr => write!(out, "{value:#x}"),
        ArgKind::Num | ArgKind::Pid => write!(out, "{value}"),
        ArgKind::MapFlags => crate::write_flag_names(
            out,
            value,
            MapFlags::NAMES.iter().map(|(v, n)| (v.bits(), *n)),
        ),
        ArgKind::Rights => crate::write_flag_names(
            out,
            value,
            Rights::NAMES.iter().map(|(v, n)| (v.bits(), *n)),
        ),
    }
}

/// Writes one complete trace record, without the line terminator.
///
/// `sysnum` is the raw `rax`; `args` the six raw argument registers;
/// `result` the value (`rdx`) or the error.
pub fn write_record(
    out: &mut dyn Write,
    pid: u64,
    proc_name: &str,
    sysnum: u64,
    args: &[u64; 6],
    result: Result<u64, Error>,
    cycles: u64,
) -> fmt::Result {
    write!(out, "{PREFIX} {VERSION} pid={pid} proc={proc_name} sys=")?;
    let sys = Sysnum::try_from(sysnum).ok();
    match sys {
        Some(s) => out.write_str(s.name())?,
        None => write!(out, "unknown#{sysnum}")?,
    }
    out.write_str(" args=")?;
    if let Some(s) = sys {
        for (i, ((name, kind), value)) in s.args().iter().zip(args.iter()).enumerate() {
            if i > 0 {
                out.write_char(',')?;
            }
            write!(out, "{name}=")?;
            write_arg(out, *kind, *value)?;
        }
    }
    out.write_str(" ret=")?;
    match result {
        Err(e) => out.write_str(e.name())?,
        Ok(value) => match sys.map(Sysnum::ret).unwrap_or(RetKind::None) {
            RetKind::None => out.write_str("ok")?,
            RetKind::Handle | RetKind::Phys | RetKind::Bits => write!(out, "ok:{value:#x}")?,
            RetKind::Pid | RetKind::Count | RetKind::Badge => write!(out, "ok:{value}")?,
        },
    }
    write!(out, " cycles={cycles}")
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;

    fn record(sysnum: u64, args: [u64; 6], result: Result<u64, Error>) -> String {
        let mut s = String::new();
        write_record(&mut s, 2, "frames", sysnum, &args, result, 812).unwrap();
        s
    }

    #[test]
    fn encodes_an_error() {
        assert_eq!(
            record(20, [0xfee0_0000, 0, 0, 0, 0, 0], Err(Error::BadCapability)),
            "@exo-trace 1 pid=2 proc=frames sys=frame_alloc_at args=phys=0xfee00000 \
             ret=BadCapability cycles=812"
        );
    }

    #[test]
    fn encodes_flags_and_values() {
        assert_eq!(
            record(8, [0x1234, 0x40_0000, 5, 9, 9, 9], Ok(0)),
            "@exo-trace 1 pid=2 proc=frames sys=map \
             args=cap=0x1234,vaddr=0x400000,flags=WRITE|UNCACHED ret=ok cycles=812"
        );
        assert_eq!(
            record(10, [1, 3, 0xf, 1, 0, 0], Err(Error::UnknownSyscall)),
            "@exo-trace 1 pid=2 proc=frames sys=unknown#10 args= ret=UnknownSyscall cycles=812"
        );
        assert_eq!(
            record(19, [0; 6], Ok(0xabc)),
            "@exo-trace 1 pid=2 proc=frames sys=frame_alloc args= ret=ok:0xabc cycles=812"
        );
        assert_eq!(
            record(15, [0; 6], Ok(7)),
            "@exo-trace 1 pid=2 proc=frames sys=getpid args= ret=ok:7 cycles=812"
        );
    }

    #[test]
    fn encodes_unknown_syscalls_and_bits() {
        assert_eq!(
            record(99, [1; 6], Err(Error::UnknownSyscall)),
            "@exo-trace 1 pid=2 proc=frames sys=unknown#99 args= ret=UnknownSyscall cycles=812"
        );
        assert_eq!(
            record(8, [1, 2, 0x18, 0, 0, 0], Err(Error::InvalidArgument)),
            "@exo-trace 1 pid=2 proc=frames sys=map args=cap=0x1,vaddr=0x2,flags=0x18 \
             ret=InvalidArgument cycles=812"
        );
    }
}
