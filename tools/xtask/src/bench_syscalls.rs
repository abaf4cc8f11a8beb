//! `cargo xtask bench syscalls [--json]`: exo's system calls against
//! Linux's, counted in guest instructions, in the same emulator.
//!
//! # Method
//! Both sides run a benchmark program as their first user program, on the
//! same QEMU machine (`qemu::machine`: `-machine q35 -m 1G -smp 1 -accel
//! tcg -cpu max`):
//! - exo: `userland/demos/src/bin/test-bench.rs` (and `test-bench-peer.rs`,
//!   the other end of `cap-transfer` and the `ipc-*` rows, and the driver
//!   of `irq-to-driver`, which needs the `edu` device of the icount boot),
//!   booted from an image made with `--programs test-bench`;
//! - Linux: Debian's cloud kernel with an initramfs whose `/init` is
//!   `tools/linux-bench/bench.c` built with `gcc -static`, command line
//!   `console=ttyS0 quiet panic=-1`; [`crate::linux_guest`] fetches,
//!   builds and packs it.
//!
//! Each program times every iteration as `t0 = rdtsc; op; t1 = rdtsc` and
//! prints, per row, the median and minimum of `t1 - t0` over 2000
//! iterations after 200 of warm-up (`bench: NAME median=N min=N iters=N`).
//!
//! Each side boots twice:
//! 1. with `-icount shift=0`: the guest TSC then advances exactly once per
//!    executed guest instruction, so the medians are exact instruction
//!    counts (user + kernel, the `rdtsc` pair included: the `empty` row
//!    shows what the pair alone costs). These are `exo_insns`,
//!    `linux_insns` and `ratio` = exo / linux. (Under icount each
//!    iteration of a `rep` string instruction counts as one instruction:
//!    page zeroing weighs by how each kernel clears a page.) The two
//!    icount boots run at the same time: their counts do not depend on
//!    host load.
//! 2. without icount, one at a time, for emulated wall time (for
//!    information only: it is TCG's speed, not a machine's). Linux reports
//!    `clock_gettime(CLOCK_MONOTONIC)` deltas taken around the same pair,
//!    minus its `empty` row (the clock's own cost). exo has no clock call:
//!    without icount, QEMU's TCG guest TSC is the host TSC, so exo's ns are
//!    `(median - empty median) / f`, `f` being this host's TSC rate
//!    (calibrated here against the monotonic clock). It is checked first:
//!    the program prints its TSC in its first and last lines, the host
//!    times their arrival, and if that guest rate is more than 3% from `f`,
//!    `exo_ns` is null. (The kernel counts PIT ticks but has no call that
//!    returns the count, so the guest cannot calibrate against the PIT.)
//!
//! The Linux program keeps a read-only page mapped just above where its
//! rows' `mmap`s land, so the page-table page under them persists between
//! iterations as exo's page tables do; without it ASLR decides per boot
//! whether each populating iteration also allocates and frees a page-table
//! page, and the counts differ from boot to boot (see `bench.c`).
//!
//! Boot time comes from the second boots: host wall time from spawning
//! QEMU to the first line the benchmark program prints (its first
//! instruction that does anything visible) and to QEMU's exit; the exit
//! includes the benchmarks, so the time from the last line to the exit
//! (shutdown) is shown too.
//!
//! Output: a table, or with `--json` one object per row and line:
//! `{"bench":..,"exo_insns":..,"linux_insns":..,"ratio":..,"exo_ns":..,
//! "linux_ns":..}` (a failed side's value is null and an `exo_error` /
//! `linux_error` key says what the kernel returned), then the exo-only
//! breakdown rows (`bench` = `breakdown-NAME`, `linux_insns` and `ratio`
//! null), then boot rows
//! `{"bench":"boot-first-user-line","exo_ms":..,"linux_ms":..,"ratio":..}`.
//! Exit status 0 when every row was measured on both sides, 1 otherwise.
use crate::build::{self, ImageSpec};
use crate::linux_guest::{self, Guest};
use crate::qemu::{self, RunOptions};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The rows, in order (`empty` is the timer pair alone).
const ROWS: &[&str] = &[
    "empty",
    "null-syscall",
    "frame-alloc-free",
    "alloc-map-touch-unmap-free",
    "contiguous-16",
    "grow-1mib",
    "cap-transfer",
    // Appel and Li's virtual-memory primitives (exo: `protect`, the libOS
    // exception handler, `resume`; Linux: `mprotect`, a SIGSEGV handler,
    // `sigreturn`).
    "trap",
    "prot1",
    "unprot1",
    "prot100",
    "unprot100",
    "appel1",
    "appel2",
];
/// exo-only rows, with what each covers: alloc-map-touch-unmap-free with
/// the pool of zeroed frames empty (the main row is the pool hit), the
/// rows that split it into its calls (one call each, the caller's `rdtsc`
/// pair included), `dirty`, and the kernel's share of `trap` in its two
/// windows.
const BREAKDOWN: &[(&str, &str)] = &[
    (
        "alloc-map-touch-unmap-free-pool-empty",
        "the same, back to back: zeroed pool empty, rep stosq on the call path",
    ),
    (
        "grow-1mib-pool-empty",
        "grow-1mib back to back: no pooled blocks, rep stosq of 256 frames on the call path",
    ),
    ("breakdown-entry-exit", "a call with no work: trace_ctl(7)"),
    ("breakdown-frame-phys", "frame_phys: one capability lookup"),
    (
        "breakdown-frame-alloc",
        "frame_alloc: allocate, zero, insert",
    ),
    ("breakdown-map", "map: lookup, rights, walk, record"),
    ("breakdown-unmap", "unmap: walk, tag, record, invlpg"),
    ("breakdown-frame-free", "frame_free: remove, free"),
    (
        "dirty",
        "page_bits of one page (Linux has no call for the dirty bit)",
    ),
    (
        "trap-deliver",
        "fault to the handler's first instruction (+4 user insns)",
    ),
    (
        "trap-resume",
        "the handler's ring-3 resume back to the program (25 user insns, no kernel)",
    ),
    (
        "trap-kernel",
        "the kernel's share of trap: deliver + resume, user insns taken out",
    ),
    (
        "ipc-call-reply",
        "one-word call answered by reply_recv (Linux: the pipe round trip of cap-transfer)",
    ),
    (
        "ipc-call-leg",
        "call to the blocked server's first instruction (+3 user insns)",
    ),
    (
        "ipc-reply-leg",
        "from there: the server's reply_recv back to the caller (+~10 user insns)",
    ),
    (
        "ipc-cap-transfer",
        "the same carrying a frame capability each way (moved, on the fast path)",
    ),
    (
        "irq-to-driver",
        "edu's MSI (raised by a store) to the first instructions of the driver blocked in recv (+7 user insns)",
    ),
];
/// The exo program (the image builder adds its `test-bench-*` helpers).
const EXO_PROGRAM: &str = "test-bench";
/// Longest any one boot may take.
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
/// How far the guest's TSC rate may be from the host's before exo's ns
/// figures are withheld.
const TSC_TOLERANCE: f64 = 0.03;

