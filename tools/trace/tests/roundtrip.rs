//! Round trips through the kernel's encoder: every syscall and several
//! errors are written with `abi::trace::write_record`, parsed back, and the
//! fields checked.
#![forbid(unsafe_code)]

use abi::trace::write_record;
use abi::{ArgKind, Error, RetKind, Sysnum};
use exo_trace::{parse_line, LineKind, Record, TraceResult};

fn encode(
    pid: u64,
    name: &str,
    sysnum: u64,
    args: &[u64; 6],
    result: Result<u64, Error>,
    cycles: u64,
) -> String {
    let mut s = String::new();
    write_record(&mut s, pid, name, sysnum, args, result, cycles).unwrap();
    s
}

fn parse(line: &str) -> Record {
    match parse_line(line) {
        LineKind::Record(r) => r,
        other => panic!("{line:?} did not parse: {other:?}"),
    }
}

/// Argument registers that exercise every printing style, including flag
/// bits without names.
const ARG_SETS: [[u64; 6]; 4] = [
    [0, 0, 0, 0, 0, 0],
    [0x1234, 0x40_0000, 5, 1, 9, 9],
    [u64::MAX, u64::MAX, u64::MAX, u64::MAX, u64::MAX, u64::MAX],
    [0xfee0_0000, 3, 0x18, 0xf, 0, 0],
];

fn expected_value(kind: ArgKind, value: u64) -> String {
    let mut s = String::new();
    abi::trace::write_arg(&mut s, kind, value).unwrap();
    s
}

#[test]
fn every_syscall_round_trips_ok_and_errors() {
    let errors = [
        Error::BadCapability,
        Error::OutOfMemory,
        Error::InvalidArgument,
        Error::WouldBlock,
        Error::CapTableFull,
    ];
    let mut checked = 0;
    for &sys in Sysnum::ALL {
        for (i, regs) in ARG_SETS.iter().enumerate() {
            let mut results: Vec<Result<u64, Error>> = vec![Ok(0), Ok(0x1a2b), Ok(u64::MAX)];
            results.extend(errors.iter().map(|&e| Err(e)));
            for result in results {
                let pid = 2 + i as u64;
                let cycles = 812 * i as u64 + 1;
                let line = encode(pid, "frames", sys as u64, regs, result, cycles);
                let r = parse(&line);
                assert_eq!(r.version, abi::trace::VERSION);
                assert_eq!(r.pid, pid);
                assert_eq!(r.proc_name, "frames");
                assert_eq!(r.sys, sys.name());
                assert_eq!(r.sysnum, Some(sys));
                assert_eq!(r.cycles, cycles);
                assert_eq!(r.args.len(), sys.args().len());
                for ((got_name, got_value), (&(name, kind), &reg)) in
                    r.args.iter().zip(sys.args().iter().zip(regs))
                {
                    assert_eq!(got_name, name);
                    assert_eq!(*got_value, expected_value(kind, reg), "{line}");
                }
                let expected_result = match result {
                    Err(e) => TraceResult::Err(e),
                    Ok(v) => TraceResult::Ok(match sys.ret() {
                        RetKind::None => None,
                        RetKind::Handle | RetKind::Phys | RetKind::Bits => Some(format!("{v:#x}")),
                        RetKind::Pid | RetKind::Count | RetKind::Badge => Some(v.to_string()),
                    }),
                };
                assert_eq!(r.result, expected_result, "{line}");
                assert_eq!(r.is_err(), result.is_err());
                // Re-encoding gives the encoder's line back.
                assert_eq!(r.to_string(), line);
                // And the same record comes out of a CRLF line.
                assert_eq!(parse(&format!("{line}\r\n")), r);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, Sysnum::ALL.len() * ARG_SETS.len() * 8);
}

#[test]
fn every_error_round_trips() {
    for &e in Error::ALL {
        let line = encode(
            1,
            "init",
            Sysnum::Map as u64,
            &[1, 0x1000, 1, 0, 0, 0],
            Err(e),
            5,
        );
        let r = parse(&line);
        assert_eq!(r.result, TraceResult::Err(e));
        assert_eq!(r.to_string(), line);
    }
}

#[test]
fn unknown_syscalls_round_trip() {
    let past = Sysnum::ALL.iter().map(|&s| s as u64).max().unwrap_or(0) + 1;
    for n in [past, 99, 1 << 32, u64::MAX] {
        let line = encode(7, "fuzzer", n, &[1; 6], Err(Error::UnknownSyscall), 3);
        let r = parse(&line);
        assert_eq!(r.sys, format!("unknown#{n}"));
        assert_eq!(r.sysnum, None);
        assert!(r.args.is_empty());
        assert_eq!(r.result, TraceResult::Err(Error::UnknownSyscall));
        assert_eq!(r.to_string(), line);
    }
}

#[test]
fn the_documented_example() {
    let r = parse(
        "@exo-trace 1 pid=2 proc=frames sys=frame_alloc_at args=phys=0xfee00000 ret=BadCapability cycles=812",
    );
    assert_eq!(
        r,
        Record {
            version: 1,
            pid: 2,
            proc_name: "frames".into(),
            sys: "frame_alloc_at".into(),
            sysnum: Some(Sysnum::FrameAllocAt),
            args: vec![("phys".into(), "0xfee00000".into())],
            result: TraceResult::Err(Error::BadCapability),
            cycles: 812,
        }
    );
}

#[test]
fn names_and_extremes() {
    let long = "p".repeat(abi::MAX_NAME_LEN);
    let line = encode(
        u64::MAX,
        &long,
        Sysnum::GetPid as u64,
        &[0; 6],
        Ok(u64::MAX),
        u64::MAX,
    );
    let r = parse(&line);
    assert_eq!(r.pid, u64::MAX);
    assert_eq!(r.proc_name, long);
    assert_eq!(r.cycles, u64::MAX);
    assert_eq!(r.result, TraceResult::Ok(Some(u64::MAX.to_string())));
}

#[test]
fn other_lines_pass_through_unchanged() {
    for line in [
        "",
        "\r\n",
        "kernel: booting exo\r\n",
        "hello from frames",
        " @exo-trace 1 pid=2 proc=a sys=yield args= ret=ok cycles=1",
        "x@exo-trace",
        "@exo-trac",
        "@EXO-TRACE 1",
    ] {
        assert_eq!(parse_line(line), LineKind::Other(line));
    }
}
