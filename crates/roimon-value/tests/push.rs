//! Pushed value and KPI points: the contract's examples read as documented,
//! every precision, every refusal naming its line with nothing applied, and
//! retries counted once, also across a save and load of the dedup window.

use proptest::prelude::*;
use roimon_value::{Dedup, PointData, Precision, PushError, PushRules, apply, parse_batch};

/// 2025-12-01T12:00:00Z, the contract examples' timestamp.
const T: i64 = 1_764_590_400_000_000_000;
const NOW: i64 = T + 60_000_000_000;

fn rules() -> PushRules {
    PushRules::new("EUR")
}

fn bad(body: &str) -> (usize, String) {
    match parse_batch(body.as_bytes(), Precision::Ns, NOW, &rules()) {
        Err(PushError::Line { line, reason }) => (line, reason),
        other => panic!("{body:?} gave {other:?}"),
    }
}

#[test]
fn the_contract_examples() {
    let body = "roimon_value,team=search,workload=chat amount=12.5 1764590400000000000\n\
                roimon_kpi,team=search,workload=chat precision=0.95,satisfaction=0.9 1764590400000000000\n";
    let p = parse_batch(body.as_bytes(), Precision::Ns, NOW, &rules()).unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!(
        (p[0].team.as_str(), p[0].workload.as_str()),
        ("search", "chat")
    );
    assert_eq!(p[0].at_ns, T);
    assert_eq!(p[0].data, PointData::Value { amount: 12.5 });
    assert_eq!(p[0].line, 1);
    let PointData::Kpi { scores } = &p[1].data else {
        panic!("{:?}", p[1].data);
    };
    assert_eq!(scores["precision"], 0.95);
    assert_eq!(scores["satisfaction"], 0.9);
    assert_eq!(p[1].line, 2);
}

#[test]
fn precisions_currency_integers_comments_and_no_timestamp() {
    for (prec, ts) in [
        (Precision::S, "1764590400"),
        (Precision::Ms, "1764590400000"),
        (Precision::Us, "1764590400000000"),
        (Precision::Ns, "1764590400000000000"),
    ] {
        let body = format!("# a comment\n\nroimon_value,currency=EUR,team=a amount=3i {ts}\r\n");
        let p = parse_batch(body.as_bytes(), prec, NOW, &rules()).unwrap();
        assert_eq!(p.len(), 1, "{prec:?}");
        assert_eq!(p[0].at_ns, T, "{prec:?}");
        assert_eq!(p[0].data, PointData::Value { amount: 3.0 });
        assert_eq!(p[0].line, 3);
        assert_eq!(p[0].workload, "");
    }
    let p = parse_batch(
        b"roimon_value,team=a amount=1",
        Precision::Ns,
        NOW,
        &rules(),
    )
    .unwrap();
    assert_eq!(p[0].at_ns, NOW);
    assert_eq!("ms".parse::<Precision>(), Ok(Precision::Ms));
    assert!("h".parse::<Precision>().is_err());
}

