//! [`Json<T>`]: keys and values as JSON, for any type that implements serde's `Serialize` and
//! `Deserialize` (feature `json`).
//!
//! The built-in serdes cover Kafka's primitive layouts; records with structure (an order, a
//! user profile) are most often JSON on a topic. Serde is the interface the ecosystem's types
//! already implement, so wrapping a type in `Json` is all it takes to put it in a stream, a
//! table or a store. Bytes that are not JSON of the type are a
//! [`Deserialization`](crate::ErrorKind::Deserialization) error like any other serde's, so the
//! application's [`DeserializationHandler`](crate::streams::DeserializationHandler) fails on them
//! or skips them. A value whose `Serialize` fails is a
//! [`Serialization`](crate::ErrorKind::Serialization) error from `encode`, never a panic.

use std::ops::{Deref, DerefMut};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Result;
use crate::streams::serde::{deserialization_error, serialization_error, Serde};

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
/// # Errors
/// `encode` returns a [`Serialization`](crate::ErrorKind::Serialization) error naming `T` and
/// serde_json's message if `T`'s `Serialize` fails: its implementation returns an error, or it
/// holds a map whose keys are not strings, numbers, booleans or chars (JSON object keys are
/// strings). In an [`App`](crate::streams::App) or a
/// [`TopologyTestDriver`](crate::streams::TopologyTestDriver) that fails the record being
/// processed, as an error from user code would:
///
/// ```
/// use std::collections::HashMap;
/// use riverbed::streams::{Json, Serde};
/// use riverbed::ErrorKind;
///
/// let by_cell = Json(HashMap::from([((0, 1), 7)])); // a tuple is no JSON object key
/// let e = by_cell.encode().unwrap_err();
/// assert!(matches!(e.kind(), ErrorKind::Serialization { .. }), "{e}");
/// ```
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
    fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(&self.0).map_err(|e| {
            serialization_error(format!(
                "Json<{}>: the value does not serialize to JSON ({e})",
                std::any::type_name::<T>()
            ))
        })
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
            let bytes = json.encode().unwrap();
            prop_assert!(std::str::from_utf8(&bytes).is_ok());
            prop_assert_eq!(Json::<Order>::decode(&bytes).unwrap().into_inner(), o.clone());
            let field = json.encode_nullable().unwrap();
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
        assert_eq!(j.encode().unwrap(), b"[1,2,3]");
        assert_eq!(j.into_inner(), vec![1, 2, 3]);
    }

    /// A `Serialize` whose implementation refuses some values, as a hand-written one may.
    #[derive(Debug)]
    struct Refuses(i32);

    impl Serialize for Refuses {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            if self.0 < 0 {
                return Err(serde::ser::Error::custom(
                    "negative amounts are not allowed",
                ));
            }
            s.serialize_i32(self.0)
        }
    }

    impl<'de> Deserialize<'de> for Refuses {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            i32::deserialize(d).map(Refuses)
        }
    }

    #[test]
    fn a_value_that_cannot_be_json_is_a_serialization_error() {
        use std::collections::HashMap;

        let mut non_string_keys = BTreeMap::new();
        non_string_keys.insert(vec![1u8], 1);
        let tuple_keys = HashMap::from([((1, 2), 3)]);
        for (e, type_name) in [
            (Json(non_string_keys).encode().unwrap_err(), "BTreeMap"),
            (Json(tuple_keys.clone()).encode().unwrap_err(), "HashMap"),
            (
                Json(tuple_keys.clone()).encode_nullable().unwrap_err(),
                "HashMap",
            ),
            (
                Json(tuple_keys.clone()).into_encoded().unwrap_err(),
                "HashMap",
            ),
            (Json(tuple_keys).into_nullable().unwrap_err(), "HashMap"),
            (Json(Refuses(-1)).encode().unwrap_err(), "Refuses"),
            (Some(Json(Refuses(-1))).encode().unwrap_err(), "Refuses"),
            (
                Some(Json(Refuses(-1))).encode_nullable().unwrap_err(),
                "Refuses",
            ),
        ] {
            assert!(matches!(e.kind(), ErrorKind::Serialization { .. }), "{e}");
            assert!(e.to_string().contains(type_name), "{e}");
        }
        assert!(Json(Refuses(-1))
            .encode()
            .unwrap_err()
            .to_string()
            .contains("negative amounts are not allowed"));
        // The same type encodes the values it accepts.
        assert_eq!(Json(Refuses(5)).encode().unwrap(), b"5");
        assert_eq!(Json::<Refuses>::decode(b"5").unwrap().0 .0, 5);
    }
}
