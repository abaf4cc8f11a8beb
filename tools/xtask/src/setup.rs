//! First-use set-up, idempotent: the Debian packages (QEMU, OVMF, Debian's
//! rustc 1.96 with matching std sources, LLVM tools, lld), the toolchain
//! linked into rustup as `debian-web`, and the llvm tool links the
//! `bootloader` crate looks for. See TOOLCHAIN notes in the README.
//!
//! It never takes away what the user had: a `qemu-system-x86_64` already
//! on PATH is used as it is, and before installing anything it asks apt
//! for the plan (`apt-get -s install`). When that plan removes QEMU
//! packages the machine has from a Debian backports suite (a newer
//! `qemu-utils` from `bookworm-backports` against Debian's QEMU 7.2, as
//! on this project's machines), it takes QEMU from that same suite instead
//! (adding the suite to apt's sources if it is not there: backports never
//! replace other packages on their own), so the versions match. Any other
//! removal stops it: it says what would be removed and what the user can
//! do, and changes nothing.
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

/// The Debian backports suite the removed packages come from, when every
/// one is a QEMU package built for backports (`~bpo12` is bookworm's):
/// then QEMU is to be taken from there, matching what the machine has.
fn backports_suite(removed: &[Removal]) -> Option<&'static str> {
    let suite = |r: &Removal| -> Option<&'static str> {
        if !r.name.starts_with("qemu") {
            return None;
        }
        let v = r.version.as_deref()?;
        let n = v.split_once("~bpo")?.1;
        match n.split(|c: char| !c.is_ascii_digit()).next()? {
            "11" => Some("bullseye-backports"),
            "12" => Some("bookworm-backports"),
            "13" => Some("trixie-backports"),
            _ => None,
        }
    };
    let first = suite(removed.first()?)?;
    removed
        .iter()
        .all(|r| suite(r) == Some(first))
        .then_some(first)
}

/// A deb822 apt source for Debian suite `suite` (main only, signed by
/// Debian's archive key).
fn source_entry(suite: &str) -> String {
    format!(
        "# Added by exo's `cargo xtask` set-up: QEMU from the suite the machine's\n\
         # qemu-utils came from. Backports replace nothing unless asked for (-t).\n\
         Types: deb\nURIs: http://deb.debian.org/debian\nSuites: {suite}\n\
         Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
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
        let from_backports = if removed.is_empty() {
            None
        } else if let (Some(suite), true) =
            (backports_suite(&removed), missing.contains(&QEMU_PACKAGE))
        {
            Some(suite)
        } else {
            return Err(refusal(&missing, &removed));
        };
        if let Some(suite) = from_backports {
            qemu_from(suite, &removed)?;
            args.retain(|a| *a != QEMU_PACKAGE);
            let mut simulate = vec!["-s"];
            simulate.extend(&args);
            let removed = removals(&output("apt-get", &simulate)?);
            if !removed.is_empty() {
                return Err(refusal(&missing, &removed));
            }
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

/// Installs QEMU from backports suite `suite`, where the machine's
/// `removed` QEMU packages came from: adds the suite to apt's sources if
/// apt does not know it, then installs with `-t suite` after checking that
/// this plan removes nothing.
fn qemu_from(suite: &str, removed: &[Removal]) -> Result<(), String> {
    let names: Vec<&str> = removed.iter().map(|r| r.name.as_str()).collect();
    eprintln!(
        "xtask setup: this machine has {} from {suite}; Debian's own {QEMU_PACKAGE} would replace it, so QEMU comes from {suite} too",
        names.join(" ")
    );
    let policy = output("apt-cache", &["policy"])?;
    if !policy.contains(&format!(" {suite}/main")) {
        let file = format!("/etc/apt/sources.list.d/exo-{suite}.sources");
        eprintln!("xtask setup: adding {suite} to apt's sources ({file})");
        let tmp = std::env::temp_dir().join(format!("exo-{suite}.sources"));
        std::fs::write(&tmp, source_entry(suite)).map_err(|e| format!("{}: {e}", tmp.display()))?;
        run_root("cp", &[&tmp.to_string_lossy(), &file])?;
        apt(&["update"])?;
    }
    let args = [
        "install",
        "-y",
        "--no-install-recommends",
        "-t",
        suite,
        QEMU_PACKAGE,
    ];
    let mut simulate = vec!["-s"];
    simulate.extend(&args);
    let still = removals(&output("apt-get", &simulate)?);
    if !still.is_empty() {
        return Err(refusal(&[QEMU_PACKAGE], &still));
    }
    eprintln!("xtask setup: installing {QEMU_PACKAGE} from {suite}");
    let mut args = args.to_vec();
    args.push("--no-remove");
    apt(&args)
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
    fn qemu_from_backports_is_matched_to_its_suite() {
        assert_eq!(
            backports_suite(&removals(CONFLICT)),
            Some("bookworm-backports")
        );
        let both =
            removals("Remv qemu-utils [1:10.0~bpo12+1]\nRemv qemu-block-extra [1:10.0~bpo12+1]\n");
        assert_eq!(backports_suite(&both), Some("bookworm-backports"));
        // Anything but QEMU from one backports suite is the user's call.
        for plan in [
            "Remv qemu-utils [1:7.2+dfsg-7]\n",
            "Remv qemu-utils\n",
            "Remv lld [1:14~bpo12+1]\n",
            "Remv qemu-utils [1:10.0~bpo12+1]\nRemv lld [14]\n",
            "Remv qemu-utils [1:10.0~bpo12+1]\nRemv qemu-img [1:10.0~bpo13+1]\n",
            "Remv qemu-utils [1:10.0~bpo99+1]\n",
            "",
        ] {
            assert_eq!(backports_suite(&removals(plan)), None, "{plan}");
        }
        let entry = source_entry("bookworm-backports");
        assert!(entry.contains("\nSuites: bookworm-backports\n"), "{entry}");
        assert!(
            entry.contains("\nTypes: deb\n") && entry.ends_with("debian-archive-keyring.gpg\n")
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
