//! First-use set-up, idempotent: the Debian packages (QEMU, OVMF, Debian's
//! rustc 1.96 with matching std sources, LLVM tools, lld), the toolchain
//! linked into rustup as `debian-web`, and the llvm tool links the
//! `bootloader` crate looks for. See TOOLCHAIN notes in the README.
//!
//! It never takes away what the user had: a `qemu-system-x86_64` already
//! on PATH is used as it is, and before installing anything it asks apt
//! for the plan (`apt-get -s install`); if that plan removes a package
//! (apt's way of resolving a conflict, such as a newer `qemu-utils` from
//! backports against Debian's QEMU 7.2), it stops, says what would be
//! removed and what the user can do, and changes nothing.
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

/// The QEMU binary every run uses, and the package that brings it.
const QEMU: &str = "qemu-system-x86_64";
const QEMU_PACKAGE: &str = "qemu-system-x86";

/// The packages to install: those not installed, except QEMU's when a
/// `qemu-system-x86_64` is on PATH already (the user's own: keep it).
fn missing_packages(installed: impl Fn(&str) -> bool, qemu_on_path: bool) -> Vec<&'static str> {
    PACKAGES
        .iter()
        .copied()
        .filter(|p| !(qemu_on_path && *p == QEMU_PACKAGE))
        .filter(|p| !installed(p))
        .collect()
}

