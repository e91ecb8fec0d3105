//! The store's internal logs and what decides their contents, as Kafka's group and
//! transaction coordinators own `__consumer_offsets` and `__transaction_state`:
//! [`offsets`] — the committed offsets log; [`txn`] — the transaction coordinator (producer
//! ids, transactional ids, commit decisions, markers, recovery).
//!
//! Below the store (which opens both and hands them to clients) and above the partitions
//! (markers are written to partition logs).

pub mod offsets;
pub(crate) mod txn;
