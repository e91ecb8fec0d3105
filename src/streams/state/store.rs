//! State stores: an in-memory key-value map per task, backed by a compacted changelog topic.
//!
//! A task's store ([`KeyValueStore`], what processors see) holds the working state in a
//! `BTreeMap` of serialized keys and values, and remembers which keys changed since the last
//! commit. At commit the changed keys go to the changelog topic `<app-id>-<store>-changelog`
//! (partition = the task's input partition; a deletion is a tombstone) and into the committed
//! view that interactive queries read ([`ReadOnlyKeyValueStore`]). A task that starts (first run,
//! restart, or after a rebalance moved it) restores its stores from the changelog before it
//! processes anything, so state survives restarts and moves with its partition.
//!
//! **Sharing between the working state and the committed view.** Right after a restore the two
//! are equal, so the task publishes its restored map to the view by sharing it (an `Arc`), not
//! by copying it: interactive queries can read a large restored store as soon as it is loaded.
//! The first write to the working state copies the map (copy-on-write, `Arc::make_mut`), so
//! the view keeps showing the committed state only; from then on each side owns its map and
//! neither is copied again (a commit applies the changed keys to the view's map in place). A
//! store the task never writes is never copied.
//!
//! **Timestamped stores.** The stores of the DSL's tables and aggregations, time-window
//! (tumbling and hopping) aggregations included, keep each row's timestamp (Kafka's
//! timestamped key-value and window stores, KIP-258 and KIP-259): in memory and in checkpoint
//! snapshots a row's bytes are the timestamp (8 bytes, big-endian i64) followed by the
//! serialized value, as Kafka lays them out. The changelog keeps the plain value and carries the
//! row's timestamp as the changelog record's own timestamp, marked by the header
//! [`ROW_TIMESTAMP_HEADER`] (FORMAT.md 8.6); a changelog record without that header (written
//! before timestamps were kept) restores a row whose timestamp is unknown, `i64::MIN`, which
//! the next update's timestamp replaces. Reads through [`KeyValueStore`] and
//! [`ReadOnlyKeyValueStore`] (and [`ReadOnlyWindowStore`](crate::streams::ReadOnlyWindowStore))
//! strip the timestamp, so queries see plain values. The stores of sliding and session windows stay
//! plain: their results' timestamps follow from the windows' bounds and records.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::marker::PhantomData;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::Result;
use crate::streams::serde::{deserialization_error, Serde};

/// The header that marks a changelog record of a timestamped store whose record timestamp is
/// the row's timestamp (FORMAT.md 8.6).
pub(crate) const ROW_TIMESTAMP_HEADER: &str = "riverbed.row-timestamp";

/// The timestamp of a row restored without one (a changelog written before rows kept their
/// timestamps): below every real timestamp, so the next update's timestamp replaces it.
pub(crate) const UNKNOWN_TIMESTAMP: i64 = i64::MIN;

/// Splits a timestamped store's row bytes into the row's timestamp and the value bytes.
///
/// # Errors
/// [`Deserialization`](crate::ErrorKind::Deserialization) for fewer than 8 bytes.
#[allow(clippy::big_endian_bytes, reason = "Kafka's timestamped-store layout")]
pub(crate) fn split_timestamped(bytes: &[u8]) -> Result<(i64, &[u8])> {
    match bytes.split_first_chunk::<8>() {
        Some((ts, value)) => Ok((i64::from_be_bytes(*ts), value)),
        None => Err(deserialization_error(format!(
            "a timestamped store row of {} bytes; expected an 8-byte timestamp, then the value",
            bytes.len()
        ))),
    }
}

/// Overwrites `row` with the timestamped layout of `(timestamp, value)`, reusing its buffer.
#[allow(clippy::big_endian_bytes, reason = "Kafka's timestamped-store layout")]
pub(crate) fn write_timestamped(row: &mut Vec<u8>, timestamp: i64, value: &[u8]) {
    row.clear();
    row.reserve(8 + value.len());
    row.extend_from_slice(&timestamp.to_be_bytes());
    row.extend_from_slice(value);
}

