//! The boot ramdisk's archive format: user programs by name, with what each
//! is expected to do. The image builder [`pack`]s it on the host; the kernel
//! [`parse`]s it at boot.
//!
//! # Format (all integers little endian)
//! ```text
//! magic   8 bytes  "EXORD001"
//! count   u32      number of entries (at most MAX_ENTRIES)
//! entries count times:
//!   name_len  u8               1..=abi::MAX_NAME_LEN
//!   name      name_len bytes   printable ASCII, no spaces (0x21..=0x7e)
//!   expect    u8               0 = exits with code 0, 1 = killed by a fault
//!   offset    u64              start of the data, from the start of the archive
//!   length    u64              bytes of data
//! data    the programs, each inside the archive after the entry table
//! ```
//! Names are unique. Data ranges may be in any order and may even share
//! bytes (the kernel only reads them); [`pack`] lays them out back to back,
//! each at an 8-byte aligned offset. Bytes after the last data range are
//! ignored (a loader may pad the ramdisk to a page). Every malformed input
//! is a [`RamdiskError`], never a panic.

use alloc::vec::Vec;
use core::fmt;

/// The first eight bytes of every archive (the format's version is in it).
pub const MAGIC: [u8; 8] = *b"EXORD001";

/// Most entries an archive may hold.
pub const MAX_ENTRIES: usize = 256;

/// Longest name, in bytes.
pub const MAX_NAME_LEN: usize = abi::MAX_NAME_LEN;

/// Bytes before the first entry: magic + count.
const HEADER_LEN: usize = 8 + 4;

/// Fixed bytes of an entry besides its name: name_len + expect + offset + length.
const ENTRY_FIXED_LEN: usize = 1 + 1 + 8 + 8;

/// Alignment [`pack`] gives each program's data.
const DATA_ALIGN: usize = 8;

/// What a program is expected to do when run (the boot test checks it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Expect {
    /// Exit with code 0.
    Exit0,
    /// Be killed by a fault (a negative test: it pokes where it must not).
    Fault,
}

impl Expect {
    /// The byte stored in the archive.
    pub const fn to_byte(self) -> u8 {
        match self {
            Expect::Exit0 => 0,
            Expect::Fault => 1,
        }
    }

    /// The value a stored byte means, if any.
    pub const fn from_byte(b: u8) -> Option<Expect> {
        match b {
            0 => Some(Expect::Exit0),
            1 => Some(Expect::Fault),
            _ => None,
        }
    }
}

/// One program in a parsed archive, borrowing from the archive bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Its name (valid per [`valid_name`]).
    pub name: &'a str,
    /// What it should do.
    pub expect: Expect,
    /// Its ELF image.
    pub data: &'a [u8],
}

/// Why an archive could not be packed or parsed. `index` counts entries
/// from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RamdiskError {
    /// Does not start with [`MAGIC`].
    BadMagic,
    /// Ends inside the header or the entry table.
    Truncated,
    /// More than [`MAX_ENTRIES`] entries.
    TooManyEntries {
        /// How many the header (or the caller) gives.
        count: u64,
    },
    /// A name is empty, too long, or not printable ASCII without spaces.
    BadName {
        /// Entry index.
        index: usize,
    },
    /// Two entries have the same name.
    DuplicateName {
        /// Index of the second one.
        index: usize,
    },
    /// An `expect` byte other than 0 or 1.
    BadExpect {
        /// Entry index.
        index: usize,
        /// The byte.
        value: u8,
    },
    /// An entry's data is not inside the archive's data area (before the
    /// end of the entry table, past the end, or overflowing).
    DataOutOfBounds {
        /// Entry index.
        index: usize,
    },
    /// The archive would not fit in memory (packing only).
    TooLarge,
}

