//! `cargo xtask`: exo's one host driver. Set-up, build, run in QEMU, test,
//! trace decoding and benchmarks, with one vocabulary of flags.
//!
//! It is built by the machine's default toolchain; everything bare-metal is
//! built by the Debian toolchain that [`setup`] installs and links.
//!
//! Unsafe code is denied: the one exception is `bench syscalls` reading
//! the host's TSC (`rdtsc` is an unsafe intrinsic, and no safe interface
//! gives the TSC rate), so this crate cannot `forbid` it.
#![deny(unsafe_code)]
mod bench_syscalls;
mod build;
mod device_tests;
mod doc;
mod fuzz;
// The image builder's plan (src/plan.rs, pure): compiled here too, so that
// its tests run with the host tests.
#[cfg(test)]
#[path = "../../../src/plan.rs"]
mod image_plan;
mod linux_guest;
mod net;
mod new;
mod qemu;
mod setup;
mod test;

use std::process::ExitCode;

/// One command's help: the one source of what it says about itself.
/// `cargo xtask NAME --help` prints [`Help::text`]; the overview
/// ([`overview`]) lists every command's usage lines and summary.
struct Help {
    /// The word after `cargo xtask`.
    name: &'static str,
    /// Its forms, each after `cargo xtask` (the overview lists them all).
    usage: &'static [&'static str],
    /// One line: what it does (the overview's description of it).
    summary: &'static str,
    /// The rest, in paragraphs: what it does in full, then its options.
    /// Pieces are joined (`trace` appends the decoder's own help).
    details: &'static [&'static str],
}

impl Help {
    /// What `cargo xtask NAME --help` prints.
    fn text(&self) -> String {
        let mut s = String::new();
        for (i, usage) in self.usage.iter().enumerate() {
            let lead = if i == 0 { "usage:" } else { "      " };
            s.push_str(&format!("{lead} cargo xtask {usage}\n"));
        }
        s.push('\n');
        s.push_str(self.summary);
        s.push_str(".\n");
        for piece in self.details {
            s.push('\n');
            s.push_str(piece);
        }
        s
    }
}

/// `trace`'s own part; the decoder's help ([`exo_trace::HELP`]) follows it.
const TRACE_DETAILS: &str = "\
Takes the arguments of the `exo-trace` decoder (tools/trace), whose help
follows. Try: cargo xtask run --trace | cargo xtask trace
";

