//! Properties of `Schedule::merge` on random schedules: the result is sorted
//! and non-overlapping, the newer schedule wins wherever it has a slot, older
//! slots survive (clipped) wherever it has none, and merging the same newer
//! schedule twice changes nothing.

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use roimon_price::{Adjustments, PriceSlot, Schedule};

/// Slot boundaries fall on a five-minute grid, so probing the middle of every
/// grid step sees every piece a merge can produce.
const STEP: i64 = 300;

fn at(step: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap() + TimeDelta::seconds(step * STEP)
}

/// A sorted, non-overlapping schedule from (gap, length, price) triples, in
/// grid steps, starting `offset` steps in.
fn schedule(offset: i64, parts: &[(i64, i64, i32)]) -> Schedule {
    let mut cursor = offset;
    let slots = parts
        .iter()
        .map(|&(gap, len, price)| {
            cursor += gap;
            let s = PriceSlot {
                start: at(cursor),
                end: at(cursor + len),
                market_per_kwh: f64::from(price),
                price_per_kwh: f64::from(price),
            };
            cursor += len;
            s
        })
        .collect();
    Schedule {
        currency: "EUR".into(),
        slots,
        adjustments: Adjustments::default(),
    }
}

fn parts() -> impl Strategy<Value = Vec<(i64, i64, i32)>> {
    prop::collection::vec((0i64..4, 1i64..8, -50i32..500), 0..25)
}

/// The price in force at `t`, if a slot covers it.
fn price_at(s: &Schedule, t: DateTime<Utc>) -> Option<f64> {
    s.slots
        .iter()
        .find(|x| x.start <= t && t < x.end)
        .map(|x| x.price_per_kwh)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn merge_is_sorted_newest_wins_and_idempotent(
        old_offset in 0i64..20,
        old in parts(),
        new_offset in 0i64..40,
        new in parts(),
        keep_after in -5i64..60,
    ) {
        let (old, new) = (schedule(old_offset, &old), schedule(new_offset, &new));
        let mut merged = old.clone();
        merged.merge(new.clone(), at(keep_after));

        // Sorted, non-empty slots, never overlapping.
        prop_assert!(merged.slots.iter().all(|s| s.start < s.end));
        prop_assert!(merged.slots.windows(2).all(|w| w[0].end <= w[1].start));

        // Every new slot is there, whole.
        for n in &new.slots {
            prop_assert!(merged.slots.contains(n), "new slot {n:?} is missing");
        }

        // At every point: the new price where the new schedule has one, else
        // the old price where an old slot has one (before `keep_after`, old
        // pieces may have expired), else none.
        for step in -5..400 {
            let t = at(step) + TimeDelta::seconds(STEP / 2);
            let got = price_at(&merged, t);
            match (price_at(&new, t), price_at(&old, t)) {
                (Some(p), _) => prop_assert_eq!(got, Some(p), "at step {}", step),
                (None, o) if new.slots.is_empty() || t >= at(keep_after) => {
                    prop_assert_eq!(got, o, "at step {}", step)
                }
                (None, o) => prop_assert!(got.is_none() || got == o, "at step {}", step),
            }
        }
        // Nothing from the old schedule outlives `keep_after`.
        if !new.slots.is_empty() {
            for s in &merged.slots {
                prop_assert!(s.end > at(keep_after) || new.slots.contains(s));
            }
        }

        // Idempotent: the same newer schedule again changes nothing.
        let mut again = merged.clone();
        again.merge(new, at(keep_after));
        prop_assert_eq!(again, merged);
    }
}
