//! exo's image builder: packs user programs into a boot ramdisk and makes
//! BIOS or UEFI disk images around the kernel that build.rs compiled.
//!
//! `cargo xtask run` drives it; it can also be used directly:
//! ```text
//! exo image --out DIR [--programs a,b] [--elf PATH]... [--uefi]
//!           [--option NAME=VALUE]... [--copies NAME=K]...
//! exo programs            # the demo programs this build contains
//! exo kernel              # the kernel ELF with symbols (for gdb)
//! ```
//! Boot options travel in the ramdisk as entries whose names start with `!`
//! (`!trace`, `!selftest`, `!args:NAME`, `!drivers`, and `!refusals`: the
//! programs a test expects the loader to refuse, whose refusal then does
//! not fail the run): the bootloader has no command line.
//!
//! Entry names are unique, so `--copies NAME=K` boots program `NAME` K times
//! at once: entries `NAME`, `NAME-2`, ... `NAME-K` from the same ELF (each
//! can get its own arguments with `--option args:NAME-2=...`).
#![forbid(unsafe_code)]
use exo_core::ramdisk::{self, Expect};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Whether a program succeeds by being killed by a fault (the kernel checks
/// that): the `fault` demo and the `test-fault-*` attacks.
fn expects_fault(name: &str) -> bool {
    name == "fault" || name.starts_with("test-fault-")
}

/// The in-tree programs trusted to drive devices (the kernel lets only
/// drivers claim device frames: without an IOMMU, DMA reaches everything).
/// Others are made drivers with `--option drivers=NAME,...`.
const DRIVERS: &[&str] = &[
    "hpet",
    "lspci",
    "edu",
    "virtio-blk",
    "test-device-claim",
    "test-device-claim-peer",
    "test-hostile",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("exo: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("programs") => {
            println!("{}", env!("EXO_PROGRAMS"));
            Ok(())
        }
        Some("kernel") => {
            println!("{}", env!("EXO_KERNEL_SYMBOLS"));
            Ok(())
        }
        Some("image") => image(&args[1..]),
        _ => Err(
            "usage: exo image --out DIR [--programs a,b] [--elf PATH]... [--uefi] \
                  [--option NAME=VALUE]... [--copies NAME=K]... | exo programs | exo kernel"
                .into(),
        ),
    }
}

/// Every program selected by `--programs`: a name `x` selects the demo `x`
/// and its helpers `x-*` (for example `share` and `share-peer`). Without a
/// selection: every program except the `test-*` ones.
fn select(selection: Option<&str>) -> Result<Vec<String>, String> {
    let all: Vec<&str> = env!("EXO_PROGRAMS").split(',').collect();
    let Some(selection) = selection else {
        // The default set is the demos; `test-*` programs are for the tests.
        return Ok(all
            .iter()
            .filter(|p| !p.starts_with("test-"))
            .map(|s| s.to_string())
            .collect());
    };
    let mut chosen = Vec::new();
    for want in selection.split(',').filter(|s| !s.is_empty()) {
        let prefix = format!("{want}-");
        let found: Vec<&&str> = all
            .iter()
            .filter(|p| **p == want || p.starts_with(&prefix))
            .collect();
        if found.is_empty() {
            return Err(format!(
                "no program named `{want}` (have: {})",
                all.join(", ")
            ));
        }
        chosen.extend(found.into_iter().map(|s| s.to_string()));
    }
    chosen.dedup();
    Ok(chosen)
}

