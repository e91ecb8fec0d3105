//! Kafka's consumer embedded protocol: the bytes a consumer puts in JoinGroup's protocol
//! metadata (`ConsumerProtocolSubscription`) and receives in SyncGroup's assignment
//! (`ConsumerProtocolAssignment`), big-endian as Kafka's schemas
//! (clients/src/main/resources/common/message/ConsumerProtocol*.json) define them.
//!
//! The coordinator reads a remote member's subscription from the first: its version (i16) and
//! its topics; later fields (user data, owned partitions from v1, generation from v2, rack from
//! v3) are optional for the coordinator, which keeps its own history, and are skipped, as
//! Kafka's readers skip fields of versions newer than theirs. It writes the second at version 0
//! (topic partitions, then user data, here none), which every client reads.
//!
//! Nothing here panics on bytes a client sends: a short or inconsistent buffer is a
//! [`Malformed`] error naming what was expected.

#![allow(
    clippy::big_endian_bytes,
    reason = "Kafka's consumer protocol is big-endian"
)]

use std::collections::{BTreeMap, BTreeSet};

use crate::topic::TopicPartition;

/// A buffer that does not hold the structure it claims to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Malformed(pub String);

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Malformed> {
        if self.b.len() - self.pos < n {
            return Err(Malformed(format!(
                "{what}: needs {n} bytes at offset {}, {} left",
                self.pos,
                self.b.len() - self.pos
            )));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn i16(&mut self, what: &str) -> Result<i16, Malformed> {
        let s = self.take(2, what)?;
        Ok(i16::from_be_bytes([s[0], s[1]]))
    }

    fn i32(&mut self, what: &str) -> Result<i32, Malformed> {
        let s = self.take(4, what)?;
        Ok(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn string(&mut self, what: &str) -> Result<String, Malformed> {
        let len = self.i16(what)?;
        if len < 0 {
            return Err(Malformed(format!(
                "{what}: null where a string is required"
            )));
        }
        let s = self.take(len as usize, what)?;
        String::from_utf8(s.to_vec()).map_err(|_| Malformed(format!("{what}: not UTF-8")))
    }

    /// An array's length; refuses lengths that cannot fit in what is left (each element takes
    /// at least `min_elem` bytes), so a hostile count never makes us allocate.
    fn array_len(&mut self, what: &str, min_elem: usize) -> Result<usize, Malformed> {
        let n = self.i32(what)?;
        if n < 0 {
            return Err(Malformed(format!("{what}: null array")));
        }
        let n = n as usize;
        if n.saturating_mul(min_elem) > self.b.len() - self.pos {
            return Err(Malformed(format!(
                "{what}: {n} elements cannot fit in {} bytes",
                self.b.len() - self.pos
            )));
        }
        Ok(n)
    }
}

/// The topics a `ConsumerProtocolSubscription` (any version) subscribes to.
pub(crate) fn decode_subscription(b: &[u8]) -> Result<BTreeSet<String>, Malformed> {
    let mut r = Reader { b, pos: 0 };
    let version = r.i16("subscription version")?;
    if version < 0 {
        return Err(Malformed(format!("subscription version {version}")));
    }
    let n = r.array_len("subscription topics", 2)?;
    let mut topics = BTreeSet::new();
    for _ in 0..n {
        topics.insert(r.string("subscription topic")?);
    }
    Ok(topics)
}

/// A version-0 `ConsumerProtocolSubscription` of `topics` (no user data): how an in-process
/// member is shown in DescribeGroups.
pub(crate) fn encode_subscription(topics: &BTreeSet<String>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        put_string(&mut out, t);
    }
    out.extend_from_slice(&(-1i32).to_be_bytes()); // user data: null
    out
}

/// A version-0 `ConsumerProtocolAssignment` of `partitions` (grouped by topic, no user data).
pub(crate) fn encode_assignment(partitions: &[TopicPartition]) -> Vec<u8> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic
            .entry(tp.topic.as_str())
            .or_default()
            .push(tp.partition as i32);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&(by_topic.len() as i32).to_be_bytes());
    for (topic, parts) in by_topic {
        put_string(&mut out, topic);
        out.extend_from_slice(&(parts.len() as i32).to_be_bytes());
        for p in parts {
            out.extend_from_slice(&p.to_be_bytes());
        }
    }
    out.extend_from_slice(&(-1i32).to_be_bytes()); // user data: null
    out
}

/// The partitions of a `ConsumerProtocolAssignment` (any version; user data ignored).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn decode_assignment(b: &[u8]) -> Result<Vec<TopicPartition>, Malformed> {
    let mut r = Reader { b, pos: 0 };
    let version = r.i16("assignment version")?;
    if version < 0 {
        return Err(Malformed(format!("assignment version {version}")));
    }
    let n = r.array_len("assignment topics", 6)?;
    let mut out = Vec::new();
    for _ in 0..n {
        let topic = r.string("assignment topic")?;
        let m = r.array_len("assignment partitions", 4)?;
        for _ in 0..m {
            let p = r.i32("assignment partition")?;
            let p = u32::try_from(p)
                .map_err(|_| Malformed(format!("negative partition {p} of {topic:?}")))?;
            out.push(TopicPartition::new(topic.clone(), p));
        }
    }
    Ok(out)
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    // Topic names are at most 249 bytes (validated where topics are made), far below i16::MAX.
    let len = s.len().min(i16::MAX as usize);
    out.extend_from_slice(&(len as i16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..len]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn kafka_subscription_v1_with_user_data_and_owned_partitions_decodes() {
        // What the Java consumer writes at v1 (ConsumerProtocolSubscription.json): version 1,
        // topics ["a", "bb"], user data [1,2], owned partitions [("a", [0])].
        let mut b = vec![0, 1, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'b'];
        b.extend_from_slice(&[0, 0, 0, 2, 1, 2]);
        b.extend_from_slice(&[0, 0, 0, 1, 0, 1, b'a', 0, 0, 0, 1, 0, 0, 0, 0]);
        let topics = decode_subscription(&b).unwrap();
        assert_eq!(
            topics.into_iter().collect::<Vec<_>>(),
            vec!["a".to_string(), "bb".to_string()]
        );
    }

    #[test]
    fn assignment_bytes_are_kafkas_v0_layout() {
        let b = encode_assignment(&[TopicPartition::new("t", 1), TopicPartition::new("t", 3)]);
        assert_eq!(
            b,
            vec![
                0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3, 255, 255, 255,
                255
            ]
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_subscription(&b);
            let _ = decode_assignment(&b);
        }

        #[test]
        fn codecs_round_trip(topics in proptest::collection::btree_set("[a-z]{1,8}", 0..5),
                             parts in proptest::collection::vec(0u32..100, 0..10)) {
            prop_assert_eq!(decode_subscription(&encode_subscription(&topics)).unwrap(), topics.clone());
            let mut tps: Vec<TopicPartition> = topics
                .iter()
                .flat_map(|t| parts.iter().map(move |p| TopicPartition::new(t.clone(), *p)))
                .collect();
            tps.sort();
            tps.dedup();
            let mut back = decode_assignment(&encode_assignment(&tps)).unwrap();
            back.sort();
            prop_assert_eq!(back, tps);
        }
    }
}
