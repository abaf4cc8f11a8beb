//! test-fault-exc-tf: a handler resumes with the trap flag set. `resume`
//! keeps TF (a ring-3 `popfq` may set it), so the #DB comes in ring 3
//! after one instruction; debug exceptions are not delivered, so the
//! kernel ends the process with its report (and the kernel never ran with
//! TF, or the run would fail).
#![no_std]
#![no_main]

use libos::exception::{self, Action, ExceptionFrame};
use libos::println;

fn handler(f: &mut ExceptionFrame) -> Action {
    f.rflags |= 0x100;
    f.rip = f.r15;
    Action::Resume
}

exo_demos::fault_program!("test-fault-exc-tf", "resuming with the trap flag set", {
    if let Err(e) = exception::register(handler) {
        println!("test-fault-exc-tf: register refused: {e}");
        return Err(e);
    }
    // SAFETY: deliberately faulting; the handler continues at the label
    // with TF set, and the next instruction traps.
    unsafe { core::arch::asm!("lea r15, [rip + 2f]", "ud2", "2:", "nop", "nop", out("r15") _) };
});