fn timestamped_row(timestamp: i64, value: &[u8]) -> Vec<u8> {
    let mut row = Vec::new();
    write_timestamped(&mut row, timestamp, value);
    row
}

/// The key under which a store's stream time travels in its changelog and its checkpoint
/// snapshots (FORMAT.md 8.5): 11 bytes, shorter than any windowed key (16 bytes or more), so it
/// never collides with a window or a join record. In memory the stream time is no row (see
/// [`KvState::stream_time`]).
pub(crate) const STREAM_TIME_KEY: &[u8] = b"stream-time";

/// The name of a store's changelog topic.
pub(crate) fn changelog_topic(app_id: &str, store: &str) -> String {
    format!("{app_id}-{store}-changelog")
}

/// A task's working copy of one store.
#[derive(Debug, Default)]
pub(crate) struct KvState {
    /// Read freely through the `Arc`; every write goes through [`KvState::data_mut`], which
    /// copies the map first if the committed view still shares it (see the module docs).
    pub data: Arc<BTreeMap<Vec<u8>, Vec<u8>>>,
    /// Keys changed since the last commit; their new value is the one in `data` (absent:
    /// deleted). A hash set, not a map of values: an update of a key already dirty (most
    /// updates of an aggregation) costs one hash lookup and no copy of the value; the values
    /// are read from `data` at commit, and the keys sorted there (the changelog order).
    pub dirty: HashSet<Vec<u8>>,
    /// The rows carry their timestamp (see the module docs): the store of a DSL table or
    /// aggregation.
    pub timestamped: bool,
    /// The store keeps its operator's stream time (a windowed aggregation's store, a
    /// stream-stream join's buffers; see [`stream_time`](Self::stream_time)).
    pub keeps_stream_time: bool,
    stream_time: Option<i64>,
    /// The stream time changed since the last commit: the changelog gets it.
    stream_time_dirty: bool,
    /// The stream time as the changelog carries it (i64's serde: 8 bytes, big-endian).
    stream_time_bytes: [u8; 8],
}

impl KvState {
    /// An empty store: `timestamped` rows, keeping a stream time if `keeps_stream_time`.
    pub fn new(timestamped: bool, keeps_stream_time: bool) -> KvState {
        KvState {
            timestamped,
            keeps_stream_time,
            ..KvState::default()
        }
    }

    /// The working map, for a write: copied first if the committed view shares it.
    pub fn data_mut(&mut self) -> &mut BTreeMap<Vec<u8>, Vec<u8>> {
        Arc::make_mut(&mut self.data)
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        // An update of a key already present (the common case for aggregations) keeps the
        // stored key instead of inserting a copy.
        let data = self.data_mut();
        match data.get_mut(&key) {
            Some(slot) => *slot = value,
            None => {
                data.insert(key.clone(), value);
            }
        }
        // A key already dirty stays as it is (the new key buffer is dropped).
        self.dirty.insert(key);
    }

    /// Read-modify-write of one key with one search of the working map: `step` gets the stored
    /// bytes and returns the new ones (stored, and marked dirty) and anything for the caller.
    pub fn update<R>(
        &mut self,
        key: Vec<u8>,
        step: impl FnOnce(Option<&[u8]>) -> Result<(Vec<u8>, R)>,
    ) -> Result<R> {
        let data = self.data_mut();
        let out = match data.get_mut(&key) {
            Some(slot) => {
                let (value, out) = step(Some(slot))?;
                *slot = value;
                out
            }
            None => {
                let (value, out) = step(None)?;
                data.insert(key.clone(), value);
                out
            }
        };
        self.dirty.insert(key);
        Ok(out)
    }

    pub fn delete(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        let old = self.data_mut().remove(key);
        self.dirty.insert(key.to_vec());
        old
    }

