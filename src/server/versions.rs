//! The APIs and versions the front advertises in ApiVersions, and the check every request
//! passes before it is decoded.
//!
//! One table, read by both: a request for an API or version that is not listed here is never
//! decoded (the connection gets Kafka's answer for it, see `conn.rs`), so a handler only sees
//! versions it was written and tested for. The caps follow the research
//! (../shared/research/kafka-wire.md §2.3): every client we test (librdkafka 2.0–2.16,
//! kafka-python 3, kafkajs 2.2) negotiates into a range below features that need state Riverbed
//! does not keep (topic ids in Produce/Fetch ≥ 13, KIP-890 transactions, KIP-848 groups).
//! Telemetry (KIP-714) is deliberately absent: librdkafka polls it whenever it is offered.

use kafka_protocol::messages::ApiKey;

/// (API, lowest version, highest version) for every API the front serves.
pub(crate) const ADVERTISED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::ApiVersions, 0, 4),
    // v13 adds a top-level error code nothing needs.
    (ApiKey::Metadata, 0, 12),
    // v13+ names topics by id; librdkafka's maximum is 10.
    (ApiKey::Produce, 3, 10),
    // v13+ names topics by id only.
    (ApiKey::Fetch, 4, 12),
    // v8+ are tiered-storage offsets.
    (ApiKey::ListOffsets, 1, 7),
    // Groups and offsets (`groups.rs`).
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 7),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    // Transactions: v4+ of the four transaction APIs and v5+ of InitProducerId are KIP-890.
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    // Admin: DeleteTopics v6 names topics by id.
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeCluster, 0, 1),
    // KIP-152: v0 sends the tokens as bare frames, v1 in SaslAuthenticate (auth/mod.rs).
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

/// The advertised range of `api`, if it is served.
pub(crate) fn advertised(api: ApiKey) -> Option<(i16, i16)> {
    ADVERTISED
        .iter()
        .find(|(a, _, _)| *a == api)
        .map(|&(_, min, max)| (min, max))
}

/// Whether `version` of `api` is served.
pub(crate) fn supported(api: ApiKey, version: i16) -> bool {
    advertised(api).is_some_and(|(min, max)| (min..=max).contains(&version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_advertised_range_is_one_the_codec_can_decode() {
        // A range beyond kafka-protocol's own would advertise versions whose requests the
        // codec cannot parse.
        for &(api, min, max) in ADVERTISED {
            let valid = api.valid_versions();
            assert!(min <= max, "{api:?}");
            assert!(
                valid.min <= min && max <= valid.max,
                "{api:?} {min}..={max} vs {valid:?}"
            );
        }
    }

    #[test]
    fn readme_lists_exactly_the_advertised_versions() {
        // README.md's "Supported APIs and versions" table is the user's copy of this table.
        let readme = include_str!("../../README.md");
        let section = readme
            .split("### Supported APIs and versions")
            .nth(1)
            .expect("the README section");
        let mut listed = Vec::new();
        for line in section
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .filter(|l| !l.starts_with("| API") && !l.starts_with("|---"))
        {
            let cells: Vec<&str> = line
                .split('|')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            for pair in cells.chunks(2) {
                listed.push(format!("{} {}", pair[0], pair[1].replace('\u{2013}', "-")));
            }
        }
        let mut advertised: Vec<String> = ADVERTISED
            .iter()
            .map(|(api, min, max)| format!("{api:?} {min}-{max}"))
            .collect();
        listed.sort();
        advertised.sort();
        assert_eq!(listed, advertised);
    }

    #[test]
    fn no_api_is_listed_twice() {
        let mut keys: Vec<i16> = ADVERTISED.iter().map(|(a, _, _)| *a as i16).collect();
        keys.sort_unstable();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n);
    }
}
