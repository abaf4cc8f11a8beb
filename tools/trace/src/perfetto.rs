//! A timeline of the trace ([`Timeline`]) in the Chrome trace-event JSON
//! format, which ui.perfetto.dev and chrome://tracing open
//! (`exo-trace --perfetto FILE`).
//!
//! What it shows, and on which clock:
//!
//! - one track per process: `pid` and `tid` are the exo pid, named by
//!   `process_name`/`thread_name` metadata events (`frames (pid 2)`);
//! - each syscall is a complete slice (`ph: "X"`) named after the call,
//!   with its decoded arguments, its result (`result`: the value, `ok`
//!   or the error name; `failed`: true or false) and its `cycles` in
//!   `args`; failed calls also have the category `error`;
//! - each context switch that the trace shows (the next call comes from
//!   another process) is a global instant event (`ph: "i"`, `s: "g"`)
//!   named `switch to NAME (pid N)`.
//!
//! The trace records, for each call, the TSC cycles it spent in the
//! kernel, in the order the calls ran (one CPU), but not when it started:
//! so the time axis is *kernel time*. Slices are laid end to end in trace
//! order, each as long as its `cycles`, and the user time between calls is
//! not shown. `ts` and `dur` are in the format's microseconds with
//! `µs = cycles / 1000`, so a viewer's nanosecond is one cycle (the
//! document says so in `otherData`, and sets `displayTimeUnit` to `ns`).
//! Slices on one track never overlap, so they nest trivially.
use crate::record::{Record, TraceResult};
use crate::render::json_string;
use std::collections::BTreeMap;
use std::fmt::Write;

/// What a timeline document says about its clock (`otherData.clock`).
pub const CLOCK_NOTE: &str =
    "1 ns shown = 1 TSC cycle spent in the kernel (ts in us = cycles / 1000); \
     syscalls laid end to end in trace order: user time between calls is not in the trace";

/// Builds the trace-event document record by record.
#[derive(Debug, Default)]
pub struct Timeline {
    /// The events so far, each one JSON object.
    events: Vec<String>,
    /// Process names by pid, for the metadata events.
    names: BTreeMap<u64, String>,
    /// Kernel cycles so far: where the next slice starts.
    clock: u64,
    /// The process of the previous record.
    last_pid: Option<u64>,
    /// Syscall slices so far.
    slices: usize,
    /// Context switches so far.
    switches: usize,
}

/// Cycles as the format's microseconds, `cycles / 1000`, exactly.
fn micros(cycles: u64) -> String {
    format!("{}.{:03}", cycles / 1000, cycles % 1000)
}

impl Timeline {
    /// An empty timeline.
    pub fn new() -> Self {
        Timeline::default()
    }

    /// Syscall slices added.
    pub fn slices(&self) -> usize {
        self.slices
    }

    /// Context switches seen.
    pub fn switches(&self) -> usize {
        self.switches
    }

    /// Processes seen.
    pub fn processes(&self) -> usize {
        self.names.len()
    }

    /// Adds the next record (in trace order).
    pub fn add(&mut self, record: &Record) {
        let pid = record.pid;
        self.names
            .entry(pid)
            .or_insert_with(|| record.proc_name.clone());
        if self.last_pid.is_some_and(|last| last != pid) {
            self.switches += 1;
            self.events.push(format!(
                "{{\"name\":{},\"cat\":\"switch\",\"ph\":\"i\",\"s\":\"g\",\"ts\":{},\"pid\":{pid},\"tid\":{pid},\"args\":{{\"from\":{},\"to\":{pid}}}}}",
                json_string(&format!("switch to {} (pid {pid})", record.proc_name)),
                micros(self.clock),
                self.last_pid.unwrap_or(0),
            ));
        }
        self.last_pid = Some(pid);
        let mut args = String::new();
        for (name, value) in &record.args {
            let _ = write!(args, "{}:{},", json_string(name), json_string(value));
        }
        let result = match &record.result {
            TraceResult::Ok(None) => "ok".to_string(),
            TraceResult::Ok(Some(value)) => value.clone(),
            TraceResult::Err(e) => e.name().to_string(),
        };
        let _ = write!(
            args,
            "\"result\":{},\"failed\":{},\"cycles\":{}",
            json_string(&result),
            record.is_err(),
            record.cycles
        );
        self.events.push(format!(
            "{{\"name\":{},\"cat\":{},\"ph\":\"X\",\"ts\":{},\"dur\":{},\"pid\":{pid},\"tid\":{pid},\"args\":{{{args}}}}}",
            json_string(&record.sys),
            if record.is_err() {
                "\"syscall,error\""
            } else {
                "\"syscall\""
            },
            micros(self.clock),
            micros(record.cycles),
        ));
        self.clock += record.cycles;
        self.slices += 1;
    }

    /// The whole document: `{"traceEvents": [...], ...}`, one event a line.
    pub fn render(&self) -> String {
        let mut out = String::from("{\"traceEvents\":[\n");
        let mut first = true;
        let mut push = |out: &mut String, event: &str| {
            if !first {
                out.push_str(",\n");
            }
            first = false;
            out.push_str(event);
        };
        for (pid, name) in &self.names {
            let label = json_string(&format!("{name} (pid {pid})"));
            for kind in ["process_name", "thread_name"] {
                push(
                    &mut out,
                    &format!(
                        "{{\"name\":\"{kind}\",\"ph\":\"M\",\"ts\":0,\"pid\":{pid},\"tid\":{pid},\"args\":{{\"name\":{label}}}}}"
                    ),
                );
            }
            push(
                &mut out,
                &format!(
                    "{{\"name\":\"process_sort_index\",\"ph\":\"M\",\"ts\":0,\"pid\":{pid},\"tid\":{pid},\"args\":{{\"sort_index\":{pid}}}}}"
                ),
            );
        }
        for event in &self.events {
            push(&mut out, event);
        }
        let _ = write!(
            out,
            "\n],\n\"displayTimeUnit\":\"ns\",\n\"otherData\":{{\"source\":\"exo-trace\",\"clock\":{},\"syscalls\":{},\"switches\":{}}}}}\n",
            json_string(CLOCK_NOTE),
            self.slices,
            self.switches
        );
        out
    }
}
