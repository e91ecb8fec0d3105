//! [`Json<T>`]: keys and values as JSON, for any type that implements serde's `Serialize` and
//! `Deserialize` (feature `json`).
//!
//! The built-in serdes cover Kafka's primitive layouts; records with structure (an order, a
//! user profile) are most often JSON on a topic. Serde is the interface the ecosystem's types
//! already implement, so wrapping a type in `Json` is all it takes to put it in a stream, a
//! table or a store. Bytes that are not JSON of the type are a
//! [`Deserialization`](crate::ErrorKind::Deserialization) error like any other serde's, so the
//! application's [`DeserializationHandler`](super::DeserializationHandler) fails on them or
//! skips them.

use std::ops::{Deref, DerefMut};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::serde::{deserialization_error, Serde};
use crate::error::Result;

/// A `T` whose bytes are its JSON text (UTF-8), through serde.
///
/// Use it as a key, value or aggregate type anywhere a [`Serde`] type goes:
///
/// ```
/// use riverbed::streams::{Builder, Json, Materialized, TopologyTestDriver};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
/// struct Order {
///     customer: String,
///     cents: i64,
/// }
///
/// let b = Builder::new("spend-app");
/// b.stream::<String, Json<Order>>("orders")
///     .map_values(|order| order.cents)
///     .group_by_key()
///     .reduce(|total, cents| total + cents, Materialized::named("spend"));
/// let mut driver = TopologyTestDriver::new(b.build()?)?;
/// let order = |cents| Json(Order { customer: "ada".into(), cents });
/// driver.pipe_input("orders", &"ada".to_string(), &order(250), 0)?;
/// driver.pipe_input("orders", &"ada".to_string(), &order(100), 0)?;
/// // What a producer in another language would write:
/// driver.pipe_raw("orders", Some(b"ada"), Some(br#"{"customer":"ada","cents":5}"#), 0)?;
/// assert_eq!(driver.store::<String, i64>("spend")?.get("ada")?, Some(355));
/// # Ok::<(), riverbed::Error>(())
/// ```
///
/// # Bytes
/// `encode` is `serde_json::to_vec`, `decode` is `serde_json::from_slice`: compact JSON, no
/// trailing newline; decoding accepts any whitespace. Floats round-trip exactly; NaN and the
/// infinities encode as `null`, which then does not decode as a float.
///
/// Equal values must encode to equal bytes (stores and partitioning compare bytes), so a type
/// used as a key or stored should not contain a `HashMap` or `HashSet` (their JSON order is
/// arbitrary): use `BTreeMap`, `BTreeSet` or a `Vec`.
///
/// A null record key or value is an error, as for other types; use `Option<Json<T>>` for
/// tombstones.
///
/// # Panics
/// `encode` panics if `T`'s `Serialize` fails: its implementation returns an error, or it
/// holds a map whose keys are not strings, numbers, booleans or chars (JSON object keys are
/// strings). That is a bug in the type, not in the data (as `to_string` panics on a failing
/// `Display`). Inside an [`App`](super::App) or a [`TopologyTestDriver`](super::TopologyTestDriver)
/// user code runs guarded, so it becomes a
/// [`StreamsProcessing`](crate::ErrorKind::StreamsProcessing) error there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    /// The wrapped value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Json<T> {
    fn from(value: T) -> Self {
        Json(value)
    }
}

impl<T> Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Json<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: Serialize + DeserializeOwned> Serde for Json<T> {
    fn encode(&self) -> Vec<u8> {
        match serde_json::to_vec(&self.0) {
            Ok(bytes) => bytes,
            Err(e) => panic!(
                "Json<{}>: the value does not serialize to JSON ({e})",
                std::any::type_name::<T>()
            ),
        }
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map(Json).map_err(|e| {
            deserialization_error(format!(
                "Json<{}>: not its JSON ({e})",
                std::any::type_name::<T>()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::error::ErrorKind;

    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
    enum Status {
        Open,
        Closed { reason: String },
    }

    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
    struct Order {
        id: u64,
        customer: String,
        cents: i64,
        ratio: f64,
        tags: Vec<String>,
        lines: BTreeMap<String, i32>,
        note: Option<String>,
        status: Status,
    }

    fn status() -> impl Strategy<Value = Status> {
        prop_oneof![
            Just(Status::Open),
            any::<String>().prop_map(|reason| Status::Closed { reason }),
        ]
    }

    prop_compose! {
        fn order()(
            id in any::<u64>(),
            customer in any::<String>(),
            cents in any::<i64>(),
            ratio in any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()),
            tags in prop::collection::vec(any::<String>(), 0..4),
            lines in prop::collection::btree_map(any::<String>(), any::<i32>(), 0..4),
            note in any::<Option<String>>(),
            status in status(),
        ) -> Order {
            Order { id, customer, cents, ratio, tags, lines, note, status }
        }
    }

    proptest! {
        #[test]
        fn derived_structs_roundtrip(o in order()) {
            let json = Json(o.clone());
            let bytes = json.encode();
            prop_assert!(std::str::from_utf8(&bytes).is_ok());
            prop_assert_eq!(Json::<Order>::decode(&bytes).unwrap().into_inner(), o.clone());
            let field = json.encode_nullable();
            prop_assert_eq!(Json::<Order>::decode_nullable(field.as_deref()).unwrap().0, o.clone());
            // Optional in a record field: a null is None.
            prop_assert_eq!(Option::<Json<Order>>::decode_nullable(None).unwrap(), None);
            // The same bytes any JSON library would read.
            let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(value["customer"].as_str(), Some(o.customer.as_str()));
            prop_assert_eq!(value["cents"].as_i64(), Some(o.cents));
        }

        #[test]
        fn no_bytes_make_decode_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Err(e) = Json::<Order>::decode(&bytes) {
                prop_assert!(matches!(e.kind(), ErrorKind::Deserialization { .. }), "{}", e);
            }
        }
    }

    #[test]
    fn malformed_json_is_a_deserialization_error() {
        for bad in [
            &b"{"[..],
            b"",
            b"\xff\xfe",
            br#"{"id":1}"#,
            br#"{"id":"one","customer":"a"}"#,
            b"[1,2,3]",
            b"null",
        ] {
            let e = Json::<Order>::decode(bad).unwrap_err();
            assert!(matches!(e.kind(), ErrorKind::Deserialization { .. }), "{e}");
            assert!(e.to_string().contains("Order"), "{e}");
        }
        let e = Json::<Order>::decode_nullable(None).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Deserialization { .. }), "{e}");
    }

    #[test]
    fn conveniences() {
        let mut j: Json<Vec<i32>> = vec![1, 2].into();
        j.push(3);
        assert_eq!(j.len(), 3);
        assert_eq!(j.encode(), b"[1,2,3]");
        assert_eq!(j.into_inner(), vec![1, 2, 3]);
    }

    #[test]
    #[should_panic(expected = "does not serialize")]
    fn a_type_that_cannot_be_json_panics_in_encode() {
        let mut m = BTreeMap::new();
        m.insert(vec![1u8], 1);
        let _ = Json(m).encode();
    }
}
