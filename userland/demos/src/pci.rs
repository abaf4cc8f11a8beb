//! PCI configuration space through ECAM (PCI Express's memory-mapped
//! configuration access): function `dd.f` of bus 0 is the 4 KiB page at
//! `base + (dd << 15 | f << 12)`.
//!
//! The base is the firmware's: the kernel reads it from ACPI's MCFG table
//! and hands it out in `sys_info` ([`ecam_base`]); on q35 it is
//! 0xb000_0000 (QEMU's `MCH_HOST_BRIDGE_PCIEXBAR_DEFAULT`, which SeaBIOS
//! and OVMF keep). Only bus 0 is used: q35 puts every `-device` there
//! unless told otherwise.
//!
//! # Who may drive a device
//! The demos agree that a process owns a PCI function while it holds the
//! function's configuration page, an exclusive device capability: only
//! then does it program the function's registers or BARs or let it master
//! the bus, and it keeps the page until it has quiesced the function.
//! `lspci` claims all of bus 0, so it sizes BARs only while nobody drives
//! a device. A claim that finds a page taken waits (up to
//! [`PATIENCE`](crate::PATIENCE) yields) rather than failing: the owner
//! lets go when it is done.

use crate::claim;
use core::fmt;
use libos::{println, sys, DeviceRegion, Error, PAGE_SIZE};

/// Physical address of bus 0's configuration space, as the kernel read it
/// from ACPI's MCFG. `InvalidAddress` (said on the console, for `who`) if the
/// machine has no ECAM or ECAM does not decode bus 0.
pub fn ecam_base(who: &str) -> Result<u64, Error> {
    let info = sys::sys_info();
    if info.ecam_phys == 0 || info.ecam_bus_start != 0 {
        println!(
            "{who}: the kernel reports no ECAM for bus 0 (ACPI MCFG: base {:#x}, buses {}..={})",
            info.ecam_phys, info.ecam_bus_start, info.ecam_bus_end
        );
        return Err(Error::InvalidAddress);
    }
    Ok(info.ecam_phys)
}
/// Devices on a bus.
pub const DEVICES: u8 = 32;
/// Functions of a device.
pub const FUNCTIONS: u8 = 8;
/// Configuration bytes per function under ECAM.
pub const CONFIG_BYTES: usize = 4096;

/// Vendor ID (u16) and device ID (u16).
pub const ID: u16 = 0x00;
/// Command (u16) and status (u16).
pub const COMMAND: u16 = 0x04;
/// Revision (u8) and class code (24 bits).
pub const CLASS_REVISION: u16 = 0x08;
/// Cache line, latency, header type (bit 7: multi-function), BIST.
pub const HEADER: u16 = 0x0c;
/// The first base address register.
pub const BAR0: u16 = 0x10;

/// Command bit: respond to I/O space accesses.
pub const COMMAND_IO: u16 = 1 << 0;
/// Command bit: respond to memory space accesses.
pub const COMMAND_MEMORY: u16 = 1 << 1;
/// Command bit: may master the bus (DMA).
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;

/// A function of bus 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function {
    /// Device number, 0..32.
    pub device: u8,
    /// Function number, 0..8.
    pub function: u8,
}

impl Function {
    /// Function `function` of device `device` on bus 0.
    ///
    /// # Panics
    /// If either number is out of range.
    pub const fn new(device: u8, function: u8) -> Function {
        assert!(device < DEVICES && function < FUNCTIONS);
        Function { device, function }
    }

    /// Index among bus 0's 256 functions.
    const fn index(self) -> usize {
        self.device as usize * FUNCTIONS as usize + self.function as usize
    }

    /// Physical address of its configuration page under ECAM at `base`.
    pub const fn config_phys(self, base: u64) -> u64 {
        base + self.index() as u64 * PAGE_SIZE
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00:{:02x}.{}", self.device, self.function)
    }
}

/// A base address register, decoded and sized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    /// Memory space.
    Memory {
        /// Base address (0: not assigned).
        address: u64,
        /// Size in bytes (a power of two).
        size: u64,
        /// A 64-bit BAR (it uses the next register too).
        wide: bool,
        /// Prefetchable.
        prefetchable: bool,
    },
    /// I/O space.
    Io {
        /// First port (0: not assigned).
        port: u32,
        /// Ports.
        size: u32,
    },
}

