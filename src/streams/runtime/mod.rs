//! Running a topology: one partition's instance of a sub-topology (`task`), restoring its
//! stores (`restore`), global tables (`global`), the application (`app`, Kafka's
//! `KafkaStreams`) with its stream threads (`stream_thread`, Kafka's `StreamThread`) and each
//! thread's tasks (`task_manager`, Kafka's `TaskManager`), and the deterministic test driver
//! (`test_driver`).

pub(crate) mod app;
pub(crate) mod global;
pub(crate) mod restore;
mod stream_thread;
pub(crate) mod task;
mod task_manager;
pub(crate) mod test_driver;
