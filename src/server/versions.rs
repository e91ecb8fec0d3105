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
pub(crate) const ADVERTISED: &[(ApiKey, i16, i16)] = &[(ApiKey::ApiVersions, 0, 4)];

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
    fn no_api_is_listed_twice() {
        let mut keys: Vec<i16> = ADVERTISED.iter().map(|(a, _, _)| *a as i16).collect();
        keys.sort_unstable();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n);
    }
}
