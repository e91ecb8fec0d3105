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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::marker::PhantomData;
use std::sync::Arc;

use parking_lot::RwLock;

use super::serde::Serde;
use crate::error::Result;

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
}

impl KvState {
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

    /// Applies a changelog record (no dirty tracking: it is committed already).
    pub fn restore(&mut self, key: &[u8], value: Option<&[u8]>) {
        let data = self.data_mut();
        match value {
            Some(v) => data.insert(key.to_vec(), v.to_vec()),
            None => data.remove(key),
        };
    }
}

/// The committed contents of one store: one map per task (input partition). Shared by the tasks
/// that write it at commit and the query handles that read it. A partition's map may be shared
/// with its task's working state until the task's first write (see the module docs); writers
/// go through `Arc::make_mut`.
pub(crate) type Committed = Arc<RwLock<BTreeMap<u32, Arc<BTreeMap<Vec<u8>, Vec<u8>>>>>>;

/// The committed view of every store of an application, by store name.
pub(crate) type Registry = Arc<HashMap<String, Committed>>;

/// A task's state store as a processor sees it: typed reads and writes of the task's working
/// state. Writes reach the changelog and interactive queries at the next commit.
pub struct KeyValueStore<'a, K, V> {
    state: &'a mut KvState,
    _types: PhantomData<fn(K, V)>,
}

impl<'a, K: Serde, V: Serde> KeyValueStore<'a, K, V> {
    pub(crate) fn new(state: &'a mut KvState) -> Self {
        KeyValueStore {
            state,
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
        self.state
            .data
            .get(&key.encode()?)
            .map(|v| V::decode(v))
            .transpose()
    }

    /// Stores `value` for `key`, replacing any earlier value.
    ///
    /// # Errors
    /// [`Serialization`](crate::ErrorKind::Serialization) if the key or the value does not
    /// encode; the store is unchanged.
    pub fn put(&mut self, key: &K, value: &V) -> Result<()> {
        let (key, value) = (key.encode()?, value.encode()?);
        self.state.put(key, value);
        Ok(())
    }

    /// Replaces the value of `key` with `step(old value)` and returns `(old, new)`: the key is
    /// encoded once and looked up once (aggregations run this per record). Nothing is stored
    /// if the old value does not decode or the new one does not encode.
    ///
    /// # Errors
    /// As [`get`](Self::get), and [`Serialization`](crate::ErrorKind::Serialization) if the new
    /// value does not encode.
    pub(crate) fn update(
        &mut self,
        key: &K,
        step: impl FnOnce(Option<V>) -> V,
    ) -> Result<(Option<V>, V)>
    where
        V: Clone,
    {
        self.state.update(key.encode()?, |stored| {
            let old = stored.map(V::decode).transpose()?;
            let new = step(old.clone());
            Ok((new.encode()?, (old, new)))
        })
    }

    /// Removes `key`, returning its value.
    ///
    /// # Errors
    /// As [`get`](Self::get); the key is removed anyway if it encodes.
    pub fn delete(&mut self, key: &K) -> Result<Option<V>> {
        self.state
            .delete(&key.encode()?)
            .map(|v| V::decode(&v))
            .transpose()
    }

    /// Every entry, ordered by serialized key.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn all(&self) -> Result<Vec<(K, V)>> {
        decode_all(self.state.data.iter())
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
) -> Result<Vec<(K, V)>> {
    entries
        .map(|(k, v)| Ok((K::decode(k)?, V::decode(v)?)))
        .collect()
}

/// A read-only view of a store's committed state across all tasks, for interactive queries
/// ([`App::store`](super::App::store), [`TopologyTestDriver::store`](super::TopologyTestDriver::store)).
///
/// It sees what the application committed (in the test driver: everything processed so far),
/// never a task's uncommitted work. Keys are ordered by their serialized bytes, as in Kafka
/// (for the big-endian integer serdes this puts negative numbers after positive ones).
pub struct ReadOnlyKeyValueStore<K, V> {
    name: String,
    committed: Committed,
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
    pub(crate) fn new(name: &str, committed: Committed) -> Self {
        ReadOnlyKeyValueStore {
            name: name.to_string(),
            committed,
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
            .map(|v| V::decode(v))
            .transpose()
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
        decode_all(merged.iter())
    }

    /// Every committed entry, ordered by serialized key.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn all(&self) -> Result<Vec<(K, V)>> {
        let merged = self.merged(|m| m.iter().collect());
        decode_all(merged.iter())
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
        s.restore(b"a", Some(b"1"));
        s.restore(b"b", Some(b"2"));
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