impl fmt::Display for Bar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Bar::Memory {
                address,
                size,
                wide,
                prefetchable,
            } => write!(
                f,
                "mem{} {address:#x} size {}{}",
                if wide { 64 } else { 32 },
                Size(size),
                if prefetchable { " prefetchable" } else { "" }
            ),
            Bar::Io { port, size } => write!(f, "io {port:#x} size {}", Size(size.into())),
        }
    }
}

/// A byte count in the largest binary unit that divides it.
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [(30, "GiB"), (20, "MiB"), (10, "KiB")];
        for (shift, unit) in units {
            if self.0 >= 1 << shift && self.0.is_multiple_of(1 << shift) {
                return write!(f, "{} {unit}", self.0 >> shift);
            }
        }
        write!(f, "{} bytes", self.0)
    }
}

/// Configuration space of some functions of bus 0 (one page, or the whole
/// bus), held as device capabilities and mapped uncached. Accesses are
/// 32-bit; reads of functions it does not cover give all-ones (what an
/// absent function answers).
pub struct Ecam {
    region: DeviceRegion,
    first: usize,
    count: usize,
}

impl Ecam {
    /// All of bus 0: 32 devices x 8 functions x 4 KiB = 1 MiB, 256 device
    /// capabilities.
    pub fn bus0(who: &str) -> Result<Ecam, Error> {
        let count = DEVICES as usize * FUNCTIONS as usize;
        let region = claim(
            who,
            &"the configuration space of bus 0",
            ecam_base(who)?,
            count * CONFIG_BYTES,
        )?;
        Ok(Ecam {
            region,
            first: 0,
            count,
        })
    }

    /// The configuration page of `f` alone.
    pub fn function(who: &str, f: Function) -> Result<Ecam, Error> {
        let what = format_args!("the configuration page of {f}");
        let region = claim(who, &what, f.config_phys(ecam_base(who)?), CONFIG_BYTES)?;
        Ok(Ecam {
            region,
            first: f.index(),
            count: 1,
        })
    }

    /// The device capability of `f`'s configuration page: what the kernel
    /// knows the function by (`iomap`, `irq_bind`); `None` if not covered.
    pub fn device(&self, f: Function) -> Option<libos::Handle> {
        self.covers(f)
            .then(|| self.region.handle(f.index() - self.first))
            .flatten()
    }

    /// Whether `f`'s page is claimed.
    pub fn covers(&self, f: Function) -> bool {
        (self.first..self.first + self.count).contains(&f.index())
    }

    fn offset(&self, f: Function, register: u16) -> Option<usize> {
        assert!(
            register.is_multiple_of(4) && (register as usize) < CONFIG_BYTES,
            "config register {register:#x}"
        );
        self.covers(f)
            .then(|| (f.index() - self.first) * CONFIG_BYTES + register as usize)
    }

    /// Reads the 32-bit register at `register` (4-byte aligned).
    pub fn read32(&self, f: Function, register: u16) -> u32 {
        self.offset(f, register)
            .map_or(u32::MAX, |at| self.region.read32(at))
    }

    /// Writes the 32-bit register at `register` (4-byte aligned).
    ///
    /// # Panics
    /// If `f`'s page is not claimed.
    pub fn write32(&self, f: Function, register: u16, value: u32) {
        let at = self.offset(f, register);
        let at = at.unwrap_or_else(|| panic!("{f}: configuration page not claimed"));
        self.region.write32(at, value);
    }

    /// Vendor and device ID, or `None` if there is no such function.
    pub fn id(&self, f: Function) -> Option<(u16, u16)> {
        let id = self.read32(f, ID);
        let vendor = id as u16;
        (vendor != 0xffff && vendor != 0).then_some((vendor, (id >> 16) as u16))
    }

    /// Class, subclass and programming interface (24 bits).
    pub fn class(&self, f: Function) -> u32 {
        self.read32(f, CLASS_REVISION) >> 8
    }

    /// Header type (bit 7: the device has several functions).
    pub fn header_type(&self, f: Function) -> u8 {
        (self.read32(f, HEADER) >> 16) as u8
    }

