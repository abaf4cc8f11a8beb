//! Any bytes through the ELF validator: never a panic, and whatever it
//! accepts obeys the loader's rules.
#![no_main]

use exo_core::elf::{validate, MAX_SEGMENTS, MAX_TOTAL_MEMSZ, USER_ELF_LIMIT, USER_MIN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(plan) = validate(data) {
        assert!(!plan.segments.is_empty() && plan.segments.len() <= MAX_SEGMENTS);
        assert!(plan.total_pages() * 4096 <= MAX_TOTAL_MEMSZ);
        for s in &plan.segments {
            assert!(!(s.writable && s.executable));
            assert!(s.vaddr >= USER_MIN && s.pages().end <= USER_ELF_LIMIT);
            assert!(s.data(data).is_some());
        }
        for w in plan.segments.windows(2) {
            assert!(w[0].pages().end <= w[1].pages().start);
        }
    }
});
