//! Parser: CSV price sheet (a contract's prices).
//!
//! Fixed-price and time-of-use contracts are not published by any API; the
//! operator types the contract's blocks into a spreadsheet and exports it.
//! This reads that export, without a CSV crate:
//!
//! - Blank lines and lines starting with `#` are skipped anywhere.
//! - The first other line is the header. Columns `start` and `price` are
//!   required, `end` is optional, names are case-insensitive, and other
//!   columns (labels, notes) are ignored. A `unit` column is refused: the unit
//!   is configured, and a sheet that states its own could silently disagree.
//! - The separator is `;` or `,`, whichever the header uses more (outside
//!   quotes). With `;`, a decimal comma is accepted (`0,2632`).
//! - Values may be double-quoted, with `""` for a quote inside; a quoted value
//!   cannot span lines.
//! - Times are RFC 3339 or anything [`util::parse_time`] reads (naive = UTC).
//! - A row without an end (no `end` column, or an empty cell) ends at the next
//!   start; the last such row after the spacing before it, or 1 h when alone.

use crate::parse::util;
use crate::schedule::{Parsed, PriceError, RawSlot, Unit};
use chrono::{DateTime, TimeDelta, Utc};

/// Read a price sheet whose prices are in `unit`; `currency` is the
/// contract's currency when the caller knows it (it is then checked by
/// [`normalise`](crate::normalise)).
///
/// Errors name the 1-based line and the column:
/// `line 7, column `price`: not a number: "x"`.
pub fn parse(text: &str, unit: Unit, currency: Option<&str>) -> Result<Parsed, PriceError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    super::util::bounded_lines(text, "price sheet")?;
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        });
    let Some((hline, header)) = lines.next() else {
        return Err(PriceError::NoData("the price sheet is empty".into()));
    };
    let sep = separator(header);
    let names: Vec<String> = split(header, sep)
        .map_err(|e| PriceError::Parse(format!("line {hline} (header): {e}")))?
        .into_iter()
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    let col = |name: &str| names.iter().position(|n| n == name);
    for (i, n) in names.iter().enumerate() {
        if !n.is_empty() && names[..i].contains(n) {
            return Err(PriceError::Parse(format!(
                "line {hline} (header): column `{n}` appears twice"
            )));
        }
    }
    if col("unit").is_some() {
        return Err(PriceError::Invalid(format!(
            "line {hline} (header): a `unit` column is not supported; the unit is configured (here {unit:?}), remove the column"
        )));
    }
    let (Some(c_start), Some(c_price)) = (col("start"), col("price")) else {
        return Err(PriceError::Parse(format!(
            "line {hline} (header): needs columns `start` and `price` separated by `,` or `;`, found {names:?}"
        )));
    };
    let c_end = col("end");

    let mut rows: Vec<Row> = Vec::new();
    for (n, line) in lines {
        let fields = split(line, sep).map_err(|e| PriceError::Parse(format!("line {n}: {e}")))?;
        if fields.len() > names.len() && fields[names.len()..].iter().any(|f| !f.trim().is_empty())
        {
            let hint = if sep == ',' {
                " (a decimal comma needs `;` as the separator, or quotes)"
            } else {
                ""
            };
            return Err(PriceError::Parse(format!(
                "line {n}: {} fields, the header names {}{hint}",
                fields.len(),
                names.len()
            )));
        }
        let cell = |c: usize| -> Result<&str, PriceError> {
            match fields.get(c).map(|f| f.trim()) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(PriceError::Parse(format!(
                    "line {n}, column `{}`: empty",
                    names[c]
                ))),
            }
        };
        let time = |c: usize| -> Result<DateTime<Utc>, PriceError> {
            let v = cell(c)?;
            util::parse_time(v).map_err(|_| {
                PriceError::Parse(format!(
                    "line {n}, column `{}`: not a time stamp: {v:?}",
                    names[c]
                ))
            })
        };
        let start = time(c_start)?;
        let end = match c_end {
            Some(c) if fields.get(c).is_some_and(|f| !f.trim().is_empty()) => Some(time(c)?),
            _ => None,
        };
        if let Some(e) = end {
            if e <= start {
                return Err(PriceError::Invalid(format!(
                    "line {n}: end {e} is not after start {start}"
                )));
            }
        }
        let raw = cell(c_price)?;
        let value = number(raw, sep).ok_or_else(|| {
            PriceError::Parse(format!("line {n}, column `price`: not a number: {raw:?}"))
        })?;
        rows.push(Row {
            line: n,
            start,
            end,
            value,
        });
    }
    if rows.is_empty() {
        return Err(PriceError::NoData(format!(
            "the price sheet has a header (line {hline}) but no rows"
        )));
    }
    rows.sort_by_key(|r| (r.start, r.line));

    // Rows without an end take the next start (of any row), as ends_from_starts does.
    let starts: Vec<(DateTime<Utc>, f64)> = rows.iter().map(|r| (r.start, r.value)).collect();
    let inferred = util::ends_from_starts(&starts, TimeDelta::hours(1));
    let slots = rows
        .iter()
        .zip(inferred)
        .map(|(r, inf)| RawSlot {
            start: r.start,
            end: r.end.unwrap_or(inf.end),
            value: r.value,
        })
        .collect();
    Ok(Parsed {
        currency: currency.map(|c| c.trim().to_ascii_uppercase()),
        unit,
        slots,
    })
}