    /// Read-modify-write of one row of a timestamped store: `step` gets the stored timestamp
    /// and value bytes and returns the new ones (written over the stored row's buffer, so an
    /// update allocates nothing beyond the new value's encoding).
    pub fn update_timestamped<R>(
        &mut self,
        key: Vec<u8>,
        step: impl FnOnce(Option<(i64, &[u8])>) -> Result<(i64, Vec<u8>, R)>,
    ) -> Result<R> {
        let data = self.data_mut();
        let out = match data.get_mut(&key) {
            Some(slot) => {
                let (ts, value, out) = step(Some(split_timestamped(slot)?))?;
                write_timestamped(slot, ts, &value);
                out
            }
            None => {
                let (ts, value, out) = step(None)?;
                data.insert(key.clone(), timestamped_row(ts, &value));
                out
            }
        };
        self.dirty.insert(key);
        Ok(out)
    }

    /// The stream time of the operator that owns the store (the largest record timestamp it
    /// has seen), which decides which windows have closed; `None` before its first record.
    /// It is metadata of the store, not a row: reads, queries and the operators' scans of the
    /// rows never meet it. It survives restarts and moves: the changelog and checkpoint
    /// snapshots carry it as the row [`STREAM_TIME_KEY`] (FORMAT.md 8.5), the layout earlier
    /// versions kept in memory too, so their changelogs and snapshots restore it unchanged.
    pub fn stream_time(&self) -> Option<i64> {
        self.stream_time
    }

    /// Sets the stream time (see [`stream_time`](Self::stream_time)); the next commit writes
    /// it to the changelog.
    #[allow(
        clippy::big_endian_bytes,
        reason = "the layout is i64's serde's, big-endian"
    )]
    pub fn set_stream_time(&mut self, t: i64) {
        self.stream_time = Some(t);
        self.stream_time_bytes = t.to_be_bytes();
        self.stream_time_dirty = true;
    }

    /// The stream time's changelog record if it changed since the last commit: its value
    /// bytes and, in a timestamped store, its row timestamp (the stream time itself).
    pub fn stream_time_change(&self) -> Option<(&[u8], Option<i64>)> {
        let t = self.stream_time.filter(|_| self.stream_time_dirty)?;
        Some((&self.stream_time_bytes, self.timestamped.then_some(t)))
    }

    /// Marks the stream time committed (it went to the changelog).
    pub fn stream_time_committed(&mut self) {
        self.stream_time_dirty = false;
    }

    /// Reads a stream time from its changelog value (i64's serde).
    #[allow(
        clippy::big_endian_bytes,
        reason = "the layout is i64's serde's, big-endian"
    )]
    fn restore_stream_time(&mut self, value: Option<&[u8]>) -> Result<()> {
        match value {
            Some(v) => {
                let t = i64::decode(v)?;
                self.stream_time = Some(t);
                self.stream_time_bytes = t.to_be_bytes();
            }
            None => self.stream_time = None,
        }
        Ok(())
    }

    /// Replaces the contents with a checkpoint snapshot's; the snapshot's stream-time row, if
    /// any, becomes the stream time.
    ///
    /// # Errors
    /// [`Deserialization`](crate::ErrorKind::Deserialization) for a stream-time row that is no
    /// stream time (the store is not restored then).
    pub fn load_snapshot(&mut self, mut data: BTreeMap<Vec<u8>, Vec<u8>>) -> Result<()> {
        if self.keeps_stream_time {
            if let Some(row) = data.remove(STREAM_TIME_KEY) {
                let (value, _) = self.row(&row)?;
                self.restore_stream_time(Some(value))?;
            }
        }
        self.data = Arc::new(data);
        Ok(())
    }

    /// The contents as a checkpoint snapshot holds them: the rows, plus the stream time as the
    /// row [`STREAM_TIME_KEY`] (timestamped like the other rows in a timestamped store).
    pub fn snapshot_data(&self) -> Cow<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        match self.stream_time.filter(|_| self.keeps_stream_time) {
            None => Cow::Borrowed(&*self.data),
            Some(t) => {
                let mut data = (*self.data).clone();
                let row = if self.timestamped {
                    timestamped_row(t, &self.stream_time_bytes)
                } else {
                    self.stream_time_bytes.to_vec()
                };
                data.insert(STREAM_TIME_KEY.to_vec(), row);
                Cow::Owned(data)
            }
        }
    }

    /// Applies a changelog record (no dirty tracking: it is committed already). `timestamp`
    /// is the row's timestamp the record carries (`None`: it carries none); a plain store
    /// ignores it. A store that keeps a stream time takes the record of [`STREAM_TIME_KEY`]
    /// as its stream time.
    ///
    /// # Errors
    /// [`Deserialization`](crate::ErrorKind::Deserialization) for a stream-time record whose
    /// value is no i64.
    pub fn restore(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        timestamp: Option<i64>,
    ) -> Result<()> {
        if self.keeps_stream_time && key == STREAM_TIME_KEY {
            return self.restore_stream_time(value);
        }
        let timestamped = self.timestamped;
        let data = self.data_mut();
        match value {
            Some(v) if timestamped => data.insert(
                key.to_vec(),
                timestamped_row(timestamp.unwrap_or(UNKNOWN_TIMESTAMP), v),
            ),
            Some(v) => data.insert(key.to_vec(), v.to_vec()),
            None => data.remove(key),
        };
        Ok(())
    }

    /// The value bytes of a stored row (without its timestamp in a timestamped store) and the
    /// row's timestamp (`None` in a plain store).
    pub fn row<'r>(&self, stored: &'r [u8]) -> Result<(&'r [u8], Option<i64>)> {
        if self.timestamped {
            let (ts, value) = split_timestamped(stored)?;
            Ok((value, Some(ts)))
        } else {
            Ok((stored, None))
        }
    }
}