impl fmt::Display for RamdiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RamdiskError::BadMagic => f.write_str("not an exo ramdisk (bad magic)"),
            RamdiskError::Truncated => f.write_str("ramdisk truncated inside its entry table"),
            RamdiskError::TooManyEntries { count } => {
                write!(f, "{count} entries, at most {MAX_ENTRIES} allowed")
            }
            RamdiskError::BadName { index } => write!(
                f,
                "entry {index}: name is not 1..={MAX_NAME_LEN} printable ASCII characters without spaces"
            ),
            RamdiskError::DuplicateName { index } => {
                write!(f, "entry {index}: name used by an earlier entry")
            }
            RamdiskError::BadExpect { index, value } => {
                write!(f, "entry {index}: unknown expectation {value}")
            }
            RamdiskError::DataOutOfBounds { index } => {
                write!(f, "entry {index}: data lies outside the archive")
            }
            RamdiskError::TooLarge => f.write_str("archive too large"),
        }
    }
}

/// Whether `name` is acceptable: 1..=[`MAX_NAME_LEN`] bytes of printable
/// ASCII other than space (what `process_find` can match).
pub fn valid_name(name: &[u8]) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len()) && name.iter().all(|b| b.is_ascii_graphic())
}

/// Builds an archive of `entries` (name, expectation, ELF bytes), in order.
pub fn pack(entries: &[(&str, Expect, &[u8])]) -> Result<Vec<u8>, RamdiskError> {
    if entries.len() > MAX_ENTRIES {
        return Err(RamdiskError::TooManyEntries {
            count: entries.len() as u64,
        });
    }
    let mut table_len = HEADER_LEN;
    for (index, (name, _, _)) in entries.iter().enumerate() {
        if !valid_name(name.as_bytes()) {
            return Err(RamdiskError::BadName { index });
        }
        if entries[..index].iter().any(|(n, _, _)| n == name) {
            return Err(RamdiskError::DuplicateName { index });
        }
        // Cannot overflow: at most 256 entries of at most 50 bytes.
        table_len += ENTRY_FIXED_LEN + name.len();
    }

    // Lay the data out after the table, each piece aligned.
    let mut offsets = Vec::with_capacity(entries.len());
    let mut end = table_len;
    for (_, _, data) in entries {
        let start = align_up(end, DATA_ALIGN).ok_or(RamdiskError::TooLarge)?;
        offsets.push(start);
        end = start
            .checked_add(data.len())
            .ok_or(RamdiskError::TooLarge)?;
    }

    let mut out = Vec::new();
    out.try_reserve_exact(end)
        .map_err(|_| RamdiskError::TooLarge)?;
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for ((name, expect, data), &offset) in entries.iter().zip(&offsets) {
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.push(expect.to_byte());
        out.extend_from_slice(&(offset as u64).to_le_bytes());
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    }
    for ((_, _, data), &offset) in entries.iter().zip(&offsets) {
        out.resize(offset, 0);
        out.extend_from_slice(data);
    }
    Ok(out)
}

fn align_up(x: usize, align: usize) -> Option<usize> {
    Some(x.checked_add(align - 1)? & !(align - 1))
}

