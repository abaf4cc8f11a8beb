//! Booting an image in QEMU: serial on stdout (and captured), a timeout,
//! the kernel's verdict from `isa-debug-exit` turned into our exit status.
use crate::build::{self, ImageSpec};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// QEMU's status when the kernel writes 0x10 to the exit port.
pub const QEMU_SUCCESS: i32 = 33;
/// QEMU's status when the kernel writes 0x11.
pub const QEMU_FAILURE: i32 = 35;

/// How to run QEMU.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// UEFI (OVMF) firmware.
    pub uefi: bool,
    /// An Intel IOMMU (`-device intel-iommu`, VT-d DMA remapping; the
    /// firmware then reports it in an ACPI DMAR table). On by default;
    /// `--no-iommu` boots without it.
    pub iommu: bool,
    /// KVM instead of TCG.
    pub kvm: bool,
    /// Wait for gdb.
    pub gdb: bool,
    /// Kill after this long.
    pub timeout: Duration,
    /// Echo the serial console to our stdout while it runs.
    pub echo: bool,
    /// Extra QEMU arguments.
    pub extra: Vec<String>,
    /// A virtio-net NIC on QEMU's user-mode network, with host port
    /// `net` (on 127.0.0.1 only) forwarded to the guest's port 80.
    pub net: Option<u16>,
    /// Run until QEMU ends (or is stopped), with no timeout.
    pub until_stopped: bool,
    /// A host-side check run on a thread of its own while QEMU runs,
    /// given the forwarded port (with [`net`](Self::net)); its report
    /// goes into the log, and its failure fails a successful run. It must
    /// end the run itself (e.g. by asking the guest to exit).
    pub while_running: Option<fn(u16) -> Result<String, String>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            uefi: false,
            iommu: true,
            kvm: false,
            gdb: false,
            timeout: Duration::from_secs(60),
            echo: true,
            extra: Vec::new(),
            net: None,
            until_stopped: false,
            while_running: None,
        }
    }
}

/// What a run produced.
pub struct Outcome {
    /// QEMU's exit status (None if killed).
    pub status: Option<i32>,
    /// Everything the serial console printed.
    pub serial: String,
    /// Whether the timeout killed it.
    pub timed_out: bool,
    /// Wall time.
    pub elapsed: Duration,
    /// The host's check of what the `virtio-blk` program wrote to the
    /// disk (see [`check_disk`]); `None` when that program was not in the
    /// run.
    pub disk_check: Option<Result<(), String>>,
    /// What [`RunOptions::while_running`] reported, if it ran.
    pub host_check: Option<Result<String, String>>,
}

impl Outcome {
    /// The kernel's verdict as a process exit code: 0 success, 1 failure,
    /// 124 timeout, 2 anything else (QEMU error, no verdict). A failed
    /// disk or host check turns success into failure.
    pub fn exit_code(&self) -> u8 {
        match (self.timed_out, self.status) {
            (true, _) => 124,
            (false, Some(QEMU_SUCCESS)) if matches!(self.disk_check, Some(Err(_))) => 1,
            (false, Some(QEMU_SUCCESS)) if matches!(self.host_check, Some(Err(_))) => 1,
            (false, Some(QEMU_SUCCESS)) => 0,
            (false, Some(QEMU_FAILURE)) => 1,
            _ => 2,
        }
    }
}

/// The devices every boot has besides the boot disk: QEMU's `edu`
/// teaching device (vendor 1234, device 11e8; DMA limited to 28 bits, which
/// `-m 1G` makes matter) and a virtio-blk disk. With 1 GiB the q35 layout
/// is: RAM below 0xb000_0000, PCIe ECAM at 0xb000_0000 (256 MiB), the
/// 32-bit PCI window above it, the HPET at 0xfed0_0000.
pub const MEMORY: &str = "1G";

