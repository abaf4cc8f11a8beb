//! The Linux guest of `cargo xtask bench syscalls`: its kernel, its
//! `/init`, its initramfs and its QEMU command line. The measuring and the
//! report are in [`crate::bench_syscalls`].
//!
//! - The kernel is Debian's cloud kernel (`linux-image-cloud-amd64` and the
//!   versioned `linux-image-6.1.0-*-cloud-amd64` it depends on, fetched
//!   with `apt-get download`, unpacked with `dpkg-deb -x`, never installed;
//!   only `vmlinuz` is cached, in `target/linux-bench/`).
//! - `/init` is `tools/linux-bench/bench.c` built with `gcc -static`
//!   (`bench net`: `tools/linux-bench/httpd.c`, with the kernel's
//!   virtio-net modules, [`NET_MODULES`], cached with `vmlinuz` and
//!   carried in the initramfs under `/lib`).
//! - The initramfs (cpio newc, gzip) is written here, not with `cpio(1)`:
//!   that lets it carry the `/dev/console` node without root.
//! - The kernel command line is [`APPEND`] (mitigations at their defaults);
//!   `/init` powers off with `reboot(RB_POWER_OFF)`, so QEMU exits with 0.
use crate::build;
use crate::qemu;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's metapackage for the current cloud kernel.
const META: &str = "linux-image-cloud-amd64";
/// The Linux command line.
pub const APPEND: &str = "console=ttyS0 quiet panic=-1";

/// A guest ready to boot.
pub struct Guest {
    /// The kernel image.
    pub vmlinuz: PathBuf,
    /// The gzipped initramfs with `/init`.
    pub initrd: PathBuf,
    /// The kernel's package and version, e.g.
    /// `linux-image-6.1.0-56-cloud-amd64 6.1.192-2`.
    pub kernel_name: String,
}

/// The modules virtio-net needs in Debian's cloud kernel (all `=m`
/// there), in the order they load.
pub const NET_MODULES: &[&str] = &[
    "virtio_ring",
    "virtio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
];

impl Guest {
    /// Gets the kernel (downloaded the first time, then cached) and builds
    /// `/init` and the initramfs, all in `dir`.
    pub fn prepare(dir: &Path) -> Result<Guest, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (vmlinuz, kernel_name) = kernel(dir)?;
        let initrd = initramfs(dir, "bench.c", "initramfs.cpio", false)?;
        Ok(Guest {
            vmlinuz,
            initrd,
            kernel_name,
        })
    }

    /// The same kernel with `tools/linux-bench/httpd.c` as `/init` and
    /// the virtio-net modules (for `bench net`).
    pub fn prepare_net(dir: &Path) -> Result<Guest, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (vmlinuz, kernel_name) = kernel(dir)?;
        let initrd = initramfs(dir, "httpd.c", "initramfs-net.cpio", true)?;
        Ok(Guest {
            vmlinuz,
            initrd,
            kernel_name,
        })
    }

    /// The QEMU command that boots it on [`qemu::machine`], with
    /// `-icount shift=0` if `icount`.
    pub fn command(&self, icount: bool) -> Command {
        command(&self.vmlinuz, &self.initrd, icount)
    }
}

fn command(vmlinuz: &Path, initrd: &Path, icount: bool) -> Command {
    let mut cmd = qemu::machine(false);
    cmd.arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", APPEND]);
    if icount {
        cmd.args(["-icount", "shift=0"]);
    }
    cmd
}

// The kernel, init, initramfs.