/// The committed contents of one store: one map per task (input partition). Shared by the tasks
/// that write it at commit and the query handles that read it. A partition's map may be shared
/// with its task's working state until the task's first write (see the module docs); writers
/// go through `Arc::make_mut`.
pub(crate) type Committed = Arc<RwLock<BTreeMap<u32, Arc<BTreeMap<Vec<u8>, Vec<u8>>>>>>;

/// Applies a record of a global table's topic to the table's store `data` (one map, under
/// partition 0, so that interactive queries read it like any store): a value replaces the
/// key's, a tombstone deletes it.
pub(crate) fn global_apply(data: &Committed, key: &[u8], value: Option<&[u8]>) {
    let mut data = data.write();
    // The global store's map is never shared with a task's working state, so this never
    // copies it.
    let map = Arc::make_mut(data.entry(0).or_default());
    match value {
        Some(v) => map.insert(key.to_vec(), v.to_vec()),
        None => map.remove(key),
    };
}

/// The current value of `key` in a global table's store `data`.
pub(crate) fn global_get(data: &Committed, key: &[u8]) -> Option<Vec<u8>> {
    data.read().get(&0).and_then(|m| m.get(key).cloned())
}

/// The committed view of every store of an application, by store name.
pub(crate) type Registry = Arc<HashMap<String, Committed>>;

/// A row of a store: its value and timestamp.
pub(crate) type Row<V> = (V, i64);

/// A task's state store as a processor sees it: typed reads and writes of the task's working
/// state. Writes reach the changelog and interactive queries at the next commit.
///
/// The store of a DSL table or aggregation keeps each row's timestamp (see the module docs):
/// reads return the plain value, and [`put`](Self::put) gives the row the timestamp of the
/// record being processed.
pub struct KeyValueStore<'a, K, V> {
    state: &'a mut KvState,
    /// The timestamp `put` gives a row of a timestamped store: the current record's.
    record_timestamp: i64,
    _types: PhantomData<fn(K, V)>,
}

impl<'a, K: Serde, V: Serde> KeyValueStore<'a, K, V> {
    pub(crate) fn new(state: &'a mut KvState, record_timestamp: Option<i64>) -> Self {
        KeyValueStore {
            state,
            record_timestamp: record_timestamp.unwrap_or(UNKNOWN_TIMESTAMP),
            _types: PhantomData,
        }
    }

