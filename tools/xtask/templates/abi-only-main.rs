//! mine: an exo program on the `abi` crate alone (made by `cargo xtask new --abi-only`).
#![no_std]
#![no_main]

use abi::Sysnum;
use abi::raw::syscall6;

/// The entry point: the kernel starts here, the pid in `rdi`.
#[unsafe(no_mangle)]
extern "C" fn _start(_pid: u64) -> ! {
    let msg = b"mine: hello from my own libOS\n";
    let args = [msg.as_ptr() as u64, msg.len() as u64, 0, 0, 0, 0];
    // SAFETY: debug_write only reads `msg`, which outlives the call.
    unsafe { syscall6(Sysnum::DebugWrite as u64, args) };
    exit(abi::exit_code::SUCCESS)
}

/// Ends the process.
fn exit(code: u64) -> ! {
    // SAFETY: exit touches no memory of ours and does not return.
    unsafe { syscall6(Sysnum::Exit as u64, [code, 0, 0, 0, 0, 0]) };
    loop {
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(abi::exit_code::PANIC)
}
