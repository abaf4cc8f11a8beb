//! The `exo-trace` driver ([`exo_trace::run`]) end to end: pass-through,
//! CRLF logs, filters, JSON, summaries, usage errors, files, malformed
//! records, non-UTF-8 input and per-line flushing.
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::io::{self, BufRead, Read, Write};
use std::rc::Rc;

/// A serial log as QEMU writes it: CRLF, records mixed with other output.
const LOG: &str = "\
exo: booting\r
@exo-trace 1 pid=1 proc=init sys=getpid args= ret=ok:1 cycles=40\r
hello from init\r
@exo-trace 1 pid=2 proc=frames sys=frame_alloc args= ret=ok:0x1a2b cycles=900\r
@exo-trace 1 pid=2 proc=frames sys=frame_alloc_at args=phys=0xfee00000 ret=BadCapability cycles=812\r
@exo-trace 1 pid=2 proc=frames sys=bogus args= ret=ok cycles=1\r
@exo-trace 1 pid=2 proc=frames sys=map args=cap=0x1a2b,vaddr=0x400000,flags=WRITE ret=ok cycles=300\r
exo: all processes exited";

struct Outcome {
    code: i32,
    out: String,
    err: String,
}

fn run_with(args: &[&str], input: &[u8]) -> Outcome {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = exo_trace::run(&args, input, &mut out, &mut err);
    Outcome {
        code,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

fn run_log(args: &[&str]) -> Outcome {
    run_with(args, LOG.as_bytes())
}

const MALFORMED_LINE_6: &str =
    "exo-trace: line 6: malformed trace record: unknown syscall name \"bogus\"\n";

#[test]
fn plain_mode_renders_records_and_passes_other_lines_untouched() {
    let o = run_log(&[]);
    assert_eq!(o.code, 0);
    assert_eq!(
        o.out,
        "\
exo: booting\r
[1 init] getpid() = 1
hello from init\r
[2 frames] frame_alloc() = 0x1a2b
[2 frames] frame_alloc_at(phys=0xfee00000) = BadCapability
[2 frames] map(cap=0x1a2b, vaddr=0x400000, flags=WRITE) = 0
exo: all processes exited"
    );
    assert_eq!(o.err, MALFORMED_LINE_6);
}

#[test]
fn lf_logs_work_too() {
    let lf = LOG.replace("\r\n", "\n");
    let o = run_with(&[], lf.as_bytes());
    assert_eq!(o.out, run_log(&[]).out.replace("\r\n", "\n"));
    assert_eq!(o.err, MALFORMED_LINE_6);
}

#[test]
fn filters_print_only_matching_records() {
    let o = run_log(&["--pid", "2"]);
    assert_eq!(o.code, 0);
    assert_eq!(
        o.out,
        "\
[2 frames] frame_alloc() = 0x1a2b
[2 frames] frame_alloc_at(phys=0xfee00000) = BadCapability
[2 frames] map(cap=0x1a2b, vaddr=0x400000, flags=WRITE) = 0
"
    );
    assert_eq!(o.err, MALFORMED_LINE_6);

    let o = run_log(&["--errors"]);
    assert_eq!(
        o.out,
        "[2 frames] frame_alloc_at(phys=0xfee00000) = BadCapability\n"
    );

    let o = run_log(&["--syscall", "getpid,map"]);
    assert_eq!(
        o.out,
        "[1 init] getpid() = 1\n[2 frames] map(cap=0x1a2b, vaddr=0x400000, flags=WRITE) = 0\n"
    );

    let o = run_log(&["--syscall=getpid", "--pid=2"]);
    assert_eq!(o.out, "");
}

#[test]
fn json_mode_prints_only_objects() {
    let o = run_log(&["--json", "--pid", "1"]);
    assert_eq!(o.code, 0);
    assert_eq!(
        o.out,
        "{\"pid\":1,\"proc\":\"init\",\"syscall\":\"getpid\",\"args\":{},\"ok\":true,\"value\":\"1\",\"cycles\":40}\n"
    );
    let o = run_log(&["--json"]);
    assert_eq!(o.out.lines().count(), 4);
    assert!(o
        .out
        .lines()
        .all(|l| l.starts_with("{\"pid\":") && l.ends_with('}')));
}

#[test]
fn summary_table_at_the_end() {
    let o = run_log(&["--summary"]);
    assert_eq!(o.code, 0);
    assert_eq!(
        o.out,
        "\
% cycles  total cycles  calls  errors  p50 cycles  p99 cycles  syscall
--------  ------------  -----  ------  ----------  ----------  --------------
   43.85           900      1       0         900         900  frame_alloc
   39.57           812      1       1         812         812  frame_alloc_at
   14.61           300      1       0         300         300  map
    1.94            40      1       0          40          40  getpid
--------  ------------  -----  ------  ----------  ----------  --------------
  100.00          2052      4       1         300         900  total
"
    );
    assert_eq!(o.err, MALFORMED_LINE_6);
}

#[test]
fn summary_json_and_filtered_summary() {
    let o = run_log(&["--summary", "--json", "--errors"]);
    assert_eq!(
        o.out,
        "{\"syscall\":\"frame_alloc_at\",\"calls\":1,\"errors\":1,\"p50_cycles\":812,\"p99_cycles\":812,\"total_cycles\":812}\n"
    );
}

#[test]
fn help_and_usage_errors() {
    let o = run_log(&["--help"]);
    assert_eq!(
        (o.code, o.out.as_str(), o.err.as_str()),
        (0, exo_trace::HELP, "")
    );
    assert!(o.out.contains("--summary") && o.out.contains("--syscall NAME[,NAME]"));

    for args in [
        &["--frobnicate"][..],
        &["--pid"],
        &["--pid", "two"],
        &["--syscall", "fork"],
        &["a.log", "b.log"],
        &["--summary=yes"],
    ] {
        let o = run_log(args);
        assert_eq!(o.code, 2, "{args:?}");
        assert_eq!(o.out, "", "{args:?}");
        assert!(o.err.starts_with("exo-trace: "), "{args:?}: {}", o.err);
        assert!(o.err.ends_with(exo_trace::HELP), "{args:?}");
    }
}

#[test]
fn reads_a_file_instead_of_the_input() {
    let path = std::env::temp_dir().join(format!("exo-trace-test-{}.log", std::process::id()));
    std::fs::write(&path, LOG).unwrap();
    let path_str = path.to_str().unwrap();
    let o = run_with(&[path_str, "--errors"], b"ignored\n");
    std::fs::remove_file(&path).unwrap();
    assert_eq!(o.code, 0);
    assert_eq!(
        o.out,
        "[2 frames] frame_alloc_at(phys=0xfee00000) = BadCapability\n"
    );

    // `-` is the given input.
    let o = run_with(&["-"], b"just text\n");
    assert_eq!(o.out, "just text\n");

    let o = run_with(&["/nonexistent/exo-trace.log"], b"");
    assert_eq!(o.code, 1);
    assert!(o
        .err
        .starts_with("exo-trace: cannot open /nonexistent/exo-trace.log: "));
}

#[test]
fn non_utf8_lines() {
    let mut input = b"caf\xe9 latin-1\r\n".to_vec();
    input.extend_from_slice(b"@exo-trace 1 pid=1 proc=\xff sys=yield args= ret=ok cycles=1\n");
    input.extend_from_slice(b"@exo-trace 1 pid=1 proc=a sys=yield args= ret=ok cycles=1\n");
    let args: Vec<String> = Vec::new();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = exo_trace::run(&args, &input[..], &mut out, &mut err);
    assert_eq!(code, 0);
    assert_eq!(out, b"caf\xe9 latin-1\r\n[1 a] yield() = 0\n");
    assert_eq!(
        String::from_utf8(err).unwrap(),
        "exo-trace: line 2: malformed trace record: not valid UTF-8\n"
    );
}

#[test]
fn empty_input() {
    let o = run_with(&[], b"");
    assert_eq!((o.code, o.out.as_str(), o.err.as_str()), (0, "", ""));
}

/// Output shared between the writer and the reader of the live test.
#[derive(Clone, Default)]
struct Shared {
    flushed: Rc<RefCell<Vec<u8>>>,
    pending: Rc<RefCell<Vec<u8>>>,
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        let mut pending = self.pending.borrow_mut();
        self.flushed.borrow_mut().append(&mut pending);
        Ok(())
    }
}

/// Hands out one line at a time and, before each, checks that everything
/// owed for the previous lines has been flushed: what a live pipe needs.
struct LiveInput {
    lines: Vec<&'static str>,
    next: usize,
    out: Shared,
    expected_after: Vec<&'static str>,
}

impl Read for LiveInput {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.fill_buf()?.len().min(buf.len());
        buf[..n].copy_from_slice(&self.lines[self.next].as_bytes()[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for LiveInput {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.next == self.lines.len() {
            return Ok(&[]);
        }
        if self.next > 0 {
            let flushed = String::from_utf8(self.out.flushed.borrow().clone()).unwrap();
            assert_eq!(
                flushed,
                self.expected_after[self.next - 1],
                "before line {}",
                self.next + 1
            );
            assert!(self.out.pending.borrow().is_empty());
        }
        Ok(self.lines[self.next].as_bytes())
    }
    fn consume(&mut self, amt: usize) {
        if amt == 0 {
            return;
        }
        assert_eq!(amt, self.lines[self.next].len(), "whole lines at a time");
        self.next += 1;
    }
}

#[test]
fn output_is_flushed_per_line() {
    let out = Shared::default();
    let input = LiveInput {
        lines: vec![
            "booting\n",
            "@exo-trace 1 pid=1 proc=a sys=yield args= ret=ok cycles=1\n",
            "@exo-trace 1 pid=1 proc=a sys=yield args= ret=ok cycles=\n",
            "@exo-trace 1 pid=1 proc=a sys=getpid args= ret=ok:1 cycles=1\n",
        ],
        next: 0,
        out: out.clone(),
        expected_after: vec![
            "booting\n",
            "booting\n[1 a] yield() = 0\n",
            "booting\n[1 a] yield() = 0\n",
        ],
    };
    let mut writer = out.clone();
    let mut err = Vec::new();
    assert_eq!(exo_trace::run(&[], input, &mut writer, &mut err), 0);
    assert_eq!(
        String::from_utf8(out.flushed.borrow().clone()).unwrap(),
        "booting\n[1 a] yield() = 0\n[1 a] getpid() = 1\n"
    );
    assert!(out.pending.borrow().is_empty());
}

/// A reader of `cargo xtask trace | head` that went away.
struct ClosedPipe;

impl Write for ClosedPipe {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::BrokenPipe.into())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_closed_pipe_stops_quietly() {
    let mut err = Vec::new();
    assert_eq!(
        exo_trace::run(&[], LOG.as_bytes(), &mut ClosedPipe, &mut err),
        0
    );
    assert!(err.is_empty());
}

/// An input that fails midway.
struct FailingInput(bool);

impl Read for FailingInput {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if std::mem::replace(&mut self.0, true) {
            return Err(io::Error::other("serial port gone"));
        }
        let line = b"first\n";
        buf[..line.len()].copy_from_slice(line);
        Ok(line.len())
    }
}

#[test]
fn input_errors_are_reported() {
    let o = {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = exo_trace::run(
            &[],
            io::BufReader::new(FailingInput(false)),
            &mut out,
            &mut err,
        );
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    };
    assert_eq!(o.0, 1);
    assert_eq!(o.1, "first\n");
    assert_eq!(o.2, "exo-trace: cannot read input: serial port gone\n");
}
