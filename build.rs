//! Builds the bare-metal parts: the kernel and the userland programs, each
//! with a nested `cargo build` for `x86_64-unknown-none` (build-std, since the
//! toolchain ships no bare-metal std), and hands their paths to the image
//! builder (`src/main.rs`) through compile-time environment variables.
//!
//! Needs the Debian toolchain and `RUSTC_BOOTSTRAP=1` (`cargo xtask` sets
//! both up; see the README).
#![forbid(unsafe_code)]
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "x86_64-unknown-none";

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let target_root = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("bare");
    // The root manifest too: its profiles shape the kernel's code.
    for dir in ["abi", "kernel", "userland", "Cargo.lock", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    // The kernel: a PIE that the bootloader places in the upper half.
    let kernel_dir = target_root.join("kernel");
    nested_build(&root, &kernel_dir, &["-p", "exo-kernel"], "", true);
    let kernel = kernel_dir.join(TARGET).join("release").join("exo-kernel");
    // The image gets a copy without debug info (10 MB less for the
    // bootloader to read under emulation); gdb uses the original.
    let stripped = kernel_dir.join("exo-kernel.stripped");
    strip(&kernel, &stripped);

    // User programs: static (ET_EXEC) ELFs at fixed addresses in the lower half.
    let user_dir = target_root.join("userland");
    nested_build(
        &root,
        &user_dir,
        &["-p", "exo-demos", "--bins"],
        "-C relocation-model=static",
        false,
    );
    let programs = user_programs(&root.join("userland/demos/src/bin"));

    println!("cargo:rustc-env=EXO_KERNEL={}", stripped.display());
    println!("cargo:rustc-env=EXO_KERNEL_SYMBOLS={}", kernel.display());
    println!(
        "cargo:rustc-env=EXO_USER_DIR={}",
        user_dir.join(TARGET).join("release").display()
    );
    println!("cargo:rustc-env=EXO_PROGRAMS={}", programs.join(","));
}

/// Runs `cargo build --release` for the bare-metal target into `target_dir`;
/// with `symbols`, keeps debug info (the kernel, for gdb), otherwise strips
/// it (user programs: the ramdisk stays small and boots fast).
fn nested_build(root: &Path, target_dir: &Path, args: &[&str], rustflags: &str, symbols: bool) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .arg("build")
        .arg("--release")
        .args(args)
        .args(["--target", TARGET])
        .args(["-Zbuild-std=core,alloc,compiler_builtins"])
        .args(["-Zbuild-std-features=compiler-builtins-mem"])
        .arg("--target-dir")
        .arg(target_dir)
        // Optimised code for the benches; symbols where gdb wants them.
        .env(
            "CARGO_PROFILE_RELEASE_DEBUG",
            if symbols { "true" } else { "false" },
        )
        .env(
            "CARGO_PROFILE_RELEASE_STRIP",
            if symbols { "none" } else { "debuginfo" },
        )
        .env("RUSTC_BOOTSTRAP", "1")
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            rustflags
                .split_whitespace()
                .collect::<Vec<_>>()
                .join("\x1f"),
        );
    for var in [
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("build.rs: cannot run cargo");
    if !status.success() {
        panic!("build.rs: nested build {args:?} failed ({status})");
    }
}

/// Copies `from` to `to` without debug sections (llvm-objcopy, which the
/// set-up installs), or unchanged if no objcopy is found.
fn strip(from: &Path, to: &Path) {
    for tool in ["llvm-objcopy-22", "llvm-objcopy", "rust-objcopy"] {
        let ok = Command::new(tool)
            .arg("--strip-debug")
            .arg(from)
            .arg(to)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return;
        }
    }
    println!("cargo:warning=no llvm-objcopy found: the boot image keeps the kernel's debug info");
    std::fs::copy(from, to).expect("copy kernel");
}

/// Every demo program: one binary per file in `userland/demos/src/bin`.
fn user_programs(bin_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(bin_dir)
        .expect("userland/demos/src/bin")
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "rs").then(|| path.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    names.sort();
    names
}
