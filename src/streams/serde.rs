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
//! | `Option<T>` | in a record field: null for `None`, `T`'s bytes for `Some`; elsewhere a tag byte first |
//!
//! A record's key or value may be null. Only `()` and `Option<T>` decode a null; for every other
//! type a null is a [`Deserialization`](crate::ErrorKind::Deserialization) error, which the
//! application's [`DeserializationHandler`](super::DeserializationHandler) fails on or skips.

use crate::error::{Error, ErrorKind, Result};

/// Encodes a type to bytes and decodes it back; implemented by every key, value and state type
/// of a streams application.
///
/// # Implementer notes
/// `decode(&encode(x))` must give back a value equal to `x`. `decode` must not panic on any
/// input: bytes come from topics anybody can write to; return
/// [`Deserialization`](crate::ErrorKind::Deserialization) (see [`deserialization_error`]).
/// Equal values must encode to equal bytes: state stores and partitioning compare bytes.
pub trait Serde: Sized {
    /// The bytes of `self`.
    fn encode(&self) -> Vec<u8>;

    /// The value these bytes encode.
    ///
    /// # Errors
    /// [`Deserialization`](crate::ErrorKind::Deserialization) if they encode none.
    fn decode(bytes: &[u8]) -> Result<Self>;

    /// The bytes of `self` in a record's nullable key or value field. By default `Some(encode)`;
    /// `()` and `Option<T>` give null.
    fn encode_nullable(&self) -> Option<Vec<u8>> {
        Some(self.encode())
    }

    /// [`encode`](Self::encode), consuming `self`. Types whose value already is its bytes
    /// (`Vec<u8>`, `String`) hand their buffer over instead of copying it; by default `encode`.
    /// Sinks use it for the record they write, which they own and drop afterwards.
    fn into_encoded(self) -> Vec<u8> {
        self.encode()
    }

    /// [`encode_nullable`](Self::encode_nullable), consuming `self` (see
    /// [`into_encoded`](Self::into_encoded)); by default `encode_nullable`. An override must
    /// give the same bytes (and the same null) as `encode_nullable`.
    fn into_nullable(self) -> Option<Vec<u8>> {
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

impl Serde for Vec<u8> {
    fn encode(&self) -> Vec<u8> {
        self.clone()
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        Ok(bytes.to_vec())
    }
    fn into_encoded(self) -> Vec<u8> {
        self
    }
    fn into_nullable(self) -> Option<Vec<u8>> {
        Some(self)
    }
}

impl Serde for String {
    fn encode(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        String::from_utf8(bytes.to_vec())
            .map_err(|e| deserialization_error(format!("String: invalid UTF-8 ({e})")))
    }
    fn into_encoded(self) -> Vec<u8> {
        self.into_bytes()
    }
    fn into_nullable(self) -> Option<Vec<u8>> {
        Some(self.into_bytes())
    }
}

/// Fixed-width big-endian numbers, Kafka's `IntegerSerde`, `LongSerde`, `DoubleSerde` layouts.
macro_rules! big_endian_serde {
    ($t:ty, $n:literal) => {
        impl Serde for $t {
            #[allow(clippy::big_endian_bytes, reason = "Kafka's serdes are big-endian")]
            fn encode(&self) -> Vec<u8> {
                self.to_be_bytes().to_vec()
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
    fn encode(&self) -> Vec<u8> {
        Vec::new()
    }
    fn decode(_bytes: &[u8]) -> Result<Self> {
        Ok(())
    }
    fn encode_nullable(&self) -> Option<Vec<u8>> {
        None
    }
    fn decode_nullable(_bytes: Option<&[u8]>) -> Result<Self> {
        Ok(())
    }
}

/// In a record's key or value field `None` is a null and `Some(x)` is `x`'s bytes. Elsewhere (a
/// state store value, say) one tag byte comes first: 0 for `None`, 1 for `Some` and `x`'s bytes.
impl<T: Serde> Serde for Option<T> {
    fn encode(&self) -> Vec<u8> {
        match self {
            None => vec![0],
            Some(x) => {
                let mut out = vec![1];
                out.extend(x.encode());
                out
            }
        }
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
    fn encode_nullable(&self) -> Option<Vec<u8>> {
        self.as_ref().map(Serde::encode)
    }
    fn into_nullable(self) -> Option<Vec<u8>> {
        self.map(Serde::into_encoded)
    }
    fn decode_nullable(bytes: Option<&[u8]>) -> Result<Self> {
        bytes.map(T::decode).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip<T: Serde + PartialEq + std::fmt::Debug + Clone>(v: T) {
        assert_eq!(T::decode(&v.encode()).unwrap(), v);
        assert_eq!(
            T::decode_nullable(v.encode_nullable().as_deref()).unwrap(),
            v
        );
        // The consuming encoders give the same bytes as the borrowing ones.
        assert_eq!(v.clone().into_encoded(), v.encode());
        assert_eq!(v.clone().into_nullable(), v.encode_nullable());
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
        assert_eq!(1i32.encode(), [0, 0, 0, 1]);
        assert_eq!(
            (-2i64).encode(),
            [0xff; 7].iter().copied().chain([0xfe]).collect::<Vec<_>>()
        );
        assert_eq!(1.0f64.encode(), [0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(().encode_nullable(), None);
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
}
