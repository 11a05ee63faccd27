//! A Kubernetes `PodList` read within a memory bound: only the fields
//! attribution needs are kept (uid, namespace, name, string labels,
//! container ids), everything else is skipped unread, and a list with too
//! many pods, or a pod with too many labels or containers, or a label too
//! long for Kubernetes, stops the parse where it is crossed, not after the
//! whole list was built.

use crate::{PodIndex, PodMeta};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::marker::PhantomData;

/// Most pods read from one pod list (a node runs at most a few hundred).
pub const MAX_PODS: usize = 10_000;
/// Most labels read per pod (Kubernetes pods carry a handful to a few dozen).
pub const MAX_LABELS: usize = 256;
/// Most containers (and init containers) per pod.
pub const MAX_CONTAINERS: usize = 256;
/// Longest label key (Kubernetes: a 253-byte prefix, `/`, 63-byte name).
pub const MAX_LABEL_KEY_BYTES: usize = 317;
/// Longest label value Kubernetes accepts.
pub const MAX_LABEL_VALUE_BYTES: usize = 63;
/// Longest uid, namespace, pod, container name or id kept.
pub const MAX_NAME_BYTES: usize = 512;

/// Read a `PodList` (JSON) into pods by UID, within the caps above.
pub fn parse(text: &str) -> Result<PodIndex, String> {
    let list: List = serde_json::from_str(text).map_err(|e| format!("not a JSON pod list: {e}"))?;
    let items = list.items.ok_or("not a pod list: no \"items\" array")?;
    let mut out = PodIndex::with_capacity(items.0.len());
    for item in items.0 {
        let Some(meta) = item.metadata else { continue };
        let (Some(uid), Some(namespace), Some(name)) = (meta.uid.0, meta.namespace.0, meta.name.0)
        else {
            continue;
        };
        let mut containers = HashMap::new();
        if let Some(status) = item.status {
            for c in status
                .container_statuses
                .into_iter()
                .chain(status.init_container_statuses)
                .flat_map(|l| l.0)
            {
                if let (Some(n), Some(id)) = (c.name.0, c.container_id.0) {
                    let id = id.split_once("://").map_or(id.as_str(), |(_, i)| i);
                    containers.insert(id.to_string(), n);
                }
            }
        }
        out.insert(
            uid,
            PodMeta {
                namespace,
                name,
                labels: meta.labels.map(|l| l.0).unwrap_or_default(),
                containers,
            },
        );
    }
    Ok(out)
}

#[derive(Deserialize)]
struct List {
    #[serde(default)]
    items: Option<Capped<Item, MAX_PODS>>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    metadata: Option<Meta>,
    #[serde(default)]
    status: Option<Status>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    uid: Str,
    #[serde(default)]
    namespace: Str,
    #[serde(default)]
    name: Str,
    #[serde(default)]
    labels: Option<Labels>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    #[serde(default)]
    container_statuses: Option<Capped<Container, MAX_CONTAINERS>>,
    #[serde(default)]
    init_container_statuses: Option<Capped<Container, MAX_CONTAINERS>>,
}

#[derive(Deserialize)]
struct Container {
    #[serde(default)]
    name: Str,
    #[serde(default, rename = "containerID")]
    container_id: Str,
}

/// A string of at most [`MAX_NAME_BYTES`], or nothing where the value is
/// not a string (skipped unread); a longer one is an error.
#[derive(Default)]
struct Str(Option<String>);

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MaybeStr(MAX_NAME_BYTES)).map(Str)
    }
}

/// Reads a string no longer than `.0`; any other value is skipped.
struct MaybeStr(usize);

impl<'de> Visitor<'de> for MaybeStr {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a string of at most {} bytes", self.0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if v.len() > self.0 {
            return Err(E::custom(format!(
                "a string of {} bytes, more than the {} kept",
                v.len(),
                self.0
            )));
        }
        Ok(Some(v.to_string()))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        while a.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// A sequence of at most `N` elements: the parse stops at element `N + 1`.
