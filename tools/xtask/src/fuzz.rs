//! `cargo xtask fuzz`: the in-guest syscall fuzzer and the host fuzz
//! targets.
//!
//! In the guest, `test-fuzz` (userland/demos/src/bin/test-fuzz.rs) runs as
//! several instances at once (`test-fuzz`, `test-fuzz-2`, ..., one ELF
//! booted under several names with the image builder's `--copies`), each
//! with its share of the iterations and its own random stream derived from
//! the seed and its index. The kernel counts syscalls and errors, checks
//! its invariants every 65536 syscalls and, when every instance has ended,
//! prints one last line with the figures and its verdict; the run's exit
//! status is that verdict.
//!
//! On the host (`--host`), the property and mutation tests of the ELF
//! validator, the capability table and the trace decoder run with
//! `EXO_FUZZ_CASES` cases each, in release mode.
use crate::build::{self, ImageSpec};
use crate::qemu::{self, RunOptions};
use crate::test::{qt, QemuTest};
use std::process::Command;
use std::time::{Duration, Instant};

/// Instances booted at once unless `--instances` says otherwise.
pub const DEFAULT_INSTANCES: u64 = 3;
/// Most instances (the program formats two-digit names at most).
const MAX_INSTANCES: u64 = 16;
/// Iterations of the QEMU test (enough for one periodic invariant check).
const TEST_ITERATIONS: u64 = 100_000;
/// Host cases per target with `--host` and no `--cases`.
const DEFAULT_HOST_CASES: u64 = 100_000;

/// Name of instance `i` (0-based): what the image builder's `--copies`
/// calls it.
fn instance_name(i: u64) -> String {
    if i == 0 {
        "test-fuzz".to_string()
    } else {
        format!("test-fuzz-{}", i + 1)
    }
}

/// The boot image of a fuzz run: `instances` copies of `test-fuzz`,
/// splitting `iterations` between them.
///
/// Even-numbered instances (`test-fuzz`, `test-fuzz-3`, ...) are drivers,
/// which may claim device frames; the others check that they may not.
pub fn spec(iterations: u64, seed: u64, instances: u64) -> ImageSpec {
    let driver = |i: u64| i.is_multiple_of(2);
    let mut options: Vec<String> = (0..instances)
        .map(|i| {
            let share = iterations / instances + u64::from(i < iterations % instances);
            format!(
                "args:{}=seed={seed} iterations={share} instance={i} instances={instances} driver={}",
                instance_name(i),
                u64::from(driver(i))
            )
        })
        .collect();
    let drivers: Vec<String> = (0..instances)
        .filter(|&i| driver(i))
        .map(instance_name)
        .collect();
    options.push(format!("drivers={}", drivers.join(",")));
    ImageSpec {
        programs: Some("test-fuzz".into()),
        options,
        copies: vec![format!("test-fuzz={instances}")],
        ..Default::default()
    }
}

/// The QEMU test: a short fuzz run with a fixed seed.
pub fn tests() -> Vec<QemuTest> {
    let mut test = qt(
        "fuzz-syscalls-100k",
        spec(TEST_ITERATIONS, 1, DEFAULT_INSTANCES),
        0,
        &[
            "fuzz[0]: done:",
            "fuzz[1]: done:",
            "fuzz[2]: done:",
            "0 violations",
            "(test-fuzz-3) exited with code 0",
            "invariants checked",
            "hold; programs: all as expected; verdict: success",
        ],
    );
    test.also_must_not.push("VIOLATION");
    test.timeout = Duration::from_secs(300);
    // Every per-process bound taken at once by as many processes as the
    // kernel runs, with periodic invariant checks at the kernel heap's
    // worst case.
    let bounds = QemuTest {
        spec: ImageSpec {
            copies: vec!["test-bounds=64".into()],
            ..crate::test::programs("test-bounds")
        },
        ..qt(
            "bounds-64-processes-at-every-limit",
            ImageSpec::default(),
            0,
            &[
                "bounds: pid 64: 1024 capabilities, 2048 mappings, 256 queued",
                "[exo] all 64 processes finished",
                "invariants checked",
                "hold; programs: all as expected; verdict: success",
            ],
        )
    };
    vec![test, bounds]
}

