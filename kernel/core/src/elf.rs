//! Validation of user ELF programs into a [`LoadPlan`]: which bytes of the
//! file go where in the new process's address space, with which permissions.
//!
//! This module owns the policy of what the kernel agrees to load: a static,
//! little-endian x86-64 `ET_EXEC` whose `PT_LOAD` segments lie inside the
//! file, inside `[USER_MIN, USER_ELF_LIMIT)`, do not share pages, are never
//! writable and executable at once, and whose entry point is in an
//! executable segment. Everything else is refused with an [`ElfError`] that
//! says why (the kernel prints `refused: <reason>`). Parsing uses
//! `goblin::elf` for the header and program headers; every size and offset
//! taken from the file is checked before use, so no input can panic.
//!
//! The kernel maps page-granular: a segment's `vaddr` may be unaligned
//! within its page, and the plan's segments never share a page, so each
//! page has exactly one set of permissions.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;
use goblin::container::{Container, Ctx, Endian};
use goblin::elf::header::{
    EI_CLASS, EI_DATA, EI_VERSION, ELFCLASS64, ELFDATA2LSB, ELFMAG, EM_X86_64, ET_DYN, ET_EXEC,
    EV_CURRENT, SELFMAG,
};
use goblin::elf::program_header::{PF_W, PF_X, PT_INTERP, PT_LOAD};
use goblin::elf::{Elf, ProgramHeader};

/// Lowest address a segment may start at: page 0 and the low pages stay
/// unmapped so null-pointer dereferences fault (the ABI's constant).
pub use abi::USER_MIN;

/// Segments must end at or below this address, well below the user stack
/// region at the top of the user half.
pub const USER_ELF_LIMIT: u64 = 0x0000_7000_0000_0000;

/// Most `PT_LOAD` segments a program may have.
pub const MAX_SEGMENTS: usize = 16;

/// Most program headers of any type a program may have.
pub const MAX_PROGRAM_HEADERS: usize = 64;

/// Most memory the segments may cover in total, counted in whole pages.
pub const MAX_TOTAL_MEMSZ: u64 = 64 * 1024 * 1024;

/// Alignment from which `vaddr ≡ offset (mod p_align)` is required.
const CONGRUENCE_MIN_ALIGN: u64 = 4096;

const PAGE_SIZE: u64 = abi::PAGE_SIZE;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;

/// One loadable segment: map `[vaddr, vaddr + memsz)`, fill its first
/// `filesz` bytes from the file at `offset` and zero the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Where the segment starts (may be unaligned within its page).
    pub vaddr: u64,
    /// Bytes of memory (>= `filesz`, > 0).
    pub memsz: u64,
    /// Where its initial contents start in the file.
    pub offset: u64,
    /// Bytes taken from the file; the rest up to `memsz` is zero.
    pub filesz: u64,
    /// Mapped writable (never together with `executable`).
    pub writable: bool,
    /// Mapped executable.
    pub executable: bool,
}

impl Segment {
    /// The page-aligned address range the segment occupies.
    pub fn pages(&self) -> Range<u64> {
        // Cannot overflow: validate keeps vaddr + memsz <= USER_ELF_LIMIT,
        // which is page aligned and far from u64::MAX.
        let start = self.vaddr & !(PAGE_SIZE - 1);
        let end = self
            .vaddr
            .saturating_add(self.memsz)
            .saturating_add(PAGE_SIZE - 1)
            & !(PAGE_SIZE - 1);
        start..end
    }

    /// Its initial contents, `filesz` bytes of `image` (the file it was
    /// validated from); `None` if `image` is not that file.
    pub fn data<'a>(&self, image: &'a [u8]) -> Option<&'a [u8]> {
        let start = usize::try_from(self.offset).ok()?;
        let len = usize::try_from(self.filesz).ok()?;
        image.get(start..start.checked_add(len)?)
    }
}

/// What to load and where to start: the result of [`validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    /// The entry point (inside an executable segment).
    pub entry: u64,
    /// The non-empty `PT_LOAD` segments, sorted by address, pairwise on
    /// distinct pages.
    pub segments: Vec<Segment>,
}

impl LoadPlan {
    /// Pages the segments cover in total.
    pub fn total_pages(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| {
                let r = s.pages();
                (r.end - r.start) / PAGE_SIZE
            })
            .sum()
    }
}