struct Capped<T, const N: usize>(Vec<T>);

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for Capped<T, N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T, const N: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for V<T, N> {
            type Value = Capped<T, N>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "an array of at most {N} elements")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(x) = a.next_element::<T>()? {
                    if out.len() == N {
                        return Err(de::Error::custom(format!(
                            "more than {N} {} in one pod list",
                            if N == MAX_PODS {
                                "pods"
                            } else {
                                "containers per pod"
                            }
                        )));
                    }
                    out.push(x);
                }
                Ok(Capped(out))
            }
        }
        d.deserialize_seq(V::<T, N>(PhantomData))
    }
}

/// A pod's string labels, at most [`MAX_LABELS`] of them, each within
/// Kubernetes' lengths; labels that are not strings are not labels.
struct Labels(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Labels;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "an object of at most {MAX_LABELS} labels")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                let mut n = 0;
                while let Some(k) = a.next_key::<Key>()? {
                    n += 1;
                    if n > MAX_LABELS {
                        return Err(de::Error::custom(format!(
                            "a pod with more than {MAX_LABELS} labels"
                        )));
                    }
                    let v = a.next_value::<LabelValue>()?;
                    if let Some(v) = v.0 {
                        out.insert(k.0, v);
                    }
                }
                Ok(Labels(out))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Labels(BTreeMap::new()))
            }
        }
        d.deserialize_any(V)
    }
}

struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_str(MaybeStr(MAX_LABEL_KEY_BYTES))? {
            Some(k) => Ok(Key(k)),
            None => Err(de::Error::custom("a label key that is not a string")),
        }
    }
}

struct LabelValue(Option<String>);

impl<'de> Deserialize<'de> for LabelValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MaybeStr(MAX_LABEL_VALUE_BYTES))
            .map(LabelValue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(i: usize, labels: &str) -> String {
        format!(
            r#"{{"metadata":{{"uid":"u{i}","namespace":"ns","name":"p{i}","labels":{{{labels}}}}},"spec":{{"x":[1,2,{{"y":null}}]}}}}"#
        )
    }

    #[test]
    fn a_list_over_the_pod_cap_stops_at_the_first_pod_too_many() {
        let ok: Vec<String> = (0..MAX_PODS).map(|i| pod(i, "")).collect();
        let idx = parse(&format!(r#"{{"items":[{}]}}"#, ok.join(","))).unwrap();
        assert_eq!(idx.len(), MAX_PODS);
        // One more, then text that is not even JSON: the parse never gets
        // there, it stopped at the pod over the cap.
        let over = format!(
            r#"{{"items":[{},{}, this is not read"#,
            ok.join(","),
            pod(0, "")
        );
        let e = parse(&over).unwrap_err();
        assert!(e.contains(&format!("more than {MAX_PODS} pods")), "{e}");
    }

    #[test]
    fn labels_per_pod_and_their_lengths_are_capped() {
        let many: Vec<String> = (0..=MAX_LABELS).map(|i| format!(r#""k{i}":"v""#)).collect();
        let e = parse(&format!(r#"{{"items":[{}]}}"#, pod(1, &many.join(",")))).unwrap_err();
        assert!(e.contains(&format!("more than {MAX_LABELS} labels")), "{e}");
        let fits: Vec<String> = (0..MAX_LABELS).map(|i| format!(r#""k{i}":"v""#)).collect();
        let idx = parse(&format!(r#"{{"items":[{}]}}"#, pod(1, &fits.join(",")))).unwrap();
        assert_eq!(idx["u1"].labels.len(), MAX_LABELS);
        let long = format!(r#""app":"{}""#, "x".repeat(100_000));
        let e = parse(&format!(r#"{{"items":[{}]}}"#, pod(1, &long))).unwrap_err();
        assert!(e.contains("more than the 63 kept"), "{e}");
        // Non-string values are skipped, nested ones too.
        let idx = parse(&format!(
            r#"{{"items":[{}]}}"#,
            pod(1, r#""a":"b","n":1,"o":{"p":[1]},"z":null"#)
        ))
        .unwrap();
        assert_eq!(idx["u1"].labels.len(), 1);
    }
}
