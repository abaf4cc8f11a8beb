//! The `exo-trace` command line ([`run`]): option parsing and the streaming
//! loop over a serial log, generic over its I/O so `cargo xtask trace` and
//! tests can drive it directly.

use crate::filter::Filter;
use crate::perfetto::Timeline;
use crate::record::{parse_line, LineKind};
use crate::render::{json_line, strace_line};
use crate::summary::Summary;
use abi::trace::PREFIX;
use abi::Sysnum;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};

/// The `--help` text.
pub const HELP: &str = "\
exo-trace: decode exo's serial syscall trace

usage: exo-trace [FILE] [--summary] [--json] [--perfetto OUT] [--pid N] [--syscall NAME[,NAME]] [--errors] [--help]

Reads a serial log from FILE (or standard input; FILE `-` also means it)
and prints one strace-like line per `@exo-trace` record, e.g.
    [2 frames] frame_alloc_at(phys=0xfee00000) = BadCapability
Other lines pass through untouched unless a filter is given. Malformed
records are reported on standard error. Output is flushed per line, so
`cargo xtask run --trace | cargo xtask trace` works live.

options:
  --summary             print only a per-syscall table at the end (like
                        strace -c): calls, errors, cycles p50/p99, total
  --json                one JSON object per record (per syscall with
                        --summary), one per line
  --perfetto OUT        write a timeline to OUT instead (Chrome trace-event
                        JSON: open it in ui.perfetto.dev or chrome://tracing):
                        a track per process, a slice per syscall with its
                        arguments and result, an instant per context switch;
                        time is kernel cycles (1 ns shown = 1 cycle), calls
                        laid end to end in trace order
  --pid N               only records of process N
  --syscall NAME[,NAME] only these syscalls (repeatable; `unknown#N` too)
  --errors              only calls that failed
  -h, --help            print this help

exit status: 0 ok, 1 input or output error, 2 usage error
";

/// What the command line asks for.
#[derive(Debug, Default)]
struct Options {
    file: Option<String>,
    summary: bool,
    json: bool,
    /// `--perfetto OUT`: write a timeline to OUT.
    perfetto: Option<String>,
    filter: Filter,
}

/// Parsed command line: work to do, or the help text.
enum Command {
    Run(Options),
    Help,
}

/// Parses the arguments (without the program name).
fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut opts = Options::default();
    let mut positional: Vec<&str> = Vec::new();
    let mut iter = args.iter().map(String::as_str);
    while let Some(arg) = iter.next() {
        if arg == "--" {
            positional.extend(iter.by_ref());
            break;
        }
        if arg == "-" || !arg.starts_with('-') {
            positional.push(arg);
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v)),
            _ => (arg, None),
        };
        let mut value = |name: &str| -> Result<&str, String> {
            match inline {
                Some(v) => Ok(v),
                None => iter
                    .next()
                    .ok_or_else(|| format!("option {name} needs a value")),
            }
        };
        match name {
            "-h" | "--help" => return Ok(Command::Help),
            "--summary" | "--json" | "--errors" if inline.is_some() => {
                return Err(format!("option {name} takes no value"));
            }
            "--summary" => opts.summary = true,
            "--perfetto" => opts.perfetto = Some(value(name)?.to_owned()),
            "--json" => opts.json = true,
            "--errors" => opts.filter.errors_only = true,
            "--pid" => {
                let v = value(name)?;
                if opts.filter.pid.is_some() {
                    return Err("--pid given twice".into());
                }
                let pid = v
                    .parse::<u64>()
                    .ok()
                    .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| format!("--pid needs a decimal process id, not {v:?}"))?;
                opts.filter.pid = Some(pid);
            }
            "--syscall" => {
                let v = value(name)?;
                let names = opts.filter.syscalls.get_or_insert_with(Vec::new);
                for n in v.split(',') {
                    check_syscall_name(n)?;
                    names.push(n.to_owned());
                }
            }
            _ => return Err(format!("unknown option {arg:?}")),
        }
    }
    if opts.perfetto.is_some() && (opts.summary || opts.json) {
        return Err(
            "--perfetto writes a timeline; it does not combine with --summary or --json".into(),
        );
    }
    match positional.as_slice() {
        [] => {}
        [file] => opts.file = Some((*file).to_owned()),
        [_, extra, ..] => return Err(format!("more than one FILE (extra {extra:?})")),
    }
    Ok(Command::Run(opts))
}