/// Why an ELF was refused. Program-header indices count from 0 over all
/// program headers, as `readelf -l` lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Shorter than an ELF64 header.
    TooShort {
        /// File size.
        len: usize,
    },
    /// Does not start with `\x7fELF`.
    BadMagic,
    /// Not a 64-bit ELF (`EI_CLASS` given).
    Not64Bit {
        /// The `EI_CLASS` byte.
        class: u8,
    },
    /// Not little endian (`EI_DATA` given).
    NotLittleEndian {
        /// The `EI_DATA` byte.
        data: u8,
    },
    /// Unknown ELF version.
    BadVersion,
    /// Not for x86-64.
    WrongMachine {
        /// The `e_machine` field.
        machine: u16,
    },
    /// A position-independent executable (`ET_DYN`): the kernel does not
    /// relocate.
    PositionIndependent,
    /// Not an executable at all (relocatable object, core dump, ...).
    NotExecutable {
        /// The `e_type` field.
        e_type: u16,
    },
    /// `e_phentsize` is not the size of an ELF64 program header.
    BadProgramHeaderSize {
        /// The `e_phentsize` field.
        size: u16,
    },
    /// More than [`MAX_PROGRAM_HEADERS`] program headers.
    TooManyProgramHeaders {
        /// The `e_phnum` field.
        count: u16,
    },
    /// The program-header table does not lie inside the file.
    ProgramHeadersOutsideFile,
    /// goblin could not parse the header or program headers.
    Malformed(String),
    /// Has a `PT_INTERP`: needs a dynamic loader.
    NeedsInterpreter,
    /// No `PT_LOAD` segment.
    NoLoadSegments,
    /// More than [`MAX_SEGMENTS`] `PT_LOAD` segments.
    TooManySegments {
        /// How many there are.
        count: usize,
    },
    /// `p_filesz > p_memsz`.
    FileSizeExceedsMemSize {
        /// Program-header index.
        index: usize,
    },
    /// `[p_offset, p_offset + p_filesz)` is not inside the file.
    SegmentOutsideFile {
        /// Program-header index.
        index: usize,
    },
    /// `p_align` is not 0, 1 or a power of two.
    BadAlignment {
        /// Program-header index.
        index: usize,
        /// The `p_align` field.
        align: u64,
    },
    /// `p_vaddr` and `p_offset` differ modulo `p_align` (>= 4096).
    MisalignedSegment {
        /// Program-header index.
        index: usize,
    },
    /// Both writable and executable.
    WritableAndExecutable {
        /// Program-header index.
        index: usize,
    },
    /// Starts below [`USER_MIN`] or ends above [`USER_ELF_LIMIT`].
    OutOfRange {
        /// Program-header index.
        index: usize,
        /// The `p_vaddr` field.
        vaddr: u64,
        /// The `p_memsz` field.
        memsz: u64,
    },
    /// Two segments share at least one page.
    Overlap {
        /// Program-header index of one.
        first: usize,
        /// Program-header index of the other.
        second: usize,
    },
    /// The segments cover more than [`MAX_TOTAL_MEMSZ`] bytes of pages.
    TooLarge {
        /// Bytes of whole pages covered.
        total: u64,
    },
    /// The entry point is not inside an executable segment.
    EntryNotExecutable {
        /// The `e_entry` field.
        entry: u64,
    },
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::TooShort { len } => {
                write!(f, "file is {len} bytes, shorter than an ELF64 header")
            }
            ElfError::BadMagic => f.write_str("not an ELF file (bad magic)"),
            ElfError::Not64Bit { class } => {
                write!(f, "not a 64-bit ELF (class {class})")
            }
            ElfError::NotLittleEndian { data } => {
                write!(f, "not a little-endian ELF (data encoding {data})")
            }
            ElfError::BadVersion => f.write_str("unknown ELF version"),
            ElfError::WrongMachine { machine } => {
                write!(f, "not an x86-64 program (e_machine {machine})")
            }
            ElfError::PositionIndependent => f.write_str(
                "position-independent executable (ET_DYN) not supported: \
                 build with `-C relocation-model=static`",
            ),
            ElfError::NotExecutable { e_type } => {
                write!(f, "not an executable (e_type {e_type})")
            }
            ElfError::BadProgramHeaderSize { size } => {
                write!(f, "program header size {size}, expected {PHDR_SIZE}")
            }
            ElfError::TooManyProgramHeaders { count } => write!(
                f,
                "{count} program headers, at most {MAX_PROGRAM_HEADERS} allowed"
            ),
            ElfError::ProgramHeadersOutsideFile => {
                f.write_str("program header table lies outside the file")
            }
            ElfError::Malformed(why) => write!(f, "malformed ELF: {why}"),
            ElfError::NeedsInterpreter => {
                f.write_str("needs a dynamic loader (PT_INTERP): link statically")
            }
            ElfError::NoLoadSegments => f.write_str("no loadable (PT_LOAD) segment"),
            ElfError::TooManySegments { count } => write!(
                f,
                "{count} loadable segments, at most {MAX_SEGMENTS} allowed"
            ),
            ElfError::FileSizeExceedsMemSize { index } => {
                write!(f, "segment {index}: file size larger than memory size")
            }
            ElfError::SegmentOutsideFile { index } => {
                write!(f, "segment {index}: file contents lie outside the file")
            }
            ElfError::BadAlignment { index, align } => write!(
                f,
                "segment {index}: alignment {align:#x} is not a power of two"
            ),
            ElfError::MisalignedSegment { index } => write!(
                f,
                "segment {index}: address and file offset differ modulo the alignment"
            ),
            ElfError::WritableAndExecutable { index } => {
                write!(f, "segment {index}: both writable and executable")
            }
            ElfError::OutOfRange {
                index,
                vaddr,
                memsz,
            } => write!(
                f,
                "segment {index}: [{vaddr:#x}, +{memsz:#x}) is outside \
                 [{USER_MIN:#x}, {USER_ELF_LIMIT:#x})"
            ),
            ElfError::Overlap { first, second } => {
                write!(f, "segments {first} and {second} share a page")
            }
            ElfError::TooLarge { total } => write!(
                f,
                "segments cover {total} bytes, at most {MAX_TOTAL_MEMSZ} allowed"
            ),
            ElfError::EntryNotExecutable { entry: 0 } => f.write_str(
                "no entry point (e_entry 0): define `_start`, e.g. with `libos::entry!(main)`",
            ),
            ElfError::EntryNotExecutable { entry } => {
                write!(f, "entry point {entry:#x} is not in an executable segment")
            }
        }
    }
}

