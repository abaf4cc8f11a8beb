//! Per-syscall statistics over many records, like `strace -c`: calls,
//! errors, cycle percentiles and totals ([`Summary`]).

use crate::record::Record;
use crate::render::json_string;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Accumulates records; renders a table ([`Summary::render_table`]) or JSON
/// lines ([`Summary::render_json`]).
#[derive(Clone, Debug, Default)]
pub struct Summary {
    by_sys: BTreeMap<String, Acc>,
}

/// What is kept per syscall (every cycle count, for exact percentiles).
#[derive(Clone, Debug, Default)]
struct Acc {
    errors: u64,
    cycles: Vec<u64>,
}

/// One syscall's statistics, as [`Summary::rows`] returns them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryRow {
    /// The syscall name as traced.
    pub syscall: String,
    /// How many calls.
    pub calls: u64,
    /// How many of them failed.
    pub errors: u64,
    /// Median cycles per call (nearest rank).
    pub p50_cycles: u64,
    /// 99th-percentile cycles per call (nearest rank).
    pub p99_cycles: u64,
    /// Sum of the cycles of every call.
    pub total_cycles: u128,
}

/// The nearest-rank `p`th percentile of `sorted` (ascending, non-empty):
/// the smallest value with at least `p`% of the values at or below it.
pub fn percentile(sorted: &[u64], p: u32) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as u128;
    let rank = (u128::from(p.min(100)) * n).div_ceil(100).max(1);
    // rank <= n, so it fits in usize.
    Some(sorted[(rank - 1) as usize])
}

impl SummaryRow {
    fn from_cycles(syscall: String, errors: u64, cycles: &mut [u64]) -> Self {
        cycles.sort_unstable();
        SummaryRow {
            syscall,
            calls: cycles.len() as u64,
            errors,
            p50_cycles: percentile(cycles, 50).unwrap_or(0),
            p99_cycles: percentile(cycles, 99).unwrap_or(0),
            total_cycles: cycles.iter().map(|&c| u128::from(c)).sum(),
        }
    }
}

impl Summary {
    /// An empty summary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one record.
    pub fn add(&mut self, record: &Record) {
        let acc = match self.by_sys.get_mut(record.sys.as_str()) {
            Some(acc) => acc,
            None => self.by_sys.entry(record.sys.clone()).or_default(),
        };
        acc.errors += u64::from(record.is_err());
        acc.cycles.push(record.cycles);
    }

    /// Whether no record was added.
    pub fn is_empty(&self) -> bool {
        self.by_sys.is_empty()
    }

    /// One row per syscall, by total cycles descending (then by name).
    pub fn rows(&self) -> Vec<SummaryRow> {
        let mut rows: Vec<SummaryRow> = self
            .by_sys
            .iter()
            .map(|(sys, acc)| {
                SummaryRow::from_cycles(sys.clone(), acc.errors, &mut acc.cycles.clone())
            })
            .collect();
        rows.sort_by(|a, b| {
            b.total_cycles
                .cmp(&a.total_cycles)
                .then_with(|| a.syscall.cmp(&b.syscall))
        });
        rows
    }

    /// The totals over every syscall (percentiles over all calls), named
    /// `total`; `None` when empty.
    pub fn total(&self) -> Option<SummaryRow> {
        if self.is_empty() {
            return None;
        }
        let mut all: Vec<u64> = self
            .by_sys
            .values()
            .flat_map(|acc| acc.cycles.iter().copied())
            .collect();
        let errors = self.by_sys.values().map(|acc| acc.errors).sum();
        Some(SummaryRow::from_cycles("total".into(), errors, &mut all))
    }

