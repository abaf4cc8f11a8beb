//! The test harness's bookkeeping, kept out of the process model: what the
//! boot ramdisk expects of each program (exit 0 or a fault), how each one
//! ended, which programs could not be loaded (and whether the boot options
//! said that was expected), and the run's verdict from these.
use crate::kprintln;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
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

/// Programs whose loading went other than planned: asked for and refused,
/// or loaded although the boot options said they would be refused. Each
/// is reported when it happens; a counter is all the verdict needs.
static UNPLANNED: AtomicUsize = AtomicUsize::new(0);

/// A program did not load as planned (asked for and refused, or loaded
/// although a refusal was expected); the caller has reported it.
pub fn unplanned() {
    UNPLANNED.fetch_add(1, Ordering::Relaxed);
}

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

/// How many programs did not load as planned or did not end as expected
/// (0: all went as expected); reports each that did not end as expected
/// (the others were reported when they were loaded or refused).
pub fn not_as_expected() -> usize {
    let book = BOOK.lock();
    let mut bad = UNPLANNED.load(Ordering::Relaxed);
    for (pid, name, expect, ending) in &book.finished {
        let as_expected = matches!(
            (expect, ending),
            (Expect::Exit0, Ending::Exited(0)) | (Expect::Fault, Ending::Faulted(_))
        );
        if !as_expected {
            kprintln!("[exo] pid {pid} ({name}) did not finish as expected ({expect:?})");
            bad += 1;
        }
    }
    bad
}
