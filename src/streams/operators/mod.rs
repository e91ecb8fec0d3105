//! The processors the DSL creates, each beside the DSL methods that add it: windowed
//! aggregations (`windowed`), the suppress buffer (`suppress`), windowed stream-stream joins
//! (`stream_join`) and foreign-key table joins (`fk_join`). Simpler operators (filters,
//! table joins, repartitions) live with their DSL methods in [`dsl`](super::dsl).

pub(crate) mod fk_join;
pub(crate) mod stream_join;
pub(crate) mod suppress;
pub(crate) mod windowed;
