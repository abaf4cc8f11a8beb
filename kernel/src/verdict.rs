//! The test harness's bookkeeping, kept out of the process model: what the
//! boot ramdisk expects of each program (exit 0 or a fault), how each one
//! ended, which programs could not be loaded (and whether the boot options
//! said that was expected), and the run's verdict from these.
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
    /// Programs whose loading went other than planned, each with why: a
    /// program asked for and refused, or one that loaded although the
    /// boot options said it would be refused.
    unplanned: Vec<String>,
}

static BOOK: Mutex<Book> = Mutex::new(Book {
    expected: Vec::new(),
    finished: Vec::new(),
    unplanned: Vec::new(),
});

/// Program `name` was asked for but not loaded, for `why`; `expected`:
/// the boot options (`!refusals`) said it would be. A refusal nobody
/// expected fails the run: a program that never ran did not succeed.
pub fn refused(name: &str, why: &str, expected: bool) {
    if !expected {
        BOOK.lock().unplanned.push(alloc::format!(
            "program {name} was asked for but not loaded ({why})"
        ));
    }
}

/// Program `name` loaded although the boot options said it would be
/// refused: the test that expected the refusal no longer tests it.
pub fn loaded_despite_refusal(name: &str) {
    BOOK.lock().unplanned.push(alloc::format!(
        "program {name} loaded, but its refusal was expected"
    ));
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
/// (0: all went as expected); reports each.
pub fn not_as_expected() -> usize {
    let book = BOOK.lock();
    let mut bad = 0;
    for why in &book.unplanned {
        kprintln!("[exo] {why}: the run fails");
        bad += 1;
    }
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
