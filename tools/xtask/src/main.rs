//! `cargo xtask`: exo's one host driver. Set-up, build, run in QEMU, test,
//! trace decoding and benchmarks, with one vocabulary of flags.
//!
//! It is built by the machine's default toolchain; everything bare-metal is
//! built by the Debian toolchain that [`setup`] installs and links.
mod bench_syscalls;
mod build;
mod device_tests;
mod fuzz;
mod qemu;
mod setup;
mod test;

use std::process::ExitCode;

const HELP: &str = "\
cargo xtask <command> [options]

Commands:
  setup                 Install what the build needs (Debian packages, the
                        Debian Rust toolchain linked into rustup as
                        `debian-web`, llvm tool links). Idempotent; every
                        other command runs it first.
  run [options]         Build the kernel and programs, boot them in QEMU with
                        the serial console on stdout. Exits with the kernel's
                        verdict (0 = every program finished as expected).
      --programs a,b      boot only these demos (default: all)
      --elf PATH          also boot this ELF (repeatable); alone, boots only these
      --trace             trace every syscall on the serial console
      --args NAME=TEXT    give program NAME the argument string TEXT
      --driver NAME       let program NAME claim device frames (the device
                          demos are drivers already; see README)
      --copies NAME=K     boot program NAME K times (NAME, NAME-2 .. NAME-K)
      --uefi              boot with UEFI firmware (OVMF) instead of BIOS
      --kvm               use /dev/kvm (default: TCG; see README)
      --gdb               wait for gdb on :1234 (prints the command to attach)
      --timeout S         kill QEMU after S seconds (default 60)
  test                  Every test: host unit and property tests, rustfmt,
                        clippy, QEMU integration tests. Ends with `N passed,
                        M failed`.
  fuzz [options]        Syscall fuzzer: K instances of test-fuzz issue random
                        syscalls with biased arguments (reproducible from the
                        seed); the kernel checks its invariants every 65536
                        syscalls and ends with a line of figures (syscalls,
                        syscalls/s, errors by kind, invariant verdict).
                        Exits with the kernel's verdict.
      --iterations N      syscalls in all (default 100000), split between
      --instances K       instances at once (default 3)
      --seed S            random seed (default 1)
      --timeout S         kill QEMU after S seconds (default 60 + N/20000)
      --uefi              boot with UEFI firmware (OVMF) instead of BIOS
  fuzz --host [--cases N]
                        Host fuzzing: the ELF validator, capability table and
                        trace decoder property/mutation tests, N cases each
                        (default 100000; `cargo test` runs them with fewer,
                        EXO_FUZZ_CASES sets the count), in release mode.
  fuzz --libfuzzer S    Coverage-guided fuzzing (cargo-fuzz targets in fuzz/:
                        elf, ramdisk, trace, captable), S seconds each; needs
                        a nightly toolchain and `cargo install cargo-fuzz`.
  trace [FILE] [opts]   Decode a serial trace (FILE or stdin) into strace-like
                        lines; --summary, --json, --pid N, --syscall A,B,
                        --errors. Try: cargo xtask run --trace | cargo xtask trace
  bench alloc [--json]  Frame-allocator benchmark against peers (host, release).
  bench syscalls [--json]
                        exo's syscalls against Linux 6.1 in the same emulator,
                        exact instruction counts (TCG -icount shift=0), plus
                        emulated ns and boot times.
  help                  This text. `cargo xtask <command> --help` too.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((cmd, rest)) => (cmd.as_str(), rest),
        None => ("help", &[][..]),
    };
    if rest.iter().any(|a| a == "--help" || a == "-h") && cmd != "trace" {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    let result = match cmd {
        "setup" => setup::ensure(true).map(|()| 0),
        "run" => qemu::run_command(rest),
        "test" => test::run(rest),
        "trace" => Ok(trace(rest)),
        "bench" => bench(rest),
        "fuzz" => fuzz::run(rest),
        "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(0)
        }
        other => Err(format!("unknown command `{other}`; try `cargo xtask help`")),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::from(2)
        }
    }
}

fn trace(args: &[String]) -> u8 {
    let stdin = std::io::stdin();
    let code = exo_trace::run(
        args,
        stdin.lock(),
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    code.clamp(0, 255) as u8
}

fn bench(args: &[String]) -> Result<u8, String> {
    match args.first().map(String::as_str) {
        Some("alloc") => {
            let status = std::process::Command::new("cargo")
                .args([
                    "run",
                    "--quiet",
                    "--release",
                    "-p",
                    "exo-bench",
                    "--",
                    "alloc",
                ])
                .args(&args[1..])
                .current_dir(build::root())
                .status()
                .map_err(|e| format!("cargo: {e}"))?;
            Ok(if status.success() { 0 } else { 1 })
        }
        Some("syscalls") => bench_syscalls::run(&args[1..]),
        _ => Err("usage: cargo xtask bench alloc|syscalls [--json]".into()),
    }
}