/// One data row: its 1-based line, start, explicit end (if any) and price.
struct Row {
    line: usize,
    start: DateTime<Utc>,
    end: Option<DateTime<Utc>>,
    value: f64,
}

/// `;` when the header has more semicolons than commas outside quotes, else `,`.
fn separator(header: &str) -> char {
    let (mut semi, mut comma, mut quoted) = (0, 0, false);
    for c in header.chars() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => semi += 1,
            ',' if !quoted => comma += 1,
            _ => {}
        }
    }
    if semi > comma { ';' } else { ',' }
}

/// Split one line into fields, unquoting `"..."` (with `""` inside).
fn split(line: &str, sep: char) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        // One field.
        while chars.peek().is_some_and(|&c| c != sep && c.is_whitespace()) {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err(format!("field {} has no closing quote", out.len() + 1)),
                }
            }
            while let Some(&c) = chars.peek() {
                if c == sep {
                    break;
                }
                if !c.is_whitespace() {
                    return Err(format!(
                        "field {}: text after the closing quote",
                        out.len() + 1
                    ));
                }
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == sep {
                    break;
                }
                field.push(c);
                chars.next();
            }
        }
        out.push(field);
        if chars.next().is_none() {
            return Ok(out);
        }
    }
}

/// A finite number; with `;` as the separator a decimal comma is accepted
/// (but not a mix of `,` and `.`, which would be a thousands separator).
fn number(s: &str, sep: char) -> Option<f64> {
    let owned;
    let s = if sep == ';' && s.contains(',') {
        if s.contains('.') || s.matches(',').count() > 1 {
            return None;
        }
        owned = s.replace(',', ".");
        owned.as_str()
    } else {
        s
    };
    // Rust also reads "inf" and "NaN"; a price sheet means neither.
    if !s
        .bytes()
        .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
    {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        util::parse_time(s).unwrap()
    }

    #[test]
    fn comma_sheet_with_quotes_comments_and_explicit_end() {
        let text = "\u{feff}# Contract 4711, prices in EUR/kWh\n\
            \n\
            Start,End,Price,Label\n\
            2026-01-05T00:00:00+01:00,2026-01-05T08:00:00+01:00,0.1874,\"Off-peak, night\"\n\
            # the day block\n\
            \"2026-01-05T08:00:00+01:00\" , 2026-01-05T20:00:00+01:00,\"0.2632\",\"Peak \"\"HT\"\"\"\n";
        let p = parse(text, Unit::PerKwh, Some("eur")).unwrap();
        assert_eq!(p.currency.as_deref(), Some("EUR"));
        assert_eq!(p.unit, Unit::PerKwh);
        assert_eq!(p.slots.len(), 2);
        assert_eq!(p.slots[0].start, t("2026-01-04T23:00Z"));
        assert_eq!(p.slots[0].end, t("2026-01-05T07:00Z"));
        assert_eq!(p.slots[0].value, 0.1874);
        assert_eq!(p.slots[1].end, t("2026-01-05T19:00Z"));
        assert_eq!(p.slots[1].value, 0.2632);
    }

    #[test]
    fn semicolon_and_decimal_comma_without_end() {
        let text = "start;price\n2026-02-01 01:00:00;\"23,5\"\n2026-02-01 00:30:00;21,0\n2026-02-01 00:00:00;-1,25\n";
        let p = parse(text, Unit::MinorPerKwh, None).unwrap();
        assert_eq!(p.currency, None);
        let v: Vec<f64> = p.slots.iter().map(|s| s.value).collect();
        assert_eq!(v, vec![-1.25, 21.0, 23.5]);
        assert_eq!(p.slots[0].end, t("2026-02-01T00:30Z"));
        assert_eq!(p.slots[1].end, t("2026-02-01T01:00Z"));
        // The last one repeats the spacing before it (30 min).
        assert_eq!(p.slots[2].end, t("2026-02-01T01:30Z"));
    }

    #[test]
    fn one_row_without_end_lasts_an_hour_and_empty_end_cells_are_inferred() {
        let p = parse("start,price\n2026-01-01T00:00Z,1\n", Unit::PerKwh, None).unwrap();
        assert_eq!(p.slots[0].end, t("2026-01-01T01:00Z"));
        let p = parse(
            "start,end,price\n2026-01-01T00:00Z,,1\n2026-01-01T06:00Z,2026-01-01T07:00Z,2\n",
            Unit::PerKwh,
            None,
        )
        .unwrap();
        assert_eq!(p.slots[0].end, t("2026-01-01T06:00Z"));
        assert_eq!(p.slots[1].end, t("2026-01-01T07:00Z"));
    }

    #[test]
    fn errors_name_line_and_column() {
        let text = "# c\n\nstart,price\n2026-01-01T00:00Z,1\n# c\n\n2026-01-01T01:00Z,x\n";
        assert_eq!(
            parse(text, Unit::PerKwh, None).unwrap_err(),
            PriceError::Parse("line 7, column `price`: not a number: \"x\"".into())
        );
        let e = parse("start,price\nmonday,1\n", Unit::PerKwh, None).unwrap_err();
        assert_eq!(
            e,
            PriceError::Parse("line 2, column `start`: not a time stamp: \"monday\"".into())
        );
        let e = parse("start,price\n2026-01-01T00:00Z,\n", Unit::PerKwh, None).unwrap_err();
        assert!(
            e.to_string().contains("line 2, column `price`: empty"),
            "{e}"
        );
        // A decimal comma with `,` as separator is an extra field, not 0.
        let e = parse("start,price\n2026-01-01T00:00Z,0,25\n", Unit::PerKwh, None).unwrap_err();
        assert!(
            e.to_string()
                .contains("line 2: 3 fields, the header names 2"),
            "{e}"
        );
        let e = parse("start,price\n2026-01-01T00:00Z,\"1\n", Unit::PerKwh, None).unwrap_err();
        assert!(
            e.to_string()
                .contains("line 2: field 2 has no closing quote"),
            "{e}"
        );
        let e = parse(
            "start;price\n2026-01-01T00:00Z;1.234,5\n",
            Unit::PerKwh,
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("line 2, column `price`"), "{e}");
        let e = parse("start,price\n2026-01-01T00:00Z,NaN\n", Unit::PerKwh, None).unwrap_err();
        assert!(e.to_string().contains("not a number"), "{e}");
        let e = parse(
            "start,end,price\n2026-01-01T01:00Z,2026-01-01T01:00Z,1\n",
            Unit::PerKwh,
            None,
        )
        .unwrap_err();
        assert!(
            matches!(e, PriceError::Invalid(ref m) if m.starts_with("line 2: end")),
            "{e}"
        );
    }

    #[test]
    fn header_problems() {
        let e = parse("when,price\n2026-01-01T00:00Z,1\n", Unit::PerKwh, None).unwrap_err();
        assert!(
            e.to_string().contains("line 1 (header): needs columns"),
            "{e}"
        );
        let e = parse("start,price,unit\n", Unit::PerKwh, None).unwrap_err();
        assert!(matches!(e, PriceError::Invalid(_)), "{e}");
        let e = parse("start,price,price\n", Unit::PerKwh, None).unwrap_err();
        assert!(e.to_string().contains("appears twice"), "{e}");
        assert!(matches!(
            parse("# only a comment\n\n", Unit::PerKwh, None),
            Err(PriceError::NoData(_))
        ));
        assert!(matches!(
            parse("start;price\n# nothing yet\n", Unit::PerKwh, None),
            Err(PriceError::NoData(_))
        ));
    }

    #[test]
    fn splitting() {
        assert_eq!(
            split(r#"a, "b,c" ,"d""e""#, ',').unwrap(),
            ["a", "b,c", "d\"e"]
        );
        assert_eq!(split("a;;", ';').unwrap(), ["a", "", ""]);
        assert!(split(r#""a"b"#, ',').is_err());
        assert_eq!(separator(r#""start,x";price"#), ';');
        assert_eq!(separator("start,price"), ',');
    }
}
