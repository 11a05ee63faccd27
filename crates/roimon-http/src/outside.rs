//! Text that came from another server (an error body, a parse error that
//! quotes it) made safe to log: a server must not be able to forge log
//! lines, move the cursor or colour a terminal, nor fill the log.

/// Most characters of outside text logged, the cut marker included.
pub const OUTSIDE_MAX_CHARS: usize = 200;

/// `text` with every control character made visible (`\n` as `\x0a`, ESC
/// as `\x1b`, C1 and other invisible formatting characters as `\u{..}`),
/// cut to at most [`OUTSIDE_MAX_CHARS`] characters, the last being `…`
/// where it was cut. Applying it twice changes nothing more.
pub fn outside(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(OUTSIDE_MAX_CHARS * 4));
    let mut n = 0;
    for c in text.chars() {
        if n > OUTSIDE_MAX_CHARS {
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
    if n <= OUTSIDE_MAX_CHARS {
        return out;
    }
    let mut cut: String = out.chars().take(OUTSIDE_MAX_CHARS - 1).collect();
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
        assert_eq!(s.chars().count(), OUTSIDE_MAX_CHARS);
        assert!(s.ends_with('…'));
        // Exactly 200 fits whole; escapes count as what they print.
        let exact = "b".repeat(OUTSIDE_MAX_CHARS);
        assert_eq!(outside(&exact), exact);
        let s = outside(&"\n".repeat(1000));
        assert!(s.chars().count() <= OUTSIDE_MAX_CHARS);
        assert!(s.ends_with('…'));
        // Idempotent: what is logged once is logged the same again.
        for t in ["x\ny", &"c".repeat(500), &"\u{1b}".repeat(300)] {
            assert_eq!(outside(&outside(t)), outside(t));
        }
    }
}
