//! exo's policy-free kernel logic: pure code that builds for the kernel
//! (`no_std` + `alloc`) and is tested on the host.
//!
//! - [`console`]: what a program's console output becomes (escaped, marked).
//! - [`memmap`]: the boot memory map, normalised (sorted, merged, classified).
//! - [`frame_alloc`]: the hierarchical-bitmap physical-frame allocator.
//! - [`captable`]: per-process capability tables with generation-checked,
//!   scrambled handles.
//! - [`elf`]: validation of user ELF programs into a load plan.
//! - [`ramdisk`]: the boot ramdisk's archive format (programs by name).
//! - [`slab`]: values at small stable indices (a process's `map` records).
//! - [`object`]: the object model (processes, ledger, mappings, the memory
//!   syscalls' semantics, invariant checks) over two small traits.
//! - [`platform`]: what the ACPI tables describe (APICs, ECAM, HPET) and the
//!   DMAR decoder (VT-d remapping units and their scopes).
//! - [`vtd`]: a VT-d remapping unit's version and capability registers.
//!
//! Nothing here touches hardware; the kernel's `arch` glue does that.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod captable;
pub mod console;
pub mod elf;
pub mod frame_alloc;
pub mod memmap;
pub mod object;
pub mod platform;
pub mod ramdisk;
pub mod slab;
pub mod vtd;
pub mod zero_pool;

/// Cases for a property or mutation test: the `EXO_FUZZ_CASES` environment
/// variable when set (`cargo xtask fuzz --host` runs 100,000 and more),
/// else `default` (small enough for every `cargo test`).
#[cfg(test)]
pub(crate) fn fuzz_cases(default: u32) -> u32 {
    std::env::var("EXO_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
