//! `exo-trace`: the host decoder for exo's serial syscall trace.
//!
//! The kernel writes one line per syscall to COM1 in the format of
//! [`abi::trace`] (encoded by [`abi::trace::write_record`]):
//!
//! ```text
//! @exo-trace 1 pid=2 proc=frames sys=frame_alloc_at args=phys=0xfee00000 ret=BadCapability cycles=812
//! ```
//!
//! This crate turns a serial log (records mixed with any other output,
//! `\n` or `\r\n` line endings) back into data and renders it:
//!
//! - [`parse_line`] classifies one line as a [`Record`], a malformed record
//!   (with the reason) or other text ([`LineKind`]);
//! - [`strace_line`] and [`json_line`] render one record;
//! - [`Summary`] accumulates `strace -c`-style per-syscall statistics;
//! - [`Filter`] selects records by pid, syscall or failure;
//! - [`Timeline`] makes a Chrome trace-event JSON timeline of the records
//!   (ui.perfetto.dev, chrome://tracing);
//! - [`run`] is the whole `exo-trace` command (the `exo-trace` binary and
//!   `cargo xtask trace` both call it).
//!
//! ```
//! use exo_trace::{parse_line, strace_line, LineKind};
//!
//! let line = "@exo-trace 1 pid=2 proc=frames sys=frame_alloc args= ret=ok:0x1a2b cycles=90\r\n";
//! let LineKind::Record(record) = parse_line(line) else { panic!() };
//! assert_eq!(strace_line(&record), "[2 frames] frame_alloc() = 0x1a2b");
//! assert_eq!(parse_line("kernel: booted"), LineKind::Other("kernel: booted"));
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cli;
mod filter;
mod perfetto;
mod record;
mod render;
mod summary;

pub use cli::{run, HELP};
pub use filter::Filter;
pub use perfetto::{Timeline, CLOCK_NOTE};
pub use record::{parse_line, LineKind, Record, TraceResult};
pub use render::{json_line, json_string, strace_line};
pub use summary::{percentile, Summary, SummaryRow};
