//! `cargo xtask doc`: the API docs of `abi` and `libos`, built the way the
//! programs are (bare-metal target, build-std), since libos's dependencies
//! (talc) do not build for the host.
use crate::build;
use std::path::PathBuf;

/// The crates whose docs are built.
const CRATES: &[&str] = &["abi", "libos"];

/// Where the docs go (under the target directory).
pub fn doc_dir() -> PathBuf {
    build::target_dir().join("bare").join("doc")
}

/// The `cargo doc` that builds them.
pub fn command() -> std::process::Command {
    let mut cmd = build::cargo_bare();
    cmd.arg("doc").arg("--no-deps");
    for c in CRATES {
        cmd.args(["-p", c]);
    }
    cmd.args(["--target", crate::new::TARGET])
        .args(["-Zbuild-std=core,alloc,compiler_builtins"])
        .args(["-Zbuild-std-features=compiler-builtins-mem"])
        .arg("--target-dir")
        .arg(doc_dir())
        .env_remove("RUSTDOCFLAGS");
    cmd
}

/// The front page of crate `name`'s docs.
pub fn index(name: &str) -> PathBuf {
    doc_dir()
        .join(crate::new::TARGET)
        .join("doc")
        .join(name)
        .join("index.html")
}

/// `cargo xtask doc`.
pub fn run(args: &[String]) -> Result<u8, String> {
    if let Some(arg) = args.first() {
        return Err(format!("doc: unexpected argument `{arg}` (see --help)"));
    }
    crate::setup::ensure(false)?;
    let status = command()
        .arg("--quiet")
        .status()
        .map_err(|e| format!("cargo: {e}"))?;
    if !status.success() {
        return Err("doc: cargo doc failed".into());
    }
    for name in CRATES {
        println!("{name}: {}", index(name).display());
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_are_built_for_the_bare_metal_target_and_found_there() {
        let cmd = command();
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        for want in [
            "doc",
            "abi",
            "libos",
            "x86_64-unknown-none",
            "-Zbuild-std=core,alloc,compiler_builtins",
        ] {
            assert!(args.iter().any(|a| a == want), "{want} in {args:?}");
        }
        assert!(index("libos").ends_with("bare/doc/x86_64-unknown-none/doc/libos/index.html"));
        assert!(run(&["--open".into()]).is_err());
    }
}
