//! What an InfluxDB write answer means for the points sent, the way
//! Telegraf's InfluxDB v2 output reads it: a success acknowledges them; 413
//! splits the batch; 400 and 422 name bad points, which are dropped and
//! counted; 401 and 403 keep everything and raise the alarm; 429 and 503
//! wait for `Retry-After`; anything else backs off and tries again.

/// The meaning of a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: the points are stored.
    Written,
    /// 413: the body is too large; send it in halves (one point alone is
    /// dropped, counted as rejected).
    Split,
    /// 400, 422: some points are bad; drop those the answer names (or find
    /// them by bisecting) and send the rest.
    Reject,
    /// 401, 403: the token is wrong or lacks rights: keep the data, alarm,
    /// retry slowly.
    Unauthorized,
    /// 429, 503: the server is busy: wait for `Retry-After`.
    Throttled,
    /// Anything else (5xx, 404, transport failures): back off with jitter.
    Retry,
}

/// The verdict for an HTTP status.
pub fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Written,
        413 => Verdict::Split,
        400 | 422 => Verdict::Reject,
        401 | 403 => Verdict::Unauthorized,
        429 | 503 => Verdict::Throttled,
        _ => Verdict::Retry,
    }
}

/// The lines (0-based indices into `lines`) an error answer names: by
/// number (`line 3`, 1-based, as InfluxDB reports parse errors) or by
/// quoting the line (`unable to parse '<line>'`). Empty when it names none
/// that exist: the caller then bisects.
pub fn bad_lines(message: &str, lines: &[&str]) -> Vec<usize> {
    let mut out = Vec::new();
    let lower = message.to_ascii_lowercase();
    let mut rest = lower.as_str();
    while let Some(i) = rest.find("line") {
        rest = &rest[i + 4..];
        let digits: String = rest
            .trim_start_matches([' ', ':', '#'])
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(n) = digits.parse::<usize>() {
            if (1..=lines.len()).contains(&n) {
                out.push(n - 1);
            }
        }
    }
    for quoted in message.split('\'').skip(1).step_by(2) {
        if quoted.is_empty() {
            continue;
        }
        out.extend(
            lines
                .iter()
                .enumerate()
                .filter(|(_, l)| l.trim() == quoted.trim())
                .map(|(i, _)| i),
        );
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(verdict(204), Verdict::Written);
        assert_eq!(verdict(200), Verdict::Written);
        assert_eq!(verdict(413), Verdict::Split);
        assert_eq!(verdict(400), Verdict::Reject);
        assert_eq!(verdict(422), Verdict::Reject);
        assert_eq!(verdict(401), Verdict::Unauthorized);
        assert_eq!(verdict(403), Verdict::Unauthorized);
        assert_eq!(verdict(429), Verdict::Throttled);
        assert_eq!(verdict(503), Verdict::Throttled);
        for s in [404, 500, 502, 504, 301] {
            assert_eq!(verdict(s), Verdict::Retry, "{s}");
        }
    }

    #[test]
    fn lines_named_by_number() {
        let lines = ["a v=1 1", "b v=x 1", "c v=1 1", "d 1"];
        let body = r#"{"code":"invalid","message":"failed to parse line protocol: errors encountered on line(s):\nline 2: invalid field format\nline 4: missing fields"}"#;
        assert_eq!(bad_lines(body, &lines), vec![1, 3]);
        // Numbers beyond the batch are ignored (another batch's lines).
        assert_eq!(bad_lines("error on line 9", &lines), Vec::<usize>::new());
        assert_eq!(bad_lines("line 0", &lines), Vec::<usize>::new());
    }

    #[test]
    fn lines_named_by_quoting() {
        let lines = ["a v=1 1", "b,t= v=1 1", "c v=1 1"];
        let body =
            r#"{"code":"invalid","message":"unable to parse 'b,t= v=1 1': missing tag value"}"#;
        assert_eq!(bad_lines(body, &lines), vec![1]);
        assert!(bad_lines(r#"{"code":"invalid","message":"bad request"}"#, &lines).is_empty());
    }
}
