//! Building: the root package (whose build.rs compiles the kernel and the
//! programs) with the Debian toolchain, then boot images with its `exo` tool.
use std::path::{Path, PathBuf};
use std::process::Command;

/// The checkout this xtask works on (the repository root), found at run
/// time by [`find_root`]: never a path baked in at compile time, which a
/// copied checkout (`cp -a`) would still carry and so build and boot the
/// original. Exits with a message if there is none.
pub fn root() -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
        let exe = std::env::current_exe().ok();
        let cwd = std::env::current_dir().ok();
        match find_root(manifest_dir.as_deref(), exe.as_deref(), cwd.as_deref()) {
            Some(root) => root,
            None => {
                eprintln!(
                    "xtask: cannot find the exo checkout: run it as `cargo xtask` inside one \
                     (looked at $CARGO_MANIFEST_DIR, the executable's and the current \
                     directory's parents)"
                );
                std::process::exit(2)
            }
        }
    })
    .clone()
}

/// Whether `dir` is an exo checkout: a workspace with `tools/xtask`.
fn is_checkout(dir: &Path) -> bool {
    let manifest = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    manifest(&dir.join("Cargo.toml")).contains("[workspace]")
        && manifest(&dir.join("tools/xtask/Cargo.toml")).contains("name = \"xtask\"")
}

/// The checkout, from what the process knows at run time, most direct
/// first: `manifest_dir`, the `CARGO_MANIFEST_DIR` that `cargo run` (so
/// `cargo xtask`) sets to the xtask package it runs; else the nearest
/// checkout above the executable (`ROOT/target/debug/xtask`); else the
/// nearest above the current directory.
pub fn find_root(
    manifest_dir: Option<&Path>,
    exe: Option<&Path>,
    cwd: Option<&Path>,
) -> Option<PathBuf> {
    let from_manifest = manifest_dir
        .and_then(|d| d.ancestors().nth(2))
        .filter(|root| manifest_dir.is_some_and(|d| d == root.join("tools/xtask")))
        .filter(|root| is_checkout(root));
    let nearest = |start: Option<&Path>| {
        start.and_then(|s| {
            s.ancestors()
                .find(|d| is_checkout(d))
                .map(Path::to_path_buf)
        })
    };
    from_manifest
        .map(Path::to_path_buf)
        .or_else(|| nearest(exe))
        .or_else(|| nearest(cwd))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory with two checkouts, `orig` and its copy `copy`
    /// (each a workspace manifest, `tools/xtask/Cargo.toml` and a built
    /// `target/debug/xtask`), and `elsewhere`, which is none.
    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-root-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for tree in ["orig", "copy"] {
            let root = dir.join(tree);
            std::fs::create_dir_all(root.join("tools/xtask/src")).unwrap();
            std::fs::create_dir_all(root.join("target/debug")).unwrap();
            std::fs::write(root.join("Cargo.toml"), "[workspace]\nmembers = []\n").unwrap();
            std::fs::write(
                root.join("tools/xtask/Cargo.toml"),
                "[package]\nname = \"xtask\"\n",
            )
            .unwrap();
            std::fs::write(root.join("target/debug/xtask"), "").unwrap();
        }
        std::fs::create_dir_all(dir.join("elsewhere/tools/xtask")).unwrap();
        std::fs::write(dir.join("elsewhere/Cargo.toml"), "[package]\n").unwrap();
        dir
    }

    #[test]
    fn a_copied_checkout_finds_itself_not_the_original() {
        let dir = scratch();
        let (orig, copy) = (dir.join("orig"), dir.join("copy"));
        let exe = copy.join("target/debug/xtask");
        // `cargo xtask` in the copy: cargo names the copy's xtask package.
        assert_eq!(
            find_root(Some(&copy.join("tools/xtask")), Some(&exe), Some(&orig)),
            Some(copy.clone())
        );
        // The copy's binary run directly, from anywhere.
        assert_eq!(find_root(None, Some(&exe), Some(&orig)), Some(copy.clone()));
        assert_eq!(find_root(None, Some(&exe), None), Some(copy.clone()));
        // A binary outside any checkout (CARGO_TARGET_DIR elsewhere),
        // started in a subdirectory of the copy.
        let deep = copy.join("tools/xtask/src");
        let outside = dir.join("bin/xtask");
        assert_eq!(
            find_root(None, Some(&outside), Some(&deep)),
            Some(copy.clone())
        );
        // A CARGO_MANIFEST_DIR of another package (xtask started by some
        // other `cargo run`) is not taken for a checkout.
        let other = dir.join("elsewhere/tools/xtask");
        assert_eq!(
            find_root(Some(&other), Some(&exe), None),
            Some(copy.clone())
        );
        assert_eq!(find_root(Some(&orig.join("tools")), None, None), None);
        // No checkout anywhere: none, not a guess.
        assert_eq!(find_root(Some(&other), Some(&outside), Some(&dir)), None);
        assert_eq!(find_root(None, None, None), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn this_process_finds_this_checkout() {
        // `cargo test` runs us from this checkout's target directory with
        // its CARGO_MANIFEST_DIR: both lead here.
        let here = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .unwrap();
        assert_eq!(root(), here);
        let exe = std::env::current_exe().unwrap();
        if exe.starts_with(here) {
            assert_eq!(find_root(None, Some(&exe), None).as_deref(), Some(here));
        }
    }
}
