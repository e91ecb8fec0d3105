//! Running a topology: the Processor API a task runs (`processor`), one partition's instance
//! of a sub-topology (`task`), restoring its stores (`restore`), global tables (`global`), the
//! application with its stream threads (`app`) and the deterministic test driver
//! (`test_driver`).

pub(crate) mod app;
pub(crate) mod global;
pub(crate) mod processor;
pub(crate) mod restore;
mod stream_thread;
pub(crate) mod task;
mod task_manager;
pub(crate) mod test_driver;