/// The machine every boot runs on, exo's ([`boot`]) and the Linux guest's
/// of `bench syscalls`: q35 with [`MEMORY`] and one CPU, the serial console
/// on stdio, no display, no reboot, the `isa-debug-exit` port the kernel
/// gives its verdict on, and TCG with every CPU feature it emulates (or
/// KVM with the host's CPU). Callers add the disks and devices.
pub fn machine(kvm: bool) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-machine", "q35", "-m", MEMORY, "-smp", "1"])
        .args(["-serial", "stdio", "-display", "none", "-no-reboot"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    if kvm {
        cmd.args(["-accel", "kvm", "-cpu", "host,-arch-capabilities"]);
    } else {
        cmd.args(["-accel", "tcg", "-cpu", "max"]);
    }
    cmd
}

/// Adds a virtio-net NIC on QEMU's user-mode network (the guest is
/// 10.0.2.15, the gateway 10.0.2.2) whose only way in is host port `port`
/// on 127.0.0.1, forwarded to the guest's port 80 (exo's `httpd`, and the
/// Linux guest of `bench net`). With `iommu` its DMA goes through the
/// IOMMU (`iommu_platform=on`: the driver must accept
/// `VIRTIO_F_ACCESS_PLATFORM` and give it I/O addresses).
pub fn add_nic(cmd: &mut Command, port: u16, iommu: bool) {
    cmd.arg("-netdev")
        .arg(format!("user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:80"))
        .args([
            "-device",
            &virtio_device("virtio-net-pci,netdev=net0", iommu),
        ]);
}

/// A virtio PCI device's `-device` value, behind the IOMMU if `iommu`
/// (which QEMU allows only for a modern device, without the legacy
/// interface: device IDs 0x1040 + type instead of 0x1000 + type - 1).
fn virtio_device(spec: &str, iommu: bool) -> String {
    if iommu {
        format!("{spec},disable-legacy=on,iommu_platform=on")
    } else {
        spec.to_string()
    }
}

/// Size of the virtio-blk disk the xtask makes for each run.
pub const DISK_BYTES: usize = 1 << 20;
/// The sector the xtask fills before boot (the `virtio-blk` program reads it).
pub const DISK_READ_SECTOR: usize = 1;
/// The sector the `virtio-blk` program writes (the xtask checks it after).
pub const DISK_WRITE_SECTOR: usize = 2;
const SECTOR: usize = 512;

/// Byte `i` of the known pattern of `sector`: `(7 i + 0x31 sector) mod
/// 256`. `userland/demos/src/bin/virtio-blk.rs` computes the same.
pub fn disk_pattern(sector: usize, i: usize) -> u8 {
    ((i * 7 + sector * 0x31) % 256) as u8
}

/// The virtio-blk disk of the run that boots `image`: next to the image,
/// so that runs in different directories (parallel tests) never share one.
pub fn disk_path(image: &Path) -> PathBuf {
    image.with_file_name("disk.img")
}

/// Writes a fresh disk: zeros, with the known pattern in
/// [`DISK_READ_SECTOR`].
fn make_disk(path: &Path) -> Result<(), String> {
    let mut disk = vec![0u8; DISK_BYTES];
    let start = DISK_READ_SECTOR * SECTOR;
    for (i, byte) in disk[start..start + SECTOR].iter_mut().enumerate() {
        *byte = disk_pattern(DISK_READ_SECTOR, i);
    }
    std::fs::write(path, disk).map_err(|e| format!("{}: {e}", path.display()))
}

/// After QEMU: [`DISK_WRITE_SECTOR`] must hold its pattern (what the
/// `virtio-blk` program wrote and flushed).
pub fn check_disk(path: &Path) -> Result<(), String> {
    let disk = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let start = DISK_WRITE_SECTOR * SECTOR;
    let sector = disk.get(start..start + SECTOR).ok_or(format!(
        "{}: shorter than {} bytes",
        path.display(),
        start + SECTOR
    ))?;
    match (0..SECTOR).find(|&i| sector[i] != disk_pattern(DISK_WRITE_SECTOR, i)) {
        None => Ok(()),
        Some(i) => Err(format!(
            "sector {DISK_WRITE_SECTOR} of {} differs from the pattern at byte {i} \
             ({:#04x}, expected {:#04x})",
            path.display(),
            sector[i],
            disk_pattern(DISK_WRITE_SECTOR, i)
        )),
    }
}

/// The program names in the ramdisk `exo image` wrote next to `image`
/// (format: `exo_core::ramdisk`: magic, u32 count, then per entry a length
/// byte, the name, an expectation byte and two u64s). Empty if unreadable.
fn ramdisk_names(image: &Path) -> Vec<String> {
    let Ok(bytes) = std::fs::read(image.with_file_name("ramdisk.bin")) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    if bytes.len() < 12 || &bytes[..8] != b"EXORD001" {
        return names;
    }
    let count = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let mut at = 12;
    for _ in 0..count {
        let Some(&len) = bytes.get(at) else { break };
        let Some(name) = bytes.get(at + 1..at + 1 + len as usize) else {
            break;
        };
        names.push(String::from_utf8_lossy(name).into_owned());
        at += 1 + len as usize + 1 + 16;
    }
    names
}

/// How a child process ended (see [`run_child`]).
pub struct Finished {
    /// Exit status (None if killed).
    pub status: Option<i32>,
    /// Whether the timeout killed it.
    pub timed_out: bool,
    /// Everything it wrote to stderr.
    pub stderr: String,
    /// From spawn to exit (or kill).
    pub elapsed: Duration,
}

/// Runs `cmd` (QEMU), handing each chunk of its stdout to `on_output` with
/// the time since spawn, collecting its stderr, and killing it after
/// `timeout` (`None`: wait for ever, as under gdb).
pub fn run_child(
    mut cmd: Command,
    timeout: Option<Duration>,
    mut on_output: impl FnMut(Duration, &[u8]) + Send + 'static,
) -> Result<Finished, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("qemu-system-x86_64: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => on_output(start.elapsed(), &buf[..n]),
            }
        }
    });
    let mut stderr = child.stderr.take().expect("piped");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break (status.code(), false);
        }
        if timeout.is_some_and(|t| start.elapsed() > t) {
            let _ = child.kill();
            let _ = child.wait();
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    let _ = reader.join();
    Ok(Finished {
        status,
        timed_out,
        stderr: err_reader.join().unwrap_or_default(),
        elapsed,
    })
}

