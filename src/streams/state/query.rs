//! The interactive-query facade that [`App`](crate::streams::App) and
//! [`TopologyTestDriver`](crate::streams::TopologyTestDriver) share (Kafka's
//! `KafkaStreams#store(StoreQueryParameters)` with its `QueryableStoreTypes`): it finds a store's
//! committed view by name and hands out the read-only view that fits the store's kind.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::streams::serde::Serde;
use crate::streams::state::kind::StoreKind;
use crate::streams::state::store::{ReadOnlyKeyValueStore, Registry};
use crate::streams::state::window_store::ReadOnlyWindowStore;

/// What a query needs to know about a store: its kind and whether its rows keep a timestamp.
#[derive(Clone, Copy, Debug)]
struct Queryable {
    kind: StoreKind,
    timestamped: bool,
}

/// The stores of one topology as queries see them.
pub(crate) struct StoreQueries {
    registry: Registry,
    stores: HashMap<String, Queryable>,
    /// Who has no such store, for messages: "the application", "the topology".
    owner: &'static str,
}

impl StoreQueries {
    /// The queries of `stores` (`(name, kind, timestamped)`: a topology's state stores and
    /// its global tables' stores), whose committed views are in `registry`.
    pub fn new(
        stores: impl IntoIterator<Item = (String, StoreKind, bool)>,
        registry: Registry,
        owner: &'static str,
    ) -> StoreQueries {
        let stores: HashMap<String, Queryable> = stores
            .into_iter()
            .map(|(name, kind, timestamped)| (name, Queryable { kind, timestamped }))
            .collect();
        StoreQueries {
            registry,
            stores,
            owner,
        }
    }

    /// The committed view of the store `name` and what it is.
    fn find(&self, name: &str) -> Result<(&crate::streams::state::store::Committed, Queryable)> {
        match (self.registry.get(name), self.stores.get(name)) {
            (Some(c), Some(q)) => Ok((c, *q)),
            _ => Err(Error::invalid(format!(
                "{} has no state store {name:?}",
                self.owner
            ))),
        }
    }

    /// A key-value view of the store `name`. Refused for a window or session store, whose
    /// keys are windows (Kafka's `QueryableStoreTypes.keyValueStore()` accepts no window
    /// store): query those with [`window`](Self::window).
    pub fn key_value<K: Serde, V: Serde>(&self, name: &str) -> Result<ReadOnlyKeyValueStore<K, V>> {
        let (c, q) = self.find(name)?;
        if q.kind.is_windowed() {
            return Err(wrong_type(name, StoreKind::KeyValue, q.kind));
        }
        Ok(ReadOnlyKeyValueStore::new(
            name,
            Arc::clone(c),
            q.timestamped,
        ))
    }

    /// A window view of the store `name`: a windowed aggregation's (time, sliding or session
    /// windows). Refused for any other store (Kafka's `QueryableStoreTypes.windowStore()` and
    /// `sessionStore()` accept only those).
    pub fn window<K: Serde, V: Serde>(&self, name: &str) -> Result<ReadOnlyWindowStore<K, V>> {
        let (c, q) = self.find(name)?;
        if !q.kind.is_windowed() {
            return Err(wrong_type(name, StoreKind::Window, q.kind));
        }
        Ok(ReadOnlyWindowStore::new(name, Arc::clone(c), q.timestamped))
    }
}

/// The error for a query of store `name` as a `requested` store when it is an `actual` one.
fn wrong_type(name: &str, requested: StoreKind, actual: StoreKind) -> Error {
    ErrorKind::InvalidStateStore {
        store: name.to_string(),
        requested: requested.describe(),
        actual: actual.describe(),
    }
    .into()
}
