//! Secrets (API tokens, passwords) and their redaction: a `Secret` never
//! shows in `Debug`, and [`redact`] scrubs every spelling of one from a text
//! before it can reach a log line.

use std::fmt;
use std::path::Path;

/// An API token or password. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl Secret {
    /// A secret holding `s`.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// Read the token named by `token_env` or `token_file` of config
    /// section `section` (named in error messages). The variable is trimmed;
    /// of the file, the first line is taken.
    pub fn load(
        section: &str,
        token_env: Option<&str>,
        token_file: Option<&Path>,
    ) -> Result<Option<Secret>, String> {
        if let Some(var) = token_env {
            return match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(Some(Secret(v.trim().to_string()))),
                Ok(_) => Err(format!(
                    "{section}.token_env: environment variable {var} is empty"
                )),
                Err(_) => Err(format!(
                    "{section}.token_env: environment variable {var} is not set"
                )),
            };
        }
        if let Some(path) = token_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!("{section}.token_file: cannot read {}: {e}", path.display())
            })?;
            let first = text.lines().next().unwrap_or("").trim().to_string();
            if first.is_empty() {
                return Err(format!("{section}.token_file: {} is empty", path.display()));
            }
            return Ok(Some(Secret(first)));
        }
        Ok(None)
    }

    /// The secret's text, for building a request. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// `s` with every occurrence of each secret replaced by `[REDACTED]`: as is,
/// in any letter case, with any of its bytes percent-encoded (either hex
/// case, a space as `+`), and base64-encoded (standard or URL-safe alphabet,
/// at any offset inside a longer base64 text, as in a `Basic` credential).
/// A secret of fewer than six bytes (a short query value of a configured
/// URL) is replaced only where it is not part of a longer word.
pub fn redact<'a>(s: &str, secrets: impl IntoIterator<Item = &'a Secret>) -> String {
    let mut out = s.to_string();
    for Secret(t) in secrets {
        if !t.is_empty() {
            out = redact_token(&out, t);
        }
    }
    out
}

/// Secrets shorter than this (a `?zone=DE` of a configured URL) are
/// redacted only where they stand as a word of their own, so that an error
/// text stays readable; longer ones wherever they occur.
const WHOLE_WORD_BELOW: usize = 6;

