//! Byte strings as operations on a capability table, checked against a
//! model: live handles name their entries, dead and forged ones are `Bad`,
//! no handle is issued twice, the length and capacity hold.
#![no_main]

use abi::Handle;
use exo_core::captable::{CapError, CapTable};
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;

fuzz_target!(|data: &[u8]| {
    let Some((&cap, ops)) = data.split_first() else {
        return;
    };
    let capacity = usize::from(cap % 32);
    let mut t: CapTable<u32> = CapTable::new(capacity, 0x5eed ^ u64::from(cap));
    let mut live: Vec<(Handle, u32)> = Vec::new();
    let mut dead: Vec<Handle> = Vec::new();
    let mut issued = HashSet::new();
    let mut bytes = ops.iter().copied();
    while let Some(op) = bytes.next() {
        let arg = bytes.next().unwrap_or(0);
        match op % 5 {
            0 => match t.insert(u32::from(arg)) {
                Ok(h) => {
                    assert!(live.len() < capacity);
                    assert_ne!(h.raw(), 0);
                    assert!(issued.insert(h), "handle issued twice");
                    live.push((h, u32::from(arg)));
                }
                Err(e) => {
                    assert_eq!(e, CapError::Full);
                    assert_eq!(live.len(), capacity);
                }
            },
            1 if !live.is_empty() => {
                let (h, v) = live.swap_remove(usize::from(arg) % live.len());
                assert_eq!(t.remove(h), Ok(v));
                dead.push(h);
            }
            2 if !live.is_empty() => {
                let (h, v) = live[usize::from(arg) % live.len()];
                assert_eq!(t.get(h), Ok(&v));
            }
            3 if !dead.is_empty() => {
                let h = dead[usize::from(arg) % dead.len()];
                assert_eq!(t.get(h), Err(CapError::Bad));
                assert_eq!(t.remove(h), Err(CapError::Bad));
            }
            4 => {
                let h = Handle::from_raw(u64::from(arg) * 0x0101_0101_0101_0101);
                if !live.iter().any(|(l, _)| *l == h) {
                    assert_eq!(t.get(h), Err(CapError::Bad));
                }
            }
            _ => {}
        }
        assert_eq!(t.len(), live.len());
    }
});