#[test]
fn every_refusal_names_its_line_and_why() {
    let ok = "roimon_value,team=a amount=1 1764590400000000000\n";
    let cases: [(&str, &str); 12] = [
        (
            "cpu,team=a amount=1 1764590400000000000",
            "measurement `cpu`",
        ),
        (
            "roimon_value,workload=w amount=1 1764590400000000000",
            "missing `team`",
        ),
        (
            "roimon_value,team=a amount=-1 1764590400000000000",
            "negative",
        ),
        (
            "roimon_value,team=a amount=1,x=2 1764590400000000000",
            "exactly one field",
        ),
        ("roimon_value,team=a price=1 1764590400000000000", "`price`"),
        (
            "roimon_value,team=a,currency=USD amount=1 1764590400000000000",
            "currency `USD`",
        ),
        (
            "roimon_value,team=a amount=\"x\" 1764590400000000000",
            "not a number",
        ),
        (
            "roimon_value,team=a amount=1 1664590400000000000",
            "outside the accepted window",
        ),
        (
            "roimon_value,team=a amount=1 1864590400000000000",
            "outside the accepted window",
        ),
        (
            "roimon_value,team=a amount=1e400 1764590400000000000",
            "amount",
        ),
        (
            "roimon_kpi,team=a,currency=EUR precision=1 1764590400000000000",
            "currency",
        ),
        ("roimon_value,team=a amount=", "not line protocol"),
    ];
    for (line, why) in cases {
        let body = format!("{ok}{ok}\n{line}\n{ok}");
        let (n, reason) = bad(&body);
        assert_eq!(n, 4, "{line}: {reason}");
        assert!(reason.contains(why), "{line}: `{reason}` lacks `{why}`");
    }
    // Seconds given as nanoseconds' precision: far in the past.
    let e = parse_batch(
        b"roimon_value,team=a amount=1 1764590400",
        Precision::Ns,
        NOW,
        &rules(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("precision"), "{e}");
    let e = parse_batch(
        b"roimon_value,team=a amount=1 \xff",
        Precision::Ns,
        NOW,
        &rules(),
    )
    .unwrap_err();
    assert_eq!(e.line(), Some(1));
}

#[test]
fn caps() {
    let r = PushRules {
        max_body_bytes: 10,
        ..rules()
    };
    let e = parse_batch(b"roimon_value,team=a amount=1", Precision::Ns, NOW, &r).unwrap_err();
    assert!(matches!(e, PushError::TooLarge { .. }));
    let r = PushRules {
        max_points: 1,
        ..rules()
    };
    let e = parse_batch(
        b"roimon_value,team=a amount=1\nroimon_value,team=a amount=2",
        Precision::Ns,
        NOW,
        &r,
    )
    .unwrap_err();
    assert_eq!(e.line(), Some(2));
}

#[test]
fn a_retry_counts_once_also_after_a_restart() {
    let body = b"roimon_value,team=a,workload=w amount=12.5 1764590400000000000\n\
                 roimon_value,team=a,workload=w amount=12.5 1764590400000000000\n\
                 roimon_value,workload=w,team=a amount=12.5 1764590400000000000\n\
                 roimon_value,team=a,workload=w amount=12.5 1764590401000000000\n\
                 roimon_value,team=a,workload=w amount=12.6 1764590400000000000\n\
                 roimon_value,team=b,workload=w amount=12.5 1764590400000000000\n";
    let mut d = Dedup::new(1_000, 3_600_000_000_000);
    let a = apply(body, Precision::Ns, NOW, &rules(), &mut d).unwrap();
    // Same point twice in the batch, once with its tags in another order.
    assert_eq!(a.duplicates, 2);
    assert_eq!(
        a.points.iter().map(|p| p.line).collect::<Vec<_>>(),
        [1, 4, 5, 6]
    );
    // The client retries the whole batch, after roimon restarted.
    let mut d: Dedup = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
    let a = apply(body, Precision::Ns, NOW + 1, &rules(), &mut d).unwrap();
    assert!(a.points.is_empty());
    assert_eq!(a.duplicates, 6);
    // After the dedup window (1 h here) the same point counts again: a
    // daemon keeps the window at least as long as the push window.
    let a = apply(
        body,
        Precision::Ns,
        NOW + 3_600_000_000_001,
        &rules(),
        &mut d,
    )
    .unwrap();
    assert_eq!(a.points.len(), 4);
    assert_eq!(a.duplicates, 2);
}

#[test]
fn the_window_is_bounded_by_entries() {
    let mut d = Dedup::new(2, i64::MAX);
    for i in 0..3 {
        let body = format!("roimon_value,team=a amount={i} {T}");
        let a = apply(body.as_bytes(), Precision::Ns, NOW, &rules(), &mut d).unwrap();
        assert_eq!(a.points.len(), 1);
    }
    assert_eq!(d.len(), 2);
    // The oldest was forgotten: it counts again.
    let a = apply(
        format!("roimon_value,team=a amount=0 {T}").as_bytes(),
        Precision::Ns,
        NOW,
        &rules(),
        &mut d,
    )
    .unwrap();
    assert_eq!(a.points.len(), 1);
}

fn good_line() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["a", "search", "ml ops", "x=y"]),
        prop::sample::select(vec!["", "chat", "batch"]),
        0.0f64..1e9,
        prop::bool::ANY,
        0i64..3_600,
    )
        .prop_map(|(team, workload, amount, kpi, dt)| {
            let team = team.replace(' ', "\\ ").replace('=', "\\=");
            let ts = T - dt * 1_000_000_000;
            let wl = if workload.is_empty() {
                String::new()
            } else {
                format!(",workload={workload}")
            };
            if kpi {
                format!(
                    "roimon_kpi,team={team}{wl} precision={},growth=0.5 {ts}",
                    amount / 1e9
                )
            } else {
                format!("roimon_value,team={team}{wl} amount={amount} {ts}")
            }
        })
}

fn bad_line() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "cpu,team=a amount=1",
        "roimon_value amount=1",
        "roimon_value,team=a amount=-0.01",
        "roimon_value,team=a,currency=GBP amount=1",
        "roimon_value,team=a amount=1 99",
        "roimon_kpi,team=a precision=true",
        "roimon_value,team=a amount=1 1764590400000000000 extra",
        "roimon_value,team=a",
        "roimon_value,team=a,team=b amount=1",
    ])
    .prop_map(str::to_owned)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut d = Dedup::new(100, 1_000_000_000);
        if let Err(e) = apply(&body, Precision::Ns, NOW, &rules(), &mut d) {
            let n = e.line().unwrap();
            prop_assert!(n >= 1 && n <= 1 + body.iter().filter(|&&b| b == b'\n').count());
        }
    }

    #[test]
    fn arbitrary_text_near_the_format_never_panics(body in "(roimon_(value|kpi)|[a-z,= \\\\\"0-9.eE+-]){0,80}(\n[a-z,=_ \\\\\"0-9.eE+-]{0,40}){0,4}") {
        let mut d = Dedup::new(100, 1_000_000_000);
        let _ = apply(body.as_bytes(), Precision::Ns, NOW, &rules(), &mut d);
    }

    #[test]
    fn one_bad_line_applies_nothing(
        lines in prop::collection::vec(good_line(), 1..40),
        bad in bad_line(),
        at in any::<prop::sample::Index>(),
    ) {
        let mut d = Dedup::new(1_000, i64::MAX);
        let good = lines.join("\n");
        let all = apply(good.as_bytes(), Precision::Ns, NOW, &rules(), &mut Dedup::new(1_000, i64::MAX)).unwrap();
        prop_assert!(all.points.len() + all.duplicates == lines.len());
        let i = at.index(lines.len() + 1);
        let mut with_bad = lines.clone();
        with_bad.insert(i, bad);
        let body = with_bad.join("\n");
        let e = apply(body.as_bytes(), Precision::Ns, NOW, &rules(), &mut d).unwrap_err();
        prop_assert_eq!(e.line(), Some(i + 1));
        prop_assert!(d.is_empty());
    }
}