/// An executable named `name` in a directory of PATH.
fn on_path(name: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A package apt's plan removes: its name and, when apt says, its version.
#[derive(Debug, PartialEq, Eq)]
struct Removal {
    name: String,
    version: Option<String>,
}

/// The packages an `apt-get -s` (simulated) plan removes: its `Remv NAME
/// [VERSION]` lines (apt also prints `Inst`, `Conf` and `Purg`; a purge
/// removes too).
fn removals(simulation: &str) -> Vec<Removal> {
    simulation
        .lines()
        .filter_map(|line| {
            let rest = line
                .strip_prefix("Remv ")
                .or_else(|| line.strip_prefix("Purg "))?;
            let mut words = rest.split_whitespace();
            let name = words.next()?.to_string();
            let version = rest
                .split_once('[')
                .and_then(|(_, v)| v.split_once(']'))
                .map(|(v, _)| v.to_string());
            Some(Removal { name, version })
        })
        .collect()
}

/// Why set-up stops when installing `packages` would remove `removed`,
/// and what the user can do.
fn refusal(packages: &[&str], removed: &[Removal]) -> String {
    let mut s = format!(
        "setup: installing {} would make apt remove packages you have:\n",
        packages.join(" ")
    );
    for r in removed {
        match &r.version {
            Some(v) => s.push_str(&format!("    {} {v}\n", r.name)),
            None => s.push_str(&format!("    {}\n", r.name)),
        }
    }
    s.push_str(
        "(apt's conflict resolution, from `apt-get -s install`). Nothing was changed. You can:\n",
    );
    if removed.iter().any(|r| r.name.starts_with("qemu")) {
        s.push_str(&format!(
            "  - put a {QEMU} of your own on PATH (for example from the same suite as the \
             packages above{}); set-up then uses it and installs no QEMU;\n",
            if removed
                .iter()
                .any(|r| r.version.as_deref().is_some_and(|v| v.contains("~bpo")))
            {
                ": `sudo apt-get install -t bookworm-backports qemu-system-x86`, with backports \
                 in your apt sources"
            } else {
                ""
            }
        ));
    }
    s.push_str(&format!(
        "  - or accept the removal: `sudo apt-get install --no-install-recommends {}`, then run again.",
        packages.join(" ")
    ));
    s
}

const RUSTLIB_BIN: &str = "/usr/lib/rustlib/x86_64-unknown-linux-gnu/bin";

/// Makes sure everything is in place; says what it does. With `verbose`,
/// also says what was already there.
pub fn ensure(verbose: bool) -> Result<(), String> {
    let qemu = on_path(QEMU);
    let missing = missing_packages(package_installed, qemu.is_some());
    if let (Some(qemu), false) = (&qemu, package_installed(QEMU_PACKAGE)) {
        if verbose || !missing.is_empty() {
            eprintln!(
                "xtask setup: using the QEMU at {} (not installing {QEMU_PACKAGE})",
                qemu.display()
            );
        }
    }
    if !missing.is_empty() {
        eprintln!(
            "xtask setup: installing Debian packages: {}",
            missing.join(" ")
        );
        apt(&["update"])?;
        let mut args = vec!["install", "-y", "--no-install-recommends"];
        args.extend(&missing);
        // First what apt would do: nothing the user has may go.
        let mut simulate = vec!["-s"];
        simulate.extend(&args);
        let plan = output("apt-get", &simulate)?;
        let removed = removals(&plan);
        if !removed.is_empty() {
            return Err(refusal(&missing, &removed));
        }
        // And should apt's plan change since: `--no-remove` aborts.
        args.push("--no-remove");
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What `apt-get -s install qemu-system-x86` printed on a machine with
    /// qemu-utils 10.0 from backports (shortened).
    const CONFLICT: &str = "\
Reading package lists...
Building dependency tree...
The following packages will be REMOVED:
  qemu-utils
The following NEW packages will be installed:
  qemu-system-common qemu-system-data qemu-system-x86
0 upgraded, 3 newly installed, 1 to remove and 0 not upgraded.
Remv qemu-utils [1:10.0.2+ds-2+deb13u1~bpo12+1]
Inst qemu-system-common (1:7.2+dfsg-7+deb12u18+b3 Debian:12.13/stable [amd64])
Inst qemu-system-data (1:7.2+dfsg-7+deb12u18+b3 Debian:12.13/stable [all])
Inst qemu-system-x86 (1:7.2+dfsg-7+deb12u18+b3 Debian:12.13/stable [amd64])
Conf qemu-system-common (1:7.2+dfsg-7+deb12u18+b3 Debian:12.13/stable [amd64])
Conf qemu-system-x86 (1:7.2+dfsg-7+deb12u18+b3 Debian:12.13/stable [amd64])
";

    #[test]
    fn apt_simulations_are_read_for_removals() {
        assert_eq!(
            removals(CONFLICT),
            [Removal {
                name: "qemu-utils".into(),
                version: Some("1:10.0.2+ds-2+deb13u1~bpo12+1".into()),
            }]
        );
        let clean = CONFLICT
            .lines()
            .filter(|l| !l.starts_with("Remv"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(removals(&clean).is_empty());
        assert_eq!(
            removals("Remv a [1.0] [b ]\nPurg c\nInst d (2 x [amd64])\n  Remv e [indented: not a plan line]"),
            [
                Removal { name: "a".into(), version: Some("1.0".into()) },
                Removal { name: "c".into(), version: None },
            ]
        );
    }

    #[test]
    fn a_removal_stops_set_up_with_what_to_do() {
        let why = refusal(&["qemu-system-x86", "ovmf"], &removals(CONFLICT));
        assert!(
            why.contains("would make apt remove packages you have:"),
            "{why}"
        );
        assert!(
            why.contains("    qemu-utils 1:10.0.2+ds-2+deb13u1~bpo12+1\n"),
            "{why}"
        );
        assert!(why.contains("Nothing was changed"), "{why}");
        assert!(
            why.contains("-t bookworm-backports qemu-system-x86"),
            "{why}"
        );
        assert!(why.contains("sudo apt-get install --no-install-recommends qemu-system-x86 ovmf"));
        let other = refusal(
            &["lld-22"],
            &[Removal {
                name: "lld".into(),
                version: None,
            }],
        );
        assert!(
            !other.contains("on PATH") && other.contains("    lld\n"),
            "{other}"
        );
    }

    #[test]
    fn a_qemu_on_path_is_kept() {
        let none = |_: &str| false;
        assert!(missing_packages(none, false).contains(&QEMU_PACKAGE));
        let without = missing_packages(none, true);
        assert!(!without.contains(&QEMU_PACKAGE) && without.contains(&"ovmf"));
        assert!(missing_packages(|_| true, false).is_empty());
    }
}
