//! [`Headers`]: the headers a record carries through a topology.
//!
//! A source gives each record the headers of the input record it read; a processor sees them
//! with [`ProcessorContext::headers`](crate::streams::ProcessorContext::headers) and changes what
//! the records it forwards carry with
//! [`headers_mut`](crate::streams::ProcessorContext::headers_mut) or
//! [`set_headers`](crate::streams::ProcessorContext::set_headers); a sink writes them with the
//! record (so they survive a repartition topic). This is the record-context behaviour of Kafka
//! Streams' Processor API and DSL: every DSL operator forwards the headers of the record it is
//! processing, and records forwarded from a punctuation carry none; but `suppress` forwards
//! each record it held back with the headers it came with (it keeps them in its buffer).
//!
//! Records move between processors at every hop, most of them without headers: an empty
//! [`Headers`] holds no allocation and copies for free, and a non-empty one is shared (a
//! reference count) until something changes it.

use std::sync::Arc;

use crate::error::Result;
use crate::record::codec::put_headers;
use crate::record::HeaderIter;

/// One header: a key and a nullable value.
type Header = (String, Option<Vec<u8>>);

/// An ordered list of record headers (`key`, nullable `value`); keys may repeat, as in the log.
///
/// ```
/// use riverbed::streams::Headers;
///
/// let mut h: Headers = [("trace", "abc"), ("tenant", "eu")].into_iter().collect();
/// h.add("trace", "def").remove("tenant");
/// assert_eq!(h.last_value("trace"), Some(&b"def"[..]));
/// assert_eq!(h.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["trace", "trace"]);
/// assert_eq!(h.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    /// `None` when there are no headers, so that the common header-less record costs nothing
    /// per hop; shared between the copies of a record otherwise, copied on the first change.
    entries: Option<Arc<Vec<Header>>>,
}

impl Headers {
    /// No headers.
    pub fn new() -> Headers {
        Headers::default()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.entries.as_ref().is_none_or(|e| e.is_empty())
    }

    /// The number of headers (repeated keys count each time).
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |e| e.len())
    }

    /// Appends a header (after any with the same key).
    pub fn add(&mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> &mut Headers {
        self.add_nullable(key, Some(value.into()))
    }

    /// Appends a header whose value may be null (`None`), as the log allows.
    pub fn add_nullable(&mut self, key: impl Into<String>, value: Option<Vec<u8>>) -> &mut Headers {
        Arc::make_mut(self.entries.get_or_insert_with(Default::default)).push((key.into(), value));
        self
    }

    /// Removes every header named `key`.
    pub fn remove(&mut self, key: &str) -> &mut Headers {
        if self.iter().any(|(k, _)| k == key) {
            if let Some(e) = self.entries.as_mut() {
                Arc::make_mut(e).retain(|(k, _)| k != key);
            }
            if self.is_empty() {
                self.entries = None;
            }
        }
        self
    }

    /// Removes every header.
    pub fn clear(&mut self) -> &mut Headers {
        self.entries = None;
        self
    }

    /// The value of the last header named `key`: `None` if there is none or its value is null.
    pub fn last_value(&self, key: &str) -> Option<&[u8]> {
        self.iter()
            .rev()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v)
    }

    /// The values of the headers named `key`, in order (`None` for a null value).
    pub fn values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = Option<&'a [u8]>> + 'a {
        self.iter().filter(move |(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Every header in order, as `(key, value or None for a null value)`.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&str, Option<&[u8]>)> + '_ {
        self.entries
            .iter()
            .flat_map(|e| e.iter())
            .map(|(k, v)| (k.as_str(), v.as_deref()))
    }

    /// The headers of a record read from the log. Allocates nothing for a record without any.
    pub(crate) fn read(headers: HeaderIter<'_>) -> Result<Headers> {
        let mut out = Headers::new();
        for h in headers {
            let (k, v) = h?;
            out.add_nullable(k, v.map(<[u8]>::to_vec));
        }
        Ok(out)
    }

    /// Appends the headers in the record layout (FORMAT.md 3.3: `header_count`, then each
    /// header), for a store that keeps them with a record; [`Headers::read`] of
    /// `HeaderIter::split` reads them back.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_headers(out, self.len(), self.iter());
    }

    /// The headers as a producer [`ProducerRecord`](crate::ProducerRecord) holds them; no copy unless another
    /// record still shares them.
    pub(crate) fn into_entries(self) -> Vec<Header> {
        match self.entries {
            None => Vec::new(),
            Some(e) => Arc::try_unwrap(e).unwrap_or_else(|shared| (*shared).clone()),
        }
    }
}

impl<K: Into<String>, V: Into<Vec<u8>>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Headers {
        let mut h = Headers::new();
        for (k, v) in iter {
            h.add(k, v);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_headers_hold_no_allocation_and_copies_share() {
        let mut h = Headers::new();
        assert!(h.entries.is_none() && h.is_empty());
        h.add("a", "1").add_nullable("b", None).add("a", "2");
        let copy = h.clone();
        assert!(Arc::ptr_eq(
            h.entries.as_ref().unwrap(),
            copy.entries.as_ref().unwrap()
        ));
        h.remove("a");
        assert_eq!(h.iter().collect::<Vec<_>>(), [("b", None)]);
        assert_eq!(
            copy.values("a").collect::<Vec<_>>(),
            [Some(&b"1"[..]), Some(&b"2"[..])]
        );
        assert_eq!(copy.last_value("b"), None);
        h.remove("b");
        assert!(h.entries.is_none());
        assert_eq!(copy.clone().into_entries().len(), 3);
    }
}
