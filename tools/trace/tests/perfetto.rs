//! `--perfetto`: the timeline is JSON of the Chrome trace-event format
//! (what ui.perfetto.dev and chrome://tracing open), checked with a real
//! JSON parser: every event has `ph`, `ts`, `pid` and `tid`, complete
//! slices on one track nest, processes are named, switches are marked.
#![forbid(unsafe_code)]

use exo_trace::{parse_line, LineKind, Timeline, CLOCK_NOTE};
use serde_json::Value;
use std::collections::BTreeMap;

/// A serial log of three processes (one with `"` and `\` in its name),
/// with kernel chatter between the records.
const LOG: &str = "\
exo: boot complete
@exo-trace 1 pid=1 proc=frames sys=frame_alloc args= ret=ok:0x1a2b cycles=1500
@exo-trace 1 pid=1 proc=frames sys=map args=cap=0x1a2b,vaddr=0x400000,flags=WRITE ret=ok cycles=2250
frames: a line of program output
@exo-trace 1 pid=2 proc=we\"ird\\ sys=frame_alloc_at args=phys=0xfee00000 ret=BadCapability cycles=812
@exo-trace 1 pid=2 proc=we\"ird\\ sys=yield args= ret=ok cycles=40
@exo-trace 1 pid=1 proc=frames sys=unmap args=vaddr=0x400000 ret=ok cycles=999
@exo-trace 1 pid=3 proc=hello sys=getpid args= ret=ok:3 cycles=0
@exo-trace 1 pid=3 proc=hello sys=exit args=code=0 ret=ok cycles=7
";

fn timeline(log: &str) -> (Timeline, Value) {
    let mut t = Timeline::new();
    for line in log.lines() {
        if let LineKind::Record(r) = parse_line(line) {
            t.add(&r);
        }
    }
    let json: Value = serde_json::from_str(&t.render()).expect("the timeline is JSON");
    (t, json)
}

