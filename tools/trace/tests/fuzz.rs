//! Property-style robustness: many seeded random mutations of valid records
//! (and random bytes through the whole driver) never panic, and whatever
//! does parse re-encodes to a line that parses to the same record.
#![forbid(unsafe_code)]

use abi::trace::{write_record, PREFIX};
use abi::{Error, Sysnum};
use exo_trace::{json_line, parse_line, strace_line, LineKind, Summary};

/// Iterations: the `EXO_FUZZ_CASES` environment variable when set (`cargo
/// xtask fuzz --host` runs 100,000 and more), else `default`.
fn cases(default: usize) -> usize {
    std::env::var("EXO_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Valid records for every syscall, plus the unknown one.
fn seeds() -> Vec<String> {
    let mut seeds = Vec::new();
    let regs = [0x1234, 0x40_0000, 0x1f, 0xf, 7, 9];
    for n in (0..Sysnum::ALL.len() as u64).chain([99, u64::MAX]) {
        for result in [
            Ok(0x1a2b),
            Err(Error::BadCapability),
            Err(Error::UnknownSyscall),
        ] {
            let mut s = String::new();
            write_record(&mut s, 2, "frames", n, &regs, result, 812).unwrap();
            seeds.push(s);
        }
    }
    seeds
}

/// Characters that matter to the grammar, and some that should not appear.
const ALPHABET: &[char] = &[
    ' ', '=', ',', '|', '#', ':', '@', '0', '1', '9', 'x', 'f', 'z', 'W', '\r', '\n', '\t', '\0',
    '-', '+', 'é', '→', '😀', '\u{7f}', '"', '\\',
];

/// Byte indices that are char boundaries of `s` (including the end).
fn boundaries(s: &str) -> Vec<usize> {
    s.char_indices().map(|(i, _)| i).chain([s.len()]).collect()
}

fn mutate(rng: &mut Rng, line: &mut String, seeds: &[String]) {
    let b = boundaries(line);
    let at = *rng.pick(&b);
    match rng.below(8) {
        0 => line.truncate(at),
        1 => {
            if let Some(c) = line[at..].chars().next() {
                line.replace_range(at..at + c.len_utf8(), "");
            }
        }
        2 => line.insert(at, *rng.pick(ALPHABET)),
        3 => {
            if let Some(c) = line[at..].chars().next() {
                let mut buf = [0; 4];
                line.replace_range(
                    at..at + c.len_utf8(),
                    rng.pick(ALPHABET).encode_utf8(&mut buf),
                );
            }
        }
        4 => {
            let end = *rng.pick(&b);
            let (lo, hi) = (at.min(end), at.max(end));
            let slice = line[lo..hi].to_owned();
            line.insert_str(hi, &slice);
        }
        5 => {
            let mut tokens: Vec<&str> = line.split(' ').collect();
            let (i, j) = (rng.below(tokens.len()), rng.below(tokens.len()));
            tokens.swap(i, j);
            *line = tokens.join(" ");
        }
        6 => {
            let other = rng.pick(seeds);
            let ob = boundaries(other);
            let cut = *rng.pick(&ob);
            line.truncate(at);
            line.push_str(&other[cut..]);
        }
        _ => {
            // Replace a number with an extreme one.
            let digits = [
                "0",
                "18446744073709551615",
                "18446744073709551616",
                "0xffffffffffffffff",
                "00",
            ];
            line.insert_str(at, rng.pick::<&str>(&digits));
        }
    }
}

fn check(line: &str) {
    match parse_line(line) {
        LineKind::Other(rest) => {
            assert!(!line.starts_with(PREFIX), "{line:?}");
            assert_eq!(rest, line);
        }
        LineKind::Malformed(reason) => {
            assert!(line.starts_with(PREFIX), "{line:?}");
            assert!(!reason.is_empty());
            assert!(
                !reason.contains('\n') && !reason.contains('\r'),
                "{reason:?}"
            );
        }
        LineKind::Record(record) => {
            // What parsed re-encodes to a line that parses the same.
            let again = record.to_string();
            assert_eq!(
                parse_line(&again),
                LineKind::Record(record.clone()),
                "{line:?}"
            );
            let s = strace_line(&record);
            let j = json_line(&record);
            assert!(!s.contains('\n') && !j.contains('\n'));
            assert!(j.chars().all(|c| u32::from(c) >= 0x20));
            let mut summary = Summary::new();
            summary.add(&record);
            let _ = summary.render_table();
            let _ = summary.render_json();
        }
    }
}

#[test]
fn mutated_records_never_panic() {
    let seeds = seeds();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut records, mut malformed) = (0, 0);
    let n = cases(60_000);
    for _ in 0..n {
        let mut line = rng.pick(&seeds).clone();
        for _ in 0..=rng.below(4) {
            mutate(&mut rng, &mut line, &seeds);
        }
        check(&line);
        match parse_line(&line) {
            LineKind::Record(_) => records += 1,
            LineKind::Malformed(_) => malformed += 1,
            LineKind::Other(_) => {}
        }
    }
    // The mutations exercise both outcomes.
    assert!(
        records > n / 60 && malformed > n / 6,
        "{records} {malformed} of {n}"
    );
}

#[test]
fn every_prefix_and_suffix_of_every_seed() {
    for seed in seeds() {
        for at in boundaries(&seed) {
            check(&seed[..at]);
            check(&seed[at..]);
            check(&format!("{}\r\n", &seed[..at]));
        }
    }
}

#[test]
fn random_bytes_through_the_driver() {
    let mut rng = Rng(42);
    let pieces: &[&[u8]] = &[
        b"@exo-trace 1 ",
        b"pid=2 ",
        b"proc=a ",
        b"sys=yield ",
        b"args= ",
        b"ret=ok ",
        b"cycles=1",
        b"\r\n",
        b"\n",
        b"\xff\xfe",
        b"\xe2\x82",
        b"text ",
        b"@exo-trace",
    ];
    let modes: &[&[&str]] = &[
        &[],
        &["--json"],
        &["--summary"],
        &["--summary", "--json"],
        &["--errors"],
    ];
    for _ in 0..cases(3_000) {
        let mut input = Vec::new();
        for _ in 0..rng.below(40) {
            if rng.below(4) == 0 {
                input.push(rng.next() as u8);
            } else {
                input.extend_from_slice(rng.pick::<&[u8]>(pieces));
            }
        }
        let args: Vec<String> = rng.pick(modes).iter().map(|s| s.to_string()).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(exo_trace::run(&args, &input[..], &mut out, &mut err), 0);
        if args.is_empty() {
            // Every non-record line passes through: output never shrinks to
            // nothing when the input had text lines.
            assert!(input.is_empty() || !out.is_empty() || !err.is_empty());
        }
    }
}
