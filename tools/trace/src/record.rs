//! Decoding of one serial-log line: a trace record ([`Record`]), a malformed
//! record, or any other text.
//!
//! The accepted grammar is exactly what [`abi::trace::write_record`] writes
//! (see [`abi::trace`]): eight fields separated by single spaces, in a fixed
//! order, with every value checked against the syscall's argument and return
//! description in [`abi::Sysnum::args`] and [`abi::Sysnum::ret`]. Anything
//! that starts with [`abi::trace::PREFIX`] but does not fit is
//! [`LineKind::Malformed`], with a human-readable reason; the parser never
//! panics, whatever the input.

use abi::trace::{PREFIX, VERSION};
use abi::{ArgKind, Error, MapFlags, RetKind, Rights, Sysnum, MAX_NAME_LEN};
use core::fmt;

/// What one line of a serial log is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineKind<'a> {
    /// Not a trace record (kernel messages, program output): the line exactly
    /// as given, to be passed through.
    Other(&'a str),
    /// A well-formed trace record.
    Record(Record),
    /// A line that starts with [`PREFIX`] but is not a valid record: why.
    Malformed(String),
}

/// The outcome of a traced syscall.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceResult {
    /// Success, with the returned value as printed (`0x1a2b`, `7`), or
    /// `None` for a call that returns nothing.
    Ok(Option<String>),
    /// The call failed with this error.
    Err(Error),
}

impl TraceResult {
    /// Whether the call failed.
    pub fn is_err(&self) -> bool {
        matches!(self, TraceResult::Err(_))
    }
}

/// One decoded trace record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The format version (always [`VERSION`] for records this crate accepts).
    pub version: u32,
    /// The calling process's id.
    pub pid: u64,
    /// The calling process's name.
    pub proc_name: String,
    /// The syscall name as printed: a [`Sysnum::name`] or `unknown#N`.
    pub sys: String,
    /// The syscall, or `None` for `unknown#N`.
    pub sysnum: Option<Sysnum>,
    /// The named arguments, in register order, values as printed.
    pub args: Vec<(String, String)>,
    /// Success (with the value) or the error.
    pub result: TraceResult,
    /// TSC cycles spent in the kernel.
    pub cycles: u64,
}

impl Record {
    /// Whether the call failed.
    pub fn is_err(&self) -> bool {
        self.result.is_err()
    }
}

/// Re-encodes the record in the trace format, without a line terminator.
/// For a record produced by [`parse_line`] from the encoder's output this is
/// the original line.
impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX} {} pid={} proc={} sys={} args=",
            self.version, self.pid, self.proc_name, self.sys
        )?;
        for (i, (name, value)) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{name}={value}")?;
        }
        f.write_str(" ret=")?;
        match &self.result {
            TraceResult::Ok(None) => f.write_str("ok")?,
            TraceResult::Ok(Some(v)) => write!(f, "ok:{v}")?,
            TraceResult::Err(e) => f.write_str(e.name())?,
        }
        write!(f, " cycles={}", self.cycles)
    }
}

/// Classifies one line of a serial log.
///
/// A trailing `\n` and any trailing `\r` are ignored, so lines may come
/// straight from `read_line` or a CRLF log. A line that starts with
/// [`PREFIX`] (at its very first byte) is a [`LineKind::Record`] or
/// [`LineKind::Malformed`]; any other line is [`LineKind::Other`], returned
/// unchanged.
pub fn parse_line(line: &str) -> LineKind<'_> {
    let body = line.trim_end_matches(['\n', '\r']);
    if !body.starts_with(PREFIX) {
        return LineKind::Other(line);
    }
    match parse_record(body) {
        Ok(record) => LineKind::Record(record),
        Err(reason) => LineKind::Malformed(reason),
    }
}

/// The field keys in their required order.
const KEYS: [&str; 6] = ["pid", "proc", "sys", "args", "ret", "cycles"];

/// Quotes a piece of input for an error message: escaped, and cut short.
fn quote(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}...", &s[..cut]),
        None => format!("{s:?}"),
    }
}

