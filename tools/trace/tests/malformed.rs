//! A corpus of malformed records: each must be `Malformed` with a reason
//! that says what is wrong, never a panic.
#![forbid(unsafe_code)]

use exo_trace::{parse_line, LineKind};

const GOOD: &str =
    "@exo-trace 1 pid=2 proc=frames sys=frame_alloc_at args=phys=0xfee00000 ret=BadCapability cycles=812";

/// (line, a fragment the reason must contain).
const CORPUS: &[(&str, &str)] = &[
    ("@exo-trace", "missing format version"),
    ("@exo-trace ", "bad format version"),
    ("@exo-tracer 1 pid=2", "expected \"@exo-trace\""),
    ("@exo-trace\t1 pid=2", "expected \"@exo-trace\""),
    ("@exo-trace 2 pid=2 proc=frames sys=yield args= ret=ok cycles=1", "unsupported format version 2"),
    ("@exo-trace one pid=2 proc=frames sys=yield args= ret=ok cycles=1", "bad format version"),
    ("@exo-trace 1", "missing field pid="),
    ("@exo-trace 1 pid=2 proc=frames", "missing field sys="),
    ("@exo-trace 1 pid=2 proc=frames sys=yield args= ret=ok", "missing field cycles="),
    ("@exo-trace 1 proc=frames pid=2 sys=yield args= ret=ok cycles=1", "out of order"),
    ("@exo-trace 1 pid=2 pid=2 proc=frames sys=yield args= ret=ok cycles=1", "out of order or repeated"),
    ("@exo-trace 1  pid=2 proc=frames sys=yield args= ret=ok cycles=1", "extra space"),
    ("@exo-trace 1 pid=-2 proc=frames sys=yield args= ret=ok cycles=1", "bad pid"),
    ("@exo-trace 1 pid=0x2 proc=frames sys=yield args= ret=ok cycles=1", "bad pid"),
    ("@exo-trace 1 pid=99999999999999999999 proc=frames sys=yield args= ret=ok cycles=1", "bad pid"),
    ("@exo-trace 1 pid=2 proc=frames sys=fork args= ret=ok cycles=1", "unknown syscall name \"fork\""),
    ("@exo-trace 1 pid=2 proc=frames sys= args= ret=ok cycles=1", "empty syscall name"),
    ("@exo-trace 1 pid=2 proc=frames sys=unknown#x args= ret=UnknownSyscall cycles=1", "bad syscall number"),
    ("@exo-trace 1 pid=2 proc=frames sys=unknown#19 args= ret=UnknownSyscall cycles=1", "known syscall frame_alloc"),
    ("@exo-trace 1 pid=2 proc=frames sys=unknown#99 args=a=1 ret=UnknownSyscall cycles=1", "encoder writes none"),
    ("@exo-trace 1 pid=2 proc=frames sys=yield args=x=1 ret=ok cycles=1", "too many args for yield"),
    ("@exo-trace 1 pid=2 proc=frames sys=unmap args=vaddr=0x1000,vaddr=0x2000 ret=ok cycles=1", "too many args"),
    ("@exo-trace 1 pid=2 proc=frames sys=map args=cap=0x1,vaddr=0x2 ret=ok cycles=1", "missing arg flags="),
    ("@exo-trace 1 pid=2 proc=frames sys=frame_alloc_at args= ret=BadCapability cycles=1", "missing arg phys="),
    ("@exo-trace 1 pid=2 proc=frames sys=frame_alloc_at args=addr=0x1000 ret=BadCapability cycles=1", "should be phys="),
    ("@exo-trace 1 pid=2 proc=frames sys=frame_alloc_at args=0x1000 ret=BadCapability cycles=1", "not name=value"),
    ("@exo-trace 1 pid=2 proc=frames sys=frame_alloc_at args=phys=4096 ret=BadCapability cycles=1", "bad value for arg phys="),
    ("@exo-trace 1 pid=2 proc=frames sys=frame_alloc_at args=phys=0xzz ret=BadCapability cycles=1", "bad value for arg phys="),
    ("@exo-trace 1 pid=2 proc=frames sys=exit args=code=0x1 ret=ok cycles=1", "bad value for arg code="),
    ("@exo-trace 1 pid=2 proc=frames sys=map args=cap=0x1,vaddr=0x2,flags=READ ret=ok cycles=1", "bad value for arg flags="),
    ("@exo-trace 1 pid=2 proc=frames sys=cap_transfer args= ret=ok cycles=1", "unknown syscall name \"cap_transfer\""),
    ("@exo-trace 1 pid=2 proc=frames sys=yield args= ret=Oops cycles=1", "unknown error name \"Oops\""),
    ("@exo-trace 1 pid=2 proc=frames sys=yield args= ret= cycles=1", "empty ret="),
    ("@exo-trace 1 pid=2 proc=frames sys=yield args= ret=ok:0x1 cycles=1", "returns no value"),
    ("@exo-trace 1 pid=2 proc=frames sys=frame_alloc args= ret=ok cycles=1", "returns a value"),
    ("@exo-trace 1 pid=2 proc=frames sys=frame_alloc args= ret=ok: cycles=1", "bad return value"),
    ("@exo-trace 1 pid=2 proc=frames sys=getpid args= ret=ok:0x7 cycles=1", "bad return value"),
    ("@exo-trace 1 pid=2 proc=frames sys=yield args= ret=ok cycles=", "bad cycles"),
    ("@exo-trace 1 pid=2 proc=frames sys=yield args= ret=ok cycles=12abc", "bad cycles"),
    ("@exo-trace 1 pid=2 proc=frames sys=yield args= ret=ok cycles=1 extra", "unexpected text after cycles"),
    ("@exo-trace 1 pid=2 proc=frames sys=yield args= ret=ok cycles=1 ", "trailing space"),
    ("@exo-trace 1 pid=2 proc=frames sys=yield args= ret=ok cycles=1\tx", "bad cycles"),
    ("@exo-trace 1 pid=2 proc=a-very-long-process-name-beyond-32 sys=yield args= ret=ok cycles=1", "longer than 32"),
    ("@exo-trace 1 pid=2 proc=fr\u{e9}mes sys=yield args= ret=ok cycles=1", "not printable ASCII"),
    ("@exo-trace 1 pid=2 proc=fr\u{1b}[31m sys=yield args= ret=ok cycles=1", "not printable ASCII"),
    ("@exo-trace 1 pid=2 proc=frames sys=yield args= ret=ok cycles=1\r\r\nmore", "bad cycles"),
];

