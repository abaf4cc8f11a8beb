//! First-use set-up, idempotent: the Debian packages (QEMU, OVMF, Debian's
//! rustc 1.96 with matching std sources, LLVM tools, lld), the toolchain
//! linked into rustup as `debian-web`, and the llvm tool links the
//! `bootloader` crate looks for. See TOOLCHAIN notes in the README.
use std::path::Path;
use std::process::Command;

/// The toolchain name the bare-metal build uses.
pub const TOOLCHAIN: &str = "debian-web";

const PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "ovmf",
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "rust-web-llvm",
    "rust-web-clippy",
    "lld-22",
];

const RUSTLIB_BIN: &str = "/usr/lib/rustlib/x86_64-unknown-linux-gnu/bin";

/// Makes sure everything is in place; says what it does. With `verbose`,
/// also says what was already there.
pub fn ensure(verbose: bool) -> Result<(), String> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|p| !package_installed(p))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "xtask setup: installing Debian packages: {}",
            missing.join(" ")
        );
        apt(&["update"])?;
        let mut args = vec!["install", "-y", "--no-install-recommends"];
        args.extend(&missing);
        apt(&args)?;
    } else if verbose {
        eprintln!(
            "xtask setup: Debian packages present: {}",
            PACKAGES.join(" ")
        );
    }

    let toolchains = output("rustup", &["toolchain", "list"])?;
    if !toolchains.lines().any(|l| l.starts_with(TOOLCHAIN)) {
        eprintln!("xtask setup: linking /usr (Debian rustc 1.96) into rustup as `{TOOLCHAIN}`");
        run("rustup", &["toolchain", "link", TOOLCHAIN, "/usr"])?;
    } else if verbose {
        eprintln!("xtask setup: rustup toolchain `{TOOLCHAIN}` linked");
    }

    for tool in ["llvm-objdump", "llvm-objcopy"] {
        let link = Path::new(RUSTLIB_BIN).join(tool);
        let target = format!("/usr/bin/{tool}-22");
        if std::fs::read_link(&link).ok().as_deref() != Some(Path::new(&target)) {
            eprintln!("xtask setup: linking {} -> {target}", link.display());
            run_root("ln", &["-sf", &target, &link.to_string_lossy()])?;
        }
    }
    if verbose {
        eprintln!("xtask setup: ready");
    }
    Ok(())
}

fn package_installed(name: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", name])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn is_root() -> bool {
    output("id", &["-u"])
        .map(|s| s.trim() == "0")
        .unwrap_or(false)
}

fn run_root(cmd: &str, args: &[&str]) -> Result<(), String> {
    if is_root() {
        run(cmd, args)
    } else {
        let mut all = vec![cmd];
        all.extend(args);
        run("sudo", &all)
    }
}

fn apt(args: &[&str]) -> Result<(), String> {
    let mut all = vec!["-q"];
    all.extend(args);
    let env_cmd = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"];
    let mut full: Vec<&str> = env_cmd[1..].to_vec();
    full.extend(&all);
    run_root(env_cmd[0], &full)
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let status = Command::new(cmd)
        .args(args)
        .status()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{cmd} {}` failed ({status})", args.join(" ")))
    }
}

fn output(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
