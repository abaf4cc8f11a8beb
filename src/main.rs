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
mod plan;

use exo_core::ramdisk::{self, Expect};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The in-tree programs trusted to drive devices (the kernel lets only
/// drivers claim device frames: without an IOMMU, DMA reaches everything).
/// Others are made drivers with `--option drivers=NAME,...`.
const DRIVERS: &[&str] = &[
    "hpet",
    "lspci",
    "edu",
    "virtio-blk",
    "httpd",
    "test-device-claim",
    "test-device-claim-peer",
    "test-hostile",
    // `irq-to-driver` in `cargo xtask bench syscalls`: it holds edu and
    // raises its interrupt.
    "test-bench",
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
                options.push((k.to_string(), val.to_string()));
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let out = out.ok_or("--out DIR is required")?;
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;

    let available: Vec<&str> = env!("EXO_PROGRAMS").split(',').collect();
    let request = plan::Request {
        programs,
        elves,
        copies,
        options: options.clone(),
    };
    let planned = plan::plan(&available, &request)?;
    let user_dir = Path::new(env!("EXO_USER_DIR"));
    let mut blobs: Vec<(String, Expect, Vec<u8>)> = Vec::new();
    let mut drivers: Vec<String> = planned
        .iter()
        .filter(|e| {
            DRIVERS.contains(&e.name.as_str()) && e.source == plan::Source::Demo(e.name.clone())
        })
        .map(|e| e.name.clone())
        .collect();
    for (name, value) in options {
        if name == "drivers" {
            drivers.extend(value.split(',').filter(|d| !d.is_empty()).map(String::from));
        } else {
            blobs.push((format!("!{name}"), Expect::Exit0, value.into_bytes()));
        }
    }
    if !drivers.is_empty() {
        blobs.push((
            "!drivers".into(),
            Expect::Exit0,
            drivers.join(",").into_bytes(),
        ));
    }
    for entry in planned {
        let data = match &entry.source {
            plan::Source::Demo(demo) => read(&user_dir.join(demo))?,
            plan::Source::Elf(path) => read(path)?,
        };
        let expect = if entry.fault {
            Expect::Fault
        } else {
            Expect::Exit0
        };
        blobs.push((entry.name, expect, data));
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
