//! Rendering of one record: an `strace`-like line ([`strace_line`]) or one
//! JSON object ([`json_line`]), plus the JSON string escaper they share with
//! the summary ([`json_string`]).

use crate::record::{Record, TraceResult};
use std::fmt::Write;

/// The record as `strace` would print it, without a line terminator:
///
/// ```text
/// [2 frames] frame_alloc_at(phys=0xfee00000) = BadCapability
/// [2 frames] map(cap=0x1234, vaddr=0x400000, flags=WRITE) = 0
/// [2 frames] frame_alloc() = 0x1a2b
/// ```
///
/// `[pid name]`, the syscall with its named arguments, then the returned
/// value, `0` for a call that returns nothing, or the error name.
pub fn strace_line(record: &Record) -> String {
    let mut s = format!("[{} {}] {}(", record.pid, record.proc_name, record.sys);
    for (i, (name, value)) in record.args.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{name}={value}");
    }
    s.push_str(") = ");
    match &record.result {
        TraceResult::Ok(None) => s.push('0'),
        TraceResult::Ok(Some(value)) => s.push_str(value),
        TraceResult::Err(e) => s.push_str(e.name()),
    }
    s
}

/// The record as one JSON object on one line (no terminator):
///
/// ```text
/// {"pid":2,"proc":"frames","syscall":"frame_alloc_at","args":{"phys":"0xfee00000"},"ok":false,"error":"BadCapability","cycles":812}
/// {"pid":2,"proc":"frames","syscall":"frame_alloc","args":{},"ok":true,"value":"0x1a2b","cycles":90}
/// ```
///
/// Argument and return values are strings exactly as traced (hex values
/// would not survive as JSON numbers); `value` is `null` for a call that
/// returns nothing. `pid` and `cycles` are numbers.
pub fn json_line(record: &Record) -> String {
    let mut s = format!(
        "{{\"pid\":{},\"proc\":{},\"syscall\":{},\"args\":{{",
        record.pid,
        json_string(&record.proc_name),
        json_string(&record.sys)
    );
    for (i, (name, value)) in record.args.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{}:{}", json_string(name), json_string(value));
    }
    s.push_str("},");
    match &record.result {
        TraceResult::Ok(None) => s.push_str("\"ok\":true,\"value\":null"),
        TraceResult::Ok(Some(value)) => {
            let _ = write!(s, "\"ok\":true,\"value\":{}", json_string(value));
        }
        TraceResult::Err(e) => {
            let _ = write!(s, "\"ok\":false,\"error\":{}", json_string(e.name()));
        }
    }
    let _ = write!(s, ",\"cycles\":{}}}", record.cycles);
    s
}

/// `text` as a quoted JSON string: `"` and `\` escaped, control characters
/// as `\n`, `\t`, ... or `\u00XX`; everything else (including non-ASCII)
/// kept as UTF-8.
pub fn json_string(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    s.push('"');
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            '\u{8}' => s.push_str("\\b"),
            '\u{c}' => s.push_str("\\f"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(s, "\\u{:04x}", u32::from(c));
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}
