//! Serdes: how keys, values and stored state become bytes and back.
//!
//! A type picks its serde by implementing [`Serde`], so `builder.stream::<String, i64>(topic)`
//! needs no serde arguments. The built-in byte layouts are Kafka's, so a Java application reading
//! the same topics with Kafka's `StringSerde`, `LongSerde`, ... sees the same values:
//!
//! | type | bytes |
//! |---|---|
//! | `Vec<u8>` | as is |
//! | `String` | UTF-8 |
//! | `i32`, `i64`, `u64`, `f64` | 4 or 8 bytes, big-endian (IEEE 754 for `f64`) |
//! | `()` | null (Kafka's `VoidSerde`): a null key or value |
//! | `Option<T>` | in a record field: null for `None`, `T`'s bytes for `Some`; elsewhere a tag byte
//! first |
//!
//! A record's key or value may be null. Only `()` and `Option<T>` decode a null; for every other
//! type a null is a [`Deserialization`](crate::ErrorKind::Deserialization) error, which the
//! application's [`DeserializationHandler`](crate::streams::DeserializationHandler) fails on or
//! skips.
//!
//! Encoding can fail too, for a value that has no bytes in its serde's format (see
//! [`Json`](crate::streams::Json)): [`Serde::encode`] returns a
//! [`Serialization`](crate::ErrorKind::Serialization) error, which fails the record being
//! processed like an error in user code. The built-in serdes never fail to encode.

use crate::error::{Error, ErrorKind, Result};

/// Encodes a type to bytes and decodes it back; implemented by every key, value and state type
/// of a streams application.
///
/// # Implementer notes
/// `decode(&encode(x)?)` must give back a value equal to `x`. `decode` must not panic on any
/// input: bytes come from topics anybody can write to; return
/// [`Deserialization`](crate::ErrorKind::Deserialization) (see [`deserialization_error`]).
/// Equal values must encode to equal bytes: state stores and partitioning compare bytes.
///
/// `encode` may fail only when the value has no bytes in the serde's format (a
/// [`Json`](crate::streams::Json) map whose keys are not strings, a `Serialize` implementation that
/// returns an error, a value a custom format cannot represent); it returns
/// [`Serialization`](crate::ErrorKind::Serialization) (see [`serialization_error`]) and must not
/// panic. It fails the same way for the same value every time. The built-in serdes (`Vec<u8>`,
/// `String`, the numbers, `()`) never fail; `Option<T>` fails only where `T` does.
///
/// A failed encode fails whatever needed the bytes, like an error returned by user code. For
/// the record being processed it becomes a
/// [`StreamsProcessing`](crate::ErrorKind::StreamsProcessing) error naming the task and node,
/// whose reason is the `Serialization` message: the [`App`](crate::streams::App)'s
/// [`thread_error_handler`](crate::streams::StreamsConfig::thread_error_handler) decides what
/// happens next (by default the application stops; nothing the failed record would have written is
/// committed) and
/// [`TopologyTestDriver::pipe_input`](crate::streams::TopologyTestDriver::pipe_input) returns it.
/// An interactive query whose key does not encode returns the `Serialization` error itself.
pub trait Serde: Sized {
    /// The bytes of `self`.
    ///
    /// # Errors
    /// [`Serialization`](crate::ErrorKind::Serialization) if `self` has no bytes in this
    /// serde's format (never for the built-in serdes).
    fn encode(&self) -> Result<Vec<u8>>;

    /// The value these bytes encode.
    ///
    /// # Errors
    /// [`Deserialization`](crate::ErrorKind::Deserialization) if they encode none.
    fn decode(bytes: &[u8]) -> Result<Self>;

    /// The bytes of `self` in a record's nullable key or value field. By default `Some(encode)`;
    /// `()` and `Option<T>` give null.
    ///
    /// # Errors
    /// As [`encode`](Self::encode).
    fn encode_nullable(&self) -> Result<Option<Vec<u8>>> {
        self.encode().map(Some)
    }

    /// [`encode`](Self::encode), consuming `self`. Types whose value already is its bytes
    /// (`Vec<u8>`, `String`) hand their buffer over instead of copying it; by default `encode`.
    /// Sinks use it for the record they write, which they own and drop afterwards.
    ///
    /// # Errors
    /// As [`encode`](Self::encode).
    fn into_encoded(self) -> Result<Vec<u8>> {
        self.encode()
    }