/// Checks `bytes` as a user program and returns what to load where.
///
/// Accepts only a static little-endian x86-64 `ET_EXEC` satisfying every
/// rule listed in the module documentation. Never panics.
pub fn validate(bytes: &[u8]) -> Result<LoadPlan, ElfError> {
    // The identification bytes first, ourselves, for precise reasons.
    let ident = bytes
        .get(..EHDR_SIZE)
        .ok_or(ElfError::TooShort { len: bytes.len() })?;
    if ident.get(..SELFMAG) != Some(&ELFMAG[..]) {
        return Err(ElfError::BadMagic);
    }
    let class = ident[EI_CLASS];
    if class != ELFCLASS64 {
        return Err(ElfError::Not64Bit { class });
    }
    let data = ident[EI_DATA];
    if data != ELFDATA2LSB {
        return Err(ElfError::NotLittleEndian { data });
    }
    if ident[EI_VERSION] != EV_CURRENT {
        return Err(ElfError::BadVersion);
    }

    let header = Elf::parse_header(bytes).map_err(|e| ElfError::Malformed(e.to_string()))?;
    if header.e_version != u32::from(EV_CURRENT) {
        return Err(ElfError::BadVersion);
    }
    if header.e_machine != EM_X86_64 {
        return Err(ElfError::WrongMachine {
            machine: header.e_machine,
        });
    }
    match header.e_type {
        ET_EXEC => {}
        ET_DYN => return Err(ElfError::PositionIndependent),
        e_type => return Err(ElfError::NotExecutable { e_type }),
    }

    // The program-header table.
    let count = header.e_phnum;
    if count == 0 {
        return Err(ElfError::NoLoadSegments);
    }
    if usize::from(count) > MAX_PROGRAM_HEADERS {
        return Err(ElfError::TooManyProgramHeaders { count });
    }
    if usize::from(header.e_phentsize) != PHDR_SIZE {
        return Err(ElfError::BadProgramHeaderSize {
            size: header.e_phentsize,
        });
    }
    let table_start =
        usize::try_from(header.e_phoff).map_err(|_| ElfError::ProgramHeadersOutsideFile)?;
    let table_end = usize::from(count)
        .checked_mul(PHDR_SIZE)
        .and_then(|size| table_start.checked_add(size))
        .ok_or(ElfError::ProgramHeadersOutsideFile)?;
    if table_end > bytes.len() {
        return Err(ElfError::ProgramHeadersOutsideFile);
    }
    let ctx = Ctx::new(Container::Big, Endian::Little);
    let phdrs = ProgramHeader::parse(bytes, table_start, usize::from(count), ctx)
        .map_err(|e| ElfError::Malformed(e.to_string()))?;

    if phdrs.iter().any(|ph| ph.p_type == PT_INTERP) {
        return Err(ElfError::NeedsInterpreter);
    }
    let loads = phdrs.iter().filter(|ph| ph.p_type == PT_LOAD).count();
    if loads == 0 {
        return Err(ElfError::NoLoadSegments);
    }
    if loads > MAX_SEGMENTS {
        return Err(ElfError::TooManySegments { count: loads });
    }

    // Each PT_LOAD on its own. Keep (program-header index, segment).
    let mut segments: Vec<(usize, Segment)> = Vec::with_capacity(loads);
    for (index, ph) in phdrs.iter().enumerate() {
        if ph.p_type != PT_LOAD {
            continue;
        }
        let segment = check_segment(index, ph, bytes.len())?;
        // An empty segment maps nothing; it passed the checks, so drop it.
        if segment.memsz != 0 {
            segments.push((index, segment));
        }
    }

    // Pairwise: no page shared. Sorted by start, checking neighbours is
    // enough (if a overlapped a later c, it would overlap everything between).
    segments.sort_unstable_by_key(|(_, s)| s.vaddr);
    for pair in segments.windows(2) {
        let ((first, a), (second, b)) = (pair[0], pair[1]);
        if a.pages().end > b.pages().start {
            return Err(ElfError::Overlap { first, second });
        }
    }

    let mut total: u64 = 0;
    for (_, s) in &segments {
        let r = s.pages();
        total = total
            .checked_add(r.end - r.start)
            .ok_or(ElfError::TooLarge { total: u64::MAX })?;
    }
    if total > MAX_TOTAL_MEMSZ {
        return Err(ElfError::TooLarge { total });
    }

    let entry = header.e_entry;
    let in_code = segments
        .iter()
        .any(|(_, s)| s.executable && entry >= s.vaddr && entry - s.vaddr < s.memsz);
    if !in_code {
        return Err(ElfError::EntryNotExecutable { entry });
    }

    Ok(LoadPlan {
        entry,
        segments: segments.into_iter().map(|(_, s)| s).collect(),
    })
}