    /// The command register.
    pub fn command(&self, f: Function) -> u16 {
        self.read32(f, COMMAND) as u16
    }

    /// Writes the command register (and zeros to the status register,
    /// whose error bits are write-one-to-clear: nothing changes there).
    pub fn set_command(&self, f: Function, command: u16) {
        self.write32(f, COMMAND, command.into());
    }

    /// Decodes and sizes `f`'s BARs (6 for a device, 2 for a bridge). A
    /// BAR is sized by writing all-ones, reading which address bits stick,
    /// and restoring it; meanwhile the function's decoding is off (except
    /// for host and ISA bridges, which route memory and the legacy ports
    /// everything relies on). The caller must own `f` (see the module
    /// docs): nobody may be using the BARs meanwhile.
    pub fn bars(&self, f: Function) -> [Option<Bar>; 6] {
        let mut bars = [None; 6];
        let count = match self.header_type(f) & 0x7f {
            0 => 6,
            1 => 2,
            _ => 0,
        };
        let bridge_routing = matches!(self.class(f) >> 8, 0x0600 | 0x0601);
        let command = self.command(f);
        if !bridge_routing {
            self.set_command(f, command & !(COMMAND_IO | COMMAND_MEMORY));
        }
        let mut i = 0;
        while i < count {
            let register = BAR0 + 4 * i as u16;
            let (original, mask) = self.probe(f, register);
            if mask == 0 {
                i += 1; // not implemented
                continue;
            }
            if original & 1 == 1 {
                // I/O decoders may implement only 16 address bits.
                let mut mask = mask & !0x3;
                if mask & 0xffff_0000 == 0 {
                    mask |= 0xffff_0000;
                }
                bars[i] = Some(Bar::Io {
                    port: original & !0x3,
                    size: (!mask).wrapping_add(1),
                });
                i += 1;
                continue;
            }
            let wide = original & 0b110 == 0b100 && i + 1 < count;
            let mut address = u64::from(original & !0xf);
            let mut mask = u64::from(mask & !0xf) | 0xffff_ffff_0000_0000;
            if wide {
                let (high, high_mask) = self.probe(f, register + 4);
                address |= u64::from(high) << 32;
                mask = (mask & 0xffff_ffff) | u64::from(high_mask) << 32;
            }
            bars[i] = Some(Bar::Memory {
                address,
                size: (!mask).wrapping_add(1),
                wide,
                prefetchable: original & 0x8 != 0,
            });
            i += if wide { 2 } else { 1 };
        }
        if !bridge_routing {
            self.set_command(f, command);
        }
        bars
    }

    /// Writes all-ones to `register`, reads back which bits stuck, and
    /// restores it: (original value, read-back mask).
    fn probe(&self, f: Function, register: u16) -> (u32, u32) {
        let original = self.read32(f, register);
        self.write32(f, register, u32::MAX);
        let mask = self.read32(f, register);
        self.write32(f, register, original);
        (original, mask)
    }
}

/// Finds the first function of bus 0 whose (vendor, device) satisfies
/// `wanted`, claiming one configuration page at a time; returns it with
/// its page still claimed (so the caller owns it), or `None`.
pub fn find(
    who: &str,
    wanted: impl Fn(u16, u16) -> bool,
) -> Result<Option<(Function, Ecam)>, Error> {
    for device in 0..DEVICES {
        let f0 = Function::new(device, 0);
        let page = Ecam::function(who, f0)?;
        let Some((vendor, id)) = page.id(f0) else {
            continue;
        };
        if wanted(vendor, id) {
            return Ok(Some((f0, page)));
        }
        let several = page.header_type(f0) & 0x80 != 0;
        drop(page);
        if !several {
            continue;
        }
        for function in 1..FUNCTIONS {
            let f = Function::new(device, function);
            let page = Ecam::function(who, f)?;
            if page.id(f).is_some_and(|(v, d)| wanted(v, d)) {
                return Ok(Some((f, page)));
            }
        }
    }
    Ok(None)
}

/// A function's MSI capability (ID 5 in its capability list): where the
/// function's interrupt messages go. A message is a 32-bit write of `data`
/// to `address`; for the local APIC, address `0xfee0_0000` (destination
/// 0) and data with the vector in bits 7..0 and the delivery mode in bits
/// 10..8 (000 fixed, 100 NMI). The function sends it only while it may
/// master the bus.
#[derive(Clone, Copy, Debug)]
pub struct Msi {
    f: Function,
    at: u16,
    wide: bool,
}