/// Boots `image` and waits for the verdict.
pub fn boot(image: &Path, opts: &RunOptions) -> Result<Outcome, String> {
    let disk = disk_path(image);
    make_disk(&disk)?;
    // Check the disk afterwards only if the program that writes it ran.
    let check = ramdisk_names(image).iter().any(|n| n == "virtio-blk");
    let mut cmd = machine(opts.kvm);
    if opts.iommu {
        // Before every PCI device: QEMU puts a device behind the IOMMU
        // only if the IOMMU exists when the device is created.
        // 39-bit I/O addresses (three-level tables), pinned: QEMU 7.2's
        // default, while QEMU 10 defaults to 48 (abi::IOVA_TOP is 2^39).
        cmd.args(["-device", "intel-iommu,aw-bits=39"]);
    }
    cmd.arg("-drive")
        .arg(format!("format=raw,file={}", image.display()))
        .args(["-device", "edu"])
        .arg("-drive")
        .arg(format!(
            "if=none,id=vdisk,format=raw,file={}",
            disk.display()
        ))
        .args([
            "-device",
            &virtio_device("virtio-blk-pci,drive=vdisk", opts.iommu),
        ]);
    if opts.uefi {
        cmd.args(["-bios", "/usr/share/ovmf/OVMF.fd"]);
    }
    if opts.gdb {
        cmd.args(["-s", "-S"]);
    }
    if let Some(port) = opts.net {
        add_nic(&mut cmd, port, opts.iommu);
    }
    cmd.args(&opts.extra);
    // The host check starts with QEMU (it waits for the guest itself).
    let host = opts
        .while_running
        .zip(opts.net)
        .map(|(check, port)| std::thread::spawn(move || check(port)));
    let serial = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = Arc::clone(&serial);
    let echo = opts.echo;
    let timeout = if opts.gdb || opts.until_stopped {
        None
    } else {
        Some(opts.timeout)
    };
    let finished = run_child(cmd, timeout, move |_, chunk| {
        if echo {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(chunk);
            let _ = out.flush();
        }
        sink.lock().unwrap().extend_from_slice(chunk);
    })?;
    let (status, timed_out, qemu_err) = (finished.status, finished.timed_out, finished.stderr);
    let mut serial = String::from_utf8_lossy(&serial.lock().unwrap()).into_owned();
    if !qemu_err.trim().is_empty() && status != Some(QEMU_SUCCESS) && status != Some(QEMU_FAILURE) {
        serial.push_str("\n[qemu stderr] ");
        serial.push_str(qemu_err.trim());
        serial.push('\n');
    }
    // Only a run the kernel gave a verdict on ran the program to its end.
    let verdict = status == Some(QEMU_SUCCESS) || status == Some(QEMU_FAILURE);
    let disk_check = (check && verdict).then(|| check_disk(&disk));
    match &disk_check {
        Some(Ok(())) => serial.push_str(&format!(
            "\n[xtask] disk check: sector {DISK_WRITE_SECTOR} holds the virtio-blk pattern\n"
        )),
        Some(Err(why)) => serial.push_str(&format!("\n[xtask] disk check FAILED: {why}\n")),
        None => {}
    }
    let host_check = host.map(|h| {
        h.join()
            .unwrap_or_else(|_| Err("the host check panicked".into()))
    });
    match &host_check {
        Some(Ok(report)) => serial.push_str(&format!("\n[xtask] host check: ok: {report}\n")),
        Some(Err(why)) => serial.push_str(&format!("\n[xtask] host check FAILED: {why}\n")),
        None => {}
    }
    Ok(Outcome {
        status,
        serial,
        timed_out,
        elapsed: finished.elapsed,
        disk_check,
        host_check,
    })
}