/// A `--syscall` name must be one the trace can contain.
fn check_syscall_name(name: &str) -> Result<(), String> {
    let unknown_ok = name
        .strip_prefix("unknown#")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if Sysnum::from_name(name).is_some() || unknown_ok {
        return Ok(());
    }
    let known: Vec<&str> = Sysnum::ALL.iter().map(|s| s.name()).collect();
    Err(format!(
        "unknown syscall {name:?} for --syscall (known: {}, or unknown#N)",
        known.join(", ")
    ))
}

/// Runs `exo-trace` with `args` (without the program name), reading `input`
/// unless a FILE is named, writing records to `out` and diagnostics to `err`.
///
/// Returns the exit status: 0 on success (malformed records are reported
/// but are not failures), 1 if FILE cannot be read or output fails, 2 for a
/// usage error (the message and [`HELP`] go to `err`). `--help` prints
/// [`HELP`] to `out` and returns 0. If `out` is a closed pipe, `run` stops
/// quietly with 0.
pub fn run(
    args: &[String],
    input: impl BufRead,
    out: &mut impl Write,
    err: &mut impl Write,
) -> i32 {
    let opts = match parse_args(args) {
        Ok(Command::Run(opts)) => opts,
        Ok(Command::Help) => {
            let _ = out.write_all(HELP.as_bytes()).and_then(|()| out.flush());
            return 0;
        }
        Err(msg) => {
            let _ = write!(err, "exo-trace: {msg}\n\n{HELP}").and_then(|()| err.flush());
            return 2;
        }
    };
    let result = match opts.file.as_deref() {
        None | Some("-") => process(input, &opts, out, err),
        Some(path) => match File::open(path) {
            Ok(file) => process(BufReader::new(file), &opts, out, err),
            Err(e) => {
                let _ = writeln!(err, "exo-trace: cannot open {path}: {e}");
                return 1;
            }
        },
    };
    match result {
        Ok(()) => 0,
        Err(Failure::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(Failure::Output(e)) => {
            let _ = writeln!(err, "exo-trace: cannot write output: {e}");
            1
        }
        Err(Failure::Input(e)) => {
            let _ = writeln!(err, "exo-trace: cannot read input: {e}");
            1
        }
        Err(Failure::Timeline(path, e)) => {
            let _ = writeln!(err, "exo-trace: cannot write {path}: {e}");
            1
        }
    }
}

/// Why the streaming loop stopped early.
enum Failure {
    Input(io::Error),
    Output(io::Error),
    /// The `--perfetto` file could not be written.
    Timeline(String, io::Error),
}

/// The streaming loop: one line in, at most one line out, flushed.
fn process(
    mut input: impl BufRead,
    opts: &Options,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<(), Failure> {
    let filtering = opts.filter.is_active();
    let mut summary = Summary::new();
    let mut timeline = opts.perfetto.as_ref().map(|_| Timeline::new());
    let mut buf = Vec::new();
    let mut line_no: u64 = 0;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf).map_err(Failure::Input)? == 0 {
            break;
        }
        line_no += 1;
        let kind = match std::str::from_utf8(&buf) {
            Ok(text) => parse_line(text),
            Err(_) if buf.starts_with(PREFIX.as_bytes()) => {
                LineKind::Malformed("not valid UTF-8".into())
            }
            Err(_) => LineKind::Other(""),
        };
        let record = match kind {
            LineKind::Record(record) => record,
            LineKind::Other(_) => {
                if !filtering && !opts.summary && !opts.json && timeline.is_none() {
                    // The raw bytes, terminator included: untouched.
                    emit(out, &buf)?;
                }
                continue;
            }
            LineKind::Malformed(reason) => {
                // Diagnostics are best effort: a closed stderr must not stop
                // the decoding.
                let _ = writeln!(
                    err,
                    "exo-trace: line {line_no}: malformed trace record: {reason}"
                )
                .and_then(|()| err.flush());
                continue;
            }
        };
        if !opts.filter.matches(&record) {
            continue;
        }
        if let Some(timeline) = &mut timeline {
            timeline.add(&record);
            continue;
        }
        if opts.summary {
            summary.add(&record);
            continue;
        }
        let mut line = if opts.json {
            json_line(&record)
        } else {
            strace_line(&record)
        };
        line.push('\n');
        emit(out, line.as_bytes())?;
    }
    if let (Some(timeline), Some(path)) = (&timeline, &opts.perfetto) {
        std::fs::write(path, timeline.render()).map_err(|e| Failure::Timeline(path.clone(), e))?;
        let line = format!(
            "exo-trace: wrote {path}: {} syscalls of {} processes, {} context switches \
             (open it in ui.perfetto.dev or chrome://tracing)\n",
            timeline.slices(),
            timeline.processes(),
            timeline.switches()
        );
        emit(out, line.as_bytes())?;
    }
    if opts.summary {
        let text = if opts.json {
            summary.render_json()
        } else {
            summary.render_table()
        };
        emit(out, text.as_bytes())?;
    }
    Ok(())
}

