//! Routes a decoded request header to the handler of its API.
//!
//! Only APIs and versions listed in `versions.rs` reach this point (`conn.rs` checks first),
//! and ApiVersions is answered by `conn.rs` itself.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};

use super::conn::{Close, Connection};
use super::{admin, groups, txn, Shared};

/// A handler's answer.
pub(crate) enum Reply {
    /// The encoded response body (its header is added by the caller).
    Body(BytesMut),
    /// No response at all (Produce with acks=0).
    None,
}

/// Decodes `body` as a request of `api` at `version`, handles it and encodes the answer.
pub(super) fn handle(
    shared: &Shared,
    conn: &mut Connection,
    api: ApiKey,
    version: i16,
    header: &RequestHeader,
    body: &mut Bytes,
) -> Result<Reply, Close> {
    match api {
        ApiKey::FindCoordinator => groups::find_coordinator(shared, conn, version, body),
        ApiKey::JoinGroup => groups::join_group(shared, conn, version, header, body),
        ApiKey::SyncGroup => groups::sync_group(shared, conn, version, body),
        ApiKey::Heartbeat => groups::heartbeat(shared, conn, version, body),
        ApiKey::LeaveGroup => groups::leave_group(shared, conn, version, body),
        ApiKey::OffsetCommit => groups::offset_commit(shared, conn, version, body),
        ApiKey::OffsetFetch => groups::offset_fetch(shared, conn, version, body),
        ApiKey::ListGroups => groups::list_groups(shared, conn, version, body),
        ApiKey::DescribeGroups => groups::describe_groups(shared, conn, version, body),
        ApiKey::DeleteGroups => groups::delete_groups(shared, conn, version, body),
        ApiKey::InitProducerId => txn::init_producer_id(shared, conn, version, body),
        ApiKey::AddPartitionsToTxn => txn::add_partitions_to_txn(shared, conn, version, body),
        ApiKey::AddOffsetsToTxn => txn::add_offsets_to_txn(shared, conn, version, body),
        ApiKey::TxnOffsetCommit => txn::txn_offset_commit(shared, conn, version, body),
        ApiKey::EndTxn => txn::end_txn(shared, conn, version, body),
        ApiKey::CreateTopics => admin::create_topics(shared, conn, version, body),
        ApiKey::DeleteTopics => admin::delete_topics(shared, conn, version, body),
        ApiKey::CreatePartitions => admin::create_partitions(shared, conn, version, body),
        ApiKey::DescribeConfigs => admin::describe_configs(shared, conn, version, body),
        ApiKey::IncrementalAlterConfigs => {
            admin::incremental_alter_configs(shared, conn, version, body)
        }
        ApiKey::AlterConfigs => admin::alter_configs(shared, conn, version, body),
        ApiKey::Metadata => super::metadata::handle(shared, conn, version, body),
        ApiKey::Produce => super::produce::handle(shared, conn, version, body),
        ApiKey::Fetch => super::fetch::handle(shared, conn, version, body),
        ApiKey::ListOffsets => super::list_offsets::handle(shared, conn, version, body),
        ApiKey::DeleteRecords => super::delete_records::handle(shared, conn, version, body),
        ApiKey::SaslHandshake => super::auth::handshake(shared, conn, version, body),
        ApiKey::SaslAuthenticate => super::auth::authenticate(shared, conn, version, body),
        ApiKey::DescribeCluster => admin::describe_cluster(shared, conn, version, body),
        _ => Err(Close::Malformed(format!(
            "{api:?} v{version} has no handler"
        ))),
    }
}
