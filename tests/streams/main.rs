//! Riverbed Streams tests, one module per behaviour, linked as one test binary (linking 31
//! binaries against the whole crate cost more than running them). `cargo test --test streams
//! MODULE::` runs one module.

#[path = "../common/mod.rs"]
mod common;

mod app;
mod checkpoint;
mod dsl_model;
mod error_handler;
mod exactly_once_sigkill;
mod fk_join;
mod headers;
mod joins;
mod joins_app;
#[cfg(feature = "json")]
mod json;
mod processor_api;
mod queries;
mod rebalance;
mod restore_1m;
#[cfg(feature = "json")]
mod serialization;
mod serialization_store;
mod session_kafka;
mod sliding_kafka;
mod stream_join_kafka;
mod stream_joins;
mod stream_joins_app;
mod subtopologies;
mod subtopology_joins;
mod suppress_buffer;
mod suppress_headers;
mod suppress_kafka;
mod tables;
mod time_windows_kafka;
mod timestamps;
mod windows_app;
mod windows_model;
mod windows_suppress;