fn image(args: &[String]) -> Result<(), String> {
    let mut out: Option<PathBuf> = None;
    let mut programs: Option<String> = None;
    let mut elves: Vec<PathBuf> = Vec::new();
    let mut options: Vec<(String, String)> = Vec::new();
    let mut uefi = false;
    let mut copies: Vec<(String, usize)> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--out" => out = Some(value()?.into()),
            "--programs" => programs = Some(value()?),
            "--elf" => elves.push(value()?.into()),
            "--uefi" => uefi = true,
            "--copies" => copies.push(parse_copies(&value()?)?),
            "--option" => {
                let v = value()?;
                let (k, val) = v.split_once('=').unwrap_or((&v, "1"));
                options.push((format!("!{k}"), val.to_string()));
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let out = out.ok_or("--out DIR is required")?;
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;

    // With only --elf, boot just those; --programs adds demos to them.
    let names = if programs.is_none() && !elves.is_empty() {
        Vec::new()
    } else {
        select(programs.as_deref())?
    };
    let user_dir = Path::new(env!("EXO_USER_DIR"));
    let mut blobs: Vec<(String, Expect, Vec<u8>)> = Vec::new();
    let mut drivers: Vec<String> = names
        .iter()
        .filter(|n| DRIVERS.contains(&n.as_str()))
        .cloned()
        .collect();
    for (name, value) in options {
        if name == "!drivers" {
            drivers.extend(value.split(',').filter(|d| !d.is_empty()).map(String::from));
        } else {
            blobs.push((name, Expect::Exit0, value.into_bytes()));
        }
    }
    if !drivers.is_empty() {
        blobs.push((
            "!drivers".into(),
            Expect::Exit0,
            drivers.join(",").into_bytes(),
        ));
    }
    for name in names {
        let data = read(&user_dir.join(&name))?;
        let expect = if expects_fault(&name) {
            Expect::Fault
        } else {
            Expect::Exit0
        };
        blobs.push((name, expect, data));
    }
    for (name, count) in copies {
        // The program itself (selected or not), then NAME-2 .. NAME-K.
        let (expect, data) = match blobs.iter().find(|(n, _, _)| *n == name) {
            Some((_, expect, data)) => (*expect, data.clone()),
            None => {
                if !env!("EXO_PROGRAMS").split(',').any(|p| p == name) {
                    return Err(format!("--copies {name}: no program named `{name}`"));
                }
                let expect = if expects_fault(&name) {
                    Expect::Fault
                } else {
                    Expect::Exit0
                };
                let data = read(&user_dir.join(&name))?;
                blobs.push((name.clone(), expect, data.clone()));
                (expect, data)
            }
        };
        for i in 2..=count {
            blobs.push((format!("{name}-{i}"), expect, data.clone()));
        }
    }
    for path in elves {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or(format!("{}: not a usable file name", path.display()))?;
        let name: String = stem
            .chars()
            .map(|c| if c.is_ascii_graphic() { c } else { '_' })
            .take(abi::MAX_NAME_LEN)
            .collect();
        blobs.push((name, Expect::Exit0, read(&path)?));
    }
    let entries: Vec<(&str, Expect, &[u8])> = blobs
        .iter()
        .map(|(n, e, d)| (n.as_str(), *e, d.as_slice()))
        .collect();
    let disk = ramdisk::pack(&entries).map_err(|e| format!("ramdisk: {e}"))?;
    let ramdisk_path = out.join("ramdisk.bin");
    std::fs::write(&ramdisk_path, disk).map_err(|e| format!("{}: {e}", ramdisk_path.display()))?;

    let kernel = Path::new(env!("EXO_KERNEL"));
    let mut config = bootloader::BootConfig::default();
    // Our serial port is the kernel's: no bootloader chatter, no slow
    // framebuffer text under emulation.
    config.serial_logging = false;
    config.frame_buffer_logging = false;
    let image = if uefi {
        let path = out.join("exo-uefi.img");
        bootloader::UefiBoot::new(kernel)
            .set_ramdisk(&ramdisk_path)
            .set_boot_config(&config)
            .create_disk_image(&path)
            .map_err(|e| format!("UEFI image: {e:#}"))?;
        path
    } else {
        let path = out.join("exo-bios.img");
        bootloader::BiosBoot::new(kernel)
            .set_ramdisk(&ramdisk_path)
            .set_boot_config(&config)
            .create_disk_image(&path)
            .map_err(|e| format!("BIOS image: {e:#}"))?;
        path
    };
    println!("{}", image.display());
    Ok(())
}

/// `NAME=K` of `--copies`: K (1..=the ramdisk's entry limit) entries of NAME.
fn parse_copies(v: &str) -> Result<(String, usize), String> {
    let (name, count) = v
        .split_once('=')
        .ok_or(format!("--copies {v}: expected NAME=COUNT"))?;
    let count: usize = count
        .parse()
        .ok()
        .filter(|&k| (1..=ramdisk::MAX_ENTRIES).contains(&k))
        .ok_or(format!(
            "--copies {v}: COUNT must be 1..={}",
            ramdisk::MAX_ENTRIES
        ))?;
    Ok((name.to_string(), count))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}