/// `cargo xtask fuzz`.
pub fn run(args: &[String]) -> Result<u8, String> {
    let mut iterations: u64 = 100_000;
    let mut seed: u64 = 1;
    let mut instances = DEFAULT_INSTANCES;
    let mut timeout: Option<u64> = None;
    let mut host = false;
    let mut cases = DEFAULT_HOST_CASES;
    let mut uefi = false;
    let mut libfuzzer: Option<u64> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut number = || -> Result<u64, String> {
            let v = it.next().ok_or(format!("{arg} needs a value"))?;
            v.replace('_', "")
                .parse()
                .map_err(|_| format!("{arg} {v}: not a number"))
        };
        match arg.as_str() {
            "--iterations" => iterations = number()?,
            "--seed" => seed = number()?,
            "--instances" => instances = number()?,
            "--timeout" => timeout = Some(number()?),
            "--host" => host = true,
            "--cases" => cases = number()?,
            "--uefi" => uefi = true,
            "--libfuzzer" => libfuzzer = Some(number()?),
            other => return Err(format!("fuzz: unknown option `{other}` (see --help)")),
        }
    }
    if let Some(seconds) = libfuzzer {
        return run_libfuzzer(seconds);
    }
    if host {
        return run_host(cases);
    }
    if !(1..=MAX_INSTANCES).contains(&instances) {
        return Err(format!("--instances {instances}: 1..={MAX_INSTANCES}"));
    }
    // About 100k syscalls a second under TCG on our machines, plus boot:
    // the default leaves five times that.
    let timeout = Duration::from_secs(timeout.unwrap_or(60 + iterations / 20_000));
    let tool = build::build_all()?;
    let spec = ImageSpec {
        uefi,
        ..spec(iterations, seed, instances)
    };
    let image = build::make_image(&tool, &spec, &build::target_dir().join("exo").join("fuzz"))?;
    eprintln!(
        "xtask: fuzzing: {iterations} syscalls, seed {seed}, {instances} instances ({} s timeout)",
        timeout.as_secs()
    );
    let opts = RunOptions {
        uefi,
        timeout,
        ..Default::default()
    };
    let outcome = qemu::boot(&image, &opts)?;
    let code = outcome.exit_code();
    let lines: Vec<&str> = outcome.serial.lines().collect();
    for line in lines.iter().filter(|l| l.contains("invariant broken")) {
        eprintln!("xtask: {line}");
    }
    let last = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("[exo] ") && l.contains(" syscalls in "))
        .unwrap_or(&"(no final line from the kernel)");
    eprintln!("xtask: {last}");
    eprintln!(
        "xtask: fuzz run: {:.1} s wall (boot included), verdict {}",
        outcome.elapsed.as_secs_f64(),
        match code {
            0 => "success".to_string(),
            1 => "failure".to_string(),
            124 => format!("timeout after {} s", timeout.as_secs()),
            _ => format!("none (QEMU status {:?})", outcome.status),
        }
    );
    if code != 0 {
        eprintln!(
            "xtask: reproduce with: cargo xtask fuzz --iterations {iterations} --seed {seed} --instances {instances}"
        );
    }
    Ok(code)
}

/// One host fuzz target: a crate, test selection, and what it covers.
struct HostTarget {
    what: &'static str,
    package: &'static str,
    /// Arguments selecting the tests (`--lib` or `--test NAME`).
    select: &'static [&'static str],
    /// Test-name filters (all given tests run).
    filters: &'static [&'static str],
}

const HOST_TARGETS: &[HostTarget] = &[
    HostTarget {
        what: "ELF validator (byte mutations, header fields)",
        package: "exo-core",
        select: &["--lib"],
        filters: &[
            "elf::tests::mutations_never_panic",
            "elf::tests::header_fields_never_panic",
        ],
    },
    HostTarget {
        what: "capability table (operations against a model)",
        package: "exo-core",
        select: &["--lib"],
        filters: &[
            "captable::tests::matches_model",
            "captable::tests::scramble_round_trips",
        ],
    },
    HostTarget {
        what: "trace decoder (mutated records, random bytes)",
        package: "exo-trace",
        select: &["--test", "fuzz"],
        filters: &[],
    },
];