/// The lines of a failed run's serial log that say why it failed: the
/// kernel's reports of programs not loaded as planned or not finished as
/// expected (see `kernel/src/verdict.rs`).
pub fn failure_reasons(serial: &str) -> Vec<&str> {
    serial
        .lines()
        .map(str::trim)
        .filter(|l| l.ends_with(": the run fails") || l.contains("did not finish as expected"))
        .map(|l| l.strip_prefix("[exo] ").unwrap_or(l))
        .collect()
}

/// `cargo xtask run`.
pub fn run_command(args: &[String]) -> Result<u8, String> {
    let (spec, mut opts) = parse_run(args)?;
    if let Some(port) = opts.net.as_mut() {
        if *port == 0 {
            *port = crate::net::free_port()?;
        }
    }
    let tool = build::build_all()?;
    let out = build::target_dir().join("exo").join("run");
    let image = build::make_image(&tool, &spec, &out)?;
    if opts.gdb {
        eprintln!(
            "xtask: QEMU waits for gdb on :1234. Attach with:\n  gdb -ex 'add-symbol-file {} -o 0xffffffff80000000' -ex 'target remote :1234' -ex 'hbreak exo_kernel::kernel_main' -ex continue\n(use hardware breakpoints until the bootloader has loaded the kernel)",
            build::kernel_path(&tool)
        );
    }
    eprintln!(
        "xtask: booting {} under {}",
        image.display(),
        if opts.kvm { "KVM" } else { "TCG" }
    );
    if let Some(port) = opts.net {
        eprintln!(
            "xtask: httpd is at http://127.0.0.1:{port}/ (QEMU forwards it to the guest's port 80; \
             try `curl http://127.0.0.1:{port}/`; GET /quit ends httpd){}",
            if opts.until_stopped {
                "; runs until stopped (Ctrl-C) or --timeout"
            } else {
                ""
            }
        );
    }
    let outcome = boot(&image, &opts)?;
    let code = outcome.exit_code();
    match &outcome.disk_check {
        Some(Ok(())) => eprintln!(
            "xtask: disk check: sector {DISK_WRITE_SECTOR} of {} holds the virtio-blk pattern",
            disk_path(&image).display()
        ),
        Some(Err(why)) => eprintln!("xtask: disk check failed: {why}"),
        None => {}
    }
    match code {
        0 => eprintln!(
            "xtask: kernel verdict: success ({:.1} s)",
            outcome.elapsed.as_secs_f64()
        ),
        1 if outcome.status == Some(QEMU_SUCCESS) => {
            eprintln!("xtask: kernel verdict: success, but the disk check failed: run failed")
        }
        1 => {
            eprintln!("xtask: kernel verdict: failure");
            for why in failure_reasons(&outcome.serial) {
                eprintln!("xtask:   {why}");
            }
        }
        124 => eprintln!("xtask: timed out after {} s", opts.timeout.as_secs()),
        _ => eprintln!(
            "xtask: QEMU ended without a verdict (status {:?})",
            outcome.status
        ),
    }
    Ok(code)
}

