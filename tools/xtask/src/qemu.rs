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
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            uefi: false,
            kvm: false,
            gdb: false,
            timeout: Duration::from_secs(60),
            echo: true,
            extra: Vec::new(),
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
}

impl Outcome {
    /// The kernel's verdict as a process exit code: 0 success, 1 failure,
    /// 124 timeout, 2 anything else (QEMU error, no verdict).
    pub fn exit_code(&self) -> u8 {
        match (self.timed_out, self.status) {
            (true, _) => 124,
            (false, Some(QEMU_SUCCESS)) => 0,
            (false, Some(QEMU_FAILURE)) => 1,
            _ => 2,
        }
    }
}

/// Boots `image` and waits for the verdict.
pub fn boot(image: &Path, opts: &RunOptions) -> Result<Outcome, String> {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-machine", "q35", "-m", "512M", "-smp", "1"])
        .args(["-serial", "stdio", "-display", "none", "-no-reboot"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .arg("-drive")
        .arg(format!("format=raw,file={}", image.display()));
    if opts.kvm {
        cmd.args(["-accel", "kvm", "-cpu", "host,-arch-capabilities"]);
    } else {
        cmd.args(["-accel", "tcg", "-cpu", "max"]);
    }
    if opts.uefi {
        cmd.args(["-bios", "/usr/share/ovmf/OVMF.fd"]);
    }
    if opts.gdb {
        cmd.args(["-s", "-S"]);
    }
    cmd.args(&opts.extra);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("qemu-system-x86_64: {e}"))?;

    let serial = Arc::new(Mutex::new(Vec::<u8>::new()));
    let mut stdout = child.stdout.take().expect("piped");
    let echo = opts.echo;
    let sink = Arc::clone(&serial);
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if echo {
                        let mut out = std::io::stdout().lock();
                        let _ = out.write_all(&buf[..n]);
                        let _ = out.flush();
                    }
                    sink.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            }
        }
    });
    let mut stderr = child.stderr.take().expect("piped");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    let deadline = if opts.gdb {
        None
    } else {
        Some(start + opts.timeout)
    };
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break (status.code(), false);
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = child.kill();
            let _ = child.wait();
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = reader.join();
    let qemu_err = err_reader.join().unwrap_or_default();
    let mut serial = String::from_utf8_lossy(&serial.lock().unwrap()).into_owned();
    if !qemu_err.trim().is_empty() && status != Some(QEMU_SUCCESS) && status != Some(QEMU_FAILURE) {
        serial.push_str("\n[qemu stderr] ");
        serial.push_str(qemu_err.trim());
        serial.push('\n');
    }
    Ok(Outcome {
        status,
        serial,
        timed_out,
        elapsed: start.elapsed(),
    })
}

/// `cargo xtask run`.
pub fn run_command(args: &[String]) -> Result<u8, String> {
    let mut spec = ImageSpec::default();
    let mut opts = RunOptions::default();
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
            "--args" => {
                let v = value()?;
                if !v.contains('=') {
                    return Err(format!("--args {v}: expected PROGRAM=ARGUMENTS"));
                }
                spec.options.push(format!("args:{v}"));
            }
            "--uefi" => spec.uefi = true,
            "--kvm" => opts.kvm = true,
            "--gdb" => opts.gdb = true,
            "--timeout" => {
                let v = value()?;
                let secs: u64 = v
                    .parse()
                    .map_err(|_| format!("--timeout {v}: not a number"))?;
                opts.timeout = Duration::from_secs(secs);
            }
            other => return Err(format!("run: unknown option `{other}` (see --help)")),
        }
    }
    opts.uefi = spec.uefi;
    let tool = build::build_all()?;
    let out = build::target_dir().join("exo").join("run");
    let image = build::make_image(&tool, &spec, &out)?;
    if opts.gdb {
        eprintln!(
            "xtask: QEMU waits for gdb on :1234. Attach with:\n  gdb -ex 'add-symbol-file {} -o 0xffffffff80000000' -ex 'target remote :1234'",
            build::kernel_path(&tool)
        );
    }
    eprintln!(
        "xtask: booting {} under {}",
        image.display(),
        if opts.kvm { "KVM" } else { "TCG" }
    );
    let outcome = boot(&image, &opts)?;
    let code = outcome.exit_code();
    match code {
        0 => eprintln!(
            "xtask: kernel verdict: success ({:.1} s)",
            outcome.elapsed.as_secs_f64()
        ),
        1 => eprintln!("xtask: kernel verdict: failure"),
        124 => eprintln!("xtask: timed out after {} s", opts.timeout.as_secs()),
        _ => eprintln!(
            "xtask: QEMU ended without a verdict (status {:?})",
            outcome.status
        ),
    }
    Ok(code)
}