/// A cursor over the archive bytes that fails with `Truncated`.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RamdiskError> {
        let end = self.pos.checked_add(n).ok_or(RamdiskError::Truncated)?;
        let out = self
            .bytes
            .get(self.pos..end)
            .ok_or(RamdiskError::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RamdiskError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, RamdiskError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, RamdiskError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, RamdiskError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

/// Reads an archive. The entries borrow names and data from `bytes`.
pub fn parse(bytes: &[u8]) -> Result<Vec<Entry<'_>>, RamdiskError> {
    let mut r = Reader { bytes, pos: 0 };
    let magic: [u8; 8] = r.array().map_err(|_| RamdiskError::BadMagic)?;
    if magic != MAGIC {
        return Err(RamdiskError::BadMagic);
    }
    let count = r.u32()?;
    if count as usize > MAX_ENTRIES {
        return Err(RamdiskError::TooManyEntries {
            count: u64::from(count),
        });
    }
    let count = count as usize;

    // The table first; data ranges are checked once its end is known.
    let mut table: Vec<(&str, Expect, u64, u64)> = Vec::with_capacity(count);
    for index in 0..count {
        let name_len = r.u8()?;
        let name = r.take(usize::from(name_len))?;
        if !valid_name(name) {
            return Err(RamdiskError::BadName { index });
        }
        // Printable ASCII is UTF-8.
        let name = core::str::from_utf8(name).map_err(|_| RamdiskError::BadName { index })?;
        if table.iter().any(|(n, _, _, _)| *n == name) {
            return Err(RamdiskError::DuplicateName { index });
        }
        let value = r.u8()?;
        let expect = Expect::from_byte(value).ok_or(RamdiskError::BadExpect { index, value })?;
        let offset = r.u64()?;
        let length = r.u64()?;
        table.push((name, expect, offset, length));
    }
    let table_end = r.pos;

    let mut entries = Vec::with_capacity(count);
    for (index, (name, expect, offset, length)) in table.into_iter().enumerate() {
        let out = RamdiskError::DataOutOfBounds { index };
        let start = usize::try_from(offset).map_err(|_| out)?;
        let len = usize::try_from(length).map_err(|_| out)?;
        let end = start.checked_add(len).ok_or(out)?;
        if start < table_end {
            return Err(out);
        }
        let data = bytes.get(start..end).ok_or(out)?;
        entries.push(Entry { name, expect, data });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::format;
    use std::vec;

    fn sample() -> Vec<u8> {
        pack(&[
            ("hello", Expect::Exit0, b"\x7fELF hello"),
            ("fault-null", Expect::Fault, b"\x7fELF fault!"),
            ("empty", Expect::Exit0, b""),
        ])
        .unwrap()
    }

    /// Offset of entry `i`'s fields in `sample()`: (name_len, expect, offset, length).
    fn field_offsets(bytes: &[u8], i: usize) -> (usize, usize, usize, usize) {
        let mut pos = HEADER_LEN;
        for _ in 0..i {
            pos += ENTRY_FIXED_LEN + bytes[pos] as usize;
        }
        let expect = pos + 1 + bytes[pos] as usize;
        (pos, expect, expect + 1, expect + 9)
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        assert_eq!(&bytes[..8], b"EXORD001");
        let entries = parse(&bytes).unwrap();
        assert_eq!(
            entries,
            vec![
                Entry {
                    name: "hello",
                    expect: Expect::Exit0,
                    data: b"\x7fELF hello"
                },
                Entry {
                    name: "fault-null",
                    expect: Expect::Fault,
                    data: b"\x7fELF fault!"
                },
                Entry {
                    name: "empty",
                    expect: Expect::Exit0,
                    data: b""
                },
            ]
        );
        // Data is 8-byte aligned within the archive.
        for e in &entries {
            if !e.data.is_empty() {
                let off = e.data.as_ptr() as usize - bytes.as_ptr() as usize;
                assert_eq!(off % DATA_ALIGN, 0);
            }
        }
        // An empty archive too, and trailing padding is ignored.
        let mut empty = pack(&[]).unwrap();
        assert_eq!(empty.len(), HEADER_LEN);
        assert_eq!(parse(&empty), Ok(vec![]));
        empty.resize(4096, 0);
        assert_eq!(parse(&empty), Ok(vec![]));
        let mut padded = bytes.clone();
        padded.resize(4096, 0xaa);
        assert_eq!(parse(&padded).unwrap(), entries);
    }

    #[test]
    fn format_is_pinned() {
        let bytes = pack(&[("a", Expect::Fault, b"xyz")]).unwrap();
        let mut want = b"EXORD001".to_vec();
        want.extend_from_slice(&1u32.to_le_bytes());
        want.push(1);
        want.push(b'a');
        want.push(1);
        want.extend_from_slice(&32u64.to_le_bytes()); // 12 + 19 = 31 -> 32
        want.extend_from_slice(&3u64.to_le_bytes());
        want.push(0);
        want.extend_from_slice(b"xyz");
        assert_eq!(bytes, want);
    }

    #[test]
    fn pack_refuses_bad_input() {
        let long = "x".repeat(MAX_NAME_LEN + 1);
        let max = "y".repeat(MAX_NAME_LEN);
        assert!(pack(&[(&max, Expect::Exit0, b"")]).is_ok());
        for bad in ["", "a b", "tab\t", "é", &long, "nl\n"] {
            assert_eq!(
                pack(&[("ok", Expect::Exit0, b""), (bad, Expect::Exit0, b"")]),
                Err(RamdiskError::BadName { index: 1 }),
                "{bad:?}"
            );
        }
        assert_eq!(
            pack(&[("a", Expect::Exit0, b""), ("a", Expect::Fault, b"")]),
            Err(RamdiskError::DuplicateName { index: 1 })
        );
        let names: Vec<_> = (0..=MAX_ENTRIES).map(|i| format!("p{i}")).collect();
        let many: Vec<(&str, Expect, &[u8])> = names
            .iter()
            .map(|n| (n.as_str(), Expect::Exit0, &b""[..]))
            .collect();
        assert_eq!(
            pack(&many),
            Err(RamdiskError::TooManyEntries {
                count: MAX_ENTRIES as u64 + 1
            })
        );
        assert_eq!(
            parse(&pack(&many[..MAX_ENTRIES]).unwrap()).unwrap().len(),
            MAX_ENTRIES
        );
    }

    #[test]
    fn parse_refuses_bad_magic_and_truncation() {
        let bytes = sample();
        assert_eq!(parse(b""), Err(RamdiskError::BadMagic));
        assert_eq!(parse(b"EXORD00"), Err(RamdiskError::BadMagic));
        let mut bad = bytes.clone();
        bad[7] = b'2';
        assert_eq!(parse(&bad), Err(RamdiskError::BadMagic));
        let (_, _, _, len2) = field_offsets(&bytes, 2);
        let table_end = len2 + 8;
        for n in 8..table_end {
            assert_eq!(
                parse(&bytes[..n]),
                Err(RamdiskError::Truncated),
                "cut at {n}"
            );
        }
        // Cutting into the data is out of bounds for the entry it cuts.
        let (_, _, off1, _) = field_offsets(&bytes, 1);
        let start1 = u64::from_le_bytes(bytes[off1..off1 + 8].try_into().unwrap()) as usize;
        let cut = start1 + b"\x7fELF fault!".len() - 1;
        assert_eq!(
            parse(&bytes[..cut]),
            Err(RamdiskError::DataOutOfBounds { index: 1 })
        );
    }

    #[test]
    fn parse_refuses_bad_counts_names_and_expectations() {
        let bytes = sample();
        let mut bad = bytes.clone();
        bad[8..12].copy_from_slice(&(MAX_ENTRIES as u32 + 1).to_le_bytes());
        assert_eq!(
            parse(&bad),
            Err(RamdiskError::TooManyEntries {
                count: MAX_ENTRIES as u64 + 1
            })
        );
        bad[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            parse(&bad),
            Err(RamdiskError::TooManyEntries { .. })
        ));
        // A count larger than the table: runs into the data.
        bad[8..12].copy_from_slice(&4u32.to_le_bytes());
        assert!(parse(&bad).is_err());

        let (name1, expect1, _, _) = field_offsets(&bytes, 1);
        for byte in [b' ', b'\n', 0, 0x7f, 0xc3] {
            let mut bad = bytes.clone();
            bad[name1 + 3] = byte;
            assert_eq!(
                parse(&bad),
                Err(RamdiskError::BadName { index: 1 }),
                "{byte:#x}"
            );
        }
        let mut bad = bytes.clone();
        bad[name1] = 0;
        assert!(parse(&bad).is_err());
        let mut bad = bytes.clone();
        bad[name1] = MAX_NAME_LEN as u8 + 1;
        assert_eq!(parse(&bad), Err(RamdiskError::BadName { index: 1 }));
        // Entry 1 renamed to entry 0's name.
        let mut dup = pack(&[("aa", Expect::Exit0, b"1"), ("ab", Expect::Exit0, b"2")]).unwrap();
        let (n1, _, _, _) = field_offsets(&dup, 1);
        dup[n1 + 2] = b'a';
        assert_eq!(parse(&dup), Err(RamdiskError::DuplicateName { index: 1 }));

        let mut bad = bytes.clone();
        bad[expect1] = 2;
        assert_eq!(
            parse(&bad),
            Err(RamdiskError::BadExpect { index: 1, value: 2 })
        );
    }

    #[test]
    fn parse_refuses_data_out_of_bounds() {
        let bytes = sample();
        let (_, _, off0, len0) = field_offsets(&bytes, 0);
        let set = |at: usize, v: u64| {
            let mut b = bytes.clone();
            b[at..at + 8].copy_from_slice(&v.to_le_bytes());
            b
        };
        let oob = Some(RamdiskError::DataOutOfBounds { index: 0 });
        let err = |b: Vec<u8>| parse(&b).err();
        assert_eq!(err(set(off0, u64::MAX)), oob);
        assert_eq!(err(set(off0, bytes.len() as u64)), oob);
        assert_eq!(err(set(len0, u64::MAX)), oob);
        assert_eq!(err(set(len0, u64::MAX - 4)), oob);
        assert_eq!(err(set(off0, 0)), oob, "data inside the header");
        assert_eq!(err(set(off0, 12)), oob, "data inside the table");
        // Empty data exactly at the end is fine.
        let mut b = set(off0, bytes.len() as u64);
        b[len0..len0 + 8].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(parse(&b).unwrap()[0].data, b"");
    }

    #[test]
    fn errors_display() {
        let errs = [
            RamdiskError::BadMagic,
            RamdiskError::Truncated,
            RamdiskError::TooManyEntries { count: 300 },
            RamdiskError::BadName { index: 1 },
            RamdiskError::DuplicateName { index: 2 },
            RamdiskError::BadExpect { index: 0, value: 9 },
            RamdiskError::DataOutOfBounds { index: 3 },
            RamdiskError::TooLarge,
        ];
        for e in errs {
            assert!(!format!("{e}").is_empty());
        }
    }

    fn name_strategy() -> impl Strategy<Value = String> {
        "[!-~]{1,32}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
            // With a valid magic the rest is exercised too.
            let mut with_magic = MAGIC.to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = parse(&with_magic);
        }

        #[test]
        fn round_trips_and_mutations_never_panic(
            progs in proptest::collection::btree_map(
                name_strategy(),
                (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..64)),
                0..8,
            ),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let list: Vec<(&str, Expect, &[u8])> = progs
                .iter()
                .map(|(n, (f, d))| (n.as_str(), if *f { Expect::Fault } else { Expect::Exit0 }, d.as_slice()))
                .collect();
            let bytes = pack(&list).unwrap();
            let parsed = parse(&bytes).unwrap();
            prop_assert_eq!(parsed.len(), list.len());
            for (e, (n, x, d)) in parsed.iter().zip(&list) {
                prop_assert_eq!(e.name, *n);
                prop_assert_eq!(e.expect, *x);
                prop_assert_eq!(e.data, *d);
            }
            // Truncations and byte edits: Ok or Err, never a panic, and
            // whatever parses lies inside the input.
            let n = cut.index(bytes.len() + 1);
            let _ = parse(&bytes[..n]);
            let mut mutated = bytes.clone();
            for (at, b) in edits {
                if !mutated.is_empty() {
                    let i = at.index(mutated.len());
                    mutated[i] = b;
                }
            }
            if let Ok(entries) = parse(&mutated) {
                for e in entries {
                    prop_assert!(valid_name(e.name.as_bytes()));
                    prop_assert!(e.data.len() <= mutated.len());
                }
            }
        }
    }
}