/// Parses a record line (without terminator) that starts with [`PREFIX`].
fn parse_record(body: &str) -> Result<Record, String> {
    let mut fields = body.split(' ');
    let first = fields.next().unwrap_or_default();
    if first != PREFIX {
        return Err(format!(
            "expected {PREFIX:?} followed by a space, found {}",
            quote(first)
        ));
    }
    let version = match fields.next() {
        None => return Err("missing format version".into()),
        Some(v) => parse_dec(v).ok_or_else(|| format!("bad format version {}", quote(v)))?,
    };
    if version != u64::from(VERSION) {
        return Err(format!(
            "unsupported format version {version} (this decoder reads version {VERSION})"
        ));
    }
    let version = VERSION;

    let pid_text = expect_field(&mut fields, "pid")?;
    let pid = parse_dec(pid_text).ok_or_else(|| format!("bad pid {}", quote(pid_text)))?;

    let proc_name = expect_field(&mut fields, "proc")?;
    check_proc_name(proc_name)?;

    let sys = expect_field(&mut fields, "sys")?;
    let sysnum = parse_sys(sys)?;

    let args_text = expect_field(&mut fields, "args")?;
    let args = parse_args(sys, sysnum, args_text)?;

    let ret = expect_field(&mut fields, "ret")?;
    let result = parse_ret(sys, sysnum, ret)?;

    let cycles_text = expect_field(&mut fields, "cycles")?;
    let cycles =
        parse_dec(cycles_text).ok_or_else(|| format!("bad cycles {}", quote(cycles_text)))?;

    if let Some(rest) = fields.next() {
        return Err(if rest.is_empty() {
            "trailing space after cycles".into()
        } else {
            format!("unexpected text after cycles: {}", quote(rest))
        });
    }

    Ok(Record {
        version,
        pid,
        proc_name: proc_name.to_owned(),
        sys: sys.to_owned(),
        sysnum,
        args,
        result,
        cycles,
    })
}

/// Takes the next field, which must be `key=...`, and returns its value.
fn expect_field<'a>(
    fields: &mut impl Iterator<Item = &'a str>,
    key: &str,
) -> Result<&'a str, String> {
    let Some(token) = fields.next() else {
        return Err(format!("missing field {key}="));
    };
    if let Some(value) = token.strip_prefix(key).and_then(|t| t.strip_prefix('=')) {
        return Ok(value);
    }
    if token.is_empty() {
        return Err(format!(
            "empty field where {key}= was expected (extra space?)"
        ));
    }
    match token.split_once('=') {
        Some((other, _)) if KEYS.contains(&other) => Err(format!(
            "field {other}= out of order or repeated: expected {key}="
        )),
        _ => Err(format!("expected {key}=, found {}", quote(token))),
    }
}

/// A decimal `u64`: ASCII digits only (no sign, no spaces), no overflow.
fn parse_dec(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A hexadecimal `u64` written `0x` + 1..=16 hex digits.
fn parse_hex(s: &str) -> Option<u64> {
    let digits = s.strip_prefix("0x")?;
    if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// Process names are printable ASCII without spaces, at most
/// [`MAX_NAME_LEN`] bytes (the kernel keeps no more).
fn check_proc_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "process name longer than {MAX_NAME_LEN} bytes: {}",
            quote(name)
        ));
    }
    if !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "process name is not printable ASCII: {}",
            quote(name)
        ));
    }
    Ok(())
}

/// A syscall name, or `unknown#N` for a number the ABI does not define.
fn parse_sys(sys: &str) -> Result<Option<Sysnum>, String> {
    if let Some(s) = Sysnum::from_name(sys) {
        return Ok(Some(s));
    }
    let Some(num) = sys.strip_prefix("unknown#") else {
        return Err(if sys.is_empty() {
            "empty syscall name".into()
        } else {
            format!("unknown syscall name {}", quote(sys))
        });
    };
    let n = parse_dec(num).ok_or_else(|| format!("bad syscall number in {}", quote(sys)))?;
    match Sysnum::try_from(n) {
        Ok(known) => Err(format!(
            "{sys} is the known syscall {} (the encoder would name it)",
            known.name()
        )),
        Err(_) => Ok(None),
    }
}

/// The `args=` list, checked against the syscall's argument description.
fn parse_args(
    sys: &str,
    sysnum: Option<Sysnum>,
    text: &str,
) -> Result<Vec<(String, String)>, String> {
    let given: Vec<&str> = if text.is_empty() {
        Vec::new()
    } else {
        text.split(',').collect()
    };
    let Some(sysnum) = sysnum else {
        return if given.is_empty() {
            Ok(Vec::new())
        } else {
            Err(format!(
                "{sys} has arguments {} (the encoder writes none for unknown syscalls)",
                quote(text)
            ))
        };
    };
    let expected = sysnum.args();
    if given.len() > expected.len() {
        return Err(format!(
            "too many args for {sys}: {} given, it takes {}",
            given.len(),
            expected.len()
        ));
    }
    let mut args = Vec::with_capacity(given.len());
    for (i, &(name, kind)) in expected.iter().enumerate() {
        let Some(&item) = given.get(i) else {
            return Err(format!("missing arg {name}= for {sys}"));
        };
        let Some((got, value)) = item.split_once('=') else {
            return Err(format!("arg {} of {sys} is not name=value", quote(item)));
        };
        if got != name {
            return Err(format!(
                "arg {} of {sys} should be {name}=, found {}",
                i + 1,
                quote(got)
            ));
        }
        if !valid_arg(kind, value) {
            return Err(format!(
                "bad value for arg {name}= of {sys}: {} (expected {})",
                quote(value),
                describe(kind)
            ));
        }
        args.push((name.to_owned(), value.to_owned()));
    }
    Ok(args)
}

