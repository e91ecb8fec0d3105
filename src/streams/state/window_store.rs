//! Window stores: windowed keys ([`Window`], [`Windowed`]) and their bytes, which a windowed
//! aggregation's store is keyed by, and the read-only view interactive queries read such a
//! store through ([`ReadOnlyWindowStore`]). The window specifications, which decide which
//! windows a record falls into, are the DSL's ([`TimeWindows`](crate::streams::TimeWindows) and the
//! others).

use std::collections::BTreeMap;
use std::marker::PhantomData;

use crate::error::{Error, Result};
use crate::streams::serde::{deserialization_error, Serde};
use crate::streams::state::store::{split_timestamped, Committed};

/// A window's bounds in milliseconds of event time.
///
/// For [`TimeWindows`](crate::streams::TimeWindows) `end` is exclusive (`[start, end)`, `end =
/// start + size`); for [`SlidingWindows`](crate::streams::SlidingWindows) and
/// [`SessionWindows`](crate::streams::SessionWindows) it is inclusive (`[start, end]`), as in
/// Kafka.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// The first millisecond of the window.
    pub start: i64,
    /// The end (exclusive for time windows, inclusive for sliding and session windows).
    pub end: i64,
}

impl Window {
    /// A window `start..end`.
    pub fn new(start: i64, end: i64) -> Window {
        Window { start, end }
    }
}

/// The key of a windowed aggregation's result: the record key and the window it is for.
///
/// # Byte layout
/// `encode` gives the key's bytes, then the window start, then the window end, each an 8-byte
/// big-endian two's-complement `i64`:
///
/// ```text
/// | key bytes (n) | start (8, big-endian) | end (8, big-endian) |
/// ```
///
/// The key's length is the total length minus 16, so any key bytes decode unambiguously.
/// Kafka's `TimeWindowedSerde` writes only key and start (its deserializer is told the window
/// size) and its `SessionWindowedSerde` writes the end before the start; Riverbed writes both
/// bounds, start first, so one self-describing layout serves every window kind, and all windows
/// of a key are adjacent and ordered by start (for non-negative starts) in a byte-ordered store.
///
/// ```
/// use riverbed::streams::{Serde, Window, Windowed};
///
/// let w = Windowed::new("k".to_string(), Window::new(60_000, 120_000));
/// let bytes = w.encode()?;
/// assert_eq!(bytes.len(), 1 + 16);
/// assert_eq!(&bytes[..1], b"k");
/// assert_eq!(&bytes[1..9], &60_000i64.to_be_bytes());
/// assert_eq!(Windowed::<String>::decode(&bytes)?, w);
/// # Ok::<(), riverbed::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    /// The record key.
    pub key: K,
    /// The window.
    pub window: Window,
}

impl<K> Windowed<K> {
    /// A windowed key.
    pub fn new(key: K, window: Window) -> Self {
        Windowed { key, window }
    }
}

/// The encoded windowed key for `key_bytes` and `w`. The bounds are written as `i64`'s serde
/// writes them, directly: a number always has its bytes, so this cannot fail.
#[allow(
    clippy::big_endian_bytes,
    reason = "the layout is i64's serde's, big-endian"
)]
pub(crate) fn windowed_bytes(key_bytes: &[u8], w: Window) -> Vec<u8> {
    let mut out = Vec::with_capacity(key_bytes.len() + 16);
    out.extend_from_slice(key_bytes);
    out.extend(w.start.to_be_bytes());
    out.extend(w.end.to_be_bytes());
    out
}

/// Splits an encoded windowed key into key bytes and window.
pub(crate) fn split_windowed(bytes: &[u8]) -> Result<(&[u8], Window)> {
    let Some(n) = bytes.len().checked_sub(16) else {
        return Err(deserialization_error(format!(
            "Windowed: expected at least 16 bytes (key, start, end), found {}",
            bytes.len()
        )));
    };
    let start = i64::decode(&bytes[n..n + 8])?;
    let end = i64::decode(&bytes[n + 8..])?;
    Ok((&bytes[..n], Window { start, end }))
}

impl<K: Serde> Serde for Windowed<K> {
    fn encode(&self) -> Result<Vec<u8>> {
        Ok(windowed_bytes(&self.key.encode()?, self.window))
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let (k, window) = split_windowed(bytes)?;
        Ok(Windowed {
            key: K::decode(k)?,
            window,
        })
    }
}

