//! Record filters: by pid, by syscall name, failed calls only, combined.
#![forbid(unsafe_code)]

use exo_trace::{parse_line, Filter, LineKind, Record};

fn rec(pid: u64, sys: &str, ret: &str) -> Record {
    let args = if sys == "unmap" { "vaddr=0x1000" } else { "" };
    let line = format!("@exo-trace 1 pid={pid} proc=t sys={sys} args={args} ret={ret} cycles=1");
    match parse_line(&line) {
        LineKind::Record(r) => r,
        other => panic!("{line}: {other:?}"),
    }
}

fn records() -> Vec<Record> {
    vec![
        rec(1, "yield", "ok"),
        rec(1, "unmap", "NotMapped"),
        rec(2, "unmap", "ok"),
        rec(2, "getpid", "ok:2"),
        rec(3, "unknown#99", "UnknownSyscall"),
    ]
}

fn kept(filter: &Filter) -> Vec<(u64, String)> {
    records()
        .into_iter()
        .filter(|r| filter.matches(r))
        .map(|r| (r.pid, r.sys))
        .collect()
}

fn pairs(list: &[(u64, &str)]) -> Vec<(u64, String)> {
    list.iter().map(|&(p, s)| (p, s.to_string())).collect()
}

#[test]
fn default_keeps_everything() {
    let f = Filter::default();
    assert!(!f.is_active());
    assert_eq!(kept(&f).len(), 5);
}

#[test]
fn by_pid() {
    let f = Filter {
        pid: Some(2),
        ..Filter::default()
    };
    assert!(f.is_active());
    assert_eq!(kept(&f), pairs(&[(2, "unmap"), (2, "getpid")]));
    let f = Filter {
        pid: Some(42),
        ..Filter::default()
    };
    assert!(kept(&f).is_empty());
}

#[test]
fn by_syscall() {
    let f = Filter {
        syscalls: Some(vec!["unmap".into(), "unknown#99".into()]),
        ..Filter::default()
    };
    assert_eq!(
        kept(&f),
        pairs(&[(1, "unmap"), (2, "unmap"), (3, "unknown#99")])
    );
    let f = Filter {
        syscalls: Some(vec![]),
        ..Filter::default()
    };
    assert!(f.is_active());
    assert!(kept(&f).is_empty());
}

#[test]
fn errors_only() {
    let f = Filter {
        errors_only: true,
        ..Filter::default()
    };
    assert_eq!(kept(&f), pairs(&[(1, "unmap"), (3, "unknown#99")]));
}

#[test]
fn combined() {
    let f = Filter {
        pid: Some(1),
        syscalls: Some(vec!["unmap".into(), "yield".into()]),
        errors_only: true,
    };
    assert_eq!(kept(&f), pairs(&[(1, "unmap")]));
}