    /// [`encode_nullable`](Self::encode_nullable), consuming `self` (see
    /// [`into_encoded`](Self::into_encoded)); by default `encode_nullable`. An override must
    /// give the same bytes (and the same null, and the same error) as `encode_nullable`.
    ///
    /// # Errors
    /// As [`encode`](Self::encode).
    fn into_nullable(self) -> Result<Option<Vec<u8>>> {
        self.encode_nullable()
    }

    /// Decodes a record's nullable key or value field. By default a null is an error.
    ///
    /// # Errors
    /// [`Deserialization`](crate::ErrorKind::Deserialization) for a null or bad bytes.
    fn decode_nullable(bytes: Option<&[u8]>) -> Result<Self> {
        match bytes {
            Some(b) => Self::decode(b),
            None => Err(deserialization_error(format!(
                "null, but {} has no null (use Option<{}> or ())",
                std::any::type_name::<Self>(),
                std::any::type_name::<Self>()
            ))),
        }
    }
}

/// The error a [`Serde::decode`] returns for bytes it cannot decode.
pub fn deserialization_error(reason: impl Into<String>) -> Error {
    ErrorKind::Deserialization {
        reason: reason.into(),
    }
    .into()
}

/// The error a [`Serde::encode`] returns for a value it cannot encode. Name the type and say
/// why, e.g. `"Money: amounts above 2^53 cents have no exact JSON number"`.
pub fn serialization_error(reason: impl Into<String>) -> Error {
    ErrorKind::Serialization {
        reason: reason.into(),
    }
    .into()
}

impl Serde for Vec<u8> {
    fn encode(&self) -> Result<Vec<u8>> {
        Ok(self.clone())
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        Ok(bytes.to_vec())
    }
    fn into_encoded(self) -> Result<Vec<u8>> {
        Ok(self)
    }
    fn into_nullable(self) -> Result<Option<Vec<u8>>> {
        Ok(Some(self))
    }
}

impl Serde for String {
    fn encode(&self) -> Result<Vec<u8>> {
        Ok(self.as_bytes().to_vec())
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        String::from_utf8(bytes.to_vec())
            .map_err(|e| deserialization_error(format!("String: invalid UTF-8 ({e})")))
    }
    fn into_encoded(self) -> Result<Vec<u8>> {
        Ok(self.into_bytes())
    }
    fn into_nullable(self) -> Result<Option<Vec<u8>>> {
        Ok(Some(self.into_bytes()))
    }
}

/// Fixed-width big-endian numbers, Kafka's `IntegerSerde`, `LongSerde`, `DoubleSerde` layouts.
macro_rules! big_endian_serde {
    ($t:ty, $n:literal) => {
        impl Serde for $t {
            #[allow(clippy::big_endian_bytes, reason = "Kafka's serdes are big-endian")]
            fn encode(&self) -> Result<Vec<u8>> {
                Ok(self.to_be_bytes().to_vec())
            }
            #[allow(clippy::big_endian_bytes, reason = "Kafka's serdes are big-endian")]
            fn decode(bytes: &[u8]) -> Result<Self> {
                let arr: [u8; $n] = bytes.try_into().map_err(|_| {
                    deserialization_error(format!(
                        "{}: expected {} bytes, found {}",
                        stringify!($t),
                        $n,
                        bytes.len()
                    ))
                })?;
                Ok(<$t>::from_be_bytes(arr))
            }
        }
    };
}

big_endian_serde!(i32, 4);
big_endian_serde!(i64, 8);
big_endian_serde!(u64, 8);
big_endian_serde!(f64, 8);

impl Serde for () {
    fn encode(&self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }
    fn decode(_bytes: &[u8]) -> Result<Self> {
        Ok(())
    }
    fn encode_nullable(&self) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
    fn decode_nullable(_bytes: Option<&[u8]>) -> Result<Self> {
        Ok(())
    }
}