/// A read-only view of a window store's committed state across all tasks, for interactive
/// queries ([`App::window_store`](crate::streams::App::window_store),
/// [`TopologyTestDriver::window_store`](crate::streams::TopologyTestDriver::window_store)). Like
/// [`ReadOnlyKeyValueStore`](crate::streams::ReadOnlyKeyValueStore) it sees committed state only.
pub struct ReadOnlyWindowStore<K, V> {
    name: String,
    committed: Committed,
    /// The rows hold their timestamp before the value (a time-window aggregation's store); the
    /// queries return the plain values.
    timestamped: bool,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> std::fmt::Debug for ReadOnlyWindowStore<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOnlyWindowStore")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<K: Serde, V: Serde> ReadOnlyWindowStore<K, V> {
    pub(crate) fn new(name: &str, committed: Committed, timestamped: bool) -> Self {
        ReadOnlyWindowStore {
            name: name.to_string(),
            committed,
            timestamped,
            _types: PhantomData,
        }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The windows of `key` that start in `[time_from, time_to]` (both inclusive, Kafka's
    /// `WindowStore::fetch`), with their aggregates, ordered by start then end.
    ///
    /// # Errors
    /// [`Deserialization`](crate::ErrorKind::Deserialization) if the stored bytes are not a
    /// windowed key and a `V` (the store is not a window store of these types);
    /// [`Serialization`](crate::ErrorKind::Serialization) if `key` does not encode.
    pub fn fetch(
        &self,
        key: impl Into<K>,
        time_from: i64,
        time_to: i64,
    ) -> Result<Vec<(Window, V)>> {
        Ok(self
            .of_key(key)?
            .into_iter()
            .filter(|(w, _)| w.start >= time_from && w.start <= time_to)
            .collect())
    }

    /// The aggregate of `key`'s window `window` and its row timestamp (Kafka's
    /// `ReadOnlyWindowStore<K, ValueAndTimestamp<V>>::fetch(key, time)` of a timestamped window
    /// store): the latest timestamp of the records aggregated into the window. A row restored
    /// from a changelog written before rows kept timestamps, and not updated since, has the
    /// timestamp `i64::MIN` (unknown).
    ///
    /// # Errors
    /// [`InvalidArgument`](crate::ErrorKind::InvalidArgument) for a store that keeps no row
    /// timestamps (a sliding or session window aggregation's); otherwise as
    /// [`fetch`](Self::fetch).
    pub fn fetch_with_timestamp(
        &self,
        key: impl Into<K>,
        window: Window,
    ) -> Result<Option<(V, i64)>> {
        if !self.timestamped {
            return Err(Error::invalid(format!(
                "window store {:?} keeps no row timestamps (only time-window aggregations do)",
                self.name
            )));
        }
        let wk = windowed_bytes(&key.into().encode()?, window);
        let committed = self.committed.read();
        match committed.values().find_map(|m| m.get(&wk)) {
            Some(stored) => {
                let (ts, value) = split_timestamped(stored)?;
                Ok(Some((V::decode(value)?, ts)))
            }
            None => Ok(None),
        }
    }

    /// The sessions of `key` that end at or after `earliest_end` and start at or before
    /// `latest_start` (Kafka's `SessionStore::findSessions`), ordered by start then end.
    ///
    /// # Errors
    /// As [`fetch`](Self::fetch).
    pub fn find_sessions(
        &self,
        key: impl Into<K>,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(Window, V)>> {
        Ok(self
            .of_key(key)?
            .into_iter()
            .filter(|(w, _)| w.end >= earliest_end && w.start <= latest_start)
            .collect())
    }

    /// Every window of every key starting in `[time_from, time_to]`, ordered by key bytes, then
    /// start, then end.
    ///
    /// # Errors
    /// As [`fetch`](Self::fetch).
    pub fn fetch_all(&self, time_from: i64, time_to: i64) -> Result<Vec<(Windowed<K>, V)>> {
        Ok(self
            .all()?
            .into_iter()
            .filter(|(w, _)| w.window.start >= time_from && w.window.start <= time_to)
            .collect())
    }

    /// Every window in the store, ordered by key bytes, then start, then end.
    ///
    /// # Errors
    /// As [`fetch`](Self::fetch).
    pub fn all(&self) -> Result<Vec<(Windowed<K>, V)>> {
        let committed = self.committed.read();
        let mut raw: BTreeMap<(Vec<u8>, Window), &Vec<u8>> = BTreeMap::new();
        for m in committed.values() {
            for (k, v) in m.iter() {
                let (kb, w) = split_windowed(k)?;
                raw.insert((kb.to_vec(), w), v);
            }
        }
        raw.into_iter()
            .map(|((kb, window), v)| {
                Ok((
                    Windowed {
                        key: K::decode(&kb)?,
                        window,
                    },
                    self.decode_value(v)?,
                ))
            })
            .collect()
    }

    /// The value of a stored row (the bytes after its timestamp in a timestamped store).
    fn decode_value(&self, stored: &[u8]) -> Result<V> {
        if self.timestamped {
            V::decode(split_timestamped(stored)?.1)
        } else {
            V::decode(stored)
        }
    }

    fn of_key(&self, key: impl Into<K>) -> Result<Vec<(Window, V)>> {
        let kb = key.into().encode()?;
        let lo = windowed_bytes(&kb, Window::new(0, 0));
        let hi = windowed_bytes(&kb, Window::new(-1, -1));
        let committed = self.committed.read();
        let mut out = Vec::new();
        for m in committed.values() {
            // All-zero to all-one suffixes bound every window of the key (the key's length
            // is fixed by the 16-byte suffix, so longer keys in the range are skipped).
            for (k, v) in m.range(lo.clone()..=hi.clone()) {
                let (kb2, w) = split_windowed(k)?;
                if kb2 == kb.as_slice() {
                    out.push((w, self.decode_value(v)?));
                }
            }
        }
        out.sort_by_key(|(w, _)| *w);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windowed_layout_and_errors() {
        let w = Windowed::new(7i32, Window::new(-5, 9));
        let b = w.encode().unwrap();
        assert_eq!(b.len(), 4 + 16);
        // The same bytes as i64's serde, the layout the docs promise.
        assert_eq!(b[4..12], (-5i64).encode().unwrap());
        assert_eq!(Windowed::<i32>::decode(&b).unwrap(), w);
        assert!(Windowed::<i32>::decode(&b[..10]).is_err());
    }
}