/// Every command, in the overview's order.
const COMMANDS: &[Help] = &[
    Help {
        name: "setup",
        usage: &["setup"],
        summary: "Install what the build needs (every command runs it)",
        details: &["\
Installs the Debian packages the build needs (QEMU, OVMF, Debian's Rust
toolchain with its std sources, LLVM tools, lld), links that toolchain into
rustup as `debian-web`, and makes the llvm tool links the `bootloader` crate
looks for. Idempotent: it says what it does, and what was already there.

No options.
"],
    },
    Help {
        name: "run",
        usage: &["run [options]"],
        summary: "Build and boot in QEMU, the serial console on stdout",
        details: &["\
Builds the kernel and the demo programs, packs them into a boot image and
boots it in QEMU with the serial console on stdout. Exits with the kernel's
verdict: 0 every program finished as expected, 1 failure, 124 timeout, 2 no
verdict (QEMU error).

options:
  --programs a,b      boot only these demos (default: all)
  --elf PATH          also boot this ELF (repeatable); alone, boots only these
  --trace             trace every syscall on the serial console
  --args NAME=TEXT    give program NAME the argument string TEXT
  --driver NAME       let program NAME claim device frames (the device
                      demos are drivers already; see README)
  --copies NAME=K     boot program NAME K times (NAME, NAME-2 .. NAME-K)
  --uefi              boot with UEFI firmware (OVMF) instead of BIOS
  --no-iommu          boot without the Intel IOMMU (-device intel-iommu,
                      on by default): no DMAR table, DMA unconfined
  --kvm               use /dev/kvm (default: TCG; see README)
  --net               give the guest a virtio-net NIC on QEMU's user-mode
                      network, host 127.0.0.1:PORT forwarded to its port 80;
                      boots httpd alone unless --programs/--elf say else,
                      prints http://127.0.0.1:PORT/ and runs until stopped
                      (or --timeout)
  --port P            with --net: forward port P (default: a free one);
                      implies --net
  --gdb               wait for gdb on :1234 (prints the command to attach)
  --timeout S         kill QEMU after S seconds (default 60)
"],
    },
    Help {
        name: "test",
        usage: &["test [FILTER]"],
        summary: "Every test; the last line is `N passed, M failed`",
        details: &["\
Runs every test, in timed phases: host unit and property tests, rustfmt
--check, clippy with -D warnings (host crates, then kernel, userland and the
image builder), the API docs (`doc`, without warnings), then the QEMU
integration tests, which boot the real kernel and check its verdict and
serial log. The last line is `N passed, M failed`;
the exit status is 0 when nothing failed.

  FILTER              build, then run only the QEMU tests whose name
                      contains FILTER (no host tests, rustfmt or clippy)
"],
    },
    Help {
        name: "new",
        usage: &["new NAME [--path DIR] [--abi-only]"],
        summary: "Start an exo program in a crate of its own",
        details: &["\
Creates a crate for an exo program outside the tree, in ./NAME (relative to
the current directory) or in DIR: a Cargo.toml with path dependencies on
this checkout's `abi` and `libos`, a rust-toolchain.toml and a
.cargo/config.toml that make a plain `cargo build --release` in it build a
static ELF for exo, a src/main.rs that runs (on `libos::entry!`), a README,
and this checkout's Cargo.lock. In the crate, `cargo run --release` builds
the program and boots it with this checkout's `cargo xtask run --elf`, and
so does `cargo xtask run [RUN-OPTIONS]` (which also takes relative `--elf`
paths); the crate's README gives the absolute command too. Refuses if the
directory exists.

options:
  --path DIR          create the crate in DIR instead of ./NAME
  --abi-only          a program on the `abi` crate alone: its own `_start`
                      and panic handler, no libos
"],
    },
    Help {
        name: "doc",
        usage: &["doc"],
        summary: "Build the API docs of abi and libos; print where",
        details: &["\
Builds the API documentation of `abi` and `libos` with rustdoc for the
bare-metal target (as the programs are built: plain `cargo doc` cannot
build libos's dependencies for the host) and prints the path of each
crate's index.html (under target/bare/doc).

No options.
"],
    },
    Help {
        name: "trace",
        usage: &["trace [FILE] [options]"],
        summary: "Decode a serial trace (strace-like, or a timeline)",
        details: &[TRACE_DETAILS, exo_trace::HELP],
    },
    Help {
        name: "bench",
        usage: &[
            "bench alloc [--json] [--only NAME]",
            "bench syscalls [--json]",
            "bench net",
        ],
        summary: "The frame allocator on the host; syscalls vs Linux",
        details: &["\
bench alloc         exo's frame allocator against its peers (bitmap-allocator,
                    buddy_system_allocator), on the host in release mode:
                    nanoseconds per operation for each workload
                    (--only NAME: the workloads whose name contains NAME).
bench syscalls      exo's syscalls against Linux 6.1 in the same emulator:
                    exact instruction counts (TCG, -icount shift=0), plus
                    emulated ns and boot times. Downloads Debian's cloud
                    kernel the first time (cached in target/linux-bench/).
bench net           exo's httpd (a libOS with its own TCP/IP stack) against
                    Linux 6.1 serving the same files, both under TCG, from
                    the host over QEMU's user-mode network, alternated:
                    small keep-alive requests/s, requests/s with a new
                    connection each, MB/s of a 1 MiB file; medians with
                    min and max, and exo/Linux. Fetches the Linux kernel
                    and its virtio-net modules the first time (cached).

options:
  --json              one JSON object per line instead of a table
"],
    },
    Help {
        name: "fuzz",
        usage: &[
            "fuzz [options]",
            "fuzz --host [--cases N]",
            "fuzz --libfuzzer S",
        ],
        summary: "Fuzz the syscalls in QEMU, or the host-side parsers",
        details: &["\
In QEMU: K instances of test-fuzz issue random syscalls with biased
arguments (reproducible from the seed); the kernel checks its invariants
every 65536 syscalls and ends with a line of figures (syscalls, syscalls/s,
errors by kind, invariant verdict). Exits with the kernel's verdict.

options:
  --iterations N      syscalls in all (default 100000), split between
  --instances K       instances at once (default 3, at most 16)
  --seed S            random seed (default 1)
  --timeout S         kill QEMU after S seconds (default 60 + N/20000)
  --uefi              boot with UEFI firmware (OVMF) instead of BIOS

  --host              host fuzzing instead: the ELF validator, capability
                      table and trace decoder property/mutation tests, in
                      release mode (`cargo test` runs them with fewer cases;
                      EXO_FUZZ_CASES sets the count)
  --cases N           with --host: N cases each (default 100000)
  --libfuzzer S       coverage-guided fuzzing instead (cargo-fuzz targets in
                      tools/fuzz: elf, ramdisk, trace, captable), S seconds
                      each; needs a nightly toolchain and `cargo install
                      cargo-fuzz`
"],
    },
    Help {
        name: "help",
        usage: &["help [COMMAND]", "COMMAND --help"],
        summary: "This overview, or one command's help",
        details: &["\
With no COMMAND (or as `cargo xtask --help`): the list of commands. With
one, or as `cargo xtask COMMAND --help` (or -h): what that command does and
its options.
"],
    },
];

/// Where the overview's summaries start (after a two-space indent).
const OVERVIEW_COLUMN: usize = 24;

/// What `cargo xtask help` prints: every command's usage and summary.
fn overview() -> String {
    let mut s = String::from("usage: cargo xtask <command> [options]\n\ncommands:\n");
    for cmd in COMMANDS {
        // The summary beside the first usage line, or under them all if
        // that line is too long.
        let (first, more) = cmd.usage.split_first().expect("a usage line");
        if first.len() < OVERVIEW_COLUMN {
            s.push_str(&format!("  {first:<OVERVIEW_COLUMN$}{}\n", cmd.summary));
            for usage in more {
                s.push_str(&format!("  {usage}\n"));
            }
        } else {
            for usage in cmd.usage {
                s.push_str(&format!("  {usage}\n"));
            }
            s.push_str(&format!("  {:OVERVIEW_COLUMN$}{}\n", "", cmd.summary));
        }
    }
    s.push_str(
        "\n`cargo xtask <command> --help` says what a command does and lists its options.\n",
    );
    s
}

/// The help of command `name`, if there is one.
fn help_of(name: &str) -> Option<&'static Help> {
    COMMANDS.iter().find(|c| c.name == name)
}

fn is_help_flag(arg: &str) -> bool {
    arg == "--help" || arg == "-h"
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((cmd, rest)) => (cmd.as_str(), rest),
        None => ("help", &[][..]),
    };
    if let Some(help) = help_of(cmd).filter(|_| rest.iter().any(|a| is_help_flag(a))) {
        print!("{}", help.text());
        return ExitCode::SUCCESS;
    }
    let result = match cmd {
        "setup" => setup::ensure(true).map(|()| 0),
        "run" => qemu::run_command(rest),
        "test" => test::run(rest),
        "new" => new::run(rest),
        "doc" => doc::run(rest),
        "trace" => Ok(trace(rest)),
        "bench" => bench(rest),
        "fuzz" => fuzz::run(rest),
        "help" | "--help" | "-h" => help(rest),
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

/// `cargo xtask help [COMMAND]`.
fn help(args: &[String]) -> Result<u8, String> {
    match args {
        [] => print!("{}", overview()),
        [name] => match help_of(name) {
            Some(help) => print!("{}", help.text()),
            None => return Err(format!("help: no command `{name}`; try `cargo xtask help`")),
        },
        _ => return Err("usage: cargo xtask help [COMMAND]".into()),
    }
    Ok(0)
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
        Some("net") => net::bench(&args[1..]),
        _ => Err("usage: cargo xtask bench alloc|syscalls [--json] | net (see --help)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_its_own_help() {
        let overview = overview();
        for name in [
            "setup", "run", "test", "new", "doc", "trace", "bench", "fuzz", "help",
        ] {
            let help = help_of(name).unwrap_or_else(|| panic!("`{name}` has no help"));
            let text = help.text();
            assert_ne!(text, overview, "`{name} --help` prints the overview");
            assert!(
                text.starts_with(&format!("usage: cargo xtask {name}")),
                "`{name} --help` does not start with its usage:\n{text}"
            );
            assert!(text.contains(help.summary), "{name}");
            assert!(
                help.details.iter().map(|d| d.len()).sum::<usize>() > help.summary.len(),
                "`{name} --help` says no more than the overview"
            );
            // The overview is built from the same text.
            for usage in help.usage {
                assert!(overview.contains(&format!("  {usage}")), "{usage}");
            }
            assert!(overview.contains(help.summary), "{name}");
        }
        for line in overview.lines() {
            assert!(line.len() <= 80, "overview line over 80 columns: {line}");
        }
        let texts: std::collections::BTreeSet<String> = COMMANDS.iter().map(Help::text).collect();
        assert_eq!(texts.len(), COMMANDS.len(), "two commands share a help");
    }

    #[test]
    fn options_are_in_their_commands_help() {
        let has = |name: &str, words: &[&str]| {
            let text = help_of(name).expect("known command").text();
            for w in words {
                assert!(text.contains(w), "`{name} --help` lacks `{w}`");
            }
        };
        has(
            "run",
            &[
                "--programs",
                "--elf",
                "--trace",
                "--args",
                "--driver",
                "--copies",
                "--uefi",
                "--no-iommu",
                "--kvm",
                "--gdb",
                "--timeout",
            ],
        );
        has(
            "fuzz",
            &[
                "--iterations",
                "--instances",
                "--seed",
                "--timeout",
                "--uefi",
                "--host",
                "--cases",
                "--libfuzzer",
            ],
        );
        has(
            "bench",
            &["bench alloc", "bench syscalls", "bench net", "--json"],
        );
        has("test", &["FILTER"]);
        has("new", &["NAME", "--path", "--abi-only"]);
        // `trace` takes the decoder's options: its help is the decoder's.
        has("trace", &[exo_trace::HELP]);
    }

    #[test]
    fn help_flags_and_unknown_commands() {
        assert!(is_help_flag("--help") && is_help_flag("-h"));
        assert!(!is_help_flag("--helpful"));
        assert!(help_of("frobnicate").is_none());
        assert!(help(&["frobnicate".into()]).is_err());
        assert!(help(&["run".into(), "test".into()]).is_err());
    }
}