impl Msi {
    /// The capability's header register in the list's head.
    const CAPABILITIES: u16 = 0x34;
    const ID: u32 = 0x05;
    /// Control bit 0 (enable) and bit 7 (64-bit address), in the header's
    /// upper half.
    const ENABLE: u32 = 1 << 16;
    const WIDE: u32 = 1 << 23;

    /// Finds `f`'s MSI capability.
    pub fn find(config: &Ecam, f: Function) -> Option<Msi> {
        let at = find_capability(config, f, Self::ID)?;
        let wide = config.read32(f, at) & Self::WIDE != 0;
        Some(Msi { f, at, wide })
    }

    /// Points the messages at `address` with `data` and enables them.
    pub fn enable(&self, config: &Ecam, address: u32, data: u32) {
        config.write32(self.f, self.at + 4, address);
        if self.wide {
            config.write32(self.f, self.at + 8, 0);
            config.write32(self.f, self.at + 12, data);
        } else {
            config.write32(self.f, self.at + 8, data);
        }
        let head = config.read32(self.f, self.at);
        config.write32(self.f, self.at, head | Self::ENABLE);
    }

    /// Turns the messages off.
    pub fn disable(&self, config: &Ecam) {
        let head = config.read32(self.f, self.at);
        config.write32(self.f, self.at, head & !Self::ENABLE);
    }
}

/// The first capability with `id` in `f`'s list (its offset).
fn find_capability(config: &Ecam, f: Function, id: u32) -> Option<u16> {
    find_capabilities(config, f, id).next()
}

/// Every capability with `id` in `f`'s list (their offsets), at most 48.
pub fn find_capabilities(config: &Ecam, f: Function, id: u32) -> impl Iterator<Item = u16> + '_ {
    let mut at = (config.read32(f, Msi::CAPABILITIES) & 0xfc) as u16;
    let mut hops = 0;
    core::iter::from_fn(move || {
        while at != 0 && hops < 48 {
            let here = at;
            let head = config.read32(f, here);
            at = ((head >> 8) & 0xfc) as u16;
            hops += 1;
            if head & 0xff == id {
                return Some(here);
            }
        }
        None
    })
}

/// A function's MSI-X capability (ID 0x11): its interrupt messages come
/// from a table in one of its memory BARs, one entry (address, data,
/// mask) per message. The function sends them only while it may master
/// the bus.
#[derive(Clone, Copy, Debug)]
pub struct MsiX {
    f: Function,
    at: u16,
    /// The BAR holding the table.
    pub table_bar: usize,
    /// The table's offset in it.
    pub table_offset: u64,
    /// Entries in the table.
    pub entries: u16,
}

impl MsiX {
    const ID: u32 = 0x11;
    /// Control bit 15 (enable) and bit 14 (function mask), in the
    /// header's upper half.
    const ENABLE: u32 = 1 << 31;
    const FUNCTION_MASK: u32 = 1 << 30;
    /// Bytes per table entry: address (low, high), data, vector control.
    pub const ENTRY: u64 = 16;

    /// Finds `f`'s MSI-X capability.
    pub fn find(config: &Ecam, f: Function) -> Option<MsiX> {
        let at = find_capability(config, f, Self::ID)?;
        let head = config.read32(f, at);
        let table = config.read32(f, at + 4);
        Some(MsiX {
            f,
            at,
            table_bar: (table & 7) as usize,
            table_offset: u64::from(table & !7),
            entries: ((head >> 16) & 0x7ff) as u16 + 1,
        })
    }

    /// Enables the messages (each entry still masked by its own bit).
    pub fn enable(&self, config: &Ecam) {
        let head = config.read32(self.f, self.at);
        config.write32(
            self.f,
            self.at,
            (head | Self::ENABLE) & !Self::FUNCTION_MASK,
        );
    }

    /// Turns the messages off.
    pub fn disable(&self, config: &Ecam) {
        let head = config.read32(self.f, self.at);
        config.write32(self.f, self.at, head & !Self::ENABLE);
    }
}
