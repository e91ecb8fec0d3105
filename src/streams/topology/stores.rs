//! The topology's description of each state store: what it holds (its [`StoreKind`]), whether
//! its rows keep their timestamp, and which processors use it. Sub-topology splitting, task
//! creation, restore, changelogs and interactive queries all read it from here, so a store's
//! nature is said once, where the store is added.

pub(crate) use crate::streams::state::kind::StoreKind;
use crate::streams::state::store::changelog_topic;

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