    /// An `strace -c`-like table: a header, one row per syscall sorted by
    /// total cycles descending, and a `total` row. Ends with a newline.
    ///
    /// ```text
    /// % cycles  total cycles  calls  errors  p50 cycles  p99 cycles  syscall
    /// --------  ------------  -----  ------  ----------  ----------  --------------
    ///    75.00          3000      2       1        1000        2000  frame_alloc_at
    ///    25.00          1000     10       0         100         100  getpid
    /// --------  ------------  -----  ------  ----------  ----------  --------------
    ///   100.00          4000     12       1         100        2000  total
    /// ```
    pub fn render_table(&self) -> String {
        const HEADER: [&str; 7] = [
            "% cycles",
            "total cycles",
            "calls",
            "errors",
            "p50 cycles",
            "p99 cycles",
            "syscall",
        ];
        let rows = self.rows();
        let total = self.total();
        let grand = total.as_ref().map_or(0, |t| t.total_cycles);
        let cells = |row: &SummaryRow| -> [String; 7] {
            [
                percent(row.total_cycles, grand),
                row.total_cycles.to_string(),
                row.calls.to_string(),
                row.errors.to_string(),
                row.p50_cycles.to_string(),
                row.p99_cycles.to_string(),
                row.syscall.clone(),
            ]
        };
        let body: Vec<[String; 7]> = rows.iter().map(cells).collect();
        let total_cells = match &total {
            Some(t) => cells(t),
            None => ["0.00", "0", "0", "0", "-", "-", "total"].map(String::from),
        };
        let mut widths = HEADER.map(str::len);
        for line in body.iter().chain([&total_cells]) {
            for (w, cell) in widths.iter_mut().zip(line) {
                *w = (*w).max(cell.chars().count());
            }
        }

        let mut out = String::new();
        let mut emit = |cells: &[String; 7]| {
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i + 1 < cells.len() {
                    let _ = write!(out, "{cell:>w$}  ");
                } else {
                    out.push_str(cell);
                }
            }
            out.push('\n');
        };
        let rule = widths.map(|w| "-".repeat(w));
        emit(&HEADER.map(String::from));
        emit(&rule);
        for line in &body {
            emit(line);
        }
        if !body.is_empty() {
            emit(&rule);
        }
        emit(&total_cells);
        out
    }

    /// One JSON object per syscall, one per line, in [`Summary::rows`] order:
    ///
    /// ```text
    /// {"syscall":"getpid","calls":10,"errors":0,"p50_cycles":100,"p99_cycles":100,"total_cycles":1000}
    /// ```
    ///
    /// Empty when no record was added.
    pub fn render_json(&self) -> String {
        let mut out = String::new();
        for row in self.rows() {
            let _ = writeln!(
                out,
                "{{\"syscall\":{},\"calls\":{},\"errors\":{},\"p50_cycles\":{},\
                 \"p99_cycles\":{},\"total_cycles\":{}}}",
                json_string(&row.syscall),
                row.calls,
                row.errors,
                row.p50_cycles,
                row.p99_cycles,
                row.total_cycles
            );
        }
        out
    }
}

/// `part` as a percentage of `whole`, two decimals, rounded down.
fn percent(part: u128, whole: u128) -> String {
    if whole == 0 {
        return "0.00".into();
    }
    // Totals are sums of u64 cycle counts, far below u128::MAX / 10^4 for
    // any real trace; saturate rather than wrap for the impossible rest.
    let hundredths = part.saturating_mul(10_000) / whole;
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 99), Some(99));
        assert_eq!(percentile(&v, 100), Some(100));
        assert_eq!(percentile(&v, 0), Some(1));
        assert_eq!(percentile(&[7], 50), Some(7));
        assert_eq!(percentile(&[7], 99), Some(7));
        assert_eq!(percentile(&[1, 2, 3, 4], 50), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4, 5], 50), Some(3));
        assert_eq!(percentile(&[1, 2, 3, 4, 5], 99), Some(5));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn percents() {
        assert_eq!(percent(1, 3), "33.33");
        assert_eq!(percent(3, 3), "100.00");
        assert_eq!(percent(0, 0), "0.00");
        assert_eq!(
            percent(u128::from(u64::MAX) * 1000, u128::from(u64::MAX) * 4000),
            "25.00"
        );
    }
}
