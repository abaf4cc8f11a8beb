//! Any bytes through the trace decoder: each line never panics, a record
//! re-encodes to a line that parses the same, and the command-line driver
//! survives the whole input in every mode.
#![no_main]

use exo_trace::{json_line, parse_line, strace_line, LineKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        if let LineKind::Record(record) = parse_line(line) {
            let again = record.to_string();
            assert_eq!(parse_line(&again), LineKind::Record(record.clone()));
            let _ = strace_line(&record);
            let _ = json_line(&record);
        }
    }
    let mode: &[&str] = match data.first().map(|b| b % 4) {
        Some(0) => &["--json"],
        Some(1) => &["--summary"],
        Some(2) => &["--summary", "--json"],
        _ => &[],
    };
    let args: Vec<String> = mode.iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    exo_trace::run(&args, data, &mut out, &mut err);
});