/// `cargo xtask run`'s options: what to boot and how. Everything that can
/// be checked before building is checked here.
pub fn parse_run(args: &[String]) -> Result<(ImageSpec, RunOptions), String> {
    let mut spec = ImageSpec::default();
    let mut opts = RunOptions::default();
    let mut timeout_given = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--programs" => spec.programs = Some(value()?),
            "--elf" => {
                let path = PathBuf::from(value()?);
                let path = std::fs::canonicalize(&path)
                    .map_err(|e| format!("--elf {}: {e}", path.display()))?;
                spec.elves.push(path);
            }
            "--trace" => spec.options.push("trace".into()),
            "--driver" => spec.options.push(format!("drivers={}", value()?)),
            "--args" => {
                let v = value()?;
                let Some((name, text)) = v.split_once('=') else {
                    return Err(format!("--args {v}: expected PROGRAM=ARGUMENTS"));
                };
                if text.len() > abi::MAX_ARGS {
                    return Err(format!(
                        "--args {name}=...: the arguments are {} bytes; a program \
                         can be given at most {} (abi::MAX_ARGS)",
                        text.len(),
                        abi::MAX_ARGS
                    ));
                }
                spec.options.push(format!("args:{v}"));
            }
            "--copies" => {
                let v = value()?;
                if !v.contains('=') {
                    return Err(format!("--copies {v}: expected PROGRAM=COUNT"));
                }
                spec.copies.push(v);
            }
            "--uefi" => spec.uefi = true,
            "--no-iommu" => opts.iommu = false,
            "--kvm" => opts.kvm = true,
            "--net" => {
                opts.net.get_or_insert(0);
            }
            "--port" => {
                let v = value()?;
                let port: u16 = v
                    .parse()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or(format!("--port {v}: not a port number (1..65535)"))?;
                opts.net = Some(port);
            }
            "--gdb" => opts.gdb = true,
            "--timeout" => {
                let v = value()?;
                let secs: u64 = v
                    .parse()
                    .map_err(|_| format!("--timeout {v}: not a number"))?;
                opts.timeout = Duration::from_secs(secs);
                timeout_given = true;
            }
            other => return Err(format!("run: unknown option `{other}` (see --help)")),
        }
    }
    opts.uefi = spec.uefi;
    if opts.net.is_some() {
        // A server runs until it is stopped; by default it runs alone.
        opts.until_stopped = !timeout_given;
        if spec.programs.is_none() && spec.elves.is_empty() {
            spec.programs = Some("httpd".into());
        }
    }
    Ok((spec, opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_over_the_kernel_limit_are_refused_before_building() {
        let fits = format!("hello={}", "a".repeat(abi::MAX_ARGS));
        let (spec, _) = parse_run(&args(&["--args", &fits])).expect("1024 bytes fit");
        assert_eq!(spec.options, [format!("args:{fits}")]);
        let over = format!("hello={}", "a".repeat(abi::MAX_ARGS + 1));
        let why = parse_run(&args(&["--args", &over])).expect_err("refused");
        assert!(
            why.contains("1025 bytes") && why.contains("at most 1024"),
            "{why}"
        );
        assert!(parse_run(&args(&["--args", "hello"])).is_err());
    }

    #[test]
    fn net_boots_httpd_alone_until_stopped_unless_told_otherwise() {
        let (spec, opts) = parse_run(&args(&["--net"])).unwrap();
        assert_eq!(spec.programs.as_deref(), Some("httpd"));
        assert_eq!(opts.net, Some(0), "0: a free port is picked at run time");
        assert!(opts.until_stopped);
        let (spec, opts) = parse_run(&args(&[
            "--port",
            "8080",
            "--programs",
            "hello",
            "--timeout",
            "5",
        ]))
        .unwrap();
        assert_eq!(spec.programs.as_deref(), Some("hello"));
        assert_eq!(opts.net, Some(8080));
        assert!(!opts.until_stopped);
        assert!(parse_run(&args(&["--port", "0"])).is_err());
        assert!(parse_run(&args(&["--port", "http"])).is_err());
        let (_, opts) = parse_run(&args(&[])).unwrap();
        assert_eq!(opts.net, None);
        assert!(!opts.until_stopped);
    }

    #[test]
    fn a_failed_run_says_why() {
        let serial = "[exo] pid 1 (hello) exited with code 0\n\
            [exo] program true: refused: position-independent executable\n\
            [exo] program true was asked for but not loaded (position-independent executable): the run fails\n\
            [exo] pid 2 (x) did not finish as expected (Exit0)\n\
            [exo] all 1 processes finished; ...: FAILURE\n";
        assert_eq!(
            failure_reasons(serial),
            [
                "program true was asked for but not loaded (position-independent executable): the run fails",
                "pid 2 (x) did not finish as expected (Exit0)"
            ]
        );
        assert!(failure_reasons("[exo] all 3 processes finished: success").is_empty());
    }
}