/// The checks that concern one `PT_LOAD` alone.
fn check_segment(index: usize, ph: &ProgramHeader, file_len: usize) -> Result<Segment, ElfError> {
    if ph.p_filesz > ph.p_memsz {
        return Err(ElfError::FileSizeExceedsMemSize { index });
    }
    let file_end = ph
        .p_offset
        .checked_add(ph.p_filesz)
        .ok_or(ElfError::SegmentOutsideFile { index })?;
    // usize -> u64 is lossless on every target the kernel builds for.
    if file_end > file_len as u64 {
        return Err(ElfError::SegmentOutsideFile { index });
    }
    let align = ph.p_align;
    if align > 1 && !align.is_power_of_two() {
        return Err(ElfError::BadAlignment { index, align });
    }
    if align >= CONGRUENCE_MIN_ALIGN && ph.p_vaddr % align != ph.p_offset % align {
        return Err(ElfError::MisalignedSegment { index });
    }
    let writable = ph.p_flags & PF_W != 0;
    let executable = ph.p_flags & PF_X != 0;
    if writable && executable {
        return Err(ElfError::WritableAndExecutable { index });
    }
    let out_of_range = ElfError::OutOfRange {
        index,
        vaddr: ph.p_vaddr,
        memsz: ph.p_memsz,
    };
    let end = ph
        .p_vaddr
        .checked_add(ph.p_memsz)
        .ok_or(out_of_range.clone())?;
    if ph.p_vaddr < USER_MIN || end > USER_ELF_LIMIT {
        return Err(out_of_range);
    }
    Ok(Segment {
        vaddr: ph.p_vaddr,
        memsz: ph.p_memsz,
        offset: ph.p_offset,
        filesz: ph.p_filesz,
        writable,
        executable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use goblin::elf::program_header::PF_R;
    use proptest::prelude::*;
    use std::format;
    use std::vec;

    const PT_GNU_STACK: u32 = 0x6474_e551;

    /// A program header for the test builder.
    #[derive(Clone, Copy)]
    struct Ph {
        p_type: u32,
        flags: u32,
        offset: u64,
        vaddr: u64,
        filesz: u64,
        memsz: u64,
        align: u64,
    }

    /// An ELF64 image: header fields and program headers, written by hand.
    #[derive(Clone)]
    struct Builder {
        class: u8,
        data: u8,
        version: u8,
        e_type: u16,
        machine: u16,
        entry: u64,
        phentsize: u16,
        phoff: Option<u64>,
        phnum: Option<u16>,
        phdrs: Vec<Ph>,
        len: usize,
    }

    fn load(flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> Ph {
        Ph {
            p_type: PT_LOAD,
            flags,
            offset,
            vaddr,
            filesz,
            memsz,
            align: 0x1000,
        }
    }

    const TEXT: u64 = 0x20_1000;
    const DATA: u64 = 0x20_2000;

    /// A valid program: code at 0x201000 (R+X), data+bss at 0x202000 (RW),
    /// plus a PT_GNU_STACK.
    fn valid() -> Builder {
        Builder {
            class: ELFCLASS64,
            data: ELFDATA2LSB,
            version: EV_CURRENT,
            e_type: ET_EXEC,
            machine: EM_X86_64,
            entry: TEXT + 0x10,
            phentsize: PHDR_SIZE as u16,
            phoff: None,
            phnum: None,
            phdrs: vec![
                load(PF_R | PF_X, 0x1000, TEXT, 0x100, 0x100),
                load(PF_R | PF_W, 0x2000, DATA, 0x10, 0x2000),
                Ph {
                    p_type: PT_GNU_STACK,
                    flags: PF_R | PF_W,
                    offset: 0,
                    vaddr: 0,
                    filesz: 0,
                    memsz: 0,
                    align: 16,
                },
            ],
            len: 0x2010,
        }
    }

    impl Builder {
        fn build(&self) -> Vec<u8> {
            let mut b = Vec::new();
            b.extend_from_slice(&ELFMAG[..]);
            b.extend_from_slice(&[self.class, self.data, self.version, 0]);
            b.resize(16, 0);
            b.extend_from_slice(&self.e_type.to_le_bytes());
            b.extend_from_slice(&self.machine.to_le_bytes());
            b.extend_from_slice(&1u32.to_le_bytes()); // e_version
            b.extend_from_slice(&self.entry.to_le_bytes());
            b.extend_from_slice(&self.phoff.unwrap_or(64).to_le_bytes());
            b.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
            b.extend_from_slice(&0u32.to_le_bytes()); // e_flags
            b.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
            b.extend_from_slice(&self.phentsize.to_le_bytes());
            let phnum = self.phnum.unwrap_or(self.phdrs.len() as u16);
            b.extend_from_slice(&phnum.to_le_bytes());
            b.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
            b.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
            b.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
            assert_eq!(b.len(), 64);
            for ph in &self.phdrs {
                b.extend_from_slice(&ph.p_type.to_le_bytes());
                b.extend_from_slice(&ph.flags.to_le_bytes());
                b.extend_from_slice(&ph.offset.to_le_bytes());
                b.extend_from_slice(&ph.vaddr.to_le_bytes());
                b.extend_from_slice(&ph.vaddr.to_le_bytes()); // p_paddr
                b.extend_from_slice(&ph.filesz.to_le_bytes());
                b.extend_from_slice(&ph.memsz.to_le_bytes());
                b.extend_from_slice(&ph.align.to_le_bytes());
            }
            if b.len() < self.len {
                // Recognisable contents so `Segment::data` can be checked.
                let start = b.len();
                b.extend((start..self.len).map(|i| (i / 7) as u8));
            }
            b
        }

        fn with(mut self, f: impl FnOnce(&mut Self)) -> Self {
            f(&mut self);
            self
        }

        fn seg(self, i: usize, f: impl FnOnce(&mut Ph)) -> Self {
            self.with(|b| f(&mut b.phdrs[i]))
        }
    }

    fn refused(b: &Builder) -> ElfError {
        match validate(&b.build()) {
            Ok(plan) => panic!("accepted: {plan:?}"),
            Err(e) => {
                // Every reason prints as something readable.
                assert!(!format!("{e}").is_empty());
                e
            }
        }
    }

    #[test]
    fn accepts_a_valid_program() {
        let image = valid().build();
        let plan = validate(&image).unwrap();
        assert_eq!(plan.entry, TEXT + 0x10);
        assert_eq!(
            plan.segments,
            vec![
                Segment {
                    vaddr: TEXT,
                    memsz: 0x100,
                    offset: 0x1000,
                    filesz: 0x100,
                    writable: false,
                    executable: true,
                },
                Segment {
                    vaddr: DATA,
                    memsz: 0x2000,
                    offset: 0x2000,
                    filesz: 0x10,
                    writable: true,
                    executable: false,
                },
            ]
        );
        assert_eq!(plan.total_pages(), 3);
        assert_eq!(plan.segments[0].pages(), TEXT..TEXT + 0x1000);
        assert_eq!(plan.segments[0].data(&image), Some(&image[0x1000..0x1100]));
        assert_eq!(plan.segments[1].data(&image).map(|d| d.len()), Some(0x10));
        assert_eq!(plan.segments[1].data(&image[..0x2008]), None);
    }

    #[test]
    fn accepts_unaligned_vaddr_and_unsorted_segments() {
        // A segment starting mid-page (lld's usual layout), listed first,
        // at a higher address than the code.
        let b = valid().with(|b| {
            b.phdrs.swap(0, 1);
            b.phdrs[0].vaddr = DATA + 0x123;
            b.phdrs[0].offset = 0x2123;
            b.phdrs[0].filesz = 0;
            b.len = 0x2200;
        });
        let plan = validate(&b.build()).unwrap();
        assert_eq!(plan.segments[0].vaddr, TEXT);
        assert_eq!(plan.segments[1].vaddr, DATA + 0x123);
        assert_eq!(plan.segments[1].pages(), DATA..DATA + 0x3000);
    }

    #[test]
    fn accepts_align_zero_one_and_drops_empty_loads() {
        let b = valid()
            .seg(0, |p| p.align = 0)
            .seg(1, |p| p.align = 1)
            .with(|b| b.phdrs.push(load(PF_R, 0, 0x40_0000, 0, 0)));
        let plan = validate(&b.build()).unwrap();
        assert_eq!(plan.segments.len(), 2);
    }

    #[test]
    fn refuses_bad_identification() {
        assert_eq!(validate(&[]), Err(ElfError::TooShort { len: 0 }));
        let image = valid().build();
        assert_eq!(validate(&image[..63]), Err(ElfError::TooShort { len: 63 }));
        let mut bad = image.clone();
        bad[0] = 0x7e;
        assert_eq!(validate(&bad), Err(ElfError::BadMagic));
        assert_eq!(
            refused(&valid().with(|b| b.class = 1)),
            ElfError::Not64Bit { class: 1 }
        );
        assert_eq!(
            refused(&valid().with(|b| b.data = 2)),
            ElfError::NotLittleEndian { data: 2 }
        );
        assert_eq!(
            refused(&valid().with(|b| b.version = 0)),
            ElfError::BadVersion
        );
        let mut bad = image;
        bad[20] = 2; // e_version
        assert_eq!(validate(&bad), Err(ElfError::BadVersion));
    }

    #[test]
    fn refuses_wrong_machine_and_type() {
        assert_eq!(
            refused(&valid().with(|b| b.machine = 3)),
            ElfError::WrongMachine { machine: 3 }
        );
        let pie = refused(&valid().with(|b| b.e_type = ET_DYN));
        assert_eq!(pie, ElfError::PositionIndependent);
        assert!(format!("{pie}").contains("-C relocation-model=static"));
        assert_eq!(
            refused(&valid().with(|b| b.e_type = 1)),
            ElfError::NotExecutable { e_type: 1 }
        );
        assert_eq!(
            refused(&valid().with(|b| b.e_type = 4)),
            ElfError::NotExecutable { e_type: 4 }
        );
    }

    #[test]
    fn refuses_bad_program_header_tables() {
        assert_eq!(
            refused(&valid().with(|b| b.phdrs.clear())),
            ElfError::NoLoadSegments
        );
        assert_eq!(
            refused(&valid().with(|b| b.phnum = Some(0))),
            ElfError::NoLoadSegments
        );
        assert_eq!(
            refused(
                &valid()
                    .with(|b| b.phdrs[0].p_type = 4)
                    .with(|b| b.phdrs[1].p_type = 4)
            ),
            ElfError::NoLoadSegments
        );
        assert_eq!(
            refused(&valid().with(|b| b.phentsize = 32)),
            ElfError::BadProgramHeaderSize { size: 32 }
        );
        assert_eq!(
            refused(&valid().with(|b| b.phnum = Some(0xffff))),
            ElfError::TooManyProgramHeaders { count: 0xffff }
        );
        assert_eq!(
            refused(&valid().with(|b| b.phoff = Some(u64::MAX - 8))),
            ElfError::ProgramHeadersOutsideFile
        );
        assert_eq!(
            refused(&valid().with(|b| b.phoff = Some(0x2000))),
            ElfError::ProgramHeadersOutsideFile
        );
        // Table claims more entries than the file holds.
        let b = valid().with(|b| {
            b.phnum = Some(40);
            b.len = 0;
        });
        let image = b.build();
        assert_eq!(validate(&image), Err(ElfError::ProgramHeadersOutsideFile));
    }

    #[test]
    fn refuses_interpreter_and_too_many_segments() {
        let b = valid().with(|b| {
            b.phdrs.push(Ph {
                p_type: PT_INTERP,
                flags: PF_R,
                offset: 0x1000,
                vaddr: 0x30_0000,
                filesz: 8,
                memsz: 8,
                align: 1,
            })
        });
        assert_eq!(refused(&b), ElfError::NeedsInterpreter);
        let b = valid().with(|b| {
            for i in 0..MAX_SEGMENTS as u64 {
                b.phdrs
                    .push(load(PF_R, 0, 0x100_0000 + i * 0x1000, 0, 0x10));
            }
        });
        assert_eq!(
            refused(&b),
            ElfError::TooManySegments {
                count: MAX_SEGMENTS + 2
            }
        );
        // Exactly MAX_SEGMENTS is fine.
        let b = valid().with(|b| {
            for i in 0..MAX_SEGMENTS as u64 - 2 {
                b.phdrs
                    .push(load(PF_R, 0, 0x100_0000 + i * 0x1000, 0, 0x10));
            }
        });
        assert_eq!(validate(&b.build()).unwrap().segments.len(), MAX_SEGMENTS);
    }

    #[test]
    fn refuses_bad_file_ranges() {
        assert_eq!(
            refused(&valid().seg(1, |p| p.filesz = 0x3000)),
            ElfError::FileSizeExceedsMemSize { index: 1 }
        );
        assert_eq!(
            refused(&valid().seg(1, |p| p.filesz = 0x11)),
            ElfError::SegmentOutsideFile { index: 1 }
        );
        assert_eq!(
            refused(&valid().seg(0, |p| {
                p.offset = u64::MAX - 0x10;
                p.vaddr = TEXT + (u64::MAX - 0x10) % 0x1000;
                p.align = 0;
            })),
            ElfError::SegmentOutsideFile { index: 0 }
        );
    }

    #[test]
    fn refuses_bad_alignment() {
        assert_eq!(
            refused(&valid().seg(0, |p| p.align = 0x1800)),
            ElfError::BadAlignment {
                index: 0,
                align: 0x1800
            }
        );
        assert_eq!(
            refused(&valid().seg(0, |p| p.vaddr = TEXT + 8)),
            ElfError::MisalignedSegment { index: 0 }
        );
        // Congruence is only required from 4096 up.
        let b = valid().seg(0, |p| {
            p.vaddr = TEXT + 8;
            p.align = 16;
        });
        let b = b.with(|b| b.entry = TEXT + 8);
        assert!(validate(&b.build()).is_ok());
        // Huge power-of-two alignments are checked without overflow.
        assert_eq!(
            refused(&valid().seg(1, |p| p.align = 1 << 63)),
            ElfError::MisalignedSegment { index: 1 }
        );
    }

    #[test]
    fn refuses_writable_and_executable() {
        assert_eq!(
            refused(&valid().seg(0, |p| p.flags = PF_R | PF_W | PF_X)),
            ElfError::WritableAndExecutable { index: 0 }
        );
    }

    #[test]
    fn refuses_out_of_range_addresses() {
        let low = valid()
            .seg(0, |p| p.vaddr = USER_MIN - 0x1000 + (TEXT & 0xfff))
            .with(|b| b.entry = USER_MIN - 0x1000);
        assert!(matches!(
            refused(&low),
            ElfError::OutOfRange { index: 0, .. }
        ));
        let page0 = valid().seg(1, |p| {
            p.vaddr = 0;
            p.offset = 0;
        });
        assert!(matches!(
            refused(&page0),
            ElfError::OutOfRange { index: 1, .. }
        ));
        let high = valid().seg(1, |p| {
            p.vaddr = USER_ELF_LIMIT - 0x1000;
            p.memsz = 0x1001;
        });
        assert!(matches!(
            refused(&high),
            ElfError::OutOfRange { index: 1, .. }
        ));
        let wrap = valid().seg(1, |p| {
            p.vaddr = !0xfff;
            p.memsz = 0x2000;
        });
        assert!(matches!(
            refused(&wrap),
            ElfError::OutOfRange { index: 1, .. }
        ));
        let kernel_half = valid().seg(1, |p| p.vaddr = 0xffff_8000_0000_0000);
        assert!(matches!(
            refused(&kernel_half),
            ElfError::OutOfRange { index: 1, .. }
        ));
        // Right up to the limit is fine.
        let top = valid().seg(1, |p| {
            p.vaddr = USER_ELF_LIMIT - 0x2000;
            p.memsz = 0x2000;
        });
        assert!(validate(&top.build()).is_ok());
    }

    #[test]
    fn refuses_segments_sharing_a_page() {
        // Data starting in the code's page (not overlapping bytes).
        let b = valid().seg(1, |p| {
            p.vaddr = TEXT + 0x800;
            p.offset = 0x1800;
            p.filesz = 0x10;
        });
        assert_eq!(
            refused(&b),
            ElfError::Overlap {
                first: 0,
                second: 1
            }
        );
        // Byte-overlapping, listed in reverse order.
        let b = valid().with(|b| {
            b.phdrs.swap(0, 1);
            b.phdrs[0].vaddr = TEXT - 0x1000;
        });
        assert_eq!(
            refused(&b),
            ElfError::Overlap {
                first: 0,
                second: 1
            }
        );
        // One segment containing another further down the list.
        let b = valid().with(|b| {
            b.phdrs[1].vaddr = TEXT - 0x1000;
            b.phdrs[1].memsz = 0x10_0000;
            b.phdrs.push(load(PF_R, 0x1000, TEXT + 0x5000, 0, 0x10));
        });
        assert!(matches!(refused(&b), ElfError::Overlap { .. }));
    }

    #[test]
    fn refuses_too_much_memory() {
        let b = valid().seg(1, |p| p.memsz = MAX_TOTAL_MEMSZ);
        assert_eq!(
            refused(&b),
            ElfError::TooLarge {
                total: MAX_TOTAL_MEMSZ + 0x1000
            }
        );
        // Exactly the limit, counted in pages, is fine.
        let b = valid().seg(1, |p| p.memsz = MAX_TOTAL_MEMSZ - 0x1000);
        assert!(validate(&b.build()).is_ok());
    }

    #[test]
    fn refuses_entry_outside_code() {
        for entry in [0, TEXT - 1, TEXT + 0x100, DATA, DATA + 4, u64::MAX] {
            assert_eq!(
                refused(&valid().with(|b| b.entry = entry)),
                ElfError::EntryNotExecutable { entry }
            );
        }
        assert!(validate(&valid().with(|b| b.entry = TEXT + 0xff).build()).is_ok());
        // No entry at all is what a program without `_start` links to.
        let none = ElfError::EntryNotExecutable { entry: 0 }.to_string();
        assert!(
            none.contains("no entry point") && none.contains("libos::entry!"),
            "{none}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::fuzz_cases(2000)))]

        #[test]
        fn mutations_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..12),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let mut image = valid().build();
            for (at, byte) in edits {
                let i = at.index(image.len());
                image[i] = byte;
            }
            if truncate {
                let n = cut.index(image.len() + 1);
                image.truncate(n);
            }
            if let Ok(plan) = validate(&image) {
                // Whatever is accepted obeys the rules.
                prop_assert!(!plan.segments.is_empty());
                prop_assert!(plan.segments.len() <= MAX_SEGMENTS);
                prop_assert!(plan.total_pages() * PAGE_SIZE <= MAX_TOTAL_MEMSZ);
                for s in &plan.segments {
                    prop_assert!(!(s.writable && s.executable));
                    prop_assert!(s.vaddr >= USER_MIN);
                    prop_assert!(s.pages().end <= USER_ELF_LIMIT);
                    prop_assert!(s.data(&image).is_some());
                }
                for w in plan.segments.windows(2) {
                    prop_assert!(w[0].pages().end <= w[1].pages().start);
                }
            }
        }

        #[test]
        fn header_fields_never_panic(
            phoff in any::<u64>(),
            phnum in any::<u16>(),
            phentsize in any::<u16>(),
            entry in any::<u64>(),
            seg in (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u32>()),
        ) {
            let (offset, vaddr, filesz, memsz, align, flags) = seg;
            let b = valid()
                .with(|b| {
                    b.phoff = Some(phoff % 0x3000);
                    b.phnum = Some(phnum % 80);
                    b.phentsize = if phentsize % 2 == 0 { 56 } else { phentsize };
                    b.entry = entry;
                })
                .seg(0, |p| {
                    p.offset = offset;
                    p.vaddr = vaddr;
                    p.filesz = filesz;
                    p.memsz = memsz;
                    p.align = align;
                    p.flags = flags;
                });
            let _ = validate(&b.build());
        }
    }
}
