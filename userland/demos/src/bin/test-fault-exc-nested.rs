//! test-fault-exc-nested: a handler that faults itself (before it
//! resumes). The kernel must end the process with a report naming the
//! nested fault, not deliver again or loop.
#![no_std]
#![no_main]

use libos::exception::{self, Action, ExceptionFrame};
use libos::println;

fn handler(_: &mut ExceptionFrame) -> Action {
    // SAFETY: deliberately faulting inside the handler.
    unsafe { core::arch::asm!("ud2") };
    Action::Resume
}

exo_demos::fault_program!(
    "test-fault-exc-nested",
    "a fault inside the exception handler",
    {
        if let Err(e) = exception::register(handler) {
            println!("test-fault-exc-nested: register refused: {e}");
            return Err(e);
        }
        // SAFETY: deliberately faulting; the handler faults in turn.
        unsafe { core::arch::asm!("mov rax, [0x10000]", out("rax") _) };
    }
);