fn num(event: &Value, key: &str) -> f64 {
    event[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {event}"))
}

/// The checks any trace-event document must pass; returns its events.
fn check_format(json: &Value) -> Vec<Value> {
    let events = json["traceEvents"].as_array().expect("traceEvents array");
    // Times in whole nanoseconds (the format's µs have three decimals):
    // adding floats would make touching slices seem to overlap.
    let nanos = |e: &Value, key: &str| (num(e, key) * 1000.0).round() as u64;
    let mut tracks: BTreeMap<(u64, u64), Vec<(u64, u64)>> = BTreeMap::new();
    for e in events {
        let ph = e["ph"].as_str().unwrap_or_else(|| panic!("no ph: {e}"));
        assert!(["X", "i", "M"].contains(&ph), "unexpected ph {ph}: {e}");
        num(e, "ts");
        let pid = e["pid"].as_u64().expect("pid");
        let tid = e["tid"].as_u64().expect("tid");
        assert!(e["name"].is_string(), "{e}");
        if ph == "X" {
            assert!(num(e, "dur") >= 0.0, "{e}");
            let (ts, dur) = (nanos(e, "ts"), nanos(e, "dur"));
            tracks.entry((pid, tid)).or_default().push((ts, ts + dur));
        }
    }
    // Slices on one track nest: each starts after the enclosing one ends
    // or ends within it (no partial overlap).
    for (track, mut slices) in tracks {
        slices.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut open: Vec<u64> = Vec::new();
        for (start, end) in slices {
            while open.last().is_some_and(|&e| e <= start) {
                open.pop();
            }
            if let Some(&enclosing) = open.last() {
                assert!(end <= enclosing, "{track:?}: [{start}, {end}) overlaps");
            }
            open.push(end);
        }
    }
    events.clone()
}

#[test]
fn the_timeline_is_trace_event_json() {
    let (t, json) = timeline(LOG);
    let events = check_format(&json);
    assert_eq!(json["displayTimeUnit"], "ns");
    assert_eq!(json["otherData"]["clock"], CLOCK_NOTE);
    assert_eq!((t.slices(), t.processes(), t.switches()), (7, 3, 3));

    // One named track per process.
    let names: BTreeMap<u64, &str> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "process_name")
        .map(|e| {
            (
                e["pid"].as_u64().unwrap(),
                e["args"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            (1, "frames (pid 1)"),
            (2, "we\"ird\\ (pid 2)"),
            (3, "hello (pid 3)")
        ]
    );

    // Slices in trace order, end to end on the kernel-cycle clock
    // (µs = cycles / 1000), with arguments and result.
    let slices: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    let mut clock = 0u64;
    for s in &slices {
        assert_eq!(num(s, "ts"), clock as f64 / 1000.0, "{s}");
        let cycles = s["args"]["cycles"].as_u64().unwrap();
        assert_eq!(num(s, "dur"), cycles as f64 / 1000.0, "{s}");
        assert_eq!(s["pid"], s["tid"]);
        clock += cycles;
    }
    let map = slices[1];
    assert_eq!(map["name"], "map");
    assert_eq!(map["args"]["vaddr"], "0x400000");
    assert_eq!(map["args"]["flags"], "WRITE");
    assert_eq!(map["args"]["result"], "ok");
    assert_eq!(map["args"]["failed"], false);
    assert_eq!(map["cat"], "syscall");
    let refused = slices[2];
    assert_eq!(refused["args"]["result"], "BadCapability");
    assert_eq!(refused["args"]["failed"], true);
    assert_eq!(refused["cat"], "syscall,error");
    assert_eq!(slices[0]["args"]["result"], "0x1a2b");

    // A switch where the next call comes from another process: 1 -> 2,
    // 2 -> 1, 1 -> 3, each at the boundary between the two slices.
    let switches: Vec<(u64, u64, f64)> = events
        .iter()
        .filter(|e| e["ph"] == "i")
        .map(|e| {
            assert_eq!(e["s"], "g");
            (
                e["args"]["from"].as_u64().unwrap(),
                e["args"]["to"].as_u64().unwrap(),
                num(e, "ts"),
            )
        })
        .collect();
    assert_eq!(
        switches,
        [(1, 2, 3.75), (2, 1, 4.602), (1, 3, 5.601)],
        "switches"
    );
    assert_eq!(
        events.iter().find(|e| e["ph"] == "i").unwrap()["name"],
        "switch to we\"ird\\ (pid 2)"
    );
}

/// A real serial log: `cargo xtask run --trace --programs share,frames`.
const REAL: &str = include_str!("data/share-frames.log");

#[test]
fn a_real_trace_makes_a_valid_timeline() {
    let records = REAL.lines().filter(|l| l.starts_with("@exo-trace")).count();
    let (t, json) = timeline(REAL);
    let events = check_format(&json);
    assert!(records > 50, "{records}");
    assert_eq!(t.slices(), records);
    assert_eq!(events.iter().filter(|e| e["ph"] == "X").count(), records);
    assert_eq!(t.processes(), 3);
    assert!(t.switches() > 0);
    assert!(events
        .iter()
        .any(|e| e["cat"] == "syscall,error" && e["args"]["result"] == "BadCapability"));
}

#[test]
fn an_empty_trace_is_an_empty_timeline() {
    let (t, json) = timeline("no records here\n");
    assert!(check_format(&json).is_empty());
    assert_eq!(t.slices(), 0);
}

#[test]
fn the_command_writes_the_file() {
    let path = std::env::temp_dir().join(format!("exo-trace-perfetto-{}.json", std::process::id()));
    let args = vec![
        "--perfetto".to_string(),
        path.display().to_string(),
        "--pid".to_string(),
        "1".to_string(),
    ];
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = exo_trace::run(&args, LOG.as_bytes(), &mut out, &mut err);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.starts_with(&format!(
            "exo-trace: wrote {}: 3 syscalls of 1 processes, 0 context switches",
            path.display()
        )),
        "{out}"
    );
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        check_format(&json)
            .iter()
            .filter(|e| e["ph"] == "X")
            .count(),
        3
    );
    let _ = std::fs::remove_file(&path);

    let bad = vec![
        "--perfetto".to_string(),
        "/nonexistent/dir/t.json".to_string(),
    ];
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(exo_trace::run(&bad, LOG.as_bytes(), &mut out, &mut err), 1);
    assert!(String::from_utf8_lossy(&err).contains("cannot write /nonexistent/dir/t.json"));
}

/// The nesting check catches partial overlap (and accepts true nesting).
#[test]
#[should_panic(expected = "overlaps")]
fn the_format_check_catches_partial_overlap() {
    let slice = |ts: f64, dur: f64| serde_json::json!({"name": "s", "ph": "X", "ts": ts, "dur": dur, "pid": 1, "tid": 1});
    let nested =
        serde_json::json!({"traceEvents": [slice(0.0, 10.0), slice(2.0, 3.0), slice(10.0, 1.0)]});
    check_format(&nested);
    let partial = serde_json::json!({"traceEvents": [slice(0.0, 10.0), slice(5.0, 10.0)]});
    check_format(&partial);
}
