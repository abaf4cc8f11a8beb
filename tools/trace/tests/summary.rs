//! The `strace -c`-like summary: counts, nearest-rank p50/p99, totals,
//! ordering, the table and the JSON lines.
#![forbid(unsafe_code)]

use exo_trace::{parse_line, LineKind, Record, Summary, SummaryRow};

fn rec(sys: &str, args: &str, ret: &str, cycles: u64) -> Record {
    let line = format!("@exo-trace 1 pid=2 proc=t sys={sys} args={args} ret={ret} cycles={cycles}");
    match parse_line(&line) {
        LineKind::Record(r) => r,
        other => panic!("{line}: {other:?}"),
    }
}

/// getpid: 100 calls costing 1..=100 cycles; frame_alloc_at: 4 calls, 1
/// failing; yield: 1 call.
fn sample() -> Summary {
    let mut s = Summary::new();
    // Added out of order: percentiles must not depend on arrival order.
    for c in (1..=100).rev() {
        s.add(&rec("getpid", "", "ok:2", c));
    }
    for (c, ret) in [
        (3000, "ok:0x1000"),
        (1000, "ok:0x2000"),
        (2000, "BadCapability"),
        (4000, "ok:0x3000"),
    ] {
        s.add(&rec("frame_alloc_at", "phys=0x1000", ret, c));
    }
    s.add(&rec("yield", "", "ok", 50));
    s
}

#[test]
fn rows_have_counts_percentiles_and_order() {
    let rows = sample().rows();
    assert_eq!(
        rows,
        vec![
            SummaryRow {
                syscall: "frame_alloc_at".into(),
                calls: 4,
                errors: 1,
                p50_cycles: 2000,
                p99_cycles: 4000,
                total_cycles: 10_000,
            },
            SummaryRow {
                syscall: "getpid".into(),
                calls: 100,
                errors: 0,
                p50_cycles: 50,
                p99_cycles: 99,
                total_cycles: 5050,
            },
            SummaryRow {
                syscall: "yield".into(),
                calls: 1,
                errors: 0,
                p50_cycles: 50,
                p99_cycles: 50,
                total_cycles: 50,
            },
        ]
    );
    let total = sample().total().unwrap();
    assert_eq!(total.syscall, "total");
    assert_eq!(
        (total.calls, total.errors, total.total_cycles),
        (105, 1, 15_100)
    );
    // Over 1..=100, 50, 1000, 2000, 3000, 4000: rank 53 is 52, rank 104 is 3000.
    assert_eq!((total.p50_cycles, total.p99_cycles), (52, 3000));
}

#[test]
fn ties_sort_by_name() {
    let mut s = Summary::new();
    s.add(&rec("yield", "", "ok", 10));
    s.add(&rec("getpid", "", "ok:1", 10));
    let names: Vec<String> = s.rows().into_iter().map(|r| r.syscall).collect();
    assert_eq!(names, ["getpid", "yield"]);
}

#[test]
fn table() {
    let expected = "\
% cycles  total cycles  calls  errors  p50 cycles  p99 cycles  syscall
--------  ------------  -----  ------  ----------  ----------  --------------
   66.22         10000      4       1        2000        4000  frame_alloc_at
   33.44          5050    100       0          50          99  getpid
    0.33            50      1       0          50          50  yield
--------  ------------  -----  ------  ----------  ----------  --------------
  100.00         15100    105       1          52        3000  total
";
    assert_eq!(sample().render_table(), expected);
}

#[test]
fn empty_table() {
    let s = Summary::new();
    assert!(s.is_empty());
    assert!(s.total().is_none());
    assert_eq!(
        s.render_table(),
        "\
% cycles  total cycles  calls  errors  p50 cycles  p99 cycles  syscall
--------  ------------  -----  ------  ----------  ----------  -------
    0.00             0      0       0           -           -  total
"
    );
    assert_eq!(s.render_json(), "");
}

#[test]
fn json() {
    assert_eq!(
        sample().render_json(),
        "\
{\"syscall\":\"frame_alloc_at\",\"calls\":4,\"errors\":1,\"p50_cycles\":2000,\"p99_cycles\":4000,\"total_cycles\":10000}
{\"syscall\":\"getpid\",\"calls\":100,\"errors\":0,\"p50_cycles\":50,\"p99_cycles\":99,\"total_cycles\":5050}
{\"syscall\":\"yield\",\"calls\":1,\"errors\":0,\"p50_cycles\":50,\"p99_cycles\":50,\"total_cycles\":50}
"
    );
}

#[test]
fn totals_do_not_overflow() {
    let mut s = Summary::new();
    for _ in 0..3 {
        s.add(&rec("yield", "", "ok", u64::MAX));
    }
    assert_eq!(s.rows()[0].total_cycles, 3 * u128::from(u64::MAX));
    assert!(s
        .render_table()
        .contains(&(3 * u128::from(u64::MAX)).to_string()));
}
