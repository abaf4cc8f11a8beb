//! Raw `syscall` stubs: the only place user code meets the instruction.
//!
//! One typed stub per syscall, generated from the syscall table
//! ([`crate::Sysnum`]): `abi::raw::map(cap, vaddr, flags)`, ... Each is
//! `unsafe` exactly when the call writes user memory or removes mappings.
//! [`syscall6`] issues any number with any registers (for hostile tests).
//!
//! Each stub passes up to six arguments in `rdi, rsi, rdx, r10, r8, r9` and
//! returns `(rax, rdx)`: the error code (0 = success) and the value. Use
//! [`crate::Sysnum`] for the number and [`crate::SysError::check`] on `rax`.
//! Only compiled for x86_64; the host build (tests, tools) leaves them out.

#[cfg(target_arch = "x86_64")]
mod imp {
    use core::arch::asm;

    /// Issues syscall `num` with six arguments and returns `(rax, rdx)`.
    ///
    /// # Safety
    /// A syscall may read or write user memory named by its arguments (e.g.
    /// `debug_write`, `frame_stats`) or change the address space (`map`,
    /// `unmap`, `frame_free`): the caller must ensure that memory it relies
    /// on is not unmapped under live references.
    #[inline(always)]
    pub unsafe fn syscall6(num: u64, a: [u64; 6]) -> (u64, u64) {
        let rax: u64;
        let rdx: u64;
        // SAFETY: the kernel preserves every register but rax, rdx (results)
        // and rcx, r11 (clobbered by the `syscall` instruction itself); it
        // never touches the user stack. The memory contract is the caller's.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") num => rax,
                in("rdi") a[0],
                in("rsi") a[1],
                inlateout("rdx") a[2] => rdx,
                in("r10") a[3],
                in("r8") a[4],
                in("r9") a[5],
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        (rax, rdx)
    }

    /// Issues syscall `num` (one that delivers a message: `recv`, `call`)
    /// and returns every result register: `[rax, rdx, rsi, rdi, r8, r9]`
    /// (status, badge, the two words, the capability's handle, flags).
    ///
    /// # Safety
    /// As [`syscall6`].
    #[inline(always)]
    pub unsafe fn syscall6_ipc(num: u64, a: [u64; 6]) -> [u64; 6] {
        let (rax, rdx, rsi, rdi, r8, r9): (u64, u64, u64, u64, u64, u64);
        // SAFETY: as in `syscall6`; the kernel also writes rsi, rdi, r8
        // and r9 for these calls, declared as outputs here.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") num => rax,
                inlateout("rdi") a[0] => rdi,
                inlateout("rsi") a[1] => rsi,
                inlateout("rdx") a[2] => rdx,
                in("r10") a[3],
                inlateout("r8") a[4] => r8,
                inlateout("r9") a[5] => r9,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        [rax, rdx, rsi, rdi, r8, r9]
    }
}

#[cfg(target_arch = "x86_64")]
pub use imp::{syscall6, syscall6_ipc};

#[cfg(target_arch = "x86_64")]
pub use crate::table::stubs::*;

/// Issues syscall `num` with up to six arguments (missing ones are zero).
///
/// # Safety
/// As [`syscall6`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn syscall(num: crate::Sysnum, args: &[u64]) -> (u64, u64) {
    let mut a = [0u64; 6];
    let n = if args.len() < 6 { args.len() } else { 6 };
    a[..n].copy_from_slice(&args[..n]);
    // SAFETY: forwarded contract.
    unsafe { syscall6(num as u64, a) }
}
