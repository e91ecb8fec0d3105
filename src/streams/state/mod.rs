//! State: task stores and the committed view queries read (`store`), and the checkpoint
//! snapshot file (`checkpoint`, FORMAT.md 8.5).

pub(crate) mod checkpoint;
pub(crate) mod query;
pub(crate) mod store;