/// Writes and flushes (for live use through a pipe).
fn emit(out: &mut impl Write, bytes: &[u8]) -> Result<(), Failure> {
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(Failure::Output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn parse(list: &[&str]) -> Result<Options, String> {
        match parse_args(&args(list))? {
            Command::Run(o) => Ok(o),
            Command::Help => Err("help".into()),
        }
    }

    #[test]
    fn options_parse() {
        let o = parse(&["log.txt", "--summary", "--json", "--pid", "3", "--errors"]).unwrap();
        assert_eq!(o.file.as_deref(), Some("log.txt"));
        assert!(o.summary && o.json && o.filter.errors_only);
        assert_eq!(o.filter.pid, Some(3));
        let o = parse(&["--syscall", "map,unmap", "--syscall=getpid", "--pid=7"]).unwrap();
        assert_eq!(
            o.filter.syscalls,
            Some(vec!["map".into(), "unmap".into(), "getpid".into()])
        );
        assert_eq!(o.filter.pid, Some(7));
        let o = parse(&["log", "--perfetto", "t.json", "--pid", "2"]).unwrap();
        assert_eq!(o.perfetto.as_deref(), Some("t.json"));
        let o = parse(&["--", "--weird-file"]).unwrap();
        assert_eq!(o.file.as_deref(), Some("--weird-file"));
        let o = parse(&["-"]).unwrap();
        assert_eq!(o.file.as_deref(), Some("-"));
        assert!(parse(&["--syscall", "unknown#99"]).is_ok());
        assert_eq!(parse(&["--json", "--help"]).unwrap_err(), "help");
        assert_eq!(parse(&["-h"]).unwrap_err(), "help");
    }

    #[test]
    fn options_reject() {
        for bad in [
            &["--bogus"][..],
            &["-x"],
            &["--pid"],
            &["--pid", "x"],
            &["--pid", "+3"],
            &["--pid", "1", "--pid", "2"],
            &["--syscall", "nope"],
            &["--syscall", "map,"],
            &["--syscall", "unknown#"],
            &["--json=yes"],
            &["--perfetto"],
            &["--perfetto", "t.json", "--summary"],
            &["--perfetto", "t.json", "--json"],
            &["a", "b"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
