//! Rendering: strace-like lines, JSON objects and JSON string escaping.
#![forbid(unsafe_code)]

use abi::{Error, Sysnum};
use exo_trace::{json_line, json_string, parse_line, strace_line, LineKind, Record, TraceResult};

fn parse(line: &str) -> Record {
    match parse_line(line) {
        LineKind::Record(r) => r,
        other => panic!("{line:?}: {other:?}"),
    }
}

#[test]
fn strace_lines() {
    let cases = [
        (
            "@exo-trace 1 pid=2 proc=frames sys=frame_alloc_at args=phys=0xfee00000 ret=BadCapability cycles=812",
            "[2 frames] frame_alloc_at(phys=0xfee00000) = BadCapability",
        ),
        (
            "@exo-trace 1 pid=2 proc=frames sys=frame_alloc args= ret=ok:0x1a2b cycles=90",
            "[2 frames] frame_alloc() = 0x1a2b",
        ),
        (
            "@exo-trace 1 pid=2 proc=frames sys=map args=cap=0x1234,vaddr=0x400000,flags=WRITE|UNCACHED ret=ok cycles=812",
            "[2 frames] map(cap=0x1234, vaddr=0x400000, flags=WRITE|UNCACHED) = 0",
        ),
        (
            "@exo-trace 1 pid=5 proc=init sys=getpid args= ret=ok:5 cycles=40",
            "[5 init] getpid() = 5",
        ),
        (
            "@exo-trace 1 pid=3 proc=fuzz sys=unknown#99 args= ret=UnknownSyscall cycles=40",
            "[3 fuzz] unknown#99() = UnknownSyscall",
        ),
        (
            "@exo-trace 1 pid=3 proc=fuzz sys=yield args= ret=ok cycles=40\r\n",
            "[3 fuzz] yield() = 0",
        ),
    ];
    for (line, expected) in cases {
        assert_eq!(strace_line(&parse(line)), expected);
    }
}

#[test]
fn json_lines() {
    assert_eq!(
        json_line(&parse(
            "@exo-trace 1 pid=2 proc=frames sys=frame_alloc_at args=phys=0xfee00000 ret=BadCapability cycles=812"
        )),
        r#"{"pid":2,"proc":"frames","syscall":"frame_alloc_at","args":{"phys":"0xfee00000"},"ok":false,"error":"BadCapability","cycles":812}"#
    );
    assert_eq!(
        json_line(&parse(
            "@exo-trace 1 pid=2 proc=frames sys=frame_alloc args= ret=ok:0x1a2b cycles=90"
        )),
        r#"{"pid":2,"proc":"frames","syscall":"frame_alloc","args":{},"ok":true,"value":"0x1a2b","cycles":90}"#
    );
    assert_eq!(
        json_line(&parse(
            "@exo-trace 1 pid=2 proc=frames sys=send args=ep=0x1,w0=3,w1=0,cap=2,flags=0 ret=ok cycles=7"
        )),
        r#"{"pid":2,"proc":"frames","syscall":"send","args":{"ep":"0x1","w0":"3","w1":"0","cap":"2","flags":"0"},"ok":true,"value":null,"cycles":7}"#
    );
}

#[test]
fn json_escaping() {
    assert_eq!(json_string(""), r#""""#);
    assert_eq!(json_string("plain"), r#""plain""#);
    assert_eq!(json_string(r#"a"b\c"#), r#""a\"b\\c""#);
    assert_eq!(json_string("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
    assert_eq!(json_string("\u{0}\u{1f}\u{7f}"), r#""\u0000\u001f\u007f""#);
    assert_eq!(json_string("é→😀"), "\"é→😀\"");
    assert_eq!(json_string("</script>"), r#""</script>""#);
}

#[test]
fn json_line_escapes_every_string() {
    // Records built by hand can hold anything; the JSON must stay valid.
    let r = Record {
        version: 1,
        pid: 9,
        proc_name: "we\"ird\\\n".into(),
        sys: "map".into(),
        sysnum: Some(Sysnum::Map),
        args: vec![("k\"".into(), "v\u{1}".into())],
        result: TraceResult::Err(Error::NotMapped),
        cycles: 1,
    };
    assert_eq!(
        json_line(&r),
        r#"{"pid":9,"proc":"we\"ird\\\n","syscall":"map","args":{"k\"":"v\u0001"},"ok":false,"error":"NotMapped","cycles":1}"#
    );
    assert!(!json_line(&r).contains('\n'));
}
