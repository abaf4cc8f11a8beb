//! What a program's `debug_write` bytes become on the kernel console: text
//! that can neither pass for a kernel line nor move the terminal's cursor.
//!
//! Two rules, applied as the bytes stream out ([`UserText`] keeps the one
//! bit of state between writes: whether the console is at a line start):
//! - every control character but newline and tab (C0, DEL, and the C1
//!   range U+0080..U+009F written as UTF-8) and every byte that is not
//!   part of valid UTF-8 comes out as `\xNN` (one per byte), so no `\r`,
//!   `ESC[2K` or 8-bit CSI can take the cursor back over the mark below;
//! - a line that starts with `@` or `[` (like a trace record or a kernel
//!   line) gets `| ` in front.
//!
//! A UTF-8 character split across two writes comes out escaped (each
//! write is checked on its own); libos writes whole formatted strings.

/// The marker put in front of a program's line that could pass for the
/// kernel's.
pub const MARK: &[u8] = b"| ";

/// The console's line state as far as program output is concerned.
#[derive(Clone, Copy, Debug)]
pub struct UserText {
    /// Whether the next byte starts a line.
    pub at_line_start: bool,
}

impl UserText {
    /// Passes `bytes` to `emit` in pieces, escaped and marked as the module
    /// says, and tracks the line state.
    pub fn write(&mut self, bytes: &[u8], mut emit: impl FnMut(&[u8])) {
        for chunk in bytes.utf8_chunks() {
            for c in chunk.valid().chars() {
                let mut buf = [0u8; 4];
                let encoded = c.encode_utf8(&mut buf).as_bytes();
                if c != '\n' && c != '\t' && c.is_control() {
                    for &b in encoded {
                        self.escaped(b, &mut emit);
                    }
                    continue;
                }
                if self.at_line_start && (c == '@' || c == '[') {
                    emit(MARK);
                }
                emit(encoded);
                self.at_line_start = c == '\n';
            }
            for &b in chunk.invalid() {
                self.escaped(b, &mut emit);
            }
        }
    }

    fn escaped(&mut self, b: u8, emit: &mut impl FnMut(&[u8])) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        emit(&[
            b'\\',
            b'x',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 15)],
        ]);
        self.at_line_start = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn out(start: bool, writes: &[&[u8]]) -> Vec<u8> {
        let mut text = UserText {
            at_line_start: start,
        };
        let mut v = Vec::new();
        for w in writes {
            text.write(w, |b| v.extend_from_slice(b));
        }
        v
    }

    #[test]
    fn plain_text_passes_unchanged() {
        let s = "hello: ok\n\tindented — ünïcode ✓\n";
        assert_eq!(out(true, &[s.as_bytes()]), s.as_bytes());
    }

    #[test]
    fn kernel_and_trace_lookalikes_are_marked() {
        assert_eq!(
            out(true, &[b"[exo] x\n@exo-trace\n"]),
            b"| [exo] x\n| @exo-trace\n"
        );
        // Only at a line start, also when the line started in an earlier write.
        assert_eq!(out(true, &[b"a [b\n", b"[c"]), b"a [b\n| [c");
        assert_eq!(out(false, &[b"[c"]), b"[c");
    }

    #[test]
    fn cursor_moves_are_escaped_and_cannot_hide_the_mark() {
        assert_eq!(out(true, &[b"\r[exo] forged\n"]), b"\\x0d[exo] forged\n");
        assert_eq!(
            out(true, &[b"\x1b[2K\r[exo] forged\n"]),
            b"\\x1b[2K\\x0d[exo] forged\n"
        );
        assert_eq!(out(true, &[b"\x7f\x00\x08"]), b"\\x7f\\x00\\x08");
        // C1 CSI as UTF-8 (U+009B) and as a raw 8-bit byte.
        assert_eq!(out(true, &["\u{9b}2K".as_bytes()]), b"\\xc2\\x9b2K");
        assert_eq!(out(true, &[b"\x9b2K"]), b"\\x9b2K");
    }

    proptest! {
        /// Whatever a program writes, the console gets no control byte but
        /// newline and tab, and every line that starts with `@` or `[`
        /// is a marked one.
        #[test]
        fn no_control_bytes_and_every_lookalike_marked(
            writes in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..6)
        ) {
            let refs: Vec<&[u8]> = writes.iter().map(|w| w.as_slice()).collect();
            let o = out(true, &refs);
            for &b in &o {
                prop_assert!(b == b'\n' || b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80);
            }
            let s = core::str::from_utf8(&o).expect("the output is UTF-8");
            for c in s.chars() {
                prop_assert!(c == '\n' || c == '\t' || !c.is_control());
            }
            for line in s.split('\n') {
                prop_assert!(!line.starts_with('@') && !line.starts_with('['), "{line:?}");
            }
        }
    }
}
