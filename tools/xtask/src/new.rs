//! `cargo xtask new NAME [--path DIR] [--abi-only]`: a crate for an exo
//! program outside the tree, set up so that a plain `cargo build --release`
//! in it builds a bootable ELF and `cargo run --release` boots it.
//!
//! This module owns what such a crate contains ([`files`]: the manifest,
//! the cargo configuration that is the whole bare-metal recipe, the
//! toolchain file, `src/main.rs` from `tools/xtask/templates/`, a README)
//! and writing it ([`create`]). The README's examples of the top-level
//! README are these templates (a host test keeps them equal).
use std::path::{Path, PathBuf};

/// `src/main.rs` of a crate on libos (`mine` stands for the crate's name).
pub const LIBOS_MAIN: &str = include_str!("../templates/libos-main.rs");
/// `src/main.rs` of a crate on the `abi` crate alone.
pub const ABI_ONLY_MAIN: &str = include_str!("../templates/abi-only-main.rs");
/// How the templates name the program: `mine:` starts its doc line and
/// every line it prints.
const TEMPLATE_PREFIX: &str = "mine:";

/// The bare-metal target every exo program is built for.
pub const TARGET: &str = "x86_64-unknown-none";

/// What `cargo xtask new` is asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSpec {
    /// The package's (and program's) name.
    pub name: String,
    /// The crate's directory (must not exist yet).
    pub dir: PathBuf,
    /// Only `abi`, no libos.
    pub abi_only: bool,
}

impl NewSpec {
    /// Where `cargo build --release` in the crate puts the program.
    pub fn elf(&self) -> PathBuf {
        self.dir
            .join("target")
            .join(TARGET)
            .join("release")
            .join(&self.name)
    }
}

/// Parses `new`'s arguments; `cwd` is where a crate without `--path` goes
/// (as `cwd/NAME`).
pub fn parse(args: &[String], cwd: &Path) -> Result<NewSpec, String> {
    let mut name = None;
    let mut dir = None;
    let mut abi_only = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--abi-only" => abi_only = true,
            "--path" => {
                let v = it.next().ok_or("new: --path needs a directory")?;
                dir = Some(cwd.join(v));
            }
            opt if opt.starts_with('-') => {
                return Err(format!("new: unknown option `{opt}` (see --help)"))
            }
            n if name.is_none() => name = Some(n.to_string()),
            extra => return Err(format!("new: unexpected argument `{extra}` (see --help)")),
        }
    }
    let name = name.ok_or("usage: cargo xtask new NAME [--path DIR] [--abi-only]")?;
    check_name(&name)?;
    let dir = dir.unwrap_or_else(|| cwd.join(&name));
    Ok(NewSpec {
        name,
        dir,
        abi_only,
    })
}

/// A name cargo takes as a package name and the kernel keeps whole as a
/// program name (at most [`abi::MAX_NAME_LEN`] bytes).
fn check_name(name: &str) -> Result<(), String> {
    let max = abi::MAX_NAME_LEN;
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !first_ok || !rest_ok {
        return Err(format!(
            "new: `{name}` is not a usable name: start with a letter, then letters, \
             digits, `-` or `_`"
        ));
    }
    if name.len() > max {
        return Err(format!(
            "new: `{name}` is {} bytes long; exo keeps program names of at most {max}",
            name.len()
        ));
    }
    Ok(())
}