/// `s` with every spelling of `token` that [`redact`] lists replaced.
fn redact_token(s: &str, token: &str) -> String {
    let bytes = s.as_bytes();
    let whole_word = token.len() < WHOLE_WORD_BELOW;
    let mut spans = spelled_spans(bytes, token.as_bytes(), whole_word);
    for core in base64_cores(token.as_bytes()) {
        spans.extend(spelled_spans(bytes, core.as_bytes(), false));
    }
    if spans.is_empty() {
        return s.to_string();
    }
    spans.sort_unstable();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    for (a, b) in spans {
        if b <= at {
            continue;
        }
        if a >= at {
            out.extend_from_slice(&bytes[at..a]);
            out.extend_from_slice(b"[REDACTED]");
        }
        at = b;
    }
    out.extend_from_slice(&bytes[at..]);
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Whether `s[a..b]` is not part of a longer word: no letter or digit
/// right before it (a `%XX` escape counts as a separator) or right after.
fn stands_alone(s: &[u8], a: usize, b: usize) -> bool {
    let escaped =
        a >= 3 && s[a - 3] == b'%' && s[a - 2].is_ascii_hexdigit() && s[a - 1].is_ascii_hexdigit();
    let before = a == 0 || !s[a - 1].is_ascii_alphanumeric() || escaped;
    let after = s.get(b).is_none_or(|c| !c.is_ascii_alphanumeric());
    before && after
}

/// The byte spans of `s` that spell `pat`: each byte of `pat` as itself in
/// any ASCII case, or percent-encoded (hex in either case), or a space as
/// `+`; with `whole_word`, only spans that [`stands_alone`].
fn spelled_spans(s: &[u8], pat: &[u8], whole_word: bool) -> Vec<(usize, usize)> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut spans = Vec::new();
    if pat.is_empty() {
        return spans;
    }
    let mut i = 0;
    while i < s.len() {
        let mut j = i;
        let matched = pat.iter().all(|&want| {
            let Some(&c) = s.get(j) else { return false };
            if c.eq_ignore_ascii_case(&want) || (want == b' ' && c == b'+') {
                j += 1;
                return true;
            }
            if c == b'%' {
                if let (Some(h), Some(l)) = (
                    s.get(j + 1).copied().and_then(hex),
                    s.get(j + 2).copied().and_then(hex),
                ) {
                    if (h << 4 | l).eq_ignore_ascii_case(&want) {
                        j += 3;
                        return true;
                    }
                }
            }
            false
        });
        if matched && (!whole_word || stands_alone(s, i, j)) {
            spans.push((i, j));
            i = j;
        } else {
            i += 1;
        }
    }
    spans
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (for `Basic` credentials).
pub(crate) fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (k, &b)| n | u32::from(b) << (16 - 8 * k));
        for k in 0..4 {
            out.push(if k <= c.len() {
                B64[(n >> (18 - 6 * k) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// The parts of the base64 form of `token` that are the same wherever the
/// token falls in a longer encoded text (three byte offsets, two alphabets),
/// for tokens long enough that these parts cannot be mistaken for anything
/// else.
fn base64_cores(token: &[u8]) -> Vec<String> {
    const MIN_CORE: usize = 8;
    let mut cores: Vec<String> = Vec::new();
    for offset in 0..3usize {
        let mut data = vec![0u8; offset];
        data.extend_from_slice(token);
        let enc = base64(&data);
        // Characters that mix in the offset's bytes, or the bits after the
        // token, depend on what surrounds it: keep only the rest.
        let first = (8 * offset).div_ceil(6);
        let last = 8 * data.len() / 6;
        if last >= first + MIN_CORE {
            let core = enc[first..last].to_string();
            let url_safe = core.replace('+', "-").replace('/', "_");
            for c in [core, url_safe] {
                if !cores.contains(&c) {
                    cores.push(c);
                }
            }
        }
    }
    cores
}

/// The secrets a configured URL may carry, for [`redact`]: the value of
/// every query parameter (an `apikey=`, a `token=`: which one is secret
/// cannot be told, so all are), decoded and as written, and the password
/// of its user info. Empty values are left out.
pub fn url_secrets(url: &str) -> Vec<Secret> {
    let mut out: Vec<Secret> = Vec::new();
    let mut add = |v: String| {
        if !v.is_empty() && !out.iter().any(|s| s.0 == v) {
            out.push(Secret(v));
        }
    };
    let (before_query, query) = split_query(url);
    if let Some((_, pass)) = user_info(before_query).and_then(|u| u.split_once(':')) {
        add(percent_decode(pass, false));
        add(pass.to_string());
    }
    if let Some(q) = query {
        for part in q.split('&') {
            let value = part.split_once('=').map_or(part, |(_, v)| v);
            add(percent_decode(value, true));
            add(value.to_string());
        }
    }
    out
}

/// `url` fit for a log line: the value of every query parameter, the
/// fragment and the password of the user info shown as `REDACTED`
/// (`https://h/p?apikey=REDACTED&zone=REDACTED`); scheme, host, port, path
/// and parameter names kept.
pub fn redact_url(url: &str) -> String {
    let (before_query, query) = split_query(url);
    let mut out = match user_info(before_query) {
        Some(u) if u.contains(':') => {
            let user = u.split_once(':').map_or(u, |(n, _)| n);
            before_query.replacen(&format!("{u}@"), &format!("{user}:REDACTED@"), 1)
        }
        _ => before_query.to_string(),
    };
    if let Some(q) = query {
        out.push('?');
        let parts: Vec<String> = q
            .split('&')
            .map(|part| match part.split_once('=') {
                Some((name, _)) => format!("{name}=REDACTED"),
                None if part.is_empty() => String::new(),
                None => "REDACTED".to_string(),
            })
            .collect();
        out.push_str(&parts.join("&"));
    }
    if url.contains('#') {
        out.push_str("#REDACTED");
    }
    out
}

/// (`url` before its query, the query without `?` or fragment).
fn split_query(url: &str) -> (&str, Option<&str>) {
    let no_fragment = url.split_once('#').map_or(url, |(u, _)| u);
    match no_fragment.split_once('?') {
        Some((u, q)) => (u, Some(q)),
        None => (no_fragment, None),
    }
}

/// The `user:password` of `scheme://user:password@host/…`, if any.
fn user_info(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority.rsplit_once('@').map(|(u, _)| u)
}

/// `s` with `%XX` escapes decoded (and `+` as a space when `plus`); an
/// escape that is not one is kept as written.
fn percent_decode(s: &str, plus: bool) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => match (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encode everything but unreserved characters (RFC 3986).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn red(token: &str, s: &str) -> String {
        redact(s, [&Secret::new(token)])
    }

    #[test]
    fn secrets_do_not_show() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn tokens_are_redacted_raw_and_url_encoded() {
        assert_eq!(
            red("a b/c", "x a b/c y a%20b%2Fc z"),
            "x [REDACTED] y [REDACTED] z"
        );
    }

    #[test]
    fn tokens_are_redacted_in_any_case_encoding_and_base64() {
        // An ENTSO-E token is a UUID; servers echo it in other cases.
        let t = "3f2a9c1e-5b7d-4e8f-a0b1-c2d3e4f5a6b7";
        let upper = t.to_ascii_uppercase();
        let pct_upper: String = t.bytes().map(|b| format!("%{b:02X}")).collect();
        let pct_lower = pct_upper.to_ascii_lowercase();
        let mixed = t.replace('-', "%2d").to_ascii_uppercase();
        for variant in [t.to_string(), upper, pct_upper, pct_lower, mixed] {
            let got = red(t, &format!("token={variant}&x=1"));
            assert_eq!(got, "token=[REDACTED]&x=1", "{variant}");
        }
        // Base64, alone and inside a `Basic` credential at every offset.
        for prefix in ["", "u:", "us:", "use:"] {
            let b64 = base64(format!("{prefix}{t}").as_bytes());
            let got = red(t, &format!("Authorization: Basic {b64}"));
            assert!(!got.contains(&b64[8..b64.len() - 8]), "{prefix}: {got}");
            assert!(got.contains("[REDACTED]"), "{prefix}: {got}");
        }
        // A token with characters base64 and URLs treat specially.
        let odd = "k+y/?é~ ab=";
        assert_eq!(red(odd, "a k+y%2F%3F%C3%A9~+AB%3D b"), "a [REDACTED] b");
        assert_eq!(red(odd, "a K%2By/?é%7E%20aB= b"), "a [REDACTED] b");
        // Other text is left alone.
        assert_eq!(
            red(odd, "nothing here: 3f2a-9c1e"),
            "nothing here: 3f2a-9c1e"
        );
    }

    #[test]
    fn every_query_value_and_the_password_of_a_url_are_secrets() {
        let url = "https://bob:p%40ss@prices.example:8443/v1/prices?apikey=SECRETVALUE&zone=DE&note=a+b%2Bc&flag&empty=#frag";
        let secrets = url_secrets(url);
        let got: Vec<&str> = secrets.iter().map(Secret::expose).collect();
        for want in [
            "p@ss",
            "p%40ss",
            "SECRETVALUE",
            "DE",
            "a b+c",
            "a+b%2Bc",
            "flag",
        ] {
            assert!(got.contains(&want), "{want:?} missing from {got:?}");
        }
        assert!(!got.contains(&""), "{got:?}");
        assert!(
            !got.iter().any(|s| s.contains("frag") || s.contains("bob")),
            "{got:?}"
        );
        assert!(url_secrets("http://h:8086/api").is_empty());
    }

    #[test]
    fn a_url_is_shown_with_its_query_values_and_password_redacted() {
        assert_eq!(
            redact_url("https://bob:p%40ss@h:8443/v1/prices?apikey=SECRETVALUE&zone=DE&flag#frag"),
            "https://bob:REDACTED@h:8443/v1/prices?apikey=REDACTED&zone=REDACTED&REDACTED#REDACTED"
        );
        assert_eq!(redact_url("http://h:9000/metrics"), "http://h:9000/metrics");
        assert_eq!(redact_url("http://u@h/x?k=v"), "http://u@h/x?k=REDACTED");
    }

    #[test]
    fn query_values_echoed_by_a_server_are_redacted() {
        let secrets =
            url_secrets("http://127.0.0.1:9/prices?apikey=SECRETVALUE&zone=DE&start={start}");
        // A server that echoes the request line, the value decoded, encoded
        // or in another case, beside other text.
        let echo = "404 no route for GET /prices?apikey=SECRETVALUE&zone=DE HTTP/1.1; \
                    key %53ECRETVALUE, \"secretvalue\"; DEcoding failed in zone DE.";
        let got = redact(echo, &secrets);
        assert!(!got.to_ascii_lowercase().contains("secretvalue"), "{got}");
        assert!(!got.contains("%53ECRET"), "{got}");
        assert_eq!(
            got,
            "404 no route for GET /prices?apikey=[REDACTED]&zone=[REDACTED] HTTP/1.1; \
             key [REDACTED], \"[REDACTED]\"; DEcoding failed in zone [REDACTED]."
        );
        // A short value after a percent escape is still a word of its own.
        assert_eq!(redact("zone%3DDE", &secrets), "zone%3D[REDACTED]");
    }

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
    }
}