/// The cached `vmlinuz` and its package name; downloads it the first time.
fn kernel(dir: &Path) -> Result<(PathBuf, String), String> {
    let vmlinuz = dir.join("vmlinuz");
    let name_file = dir.join("vmlinuz.package");
    let modules = dir.join("modules");
    let have_modules = NET_MODULES
        .iter()
        .all(|m| modules.join(format!("{m}.ko")).is_file());
    if let (true, true, Ok(name)) = (
        vmlinuz.is_file(),
        have_modules,
        std::fs::read_to_string(&name_file),
    ) {
        return Ok((vmlinuz, name.trim().to_string()));
    }
    eprintln!("xtask: fetching Debian's {META} (apt-get download, about 26 MB)");
    let debs = dir.join("debs");
    let _ = std::fs::remove_dir_all(&debs);
    std::fs::create_dir_all(&debs).map_err(|e| format!("{}: {e}", debs.display()))?;
    apt_download(&debs, META)?;
    let meta = find_deb(&debs, META)?;
    let depends = command_output(Command::new("dpkg-deb").arg("-f").arg(&meta).arg("Depends"))?;
    let (package, version) = image_dependency(&depends).ok_or(format!(
        "{META}: no linux-image dependency in `{}`",
        depends.trim()
    ))?;
    let wanted = match &version {
        Some(v) => format!("{package}={v}"),
        None => package.clone(),
    };
    apt_download(&debs, &wanted)?;
    let deb = find_deb(&debs, &package)?;
    let unpacked = dir.join("unpacked");
    let _ = std::fs::remove_dir_all(&unpacked);
    run_checked(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    let boot = unpacked.join("boot");
    let found = std::fs::read_dir(&boot)
        .map_err(|e| format!("{}: {e}", boot.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .ok_or(format!("{}: no vmlinuz-*", deb.display()))?;
    let partial = dir.join("vmlinuz.partial");
    std::fs::copy(&found, &partial).map_err(|e| format!("{}: {e}", found.display()))?;
    std::fs::rename(&partial, &vmlinuz).map_err(|e| format!("{}: {e}", vmlinuz.display()))?;
    copy_modules(&unpacked, &modules)?;
    let label = format!("{package} {}", version.unwrap_or_default());
    std::fs::write(&name_file, &label).map_err(|e| format!("{}: {e}", name_file.display()))?;
    // Only vmlinuz and the virtio-net modules are needed: the rest goes.
    let _ = std::fs::remove_dir_all(&unpacked);
    let _ = std::fs::remove_dir_all(&debs);
    Ok((vmlinuz, label.trim().to_string()))
}

/// Copies [`NET_MODULES`] out of the unpacked package (under
/// `lib/modules/VERSION/kernel/`) into `to`.
fn copy_modules(unpacked: &Path, to: &Path) -> Result<(), String> {
    fn find(dir: &Path, name: &str) -> Option<PathBuf> {
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if let Some(found) = find(&path, name) {
                    return Some(found);
                }
            } else if path.file_name().and_then(|n| n.to_str()) == Some(name) {
                return Some(path);
            }
        }
        None
    }
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let root = unpacked.join("lib").join("modules");
    for m in NET_MODULES {
        let name = format!("{m}.ko");
        let found = find(&root, &name).ok_or(format!("{}: no {name}", root.display()))?;
        std::fs::copy(&found, to.join(&name)).map_err(|e| format!("{}: {e}", found.display()))?;
    }
    Ok(())
}

/// The versioned kernel package a metapackage's `Depends` names:
/// `linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)` gives the name and
/// the version.
fn image_dependency(depends: &str) -> Option<(String, Option<String>)> {
    depends.split([',', '|']).map(str::trim).find_map(|dep| {
        let (name, rest) = dep.split_once(' ').unwrap_or((dep, ""));
        if !name.starts_with("linux-image-") || name == META {
            return None;
        }
        let version = rest
            .trim()
            .strip_prefix("(=")
            .and_then(|v| v.strip_suffix(')'))
            .map(|v| v.trim().to_string());
        Some((name.to_string(), version))
    })
}

fn find_deb(dir: &Path, package: &str) -> Result<PathBuf, String> {
    let prefix = format!("{package}_");
    std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
        .ok_or(format!(
            "apt-get download {package}: no .deb in {}",
            dir.display()
        ))
}

/// `apt-get download` into `dir`; after a failure, `apt-get update` and
/// one more try (the package lists may be older than the archive).
fn apt_download(dir: &Path, package: &str) -> Result<(), String> {
    let download = || {
        Command::new("apt-get")
            .args(["-q", "download", package])
            .current_dir(dir)
            .output()
            .map_err(|e| format!("apt-get: {e}"))
    };
    let out = download()?;
    if out.status.success() {
        return Ok(());
    }
    eprintln!("xtask: apt-get download {package} failed; running apt-get update");
    run_root(&["apt-get", "-q", "update"])?;
    let out = download()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "apt-get download {package}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Builds `/init` from `tools/linux-bench/SOURCE` and packs the
/// initramfs `CPIO`.gz (with the virtio-net modules under `/lib` if
/// `modules`); returns its path.
fn initramfs(dir: &Path, source: &str, cpio: &str, modules: bool) -> Result<PathBuf, String> {
    ensure_packages(&[("gcc", "gcc"), ("libc6-dev", "libc6-dev"), ("gzip", "gzip")])?;
    let source = build::root().join("tools/linux-bench").join(source);
    let init = dir.join(format!("init-{cpio}"));
    run_checked(
        Command::new("gcc")
            .args(["-static", "-O2", "-Wall", "-o"])
            .arg(&init)
            .arg(&source),
    )?;
    let binary = std::fs::read(&init).map_err(|e| format!("{}: {e}", init.display()))?;
    let mut files = Vec::new();
    if modules {
        for m in NET_MODULES {
            let path = dir.join("modules").join(format!("{m}.ko"));
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            files.push((format!("lib/{m}.ko"), bytes));
        }
    }
    let mut entries = vec![
        CpioEntry::dir("dev"),
        CpioEntry::char_device("dev/console", 0o600, 5, 1),
        CpioEntry::dir("proc"),
        CpioEntry::dir("sys"),
        CpioEntry::file("init", 0o755, &binary),
    ];
    if modules {
        entries.push(CpioEntry::dir("lib"));
        entries.extend(files.iter().map(|(n, b)| CpioEntry::file(n, 0o644, b)));
    }
    let archive = newc(&entries);
    let cpio = dir.join(cpio);
    std::fs::write(&cpio, archive).map_err(|e| format!("{}: {e}", cpio.display()))?;
    run_checked(Command::new("gzip").args(["-9", "-n", "-f"]).arg(&cpio))?;
    let mut gz = cpio.into_os_string();
    gz.push(".gz");
    Ok(PathBuf::from(gz))
}

/// One member of a cpio archive.
struct CpioEntry<'a> {
    name: &'a str,
    mode: u32,
    rdev: (u32, u32),
    data: &'a [u8],
}

impl<'a> CpioEntry<'a> {
    fn dir(name: &'a str) -> Self {
        CpioEntry {
            name,
            mode: 0o040_755,
            rdev: (0, 0),
            data: &[],
        }
    }
    fn char_device(name: &'a str, perm: u32, major: u32, minor: u32) -> Self {
        CpioEntry {
            name,
            mode: 0o020_000 | perm,
            rdev: (major, minor),
            data: &[],
        }
    }
    fn file(name: &'a str, perm: u32, data: &'a [u8]) -> Self {
        CpioEntry {
            name,
            mode: 0o100_000 | perm,
            rdev: (0, 0),
            data,
        }
    }
}

/// A cpio archive in the "new ASCII" (newc) format the kernel unpacks:
/// owner root, mtime 0, then the `TRAILER!!!` entry.
fn newc(entries: &[CpioEntry<'_>]) -> Vec<u8> {
    fn pad(out: &mut Vec<u8>) {
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }
    let trailer = CpioEntry {
        name: "TRAILER!!!",
        mode: 0,
        rdev: (0, 0),
        data: &[],
    };
    let mut out = Vec::new();
    for (ino, e) in entries.iter().chain([&trailer]).enumerate() {
        let nlink = if e.mode & 0o170_000 == 0o040_000 {
            2
        } else {
            1
        };
        let fields = [
            ino as u32 + 1,
            e.mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            e.data.len() as u32,
            0, // dev major
            0, // dev minor
            e.rdev.0,
            e.rdev.1,
            e.name.len() as u32 + 1,
            0, // check
        ];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        out.extend_from_slice(e.name.as_bytes());
        out.push(0);
        pad(&mut out);
        out.extend_from_slice(e.data);
        pad(&mut out);
    }
    out
}

// Host helpers.

/// Installs the Debian packages (name, what `dpkg-query` checks) missing.
fn ensure_packages(packages: &[(&str, &str)]) -> Result<(), String> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(_, check)| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", check])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .map(|(name, _)| *name)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
    run_root(&["apt-get", "-q", "update"])?;
    let mut args = vec!["apt-get", "-q", "install", "-y", "--no-install-recommends"];
    args.extend(missing);
    run_root(&args)
}

/// Runs `argv` as root (directly when we are root, else with sudo), with
/// `DEBIAN_FRONTEND=noninteractive`.
fn run_root(argv: &[&str]) -> Result<(), String> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let mut cmd = if root {
        Command::new("env")
    } else {
        let mut c = Command::new("sudo");
        c.arg("env");
        c
    };
    cmd.arg("DEBIAN_FRONTEND=noninteractive").args(argv);
    run_checked(&mut cmd)
}