/// What a value of `kind` should look like, for error messages.
fn describe(kind: ArgKind) -> &'static str {
    match kind {
        ArgKind::Handle | ArgKind::Phys | ArgKind::Addr => "hex 0x...",
        ArgKind::Num | ArgKind::Pid => "a decimal number",
        ArgKind::MapFlags => "map flags like WRITE|UNCACHED",
        ArgKind::Rights => "rights like READ|MAP",
    }
}

/// Whether `value` is how [`abi::trace::write_arg`] prints a `kind`.
fn valid_arg(kind: ArgKind, value: &str) -> bool {
    match kind {
        ArgKind::Handle | ArgKind::Phys | ArgKind::Addr => parse_hex(value).is_some(),
        ArgKind::Num | ArgKind::Pid => parse_dec(value).is_some(),
        ArgKind::MapFlags => valid_flags(value, MapFlags::NAMES.iter().map(|(_, n)| *n)),
        ArgKind::Rights => valid_flags(value, Rights::NAMES.iter().map(|(_, n)| *n)),
    }
}

/// `0` alone, or `|`-separated parts that are each a known flag name or a
/// hex number (the bits without a name).
fn valid_flags<'a>(value: &str, names: impl Iterator<Item = &'a str> + Clone) -> bool {
    if value == "0" {
        return true;
    }
    !value.is_empty()
        && value
            .split('|')
            .all(|part| names.clone().any(|n| n == part) || parse_hex(part).is_some())
}

/// The `ret=` value, checked against what the syscall returns.
fn parse_ret(sys: &str, sysnum: Option<Sysnum>, ret: &str) -> Result<TraceResult, String> {
    let kind = sysnum.map(Sysnum::ret).unwrap_or(RetKind::None);
    if ret == "ok" {
        return match kind {
            RetKind::None => Ok(TraceResult::Ok(None)),
            _ => Err(format!(
                "{sys} returns a value: expected ok:VALUE, found ok"
            )),
        };
    }
    if let Some(value) = ret.strip_prefix("ok:") {
        let valid = match kind {
            RetKind::None => {
                return Err(format!(
                    "{sys} returns no value: expected ok, found {}",
                    quote(ret)
                ))
            }
            RetKind::Handle | RetKind::Phys | RetKind::Bits => parse_hex(value).is_some(),
            RetKind::Pid | RetKind::Count | RetKind::Badge => parse_dec(value).is_some(),
        };
        return if valid {
            Ok(TraceResult::Ok(Some(value.to_owned())))
        } else {
            Err(format!("bad return value {} for {sys}", quote(value)))
        };
    }
    match Error::from_name(ret) {
        Some(e) => Ok(TraceResult::Err(e)),
        None if ret.is_empty() => Err("empty ret=".into()),
        None => Err(format!("unknown error name {}", quote(ret))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_strict() {
        assert_eq!(parse_dec("0"), Some(0));
        assert_eq!(parse_dec("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_dec("18446744073709551616"), None);
        assert_eq!(parse_dec("+1"), None);
        assert_eq!(parse_dec(""), None);
        assert_eq!(parse_dec("1 "), None);
        assert_eq!(parse_hex("0x0"), Some(0));
        assert_eq!(parse_hex("0xffffffffffffffff"), Some(u64::MAX));
        assert_eq!(parse_hex("0x1ffffffffffffffff"), None);
        assert_eq!(parse_hex("0x"), None);
        assert_eq!(parse_hex("0x+1"), None);
        assert_eq!(parse_hex("12"), None);
    }

    #[test]
    fn flags_accept_names_and_leftover_bits() {
        let map = || MapFlags::NAMES.iter().map(|(_, n)| *n);
        assert!(valid_flags("0", map()));
        assert!(valid_flags("WRITE|UNCACHED", map()));
        assert!(valid_flags("WRITE|0x18", map()));
        assert!(!valid_flags("", map()));
        assert!(!valid_flags("WRITE|", map()));
        assert!(!valid_flags("READ", map()));
        assert!(!valid_flags("0|WRITE", map()));
    }

    #[test]
    fn quote_escapes_and_truncates() {
        assert_eq!(quote("a\tb"), "\"a\\tb\"");
        let long = "é".repeat(100);
        let q = quote(&long);
        assert!(q.ends_with("..."));
        assert_eq!(q.chars().filter(|&c| c == 'é').count(), 40);
    }
}
