//! The test harness's bookkeeping, kept out of the process model: what the
//! boot ramdisk expects of each program (exit 0 or a fault), how each one
//! ended, and the run's verdict from the two.
use crate::kprintln;
use alloc::string::String;
use alloc::vec::Vec;
use exo_core::object::{Ended, Ending};
use exo_core::ramdisk::Expect;
use spin::Mutex;

struct Book {
    /// Expectations of live processes, by pid.
    expected: Vec<(u64, Expect)>,
    /// Finished processes, in order.
    finished: Vec<(u64, String, Expect, Ending)>,
}

static BOOK: Mutex<Book> = Mutex::new(Book {
    expected: Vec::new(),
    finished: Vec::new(),
});

/// Process `pid` was loaded with expectation `expect`.
pub fn expect(pid: u64, expect: Expect) {
    BOOK.lock().expected.push((pid, expect));
}

/// Process `ended` has ended.
pub fn record(ended: Ended) {
    let mut book = BOOK.lock();
    let expect = match book.expected.iter().position(|&(p, _)| p == ended.pid) {
        Some(i) => book.expected.swap_remove(i).1,
        None => Expect::Exit0,
    };
    book.finished
        .push((ended.pid, ended.name, expect, ended.ending));
}

/// Processes that have finished.
pub fn finished() -> usize {
    BOOK.lock().finished.len()
}

/// Whether every finished process ended as expected; reports each that
/// did not.
pub fn all_as_expected() -> bool {
    let book = BOOK.lock();
    let mut ok = true;
    for (pid, name, expect, ending) in &book.finished {
        let as_expected = matches!(
            (expect, ending),
            (Expect::Exit0, Ending::Exited(0)) | (Expect::Fault, Ending::Faulted(_))
        );
        if !as_expected {
            kprintln!("[exo] pid {pid} ({name}) did not finish as expected ({expect:?})");
            ok = false;
        }
    }
    ok
}
