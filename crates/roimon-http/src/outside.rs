//! Text that came from another server (an error body, a parse error that
//! quotes it) made safe to log: a server must not be able to forge log
//! lines, move the cursor or colour a terminal, nor fill the log.

/// Most characters of outside text logged (a cut one is followed by `…`).
pub const OUTSIDE_MAX_CHARS: usize = 200;

/// `text` with every control character made visible (`\n` as `\x0a`, ESC
/// as `\x1b`, C1 and other invisible formatting characters as `\u{..}`),
/// cut to its first [`OUTSIDE_MAX_CHARS`] characters followed by `…` where
/// it is longer. Applying it twice changes nothing more.
pub fn outside(text: &str) -> String {
    escape(text, OUTSIDE_MAX_CHARS)
}

/// Most characters of a whole logged message that quotes outside text
/// (roimon's own words around it).
pub const LOG_SAFE_MAX_CHARS: usize = 1000;

/// A whole message for the log (roimon's words around outside text, which
/// is itself cut by [`outside`] where it is taken in): control characters
/// made visible as [`outside`] does, cut after [`LOG_SAFE_MAX_CHARS`].
pub fn log_safe(text: &str) -> String {
    escape(text, LOG_SAFE_MAX_CHARS)
}

fn escape(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 4));
    let mut n = 0;
    for c in text.chars() {
        if n > max {
            break;
        }
        if c.is_ascii_control() {
            out.push_str(&format!("\\x{:02x}", c as u32));
            n += 4;
        } else if c.is_control() || invisible(c) {
            let e = format!("\\u{{{:x}}}", c as u32);
            n += e.len();
            out.push_str(&e);
        } else {
            out.push(c);
            n += 1;
        }
    }
    if n <= max {
        return out;
    }
    let mut cut: String = out.chars().take(max).collect();
    cut.push('…');
    cut
}

/// Characters that change how a line reads without being control
/// characters: bidirectional overrides, zero-width marks, line and
/// paragraph separators.
fn invisible(c: char) -> bool {
    matches!(c as u32, 0x200b..=0x200f | 0x2028..=0x202e | 0x2066..=0x2069 | 0xfeff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        let forged = "bad\n2026-01-01T00:00:00Z  INFO roimon: all good\x1b[31mred\r\u{85}\u{202e}x";
        let s = outside(forged);
        assert!(!s.chars().any(|c| c.is_control()), "{s:?}");
        assert!(s.contains("\\x0a2026"), "{s}");
        assert!(s.contains("\\x1b[31m"), "{s}");
        assert!(s.contains("\\x0d\\u{85}\\u{202e}x"), "{s}");
        assert_eq!(outside("plain text, ünïcode ok"), "plain text, ünïcode ok");
    }

    #[test]
    fn long_text_is_cut_to_200_characters_with_a_marker() {
        let s = outside(&"a".repeat(10_000));
        assert_eq!(s, format!("{}…", "a".repeat(OUTSIDE_MAX_CHARS)));
        // Exactly 200 fits whole; escapes count as what they print.
        let exact = "b".repeat(OUTSIDE_MAX_CHARS);
        assert_eq!(outside(&exact), exact);
        let s = outside(&"\n".repeat(1000));
        assert_eq!(s.chars().count(), OUTSIDE_MAX_CHARS + 1);
        assert!(s.starts_with("\\x0a\\x0a") && s.ends_with('…'));
        // Idempotent: what is logged once is logged the same again.
        for t in ["x\ny", &"c".repeat(500), &"\u{1b}".repeat(300)] {
            assert_eq!(outside(&outside(t)), outside(t));
        }
        // A whole message keeps roimon's words around a cut excerpt.
        let msg = format!("status 500: {}", outside(&"d".repeat(300)));
        assert_eq!(log_safe(&msg), msg);
        assert_eq!(
            log_safe(&"e".repeat(5000)).chars().count(),
            LOG_SAFE_MAX_CHARS + 1
        );
        assert_eq!(log_safe("a\u{1b}b"), "a\\x1bb");
    }
}
