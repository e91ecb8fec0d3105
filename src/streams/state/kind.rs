//! What a state store holds ([`StoreKind`]): the topology says it for each store, and the
//! stores and queries act on it.

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
