//! State: task stores and the committed view queries read (`store`), windowed keys and the
//! window-store view (`window_store`), the query facade (`query`) and the checkpoint
//! snapshot file (`checkpoint`, FORMAT.md 8.5).

pub(crate) mod checkpoint;
pub(crate) mod kind;
pub(crate) mod query;
pub(crate) mod store;
pub(crate) mod window_store;
