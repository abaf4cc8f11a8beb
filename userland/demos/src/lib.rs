//! Code the demo programs share (each program is one file in `src/bin`).
//!
//! [`pci`]: PCI configuration space through ECAM, claimed one function
//! page (or the whole of bus 0) at a time with device capabilities, and
//! waiting politely when another process holds a page.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod pci;