    /// The value stored for `key`.
    ///
    /// # Errors
    /// [`Deserialization`](crate::ErrorKind::Deserialization) if the stored bytes do not decode
    /// as `V` (the store was written with another type);
    /// [`Serialization`](crate::ErrorKind::Serialization) if `key` does not encode.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        Ok(self.get_timestamped(key)?.map(|(v, _)| v))
    }

    /// The value stored for `key` and the row's timestamp (`UNKNOWN_TIMESTAMP` in a plain
    /// store).
    pub(crate) fn get_timestamped(&self, key: &K) -> Result<Option<(V, i64)>> {
        match self.state.data.get(&key.encode()?) {
            Some(stored) => {
                let (value, ts) = self.state.row(stored)?;
                Ok(Some((V::decode(value)?, ts.unwrap_or(UNKNOWN_TIMESTAMP))))
            }
            None => Ok(None),
        }
    }

    /// Stores `value` for `key`, replacing any earlier value.
    ///
    /// # Errors
    /// [`Serialization`](crate::ErrorKind::Serialization) if the key or the value does not
    /// encode; the store is unchanged.
    pub fn put(&mut self, key: &K, value: &V) -> Result<()> {
        self.put_timestamped(key, value, self.record_timestamp)
    }

    /// Stores `value` for `key` with the row timestamp `timestamp` (ignored by a plain store).
    pub(crate) fn put_timestamped(&mut self, key: &K, value: &V, timestamp: i64) -> Result<()> {
        let (key, mut value) = (key.encode()?, value.encode()?);
        if self.state.timestamped {
            value = timestamped_row(timestamp, &value);
        }
        self.state.put(key, value);
        Ok(())
    }

    /// Replaces the row of `key` with `step(old row)` and returns `(old, new)`, rows being
    /// `(value, timestamp)`: the key is encoded once and looked up once (aggregations run this
    /// per record). Nothing is stored if the old value does not decode or the new one does not
    /// encode. A plain store keeps no timestamp (the old row's reads as `UNKNOWN_TIMESTAMP`).
    ///
    /// # Errors
    /// As [`get`](Self::get), and [`Serialization`](crate::ErrorKind::Serialization) if the new
    /// value does not encode.
    pub(crate) fn update_timestamped(
        &mut self,
        key: &K,
        step: impl FnOnce(Option<(V, i64)>) -> (V, i64),
    ) -> Result<(Option<Row<V>>, Row<V>)>
    where
        V: Clone,
    {
        let key = key.encode()?;
        if self.state.timestamped {
            return self.state.update_timestamped(key, |stored| {
                let old = match stored {
                    Some((ts, bytes)) => Some((V::decode(bytes)?, ts)),
                    None => None,
                };
                let new = step(old.clone());
                Ok((new.1, new.0.encode()?, (old, new)))
            });
        }
        self.state.update(key, |stored| {
            let old = match stored {
                Some(bytes) => Some((V::decode(bytes)?, UNKNOWN_TIMESTAMP)),
                None => None,
            };
            let new = step(old.clone());
            Ok((new.0.encode()?, (old, new)))
        })
    }

    /// Removes `key`, returning its value.
    ///
    /// # Errors
    /// As [`get`](Self::get); the key is removed anyway if it encodes.
    pub fn delete(&mut self, key: &K) -> Result<Option<V>> {
        Ok(self.delete_timestamped(key)?.map(|(v, _)| v))
    }

    /// Removes `key`, returning its value and the row's timestamp.
    pub(crate) fn delete_timestamped(&mut self, key: &K) -> Result<Option<(V, i64)>> {
        match self.state.delete(&key.encode()?) {
            Some(stored) => {
                let (value, ts) = self.state.row(&stored)?;
                Ok(Some((V::decode(value)?, ts.unwrap_or(UNKNOWN_TIMESTAMP))))
            }
            None => Ok(None),
        }
    }

    /// Every entry, ordered by serialized key.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn all(&self) -> Result<Vec<(K, V)>> {
        decode_all(self.state.data.iter(), self.state.timestamped)
    }

    /// How many keys the store holds.
    pub fn len(&self) -> usize {
        self.state.data.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.state.data.is_empty()
    }
}

