//! Any bytes through the ramdisk parser: never a panic; what parses packs
//! back to an archive that parses to the same entries.
#![no_main]

use exo_core::ramdisk::{pack, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = parse(data) {
        let list: Vec<_> = entries.iter().map(|e| (e.name, e.expect, e.data)).collect();
        let packed = pack(&list).expect("parsed entries pack");
        assert_eq!(parse(&packed).expect("packed archive parses"), entries);
    }
});
