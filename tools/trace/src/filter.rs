//! Record selection: by process id, by syscall name, failed calls only
//! ([`Filter`]).

use crate::record::Record;

/// Which records to keep. Every condition that is set must hold; the
/// default keeps everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only records of this process id.
    pub pid: Option<u64>,
    /// Only these syscalls, by traced name (`map`, `unknown#99`).
    pub syscalls: Option<Vec<String>>,
    /// Only calls that returned an error.
    pub errors_only: bool,
}

impl Filter {
    /// Whether any condition is set (the default filter has none).
    pub fn is_active(&self) -> bool {
        self.pid.is_some() || self.syscalls.is_some() || self.errors_only
    }

    /// Whether `record` passes every condition.
    pub fn matches(&self, record: &Record) -> bool {
        self.pid.is_none_or(|pid| record.pid == pid)
            && self
                .syscalls
                .as_ref()
                .is_none_or(|names| names.contains(&record.sys))
            && (!self.errors_only || record.is_err())
    }
}
