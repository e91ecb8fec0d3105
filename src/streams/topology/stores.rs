//! The topology's description of each state store: what it holds (its [`StoreKind`]), whether
//! its rows keep their timestamp, and which processors use it. Sub-topology splitting, task
//! creation, restore, changelogs and interactive queries all read it from here, so a store's
//! nature is said once, where the store is added.

use crate::streams::state::store::changelog_topic;

/// What a state store holds, which says how it may be queried and what its keys look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StoreKind {
    /// Keys and values: a Processor API store, a DSL table or aggregation, a foreign-key join's
    /// result table. Queried as a key-value store.
    KeyValue,
    /// A time (tumbling, hopping) or sliding windowed aggregation: windowed keys
    /// (`key ++ start ++ end`), plus the aggregation's stream time. Queried as a window store
    /// (Kafka's `QueryableStoreTypes.windowStore()`), never as a key-value store.
    Window,
    /// A session windowed aggregation: windowed keys (a session's first and last record
    /// times), plus the aggregation's stream time. Queried as a window store.
    Session,
    /// The records a sliding aggregation keeps to build its windows (internal).
    SlidingRecords,
    /// A suppress buffer (internal).
    SuppressBuffer,
    /// One side's buffer of a windowed stream-stream join (internal).
    JoinBuffer,
    /// A foreign-key join's subscriptions (internal).
    Subscriptions,
}

impl StoreKind {
    /// Whether the store's keys are windowed keys, which a window-store query reads.
    pub fn is_windowed(self) -> bool {
        matches!(self, StoreKind::Window | StoreKind::Session)
    }

    /// Whether the store keeps its operator's stream time beside its rows (see
    /// `KvState::stream_time`): a windowed aggregation's store, a stream-stream join's buffers.
    pub fn keeps_stream_time(self) -> bool {
        matches!(
            self,
            StoreKind::Window | StoreKind::Session | StoreKind::JoinBuffer
        )
    }

    /// How the kind is named in messages (Kafka's store type names where it has them).
    pub fn describe(self) -> &'static str {
        match self {
            StoreKind::KeyValue => "key-value store",
            StoreKind::Window => "window store",
            StoreKind::Session => "session store",
            StoreKind::SlidingRecords => "sliding-window records store",
            StoreKind::SuppressBuffer => "suppress buffer",
            StoreKind::JoinBuffer => "stream-stream join buffer",
            StoreKind::Subscriptions => "foreign-key join subscription store",
        }
    }
}

/// One state store of a topology (not a global table's).
#[derive(Clone, Debug)]
pub(crate) struct StoreSpec {
    pub name: String,
    pub kind: StoreKind,
    /// Whether its rows keep their timestamp before the value (the DSL's tables and
    /// aggregations and time windows; see [`state`](crate::streams::state::store)).
    pub timestamped: bool,
    /// The nodes (processors) connected to it, in the order they were connected.
    pub users: Vec<usize>,
}

impl StoreSpec {
    /// Its compacted changelog topic, `<app-id>-<name>-changelog`.
    pub fn changelog(&self, app_id: &str) -> String {
        changelog_topic(app_id, &self.name)
    }
}

/// A global table's store: the topic read whole into it, and its name. The topology holds only
/// this description; the store's contents live in the running application (or test driver),
/// where a global join finds them by name through its processor context.
#[derive(Clone, Debug)]
pub(crate) struct GlobalStoreSpec {
    pub topic: String,
    pub store: String,
}