/// `cargo xtask fuzz --host`: every host target with `cases` cases each.
fn run_host(cases: u64) -> Result<u8, String> {
    let mut failed = 0;
    let total = Instant::now();
    for target in HOST_TARGETS {
        let mut cmd = build::cargo_host();
        cmd.args(["test", "--release", "-p", target.package])
            .args(target.select)
            .env("EXO_FUZZ_CASES", cases.to_string())
            .arg("--")
            .args(target.filters);
        let start = Instant::now();
        let ok = run_quietly(&mut cmd)?;
        eprintln!(
            "host fuzz: {}: {cases} cases per property: {} ({:.1} s)",
            target.what,
            if ok { "ok" } else { "FAILED" },
            start.elapsed().as_secs_f64()
        );
        failed += u32::from(!ok);
    }
    eprintln!(
        "host fuzz: {} targets, {} failed ({:.1} s)",
        HOST_TARGETS.len(),
        failed,
        total.elapsed().as_secs_f64()
    );
    Ok(if failed == 0 { 0 } else { 1 })
}

/// The cargo-fuzz targets in `tools/fuzz/` (see its Cargo.toml).
const LIBFUZZER_TARGETS: &[&str] = &["elf", "ramdisk", "trace", "captable"];

/// `cargo xtask fuzz --libfuzzer S`: each coverage-guided target for S
/// seconds (needs a nightly toolchain and `cargo install cargo-fuzz`). The
/// ELF target starts from the demo programs' ELFs.
fn run_libfuzzer(seconds: u64) -> Result<u8, String> {
    let fuzz_dir = build::root().join("tools").join("fuzz");
    let probe = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .current_dir(&fuzz_dir)
        .env_remove("RUSTUP_TOOLCHAIN")
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        return Err("--libfuzzer needs a nightly toolchain and `cargo install cargo-fuzz`".into());
    }
    let seeds = build::target_dir()
        .join("bare")
        .join("userland")
        .join("x86_64-unknown-none")
        .join("release");
    let mut failed = 0;
    for target in LIBFUZZER_TARGETS {
        let corpus = fuzz_dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        if *target == "elf" {
            for program in ["hello", "frames", "share", "abi-only", "test-fuzz"] {
                let _ = std::fs::copy(seeds.join(program), corpus.join(program));
            }
        }
        let mut cmd = Command::new("cargo");
        cmd.args(["+nightly", "fuzz", "run", "--fuzz-dir"])
            .arg(&fuzz_dir)
            .arg(target)
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-max_len=65536")
            .current_dir(&fuzz_dir)
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("RUSTC_BOOTSTRAP");
        let start = Instant::now();
        let ok = run_quietly(&mut cmd)?;
        eprintln!(
            "libfuzzer: {target}: {} ({:.0} s; crashes go to tools/fuzz/artifacts/{target}/)",
            if ok { "no crash" } else { "CRASH" },
            start.elapsed().as_secs_f64()
        );
        failed += u32::from(!ok);
    }
    Ok(if failed == 0 { 0 } else { 1 })
}

/// Runs a cargo test command; prints its output only if it fails.
fn run_quietly(cmd: &mut Command) -> Result<bool, String> {
    let out = cmd.output().map_err(|e| format!("cargo: {e}"))?;
    if !out.status.success() {
        eprintln!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterations_are_split_between_named_instances() {
        let s = spec(10, 7, 3);
        assert_eq!(s.copies, vec!["test-fuzz=3".to_string()]);
        assert_eq!(
            s.options,
            vec![
                "args:test-fuzz=seed=7 iterations=4 instance=0 instances=3 driver=1".to_string(),
                "args:test-fuzz-2=seed=7 iterations=3 instance=1 instances=3 driver=0".to_string(),
                "args:test-fuzz-3=seed=7 iterations=3 instance=2 instances=3 driver=1".to_string(),
                "drivers=test-fuzz,test-fuzz-3".to_string(),
            ]
        );
        assert_eq!(instance_name(11), "test-fuzz-12");
    }
}