const USAGE: &str = "usage: cargo xtask bench syscalls [--json]";

/// `cargo xtask bench syscalls [--json]` (`args` are the words after
/// `syscalls`).
pub fn run(args: &[String]) -> Result<u8, String> {
    let mut json = false;
    for arg in args {
        match arg.as_str() {
            "--json" => json = true,
            other => return Err(format!("bench syscalls: unknown option `{other}`; {USAGE}")),
        }
    }
    let started = Instant::now();

    eprintln!("xtask: building exo with {EXO_PROGRAM}");
    let tool = build::build_all()?;
    let out = build::target_dir().join("exo").join("bench-syscalls");
    let spec = ImageSpec {
        programs: Some(EXO_PROGRAM.into()),
        ..Default::default()
    };
    let image = build::make_image(&tool, &spec, &out)?;

    let linux = Guest::prepare(&build::target_dir().join("linux-bench"))?;
    let kernel_name = &linux.kernel_name;

    eprintln!("xtask: booting exo and Linux ({kernel_name}) with -icount shift=0");
    let (exo_icount, linux_icount) = std::thread::scope(|s| {
        let exo = s.spawn(|| {
            qemu::boot(
                &image,
                &RunOptions {
                    extra: vec!["-icount".into(), "shift=0".into()],
                    echo: false,
                    timeout: BOOT_TIMEOUT,
                    ..Default::default()
                },
            )
        });
        let linux = run_timed(linux.command(true), BOOT_TIMEOUT);
        let exo = exo
            .join()
            .unwrap_or_else(|_| Err("exo boot thread panicked".into()));
        (exo, linux)
    });
    let exo_icount = exo_icount?;
    let linux_icount = linux_icount?;
    eprintln!(
        "xtask: icount boots took {:.1} s (exo) and {:.1} s (Linux)",
        exo_icount.elapsed.as_secs_f64(),
        linux_icount.exit_at.as_secs_f64()
    );

    eprintln!("xtask: booting exo without icount (wall time)");
    let exo_wall = run_timed(exo_command(&image), BOOT_TIMEOUT)?;
    eprintln!("xtask: booting Linux without icount (wall time)");
    let linux_wall = run_timed(linux.command(false), BOOT_TIMEOUT)?;
    let host_hz = host_tsc_hz();

    let report = Report::new(
        Side::new(
            "exo",
            &exo_icount.serial,
            exo_verdict(&exo_icount),
            &exo_wall,
            timed_verdict(&exo_wall, qemu::QEMU_SUCCESS),
        ),
        Side::new(
            "Linux",
            &linux_icount.serial(),
            timed_verdict(&linux_icount, 0),
            &linux_wall,
            timed_verdict(&linux_wall, 0),
        ),
        host_hz,
    );
    if json {
        print!("{}", report.json());
    } else {
        print!("{}", report.table(kernel_name));
    }
    eprintln!(
        "xtask: bench syscalls took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(if report.complete() { 0 } else { 1 })
}

// ---------------------------------------------------------------------------
// Parsing the programs' output.

/// One `bench: NAME ...` row.
#[derive(Clone, Debug, PartialEq)]
enum Row {
    /// Measured.
    Ok {
        median: u64,
        min: u64,
        iters: u64,
        /// Linux only: clock_gettime median, overhead subtracted.
        ns_median: Option<u64>,
    },
    /// The line after `NAME failed: `.
    Failed(String),
}

/// What one run printed.
#[derive(Clone, Debug, Default, PartialEq)]
struct Parsed {
    rows: BTreeMap<String, Row>,
    start_tsc: Option<u64>,
    end_tsc: Option<u64>,
    /// `info:` lines (Linux: clock source, TSC messages).
    info: Vec<String>,
    /// Lines that name a failure outside the rows (the peer, the kernel).
    problems: Vec<String>,
}

/// The value of `key=` among space-separated words.
fn field(words: &str, key: &str) -> Option<u64> {
    words
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

fn parse(serial: &str) -> Parsed {
    let mut p = Parsed::default();
    for raw in serial.lines() {
        let line = raw.trim_end_matches('\r').trim();
        if let Some(info) = line.strip_prefix("info: ") {
            p.info.push(info.to_string());
            continue;
        }
        let interesting = [
            "KERNEL PANIC",
            "EXCEPTION",
            "killed",
            "did not finish",
            "LEAK",
        ];
        if line.starts_with("test-bench-peer:") || interesting.iter().any(|w| line.contains(w)) {
            p.problems.push(line.to_string());
        }
        let Some(rest) = line.strip_prefix("bench: ") else {
            continue;
        };
        let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        match name {
            "start" => p.start_tsc = field(tail, "tsc"),
            "end" => p.end_tsc = field(tail, "tsc"),
            _ => {
                let row = if let Some(why) = tail.strip_prefix("failed: ") {
                    Row::Failed(why.to_string())
                } else {
                    match (
                        field(tail, "median"),
                        field(tail, "min"),
                        field(tail, "iters"),
                    ) {
                        (Some(median), Some(min), Some(iters)) => Row::Ok {
                            median,
                            min,
                            iters,
                            ns_median: field(tail, "ns_median"),
                        },
                        _ => Row::Failed(format!("unreadable line `{line}`")),
                    }
                };
                p.rows.insert(name.to_string(), row);
            }
        }
    }
    p
}

// ---------------------------------------------------------------------------
// Running QEMU with line timestamps.

/// A QEMU run whose output lines carry their arrival time.
struct TimedRun {
    /// (time since spawning QEMU, line without the line end).
    lines: Vec<(Duration, String)>,
    /// Time from spawn to QEMU's exit (or the kill).
    exit_at: Duration,
    status: Option<i32>,
    timed_out: bool,
    stderr: String,
}

impl TimedRun {
    fn serial(&self) -> String {
        let mut s = String::new();
        for (_, line) in &self.lines {
            s.push_str(line);
            s.push('\n');
        }
        s
    }

    /// When the first line starting with `prefix` arrived.
    fn line_at(&self, prefix: &str) -> Option<Duration> {
        self.lines
            .iter()
            .find(|(_, l)| l.trim_start().starts_with(prefix))
            .map(|(t, _)| *t)
    }
}

/// Spawns `cmd`, timestamps each stdout line, waits up to `timeout`.
fn run_timed(cmd: Command, timeout: Duration) -> Result<TimedRun, String> {
    let lines = Arc::new(Mutex::new(Vec::<(Duration, String)>::new()));
    let sink = Arc::clone(&lines);
    let mut partial = Vec::new();
    let finished = qemu::run_child(cmd, Some(timeout), move |now, chunk| {
        for &b in chunk {
            if b == b'\n' {
                let line = String::from_utf8_lossy(&partial);
                let line = line.trim_end_matches('\r').to_string();
                sink.lock().unwrap().push((now, line));
                partial.clear();
            } else {
                partial.push(b);
            }
        }
    })?;
    let lines = std::mem::take(&mut *lines.lock().unwrap());
    Ok(TimedRun {
        lines,
        exit_at: finished.elapsed,
        status: finished.status,
        timed_out: finished.timed_out,
        stderr: finished.stderr,
    })
}

/// exo's boot without icount, run here for the line timestamps: the
/// machine of `qemu::boot` (TCG) with the boot disk only, no `edu` or
/// virtio-blk device, like the Linux guest's.
fn exo_command(image: &Path) -> Command {
    let mut cmd = qemu::machine(false);
    cmd.arg("-drive")
        .arg(format!("format=raw,file={}", image.display()));
    cmd
}

fn exo_verdict(o: &qemu::Outcome) -> Option<String> {
    match o.exit_code() {
        0 => None,
        1 => Some("the kernel's verdict was failure".into()),
        124 => Some(format!("timed out after {} s", BOOT_TIMEOUT.as_secs())),
        _ => Some(format!(
            "QEMU ended without a verdict (status {:?})",
            o.status
        )),
    }
}

/// What went wrong with a timed run, given the status QEMU should exit
/// with (exo: the kernel's success through `isa-debug-exit`; Linux: 0
/// after the power-off).
fn timed_verdict(r: &TimedRun, expected: i32) -> Option<String> {
    if r.timed_out {
        Some(format!("timed out after {} s", BOOT_TIMEOUT.as_secs()))
    } else if r.status != Some(expected) {
        Some(format!(
            "QEMU exited with {:?}: {}",
            r.status,
            r.stderr.trim()
        ))
    } else {
        None
    }
}

/// This host's TSC rate (Hz), against the monotonic clock over 200 ms.
///
/// The crate's one `unsafe`: `_rdtsc` is an unsafe intrinsic (as of Rust
/// 1.97) and Linux exports no TSC rate (`cpu MHz` is the core clock), so
/// there is no safe way to measure what exo's TSC figures are checked
/// against.
#[cfg(target_arch = "x86_64")]
fn host_tsc_hz() -> Option<f64> {
    #[allow(unsafe_code)]
    fn tsc() -> u64 {
        // SAFETY: `rdtsc` only reads the time-stamp counter, which every
        // x86_64 CPU has; it touches no memory and has no side effects.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    let (t0, c0) = (Instant::now(), tsc());
    std::thread::sleep(Duration::from_millis(200));
    let (c1, t1) = (tsc(), Instant::now());
    Some(c1.wrapping_sub(c0) as f64 / (t1 - t0).as_secs_f64())
}

#[cfg(not(target_arch = "x86_64"))]
fn host_tsc_hz() -> Option<f64> {
    None
}

// ---------------------------------------------------------------------------
// The report.

/// Everything one system produced.
struct Side {
    name: &'static str,
    /// From the icount boot.
    counts: Parsed,
    /// Why the icount boot went wrong, if it did.
    verdict: Option<String>,
    /// From the boot without icount.
    wall: Parsed,
    wall_verdict: Option<String>,
    first_line: Option<Duration>,
    /// When the first serial line of all arrived (exo: the kernel's).
    first_serial: Option<Duration>,
    last_line: Option<Duration>,
    exit_at: Duration,
    /// Guest TSC rate measured against the host clock (Hz).
    guest_hz: Option<f64>,
}

impl Side {
    fn new(
        name: &'static str,
        icount_serial: &str,
        verdict: Option<String>,
        wall: &TimedRun,
        wall_verdict: Option<String>,
    ) -> Side {
        let parsed_wall = parse(&wall.serial());
        let first_line = wall.line_at("bench: start");
        let first_serial = wall.lines.first().map(|(t, _)| *t);
        let last_line = wall.line_at("bench: end");
        let guest_hz = match (
            first_line,
            last_line,
            parsed_wall.start_tsc,
            parsed_wall.end_tsc,
        ) {
            (Some(t0), Some(t1), Some(c0), Some(c1)) if t1 > t0 && c1 > c0 => {
                Some((c1 - c0) as f64 / (t1 - t0).as_secs_f64())
            }
            _ => None,
        };
        Side {
            name,
            counts: parse(icount_serial),
            verdict,
            wall: parsed_wall,
            wall_verdict,
            first_line,
            first_serial,
            last_line,
            exit_at: wall.exit_at,
            guest_hz,
        }
    }

    /// The instruction count of `row`, or why there is none.
    fn insns(&self, row: &str) -> Result<u64, String> {
        match self.counts.rows.get(row) {
            Some(Row::Ok { median, .. }) => Ok(*median),
            Some(Row::Failed(why)) => Err(why.clone()),
            None => Err(match &self.verdict {
                Some(v) => format!("no result ({v})"),
                None => "no result".into(),
            }),
        }
    }
}

struct Report {
    exo: Side,
    linux: Side,
    /// The TSC rate exo's ns are computed with, or why there is none.
    exo_hz: Result<f64, String>,
}

impl Report {
    fn new(exo: Side, linux: Side, host_hz: Option<f64>) -> Report {
        let exo_hz = match (exo.guest_hz, host_hz) {
            // The guest TSC is the host's: convert at the host's rate (measured
            // over longer than the guest's, which only checks it).
            (Some(g), Some(h)) if (g / h - 1.0).abs() <= TSC_TOLERANCE => Ok(h),
            (Some(g), Some(h)) => Err(format!(
                "exo's TSC ran at {:.3} GHz against the host clock, the host's TSC at {:.3} GHz: \
                 more than {:.0}% apart, so TSC ticks cannot be turned into ns",
                g / 1e9,
                h / 1e9,
                TSC_TOLERANCE * 100.0
            )),
            (None, _) => Err("exo's wall-time run printed no start/end TSC".into()),
            (Some(_), None) => Err("this host's TSC rate is unknown".into()),
        };
        Report { exo, linux, exo_hz }
    }

    fn exo_ns(&self, row: &str) -> Option<f64> {
        let hz = *self.exo_hz.as_ref().ok()?;
        let median = |r: &str| match self.exo.wall.rows.get(r) {
            Some(Row::Ok { median, .. }) => Some(*median),
            _ => None,
        };
        let overhead = if row == "empty" { 0 } else { median("empty")? };
        Some(median(row)?.saturating_sub(overhead) as f64 / hz * 1e9)
    }

    fn linux_ns(&self, row: &str) -> Option<f64> {
        match self.linux.wall.rows.get(row) {
            Some(Row::Ok { ns_median, .. }) => ns_median.map(|n| n as f64),
            _ => None,
        }
    }

    fn complete(&self) -> bool {
        ROWS.iter()
            .all(|r| self.exo.insns(r).is_ok() && self.linux.insns(r).is_ok())
            && self.exo.verdict.is_none()
            && self.linux.verdict.is_none()
    }

    /// (name, exo ms, linux ms) for the boot rows.
    fn boot_rows(&self) -> Vec<(&'static str, Option<f64>, Option<f64>)> {
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
        let shutdown = |s: &Side| s.last_line.map(|t| s.exit_at.saturating_sub(t));
        vec![
            (
                "boot-first-user-line",
                ms(self.exo.first_line),
                ms(self.linux.first_line),
            ),
            (
                "boot-to-exit",
                ms(Some(self.exo.exit_at)),
                ms(Some(self.linux.exit_at)),
            ),
            (
                "last-line-to-exit",
                ms(shutdown(&self.exo)),
                ms(shutdown(&self.linux)),
            ),
        ]
    }

    fn table(&self, kernel_name: &str) -> String {
        let mut s = String::new();
        let num = |v: Option<f64>, prec: usize| match v {
            Some(v) => format!("{v:.prec$}"),
            None => "-".into(),
        };
        let count = |r: &Result<u64, String>| match r {
            Ok(v) => v.to_string(),
            Err(_) => "FAILED".into(),
        };
        let _ = writeln!(
            s,
            "{:<28} {:>10} {:>12} {:>7} {:>10} {:>10}",
            "bench", "exo insns", "linux insns", "ratio", "exo ns", "linux ns"
        );
        let mut notes = Vec::new();
        for row in ROWS {
            let (e, l) = (self.exo.insns(row), self.linux.insns(row));
            let ratio = match (&e, &l) {
                (Ok(e), Ok(l)) if *l > 0 => Some(*e as f64 / *l as f64),
                _ => None,
            };
            let label = if *row == "empty" {
                "empty (rdtsc pair)"
            } else {
                row
            };
            let _ = writeln!(
                s,
                "{:<28} {:>10} {:>12} {:>7} {:>10} {:>10}",
                label,
                count(&e),
                count(&l),
                num(ratio, 3),
                num(self.exo_ns(row), 0),
                num(self.linux_ns(row), 0)
            );
            if let Err(why) = e {
                notes.push(format!("exo {row}: {why}"));
            }
            if let Err(why) = l {
                notes.push(format!("Linux {row}: {why}"));
            }
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<28} {:>10}   what it covers",
            "exo breakdown (one call)", "exo insns"
        );
        for (row, what) in BREAKDOWN {
            let _ = writeln!(
                s,
                "{:<28} {:>10}   {what}",
                row.trim_start_matches("breakdown-"),
                count(&self.exo.insns(row))
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<28} {:>10} {:>12} {:>7}",
            "boot (wall, TCG)", "exo ms", "linux ms", "ratio"
        );
        for (name, e, l) in self.boot_rows() {
            let ratio = match (e, l) {
                (Some(e), Some(l)) if l > 0.0 => Some(e / l),
                _ => None,
            };
            let _ = writeln!(
                s,
                "{:<28} {:>10} {:>12} {:>7}",
                name,
                num(e, 0),
                num(l, 0),
                num(ratio, 3)
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "insns: medians of {} iterations after warm-up, under -icount shift=0 (exact guest \
             instructions, user + kernel, rdtsc pair included); ratio = exo / Linux.",
            self.iters().map_or("?".into(), |n| n.to_string())
        );
        let _ = writeln!(
            s,
            "ns: emulated wall time without icount, timer overhead (the empty row) subtracted; \
             Linux by clock_gettime, exo by TSC at {}.",
            match &self.exo_hz {
                Ok(hz) => format!(
                    "the host's TSC rate, {:.3} GHz (exo's TSC against the host clock: {})",
                    hz / 1e9,
                    self.exo
                        .guest_hz
                        .map_or("?".into(), |g| format!("{:.3} GHz", g / 1e9))
                ),
                Err(why) => format!("(none: {why})"),
            }
        );
        if let Some(t) = self.exo.first_serial {
            let _ = writeln!(
                s,
                "exo's kernel printed its first line at {:.0} ms: before that, firmware and \
                 the bootloader loading the image.",
                t.as_secs_f64() * 1e3
            );
        }
        let _ = writeln!(s, "Linux: {kernel_name}, `{}`.", linux_guest::APPEND);
        for info in &self.linux.wall.info {
            if info.starts_with("clocksource=") || info.starts_with("vulnerabilities:") {
                let _ = writeln!(s, "Linux {info}.");
            } else if let Some(at) = info.find("Refined TSC clocksource calibration") {
                let _ = writeln!(s, "Linux: {}.", &info[at..]);
            }
        }
        for (side, v) in [
            (&self.exo, &self.exo.verdict),
            (&self.linux, &self.linux.verdict),
        ] {
            if let Some(v) = v {
                notes.push(format!("{} icount boot: {v}", side.name));
            }
            if let Some(v) = &side.wall_verdict {
                notes.push(format!("{} wall-time boot: {v}", side.name));
            }
            for p in side.counts.problems.iter().chain(&side.wall.problems) {
                notes.push(format!("{}: {p}", side.name));
            }
        }
        notes.dedup();
        for n in notes {
            let _ = writeln!(s, "note: {n}");
        }
        s
    }

    fn iters(&self) -> Option<u64> {
        self.exo
            .counts
            .rows
            .values()
            .chain(self.linux.counts.rows.values())
            .find_map(|r| match r {
                Row::Ok { iters, .. } => Some(*iters),
                Row::Failed(_) => None,
            })
    }

    fn json(&self) -> String {
        let mut s = String::new();
        let int = |r: &Result<u64, String>| match r {
            Ok(v) => v.to_string(),
            Err(_) => "null".into(),
        };
        let float = |v: Option<f64>, prec: usize| match v {
            Some(v) if v.is_finite() => format!("{v:.prec$}"),
            _ => "null".into(),
        };
        for row in ROWS {
            let (e, l) = (self.exo.insns(row), self.linux.insns(row));
            let ratio = match (&e, &l) {
                (Ok(e), Ok(l)) if *l > 0 => Some(*e as f64 / *l as f64),
                _ => None,
            };
            let _ = write!(
                s,
                "{{\"bench\":{},\"exo_insns\":{},\"linux_insns\":{},\"ratio\":{},\"exo_ns\":{},\"linux_ns\":{}",
                json_string(row),
                int(&e),
                int(&l),
                float(ratio, 4),
                float(self.exo_ns(row), 1),
                float(self.linux_ns(row), 1)
            );
            if let Err(why) = &e {
                let _ = write!(s, ",\"exo_error\":{}", json_string(why));
            }
            if let Err(why) = &l {
                let _ = write!(s, ",\"linux_error\":{}", json_string(why));
            }
            if *row != "empty" && self.exo_ns(row).is_none() {
                if let Err(why) = &self.exo_hz {
                    let _ = write!(s, ",\"exo_ns_missing\":{}", json_string(why));
                }
            }
            s.push_str("}\n");
        }
        for (row, _) in BREAKDOWN {
            let _ = writeln!(
                s,
                "{{\"bench\":{},\"exo_insns\":{},\"linux_insns\":null,\"ratio\":null,\"exo_ns\":{},\"linux_ns\":null}}",
                json_string(row),
                int(&self.exo.insns(row)),
                float(self.exo_ns(row), 1)
            );
        }
        for (name, e, l) in self.boot_rows() {
            let ratio = match (e, l) {
                (Some(e), Some(l)) if l > 0.0 => Some(e / l),
                _ => None,
            };
            let _ = writeln!(
                s,
                "{{\"bench\":{},\"exo_ms\":{},\"linux_ms\":{},\"ratio\":{}}}",
                json_string(name),
                float(e, 1),
                float(l, 1),
                float(ratio, 4)
            );
        }
        s
    }
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows_failures_and_marks() {
        let serial = "exo: boot complete\n\
            bench: start tsc=100\n\
            bench: null-syscall median=60 min=58 iters=2000\r\n\
            bench: cap-transfer failed: recv returned BadCapability (rax=2) at iteration 3\n\
            bench: frame-alloc-free median=900 min=850 iters=2000 ns_median=12\n\
            info: clocksource=tsc\n\
            test-bench-peer: test-bench is gone after 3 round trips\n\
            bench: end tsc=200 failures=1\n";
        let p = parse(serial);
        assert_eq!(p.start_tsc, Some(100));
        assert_eq!(p.end_tsc, Some(200));
        assert_eq!(
            p.rows["null-syscall"],
            Row::Ok {
                median: 60,
                min: 58,
                iters: 2000,
                ns_median: None
            }
        );
        assert_eq!(
            p.rows["frame-alloc-free"],
            Row::Ok {
                median: 900,
                min: 850,
                iters: 2000,
                ns_median: Some(12)
            }
        );
        assert_eq!(
            p.rows["cap-transfer"],
            Row::Failed("recv returned BadCapability (rax=2) at iteration 3".into())
        );
        assert_eq!(p.info, vec!["clocksource=tsc".to_string()]);
        assert_eq!(p.problems.len(), 1);
    }

    #[test]
    fn both_guests_boot_on_the_machine_of_qemu_boot() {
        let args = |c: &Command| -> Vec<String> {
            c.get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        let machine = args(&qemu::machine(false));
        assert!(machine.windows(2).any(|w| w == ["-m", qemu::MEMORY]));
        assert!(machine.windows(2).any(|w| w == ["-accel", "tcg"]));
        let exo = exo_command(Path::new("exo.img"));
        let linux = Guest {
            vmlinuz: "vmlinuz".into(),
            initrd: "initrd".into(),
            kernel_name: String::new(),
        }
        .command(true);
        for cmd in [&exo, &linux] {
            assert_eq!(cmd.get_program(), qemu::machine(false).get_program());
            assert!(args(cmd).starts_with(&machine), "{:?}", args(cmd));
        }
        assert!(args(&linux).ends_with(&["-icount".to_string(), "shift=0".to_string()]));
    }

    #[test]
    fn json_escapes() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
