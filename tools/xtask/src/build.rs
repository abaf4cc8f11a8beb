//! Building: the root package (whose build.rs compiles the kernel and the
//! programs) with the Debian toolchain, then boot images with its `exo` tool.
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tools/xtask is two levels deep")
        .to_path_buf()
}

/// Where build products of xtask live.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// `cargo` on the Debian toolchain, with `RUSTC_BOOTSTRAP=1` (build-std).
pub fn cargo_bare() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root())
        .env("RUSTUP_TOOLCHAIN", crate::setup::TOOLCHAIN)
        .env("RUSTC_BOOTSTRAP", "1")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    cmd
}

/// `cargo` on the machine's default toolchain (host crates).
pub fn cargo_host() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root())
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC_BOOTSTRAP");
    cmd
}

/// Builds kernel, programs and the image tool; returns the tool's path.
pub fn build_all() -> Result<PathBuf, String> {
    crate::setup::ensure(false)?;
    let status = cargo_bare()
        .args(["build", "--quiet", "-p", "exo"])
        .status()
        .map_err(|e| format!("cargo: {e}"))?;
    if !status.success() {
        return Err("build failed".into());
    }
    Ok(target_dir().join("debug").join("exo"))
}

/// What goes on a boot image.
#[derive(Clone, Debug, Default)]
pub struct ImageSpec {
    /// `--programs` selection (None: every demo).
    pub programs: Option<String>,
    /// Extra ELF files.
    pub elves: Vec<PathBuf>,
    /// Boot options (`trace`, `selftest=NAME`).
    pub options: Vec<String>,
    /// `NAME=K`: boot program NAME K times (entries NAME, NAME-2 .. NAME-K).
    pub copies: Vec<String>,
    /// UEFI instead of BIOS.
    pub uefi: bool,
}

/// Packs a ramdisk and makes a disk image in `out`; returns the image path.
pub fn make_image(tool: &Path, spec: &ImageSpec, out: &Path) -> Result<PathBuf, String> {
    let mut cmd = Command::new(tool);
    cmd.arg("image").arg("--out").arg(out);
    if let Some(p) = &spec.programs {
        cmd.args(["--programs", p]);
    }
    for elf in &spec.elves {
        cmd.arg("--elf").arg(elf);
    }
    for opt in &spec.options {
        cmd.args(["--option", opt]);
    }
    for copies in &spec.copies {
        cmd.args(["--copies", copies]);
    }
    if spec.uefi {
        cmd.arg("--uefi");
    }
    let out = cmd
        .output()
        .map_err(|e| format!("{}: {e}", tool.display()))?;
    if !out.status.success() {
        return Err(format!(
            "image: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// The kernel ELF (for gdb).
pub fn kernel_path(tool: &Path) -> String {
    Command::new(tool)
        .arg("kernel")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