/// In a record's key or value field `None` is a null and `Some(x)` is `x`'s bytes. Elsewhere (a
/// state store value, say) one tag byte comes first: 0 for `None`, 1 for `Some` and `x`'s bytes.
impl<T: Serde> Serde for Option<T> {
    fn encode(&self) -> Result<Vec<u8>> {
        Ok(match self {
            None => vec![0],
            Some(x) => {
                let mut out = vec![1];
                out.extend(x.encode()?);
                out
            }
        })
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        match bytes.split_first() {
            Some((0, [])) => Ok(None),
            Some((1, rest)) => T::decode(rest).map(Some),
            _ => Err(deserialization_error(format!(
                "Option: expected a tag byte 0 (None) or 1 (Some), found {:?}",
                bytes.first()
            ))),
        }
    }
    fn encode_nullable(&self) -> Result<Option<Vec<u8>>> {
        self.as_ref().map(Serde::encode).transpose()
    }
    fn into_nullable(self) -> Result<Option<Vec<u8>>> {
        self.map(Serde::into_encoded).transpose()
    }
    fn decode_nullable(bytes: Option<&[u8]>) -> Result<Self> {
        bytes.map(T::decode).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip<T: Serde + PartialEq + std::fmt::Debug + Clone>(v: T) {
        assert_eq!(T::decode(&v.encode().unwrap()).unwrap(), v);
        assert_eq!(
            T::decode_nullable(v.encode_nullable().unwrap().as_deref()).unwrap(),
            v
        );
        // The consuming encoders give the same bytes as the borrowing ones.
        assert_eq!(v.clone().into_encoded().unwrap(), v.encode().unwrap());
        assert_eq!(
            v.clone().into_nullable().unwrap(),
            v.encode_nullable().unwrap()
        );
    }

    #[test]
    fn builtins_roundtrip() {
        roundtrip(vec![0u8, 255, 7]);
        roundtrip(String::from("grüße"));
        roundtrip(-5i32);
        roundtrip(i64::MIN);
        roundtrip(u64::MAX);
        roundtrip(-0.5f64);
        roundtrip(());
        roundtrip(Some(3i64));
        roundtrip(None::<i64>);
        roundtrip(Some(String::from("x")));
        roundtrip(None::<Vec<u8>>);
    }

    #[test]
    fn layouts_match_kafka() {
        assert_eq!(1i32.encode().unwrap(), [0, 0, 0, 1]);
        assert_eq!(
            (-2i64).encode().unwrap(),
            [0xff; 7].iter().copied().chain([0xfe]).collect::<Vec<_>>()
        );
        assert_eq!(1.0f64.encode().unwrap(), [0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(().encode_nullable().unwrap(), None);
    }

    #[test]
    fn bad_bytes_are_typed_errors() {
        for e in [
            i64::decode(&[1, 2, 3]).unwrap_err(),
            String::decode(&[0xff, 0xfe]).unwrap_err(),
            String::decode_nullable(None).unwrap_err(),
        ] {
            assert!(matches!(e.kind(), ErrorKind::Deserialization { .. }), "{e}");
        }
    }

    /// Refuses odd numbers, to check the provided methods and `Option` pass the error on.
    #[derive(Debug)]
    struct EvenOnly(i64);

    impl Serde for EvenOnly {
        fn encode(&self) -> Result<Vec<u8>> {
            if self.0 % 2 != 0 {
                return Err(serialization_error(format!("EvenOnly: {} is odd", self.0)));
            }
            self.0.encode()
        }
        fn decode(bytes: &[u8]) -> Result<Self> {
            i64::decode(bytes).map(EvenOnly)
        }
    }

    #[test]
    fn encode_errors_pass_through_the_provided_methods_and_option() {
        for e in [
            EvenOnly(3).encode().unwrap_err(),
            EvenOnly(3).encode_nullable().unwrap_err(),
            EvenOnly(3).into_encoded().unwrap_err(),
            EvenOnly(3).into_nullable().unwrap_err(),
            Some(EvenOnly(3)).encode().unwrap_err(),
            Some(EvenOnly(3)).encode_nullable().unwrap_err(),
            Some(EvenOnly(3)).into_nullable().unwrap_err(),
        ] {
            assert!(matches!(e.kind(), ErrorKind::Serialization { .. }), "{e}");
            assert!(e.to_string().contains("EvenOnly: 3 is odd"), "{e}");
        }
        assert_eq!(
            Some(EvenOnly(4)).encode_nullable().unwrap(),
            Some(4i64.encode().unwrap())
        );
        assert_eq!(None::<EvenOnly>.encode_nullable().unwrap(), None);
    }
}