fn decode_all<'b, K: Serde, V: Serde>(
    entries: impl Iterator<Item = (&'b Vec<u8>, &'b Vec<u8>)>,
    timestamped: bool,
) -> Result<Vec<(K, V)>> {
    entries
        .map(|(k, v)| Ok((K::decode(k)?, decode_row(v, timestamped)?)))
        .collect()
}

/// The value of a stored row (its bytes after the timestamp in a timestamped store).
fn decode_row<V: Serde>(stored: &[u8], timestamped: bool) -> Result<V> {
    if timestamped {
        V::decode(split_timestamped(stored)?.1)
    } else {
        V::decode(stored)
    }
}

/// A read-only view of a store's committed state across all tasks, for interactive queries
/// ([`App::store`](crate::streams::App::store),
/// [`TopologyTestDriver::store`](crate::streams::TopologyTestDriver::store)).
///
/// It sees what the application committed (in the test driver: everything processed so far),
/// never a task's uncommitted work. Keys are ordered by their serialized bytes, as in Kafka
/// (for the big-endian integer serdes this puts negative numbers after positive ones).
pub struct ReadOnlyKeyValueStore<K, V> {
    name: String,
    committed: Committed,
    /// The rows carry their timestamp, which reads strip.
    timestamped: bool,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> std::fmt::Debug for ReadOnlyKeyValueStore<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOnlyKeyValueStore")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<K: Serde, V: Serde> ReadOnlyKeyValueStore<K, V> {
    pub(crate) fn new(name: &str, committed: Committed, timestamped: bool) -> Self {
        ReadOnlyKeyValueStore {
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

    /// The committed value for `key` (anything that converts into the key type, so a
    /// `String`-keyed store takes `"alice"`).
    ///
    /// # Errors
    /// [`Deserialization`](crate::ErrorKind::Deserialization) if the stored bytes do not decode
    /// as `V`; [`Serialization`](crate::ErrorKind::Serialization) if `key` does not encode.
    pub fn get(&self, key: impl Into<K>) -> Result<Option<V>> {
        let k = key.into().encode()?;
        let committed = self.committed.read();
        committed
            .values()
            .find_map(|m| m.get(&k))
            .map(|v| decode_row(v, self.timestamped))
            .transpose()
    }

    /// The committed value for `key` and its row's timestamp (Kafka's timestamped key-value
    /// store query): for an aggregation, the latest timestamp of the key's records; for a
    /// source table, the timestamp of the record that wrote the row. A row restored from a
    /// changelog written before rows kept timestamps, and not updated since, has the timestamp
    /// `i64::MIN` (unknown).
    ///
    /// ```
    /// use riverbed::streams::{Builder, Materialized, TopologyTestDriver};
    ///
    /// let b = Builder::new("clicks-app");
    /// b.stream::<String, String>("clicks")
    ///     .group_by_key()
    ///     .count(Materialized::named("clicks-per-user"));
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// for ts in [10, 30, 20] {
    ///     driver.pipe_input("clicks", &"ann".to_string(), &"/".to_string(), ts)?;
    /// }
    /// let counts = driver.store::<String, i64>("clicks-per-user")?;
    /// assert_eq!(counts.get_with_timestamp("ann")?, Some((3, 30)));
    /// # Ok::<(), riverbed::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`InvalidArgument`](crate::ErrorKind::InvalidArgument) for a store that keeps no row
    /// timestamps (one added with
    /// [`add_state_store`](crate::streams::Topology::add_state_store)); otherwise as
    /// [`get`](Self::get).
    pub fn get_with_timestamp(&self, key: impl Into<K>) -> Result<Option<(V, i64)>> {
        if !self.timestamped {
            return Err(crate::Error::invalid(format!(
                "state store {:?} keeps no row timestamps (only the stores of tables and \
                 aggregations do)",
                self.name
            )));
        }
        let k = key.into().encode()?;
        let committed = self.committed.read();
        match committed.values().find_map(|m| m.get(&k)) {
            Some(stored) => {
                let (ts, value) = split_timestamped(stored)?;
                Ok(Some((V::decode(value)?, ts)))
            }
            None => Ok(None),
        }
    }

    /// The committed entries with `from <= key <= to` (both inclusive, as in Kafka), ordered
    /// by serialized key.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn range(&self, from: impl Into<K>, to: impl Into<K>) -> Result<Vec<(K, V)>> {
        let (from, to) = (from.into().encode()?, to.into().encode()?);
        if from > to {
            return Ok(Vec::new());
        }
        let merged = self.merged(|m| m.range(from.clone()..=to.clone()).collect());
        decode_all(merged.iter(), self.timestamped)
    }

    /// Every committed entry, ordered by serialized key.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn all(&self) -> Result<Vec<(K, V)>> {
        let merged = self.merged(|m| m.iter().collect());
        decode_all(merged.iter(), self.timestamped)
    }