fn run_checked(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn command_output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_versioned_image_package() {
        assert_eq!(
            image_dependency("linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)"),
            Some((
                "linux-image-6.1.0-56-cloud-amd64".to_string(),
                Some("6.1.192-2".to_string())
            ))
        );
        assert_eq!(
            image_dependency("foo, linux-image-6.1.0-9-cloud-amd64-unsigned | bar"),
            Some(("linux-image-6.1.0-9-cloud-amd64-unsigned".to_string(), None))
        );
        assert_eq!(image_dependency("linux-image-cloud-amd64, foo"), None);
    }

    #[test]
    fn newc_headers_and_padding() {
        let data = [1u8, 2, 3];
        let archive = newc(&[
            CpioEntry::char_device("dev/console", 0o600, 5, 1),
            CpioEntry::file("init", 0o755, &data),
        ]);
        assert_eq!(archive.len() % 4, 0);
        let text = String::from_utf8_lossy(&archive);
        // First header: ino 1, mode 020600, rdev 5:1, name length 12.
        let header: String = [1u32, 0o20600, 0, 0, 1, 0, 0, 0, 0, 5, 1, 12, 0]
            .iter()
            .map(|f| format!("{f:08x}"))
            .collect();
        assert!(text.starts_with(&format!("070701{header}dev/console\0")));
        assert!(text.contains("dev/console\0"));
        assert!(text.contains("init\0"));
        assert!(text.contains("TRAILER!!!\0"));
        // 110-byte header + "init\0" = 115, padded to 116; then the data.
        let init = archive
            .windows(5)
            .position(|w| w == b"init\0")
            .expect("init name");
        assert_eq!(&archive[init + 6..init + 9], &data);
    }
}