#[test]
fn corpus_is_rejected_with_reasons() {
    assert!(CORPUS.len() >= 15);
    for &(line, fragment) in CORPUS {
        match parse_line(line) {
            LineKind::Malformed(reason) => assert!(
                reason.contains(fragment),
                "{line:?}: reason {reason:?} lacks {fragment:?}"
            ),
            other => panic!("{line:?} should be malformed, got {other:?}"),
        }
    }
}

#[test]
fn every_truncation_of_a_good_line_is_malformed() {
    // Cutting anywhere after the prefix leaves a malformed record, except
    // where the cut happens to leave a shorter valid cycles count.
    for cut in abi::trace::PREFIX.len()..GOOD.len() {
        let line = &GOOD[..cut];
        match parse_line(line) {
            LineKind::Malformed(reason) => assert!(!reason.is_empty()),
            LineKind::Record(r) => {
                assert!(line.starts_with(&GOOD[..GOOD.len() - 3]), "{line:?}");
                assert!(r.cycles == 8 || r.cycles == 81);
            }
            LineKind::Other(_) => panic!("{line:?} is not Other"),
        }
    }
}

#[test]
fn long_garbage_is_quoted_short() {
    let line = format!("@exo-trace 1 pid={}", "9".repeat(10_000));
    let LineKind::Malformed(reason) = parse_line(&line) else {
        panic!()
    };
    assert!(reason.len() < 100, "{reason}");
}