    /// How many keys the committed state holds.
    pub fn approximate_num_entries(&self) -> usize {
        self.committed.read().values().map(|m| m.len()).sum()
    }

    fn merged(
        &self,
        pick: impl for<'m> Fn(&'m BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<(&'m Vec<u8>, &'m Vec<u8>)>,
    ) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let committed = self.committed.read();
        let mut out = BTreeMap::new();
        for m in committed.values() {
            for (k, v) in pick(m) {
                out.insert(k.clone(), v.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(m: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<(&[u8], &[u8])> {
        m.iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect()
    }

    #[test]
    fn writes_after_the_view_shares_the_restored_map_do_not_reach_the_view() {
        let mut s = KvState::default();
        s.restore(b"a", Some(b"1"), None).unwrap();
        s.restore(b"b", Some(b"2"), None).unwrap();
        // What `Task::init` publishes: the restored map itself.
        let view = Arc::clone(&s.data);
        assert!(Arc::ptr_eq(&view, &s.data), "publishing copies nothing");
        s.put(b"a".to_vec(), b"10".to_vec());
        s.update(b"c".to_vec(), |old| Ok((b"3".to_vec(), old.is_none())))
            .unwrap();
        s.delete(b"b");
        assert_eq!(entries(&view), [(&b"a"[..], &b"1"[..]), (b"b", b"2")]);
        assert_eq!(entries(&s.data), [(&b"a"[..], &b"10"[..]), (b"c", b"3")]);
        assert_eq!(s.dirty.len(), 3);
    }

    #[test]
    fn timestamped_rows_keep_their_timestamp_before_the_value() {
        let mut s = KvState {
            timestamped: true,
            ..KvState::default()
        };
        s.restore(b"old", Some(b"v0"), None).unwrap();
        s.restore(b"new", Some(b"v1"), Some(42)).unwrap();
        let row = |s: &KvState, k: &[u8]| {
            let (v, ts) = s.row(&s.data[k]).unwrap();
            (v.to_vec(), ts)
        };
        assert_eq!(row(&s, b"old"), (b"v0".to_vec(), Some(UNKNOWN_TIMESTAMP)));
        assert_eq!(row(&s, b"new"), (b"v1".to_vec(), Some(42)));
        assert_eq!(s.data[&b"new"[..]][..8], [0, 0, 0, 0, 0, 0, 0, 42]);
        let seen = s
            .update_timestamped(b"new".to_vec(), |old| {
                let (ts, v) = old.unwrap();
                Ok((ts.max(7), b"v2".to_vec(), (ts, v.to_vec())))
            })
            .unwrap();
        assert_eq!(seen, (42, b"v1".to_vec()));
        assert_eq!(row(&s, b"new"), (b"v2".to_vec(), Some(42)));
        let mut typed = KeyValueStore::<Vec<u8>, Vec<u8>>::new(&mut s, Some(9));
        typed.put(&b"p".to_vec(), &b"x".to_vec()).unwrap();
        assert_eq!(
            typed.get_timestamped(&b"p".to_vec()).unwrap(),
            Some((b"x".to_vec(), 9))
        );
        assert_eq!(typed.get(&b"p".to_vec()).unwrap(), Some(b"x".to_vec()));
        // A row too short for its timestamp is a typed error, not a panic.
        s.data_mut().insert(b"short".to_vec(), vec![1, 2]);
        assert!(s.row(&s.data[&b"short"[..]]).is_err());
        let typed = KeyValueStore::<Vec<u8>, Vec<u8>>::new(&mut s, None);
        assert!(typed.get(&b"short".to_vec()).is_err());
        assert!(typed.all().is_err());
    }

    /// The stream time is store metadata, not a row; it still travels as the `stream-time`
    /// row in the changelog and in snapshots, byte for byte as before it became metadata (a
    /// plain i64 in a plain store; timestamp then i64 in a timestamped one), so changelogs and
    /// snapshots written by earlier versions restore it.
    #[test]
    #[allow(
        clippy::big_endian_bytes,
        reason = "the layout is i64's serde's, big-endian"
    )]
    fn the_stream_time_is_no_row_and_restores_from_the_rows_earlier_versions_wrote() {
        for timestamped in [false, true] {
            let mut s = KvState::new(timestamped, true);
            assert_eq!(s.stream_time_change(), None);
            s.set_stream_time(300);
            assert!(
                s.data.is_empty() && s.dirty.is_empty(),
                "no row, nothing dirty"
            );
            let (value, ts) = s.stream_time_change().unwrap();
            assert_eq!(value, 300i64.to_be_bytes());
            assert_eq!(ts, timestamped.then_some(300));
            s.stream_time_committed();
            assert_eq!(s.stream_time_change(), None);

            // The snapshot row, as earlier versions kept it in memory and in snapshots.
            let old_row = if timestamped {
                [300i64.to_be_bytes(), 300i64.to_be_bytes()].concat()
            } else {
                300i64.to_be_bytes().to_vec()
            };
            let snap = s.snapshot_data().into_owned();
            assert_eq!(snap.get(STREAM_TIME_KEY), Some(&old_row));
            let mut loaded = KvState::new(timestamped, true);
            loaded.load_snapshot(snap).unwrap();
            assert_eq!(loaded.stream_time(), Some(300));
            assert!(loaded.data.is_empty());

            // A changelog record of the key, as earlier versions wrote it (the plain i64).
            let mut restored = KvState::new(timestamped, true);
            restored
                .restore(STREAM_TIME_KEY, Some(&300i64.to_be_bytes()), Some(300))
                .unwrap();
            assert_eq!(restored.stream_time(), Some(300));
            assert!(restored.data.is_empty());
            // One that is no i64 is a typed error, not a panic or a made-up time.
            assert!(restored
                .restore(STREAM_TIME_KEY, Some(b"xyz"), None)
                .is_err());
            let mut bad = BTreeMap::new();
            bad.insert(STREAM_TIME_KEY.to_vec(), vec![1, 2]);
            assert!(KvState::new(timestamped, true).load_snapshot(bad).is_err());
        }
        // A store that keeps no stream time (a Processor API store) keeps the key as a row.
        let mut plain = KvState::new(false, false);
        plain.restore(STREAM_TIME_KEY, Some(b"v"), None).unwrap();
        assert_eq!(plain.data.get(STREAM_TIME_KEY), Some(&b"v".to_vec()));
        assert_eq!(plain.stream_time(), None);
    }

    #[test]
    fn an_unshared_working_map_is_updated_in_place() {
        let mut s = KvState::default();
        s.put(b"k".to_vec(), b"1".to_vec());
        let before = Arc::as_ptr(&s.data);
        s.put(b"k".to_vec(), b"2".to_vec());
        s.update(b"k".to_vec(), |old| {
            Ok((b"3".to_vec(), old.map(<[u8]>::to_vec)))
        })
        .unwrap();
        assert_eq!(Arc::as_ptr(&s.data), before);
        assert_eq!(entries(&s.data), [(&b"k"[..], &b"3"[..])]);
    }
}