/// `s` as a TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `.cargo/exo-run`, the crate's runner (`'EXO'` stands for the checkout,
/// quoted for `sh`). `cargo run` hands it the program's path and the
/// arguments after `--`.
const RUNNER: &str = r#"#!/bin/sh
# The runner of this crate (.cargo/config.toml), made by `cargo xtask new`:
# boots the program with the exo checkout's `cargo xtask run`.
#   cargo run --release [-- RUN-OPTIONS]
#   cargo xtask run [RUN-OPTIONS]      (the alias: the same, built first)
# both run, in the checkout, `cargo xtask run --elf PROGRAM RUN-OPTIONS`
# (no `--elf PROGRAM` if RUN-OPTIONS name an `--elf` of their own), with
# relative `--elf` paths made absolute, and without this crate's toolchain
# and bootstrap variables.
set -eu
exo='EXO'
abs() {
    case $1 in
    /*) printf '%s
' "$1" ;;
    *) printf '%s
' "$PWD/$1" ;;
    esac
}
program=$(abs "$1")
shift
if [ "${1-}" = run ]; then
    shift
fi
case "${1-}" in
"" | -*) ;;
*)
    echo "exo-run: here \`cargo xtask\` only boots (\`cargo xtask run [OPTIONS]\`);"         "run \`cargo xtask $1\` in the exo checkout: cd $exo" >&2
    exit 2
    ;;
esac
prev= own_elf=no
for arg do
    shift
    if [ "$prev" = --elf ]; then
        arg=$(abs "$arg")
        own_elf=yes
    fi
    set -- "$@" "$arg"
    prev=$arg
done
if [ "$own_elf" = no ]; then
    set -- --elf "$program" "$@"
fi
cd "$exo"
exec env -u RUSTUP_TOOLCHAIN -u RUSTUP_TOOLCHAIN_SOURCE -u RUSTC_BOOTSTRAP     cargo xtask run "$@"
"#;

/// The file [`create`] makes executable.
const EXECUTABLE: &str = ".cargo/exo-run";

/// `s` quoted for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Every file of the crate, as (path in the crate, contents). `exo` is the
/// checkout the crate builds against (absolute).
pub fn files(spec: &NewSpec, exo: &Path) -> Vec<(&'static str, String)> {
    let name = &spec.name;
    let exo_str = exo.to_string_lossy();
    let mut deps = format!(
        "abi = {{ path = {} }}\n",
        toml_str(&exo.join("abi").to_string_lossy())
    );
    if !spec.abi_only {
        deps.push_str(&format!(
            "libos = {{ path = {} }}\n",
            toml_str(&exo.join("userland/libos").to_string_lossy())
        ));
    }
    let manifest = format!(
        "[package]
name = \"{name}\"
version = \"0.1.0\"
edition = \"2024\"

[dependencies]
{deps}
# A workspace of its own, wherever it lives (inside an exo checkout too).
[workspace]
"
    );
    let runner = RUNNER.replace("'EXO'", &sh_quote(&exo_str));
    let config = format!(
        "# Made by `cargo xtask new` from the exo checkout at {exo_str}: the recipe
# that makes a plain `cargo build --release` here build an exo program.

[build]
target = \"{TARGET}\"

[target.{TARGET}]
# exo loads static executables (ET_EXEC) only, not position-independent ones.
rustflags = [\"-C\", \"relocation-model=static\"]
# `cargo run --release [-- RUN-OPTIONS]` boots the program in QEMU with the
# exo checkout's `cargo xtask run --elf` (RUN-OPTIONS: `cargo xtask run --help`).
runner = \".cargo/exo-run\"

[alias]
# `cargo xtask run [RUN-OPTIONS]` here: build, then boot as above (with this
# program unless RUN-OPTIONS name their own `--elf`).
# (Strings, not arrays: cargo merges an array with an ancestor's, such as
# the exo checkout's own `xtask` alias when this crate lives inside it.)
xtask = \"run --release --quiet --\"

# The toolchain has no bare-metal standard library: build core and alloc
# from its sources (the toolchain file picks Debian's Rust, which has them).
[unstable]
build-std = [\"core\", \"alloc\", \"compiler_builtins\"]
build-std-features = [\"compiler-builtins-mem\"]

[env]
# build-std needs unstable compiler options on a stable compiler.
RUSTC_BOOTSTRAP = \"1\"
"
    );
    let toolchain = format!(
        "# Debian's Rust with its std sources, linked into rustup by the exo
# checkout's `cargo xtask setup` (rustup has no bare-metal std here).
[toolchain]
channel = \"{}\"
",
        crate::setup::TOOLCHAIN
    );
    let main = if spec.abi_only {
        ABI_ONLY_MAIN
    } else {
        LIBOS_MAIN
    };
    let elf = spec.elf();
    let readme = format!(
        "# {name}

An exo program on {on}, made by `cargo xtask new` from the exo checkout at
`{exo_str}`.

    cargo run --release

builds it and boots it in QEMU (TCG) with exo's kernel; the run's exit
status is the kernel's verdict (0: every program finished as expected).
Arguments after `--` are options of `cargo xtask run` (see `cargo xtask run
--help` in the exo checkout), e.g. `cargo run --release -- --trace`.

`cargo build --release` alone builds the program,
`target/{TARGET}/release/{name}`, a static ELF. Here, `cargo xtask run`
builds it and runs the exo checkout's `cargo xtask run` (only `run`: other
commands run in the checkout), so these boot it too:

    cargo xtask run --elf target/{TARGET}/release/{name}
    cargo xtask run --programs hello     # with exo's `hello` demo beside it

and from anywhere:

    cd {exo_q} && cargo xtask run --elf {elf_q}

What makes the plain `cargo build` work:

- `rust-toolchain.toml` picks the `{toolchain}` toolchain (Debian's Rust
  with its standard-library sources; the exo checkout's `cargo xtask setup`
  links it);
- `.cargo/config.toml` sets the target `{TARGET}`, static relocation (exo
  loads no position-independent executables), build-std of `core` and
  `alloc`, and the runner (`.cargo/exo-run`) and `xtask` alias that boot
  the program;
- `Cargo.toml` takes `abi`{and_libos} from the exo checkout by path; `Cargo.lock`
  starts as the checkout's, so dependencies have the versions exo was tested
  with.

The program starts at `_start(pid, args_ptr, args_len)` with a 64 KiB stack;
the exo README (\"Writing your own library OS\") says what the kernel checks,
which parts of libos are optional features (its panic handler, its heap)
and which address ranges libos takes for itself.
",
        on = if spec.abi_only {
            "the `abi` crate alone"
        } else {
            "libos"
        },
        exo_q = sh_quote(&exo_str),
        elf_q = sh_quote(&elf.to_string_lossy()),
        toolchain = crate::setup::TOOLCHAIN,
        and_libos = if spec.abi_only { "" } else { " and `libos`" },
    );
    vec![
        ("Cargo.toml", manifest),
        (".cargo/config.toml", config),
        (EXECUTABLE, runner),
        ("rust-toolchain.toml", toolchain),
        (
            "src/main.rs",
            main.replace(TEMPLATE_PREFIX, &format!("{name}:")),
        ),
        ("README.md", readme),
        (".gitignore", "/target\n".to_string()),
    ]
}

/// Writes the crate `spec` describes, building against the checkout
/// `exo`; refuses if `spec.dir` exists. Also copies the checkout's
/// `Cargo.lock` (the dependency versions exo is tested with).
pub fn create(spec: &NewSpec, exo: &Path) -> Result<(), String> {
    let dir = &spec.dir;
    if dir.symlink_metadata().is_ok() {
        return Err(format!(
            "new: {} already exists; not touching it (pick another NAME or --path)",
            dir.display()
        ));
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    // `create_dir`, not `_all`: it fails if the directory appeared meanwhile.
    std::fs::create_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (path, text) in files(spec, exo) {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        if path.ends_with(EXECUTABLE) {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let lock = exo.join("Cargo.lock");
    if lock.exists() {
        std::fs::copy(&lock, dir.join("Cargo.lock"))
            .map_err(|e| format!("{}: {e}", lock.display()))?;
    }
    Ok(())
}

/// `cargo xtask new`.
pub fn run(args: &[String]) -> Result<u8, String> {
    let cwd = std::env::current_dir().map_err(|e| format!("current directory: {e}"))?;
    let spec = parse(args, &cwd)?;
    // The crate builds with the toolchain the set-up links.
    crate::setup::ensure(false)?;
    let exo = crate::build::root();
    create(&spec, &exo)?;
    let dir = std::fs::canonicalize(&spec.dir).unwrap_or(spec.dir.clone());
    let spec = NewSpec { dir, ..spec };
    println!(
        "created {} ({}), building against {}",
        spec.dir.display(),
        if spec.abi_only {
            "abi only"
        } else {
            "abi + libos"
        },
        exo.display()
    );
    println!("build and boot it:");
    println!(
        "  cd {} && cargo run --release",
        sh_quote(&spec.dir.to_string_lossy())
    );
    println!("or, once built, from anywhere:");
    println!(
        "  cd {} && cargo xtask run --elf {}",
        sh_quote(&exo.to_string_lossy()),
        sh_quote(&spec.elf().to_string_lossy())
    );
    Ok(0)
}

/// The environment a user's shell would give `cargo build` in the crate:
/// ours without what the cargo running us (and rustup's proxy) added,
/// which would pick the toolchain, flags or target directory for it
/// (`RUSTUP_TOOLCHAIN`, `RUSTC_BOOTSTRAP`, `RUSTFLAGS`, `CARGO_*` but
/// `CARGO_HOME`, ...).
pub fn user_env(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    let ours = |k: &str| {
        (k.starts_with("CARGO") && k != "CARGO_HOME")
            || k.starts_with("__CARGO")
            || k.starts_with("RUSTC")
            || k.starts_with("RUSTDOC")
            || k.starts_with("RUSTUP_TOOLCHAIN")
            || k.ends_with("RUSTFLAGS")
            || k == "RUST_RECURSION_COUNT"
    };
    vars.filter(|(k, _)| !ours(k)).collect()
}

/// The crates the QEMU tests make: `cargo xtask new` output, built with a
/// plain `cargo build --release` and booted with `--elf`.
#[derive(Clone, Copy)]
enum TestCrate {
    /// The libos template as generated.
    Libos,
    /// The `--abi-only` template as generated.
    AbiOnly,
    /// A libos crate with `default-features = false` and a panic handler
    /// of its own (a duplicate lang item if libos brought its own).
    OwnPanic,
}

/// `src/main.rs` of [`TestCrate::OwnPanic`]: it panics on purpose, and its
/// own handler reports the panic and exits with 0.
const OWN_PANIC_MAIN: &str = r#"#![no_std]
#![no_main]

libos::entry!(main);

fn main() -> Result<(), libos::Error> {
    libos::println!("mine-own-panic: panicking on purpose");
    panic!("on purpose")
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    libos::println!("mine-own-panic: my own panic handler: {}", info.message());
    libos::sys::exit(0)
}
"#;

impl TestCrate {
    fn name(self) -> &'static str {
        match self {
            TestCrate::Libos => "mine",
            TestCrate::AbiOnly => "mine-abi",
            TestCrate::OwnPanic => "mine-own-panic",
        }
    }

    fn abi_only(self) -> bool {
        matches!(self, TestCrate::AbiOnly)
    }
}

/// Where the test crates live: side by side under the target directory,
/// with a parent `.cargo/config.toml` (as a user's own could be) that
/// gives them one shared target directory, so that build-std's `core` and
/// `alloc` are built once for all of them.
fn test_base() -> PathBuf {
    crate::build::target_dir().join("exo").join("new")
}

/// The ELF the test crate's build makes.
fn test_elf(krate: TestCrate) -> PathBuf {
    test_base()
        .join("target")
        .join(TARGET)
        .join("release")
        .join(krate.name())
}

/// Runs `cargo ARGS` in `dir` with [`user_env`]; `Err` with its output
/// if it fails.
fn user_cargo(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("cargo")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(user_env(std::env::vars()))
        .output()
        .map_err(|e| format!("cargo: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "`cargo {}` in {} failed ({}):\n{text}",
            args.join(" "),
            dir.display(),
            out.status
        ))
    }
}

/// Makes the test crate afresh with [`create`] (its build products stay
/// in the shared target directory) and builds it with a plain `cargo
/// build --release`.
fn make_test_crate(krate: TestCrate) -> Result<PathBuf, String> {
    let base = test_base();
    let config = base.join(".cargo").join("config.toml");
    std::fs::create_dir_all(config.parent().expect("has a parent"))
        .map_err(|e| format!("{}: {e}", base.display()))?;
    std::fs::write(&config, "[build]\ntarget-dir = \"target\"\n")
        .map_err(|e| format!("{}: {e}", config.display()))?;
    let spec = NewSpec {
        name: krate.name().into(),
        dir: base.join(krate.name()),
        abi_only: krate.abi_only(),
    };
    if spec.dir.exists() {
        std::fs::remove_dir_all(&spec.dir).map_err(|e| format!("{}: {e}", spec.dir.display()))?;
    }
    create(&spec, &crate::build::root())?;
    if let TestCrate::OwnPanic = krate {
        let manifest = spec.dir.join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).map_err(|e| e.to_string())?;
        let libos = text
            .lines()
            .find(|l| l.starts_with("libos = {"))
            .ok_or("no libos dependency in the generated Cargo.toml")?;
        let bare = libos.replace(" }", ", default-features = false }");
        std::fs::write(&manifest, text.replace(libos, &bare)).map_err(|e| e.to_string())?;
        std::fs::write(spec.dir.join("src/main.rs"), OWN_PANIC_MAIN).map_err(|e| e.to_string())?;
    }
    user_cargo(&spec.dir, &["build", "--release"])?;
    let elf = test_elf(krate);
    if !elf.exists() {
        return Err(format!("`cargo build --release` made no {}", elf.display()));
    }
    Ok(spec.dir)
}

/// The libos crate: built, then also booted the two ways its README
/// gives besides `--elf` from the checkout: `cargo run --release` (the
/// runner) and `cargo xtask run --elf PATH` in the crate (the alias; PATH
/// relative to it). Each must boot it once and succeed. Other `cargo
/// xtask` commands in the crate are refused with a pointer to the checkout.
fn prepare_libos() -> Result<(), String> {
    let dir = make_test_crate(TestCrate::Libos)?;
    let elf = format!("../target/{TARGET}/release/mine");
    for args in [
        &["run", "--release", "--", "--timeout", "60"][..],
        &["xtask", "run", "--elf", &elf, "--timeout", "60"][..],
    ] {
        let out = user_cargo(&dir, args)?;
        for want in [
            "mine: squares [1, 4, 9, 16]",
            "all 1 processes finished",
            "kernel verdict: success",
        ] {
            if !out.contains(want) {
                return Err(format!(
                    "`cargo {}` printed no `{want}`:\n{out}",
                    args.join(" ")
                ));
            }
        }
    }
    match user_cargo(&dir, &["xtask", "test"]) {
        Err(e) if e.contains("run `cargo xtask test` in the exo checkout") => Ok(()),
        Err(e) => Err(format!("`cargo xtask test` in the crate: {e}")),
        Ok(out) => Err(format!("`cargo xtask test` in the crate ran:\n{out}")),
    }
}

fn prepare_abi_only() -> Result<(), String> {
    make_test_crate(TestCrate::AbiOnly).map(drop)
}

fn prepare_own_panic() -> Result<(), String> {
    make_test_crate(TestCrate::OwnPanic).map(drop)
}

/// The QEMU tests of `cargo xtask new`: each crate made, built and booted
/// as its README says.
pub fn tests() -> Vec<crate::test::QemuTest> {
    use crate::build::ImageSpec;
    use crate::test::{qt, QemuTest};
    let elf_only = |krate| ImageSpec {
        elves: vec![test_elf(krate)],
        ..Default::default()
    };
    vec![
        QemuTest {
            prepare: Some(prepare_libos),
            timeout: std::time::Duration::from_secs(120),
            ..qt(
                "new-crate-libos",
                elf_only(TestCrate::Libos),
                0,
                &[
                    "mine: hello from pid 1",
                    "mine: frame at 0x",
                    " holds 42",
                    "mine: squares [1, 4, 9, 16]",
                    "(mine) exited with code 0",
                    "all 1 processes finished",
                    "success",
                ],
            )
        },
        QemuTest {
            prepare: Some(prepare_abi_only),
            ..qt(
                "new-crate-abi-only",
                elf_only(TestCrate::AbiOnly),
                0,
                &[
                    "mine-abi: hello from my own libOS",
                    "(mine-abi) exited with code 0",
                    "all 1 processes finished",
                    "success",
                ],
            )
        },
        QemuTest {
            // libos without its default features: no panic handler (ours
            // runs), no heap and no `alloc` (the program needs no allocator).
            prepare: Some(prepare_own_panic),
            also_must_not: vec!["\npanic: "],
            ..qt(
                "new-crate-libos-own-panic-handler",
                elf_only(TestCrate::OwnPanic),
                0,
                &[
                    "mine-own-panic: panicking on purpose",
                    "mine-own-panic: my own panic handler: on purpose",
                    "(mine-own-panic) exited with code 0",
                    "success",
                ],
            )
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_paths_and_flags_are_parsed() {
        let cwd = Path::new("/home/u/work");
        let spec = parse(&args(&["mine"]), cwd).unwrap();
        assert_eq!(spec.dir, Path::new("/home/u/work/mine"));
        assert!(!spec.abi_only);
        assert_eq!(
            spec.elf(),
            Path::new("/home/u/work/mine/target/x86_64-unknown-none/release/mine")
        );
        let spec = parse(&args(&["--abi-only", "mine", "--path", "../x"]), cwd).unwrap();
        assert_eq!(spec.dir, Path::new("/home/u/work/../x"));
        assert!(spec.abi_only);
        let spec = parse(&args(&["mine", "--path", "/abs"]), cwd).unwrap();
        assert_eq!(spec.dir, Path::new("/abs"));
        for bad in [
            &[][..],
            &["--path"][..],
            &["mine", "--frob"][..],
            &["mine", "other"][..],
            &["9lives"][..],
            &["my.prog"][..],
            &["a23456789012345678901234567890123"][..],
        ] {
            assert!(parse(&args(bad), cwd).is_err(), "{bad:?}");
        }
        assert!(parse(&args(&["a2345678901234567890123456789012"]), cwd).is_ok());
    }

    #[test]
    fn the_crate_depends_on_this_checkout_and_names_itself() {
        let exo = Path::new("/src/e\"x o");
        let spec = NewSpec {
            name: "prog".into(),
            dir: "/w/prog".into(),
            abi_only: false,
        };
        let files = files(&spec, exo);
        let get = |p: &str| &files.iter().find(|(f, _)| *f == p).unwrap().1;
        let manifest = get("Cargo.toml");
        assert!(manifest.contains("name = \"prog\""));
        assert!(manifest.contains(r#"abi = { path = "/src/e\"x o/abi" }"#));
        assert!(manifest.contains(r#"libos = { path = "/src/e\"x o/userland/libos" }"#));
        assert!(manifest.contains("\n[workspace]\n"));
        let main = get("src/main.rs");
        assert!(main.contains("prog: hello") && !main.contains("mine"));
        let config = get(".cargo/config.toml");
        assert!(config.contains("relocation-model=static"));
        assert!(config.contains("runner = \".cargo/exo-run\""));
        assert!(get(".cargo/exo-run").contains("\nexo='/src/e\"x o'\n"));
        assert!(get("rust-toolchain.toml").contains("channel = \"debian-web\""));
        assert!(get("README.md")
            .contains("cargo xtask run --elf '/w/prog/target/x86_64-unknown-none/release/prog'"));

        let spec = NewSpec {
            abi_only: true,
            ..spec
        };
        let files = super::files(&spec, exo);
        let get = |p: &str| &files.iter().find(|(f, _)| *f == p).unwrap().1;
        assert!(!get("Cargo.toml").contains("libos"));
        assert!(get("src/main.rs").contains("#[unsafe(no_mangle)]"));
    }

    #[test]
    fn the_test_builds_see_no_variables_of_ours() {
        let vars = [
            "PATH",
            "HOME",
            "CARGO_HOME",
            "CARGO",
            "CARGO_MANIFEST_DIR",
            "CARGO_TARGET_DIR",
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTFLAGS",
            "RUSTC_BOOTSTRAP",
            "RUSTC_WRAPPER",
            "RUSTDOCFLAGS",
            "RUSTUP_HOME",
            "RUSTUP_TOOLCHAIN",
            "RUSTUP_TOOLCHAIN_SOURCE",
            "RUST_RECURSION_COUNT",
            "__CARGO_FIX_PLZ",
            "RUST_BACKTRACE",
        ]
        .map(|k| (k.to_string(), String::new()));
        let kept: Vec<String> = user_env(vars.into_iter())
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            kept,
            [
                "PATH",
                "HOME",
                "CARGO_HOME",
                "RUSTUP_HOME",
                "RUST_BACKTRACE"
            ]
        );
    }

    /// The README's examples are what `cargo xtask new` writes.
    #[test]
    fn the_readme_shows_the_templates() {
        let readme = include_str!("../../../README.md");
        let mut blocks = Vec::new();
        let mut block: Option<String> = None;
        for line in readme.lines() {
            match (&mut block, line) {
                (None, "```rust" | "```toml") => block = Some(String::new()),
                (Some(_), "```") => blocks.push(block.take().expect("in a block")),
                (Some(text), line) => {
                    text.push_str(line);
                    text.push('\n');
                }
                (None, _) => {}
            }
        }
        let spec = NewSpec {
            name: "mine".into(),
            dir: "/home/u/mine".into(),
            abi_only: true,
        };
        let files = files(&spec, Path::new("/path/to/exo"));
        let manifest = &files.iter().find(|(f, _)| *f == "Cargo.toml").unwrap().1;
        for (what, text) in [
            ("the abi-only Cargo.toml", manifest.as_str()),
            ("the abi-only src/main.rs", ABI_ONLY_MAIN),
            ("the libos src/main.rs", LIBOS_MAIN),
        ] {
            assert!(
                blocks.iter().any(|b| b == text),
                "README.md lacks {what} as `cargo xtask new` writes it:\n{text}"
            );
        }
    }

    #[test]
    fn shell_and_toml_quoting() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(toml_str(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(toml_str("a\nb"), r#""a\u000ab""#);
    }

    #[test]
    fn an_existing_directory_is_refused_and_left_alone() {
        let dir = std::env::temp_dir().join(format!("xtask-new-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("keep"), "mine").unwrap();
        let spec = NewSpec {
            name: "x".into(),
            dir: dir.clone(),
            abi_only: false,
        };
        let err = create(&spec, Path::new("/exo")).unwrap_err();
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(std::fs::read_to_string(dir.join("keep")).unwrap(), "mine");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        // A fresh directory gets every file.
        let spec = NewSpec {
            dir: dir.join("fresh"),
            ..spec
        };
        create(&spec, Path::new("/exo")).unwrap();
        for (path, text) in files(&spec, Path::new("/exo")) {
            assert_eq!(std::fs::read_to_string(spec.dir.join(path)).unwrap(), text);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
