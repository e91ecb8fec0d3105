//! The membership file (`<store>/group-members`): the groups' members and assignments as the
//! process holding the store last saw them, so that tools in other processes can show them and
//! know when a group is in use. Membership is not durable: the file is replaced without fsync,
//! removed at open, and trusted only while its writer still holds the store's lock.
//!
//! ```text
//! riverbed-group-members v1
//! pid <pid of the writer>
//! group <name> <generation> <rebalancing 0|1>
//! member <id> <topic>:<partition>,... (or "-" for none)
//! crc <8 hex digits: CRC-32 of every byte before this line>
//! ```
//! Group names and member ids are percent-encoded (every byte outside `[A-Za-z0-9._-]`).

use crate::group::GroupDescription;
use crate::small_file;
use crate::topic::TopicPartition;

/// File name inside the store directory.
pub(crate) const FILE_NAME: &str = "group-members";
const HEADER: &str = "riverbed-group-members v1";

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn unescape(s: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(s.len());
    let mut it = s.bytes();
    while let Some(b) = it.next() {
        if b == b'%' {
            let hex = [it.next()?, it.next()?];
            bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    String::from_utf8(bytes).ok()
}

/// Encodes the groups that have members.
pub(crate) fn encode(pid: u32, groups: &[GroupDescription]) -> Vec<u8> {
    let mut text = format!("{HEADER}\npid {pid}\n");
    for g in groups.iter().filter(|g| !g.members.is_empty()) {
        text.push_str(&format!(
            "group {} {} {}\n",
            escape(&g.group),
            g.generation,
            u8::from(g.rebalancing)
        ));
        for (id, parts) in &g.members {
            let list: Vec<String> = parts
                .iter()
                .map(|tp| format!("{}:{}", tp.topic, tp.partition))
                .collect();
            let list = if list.is_empty() {
                "-".to_string()
            } else {
                list.join(",")
            };
            text.push_str(&format!("member {} {list}\n", escape(id)));
        }
    }
    small_file::seal_text(text)
}

/// Decodes the file: the writer's pid and its groups; `None` if it is not a valid file.
pub(crate) fn decode(bytes: &[u8]) -> Option<(u32, Vec<GroupDescription>)> {
    let body = small_file::check_text(bytes).ok()?;
    let mut lines = body.lines();
    if lines.next()? != HEADER {
        return None;
    }
    let pid = lines.next()?.strip_prefix("pid ")?.parse().ok()?;
    let mut groups: Vec<GroupDescription> = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["group", name, generation, rebalancing] => groups.push(GroupDescription {
                group: unescape(name)?,
                generation: generation.parse().ok()?,
                rebalancing: *rebalancing == "1",
                members: Vec::new(),
            }),
            ["member", id, list] => {
                let mut parts = Vec::new();
                if *list != "-" {
                    for tp in list.split(',') {
                        let (t, p) = tp.rsplit_once(':')?;
                        parts.push(TopicPartition::new(t, p.parse().ok()?));
                    }
                }
                groups.last_mut()?.members.push((unescape(id)?, parts));
            }
            _ => return None,
        }
    }
    Some((pid, groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_damage() {
        let groups = vec![GroupDescription {
            group: "odd name\n%".into(),
            generation: 3,
            rebalancing: false,
            members: vec![
                (
                    "odd name\n%-member-0".into(),
                    vec![TopicPartition::new("t", 1)],
                ),
                ("m1".into(), vec![]),
            ],
        }];
        let bytes = encode(42, &groups);
        assert_eq!(decode(&bytes), Some((42, groups)));
        let mut bad = bytes.clone();
        bad[30] ^= 1;
        assert_eq!(decode(&bad), None);
        assert_eq!(decode(b"garbage"), None);
    }
}

/// This file's bytes against those the code before `small_file` wrote (captured from it, same
/// inputs: the shared helper must not change a byte on disk), and mangled (bad CRC, truncated,
/// another version with a valid CRC) with the outcome this file has always had.
#[cfg(test)]
mod small_file_bytes {
    #[allow(unused_imports)]
    use std::path::Path;

    #[allow(unused_imports)]
    use crate::record::crc::checksum;
    #[allow(unused_imports)]
    use crate::small_file::damage::{corruption_at, hex, mangled_binary, mangled_text};

    fn g_group_members() -> Vec<u8> {
        crate::group::published::encode(
            4242,
            &[crate::group::GroupDescription {
                group: "g 1".into(),
                generation: 3,
                rebalancing: false,
                members: vec![(
                    "m-1".into(),
                    vec![crate::topic::TopicPartition::new("t", 0)],
                )],
            }],
        )
    }

    // Captured from the code before `small_file` existed (commit 8471fcb), same inputs.
    const GROUP_MEMBERS: &str = "72697665726265642d67726f75702d6d656d626572732076310a70696420343234320a67726f7570206725323031203320300a6d656d626572206d2d3120743a300a6372632035643164343561350a";

    #[test]
    fn group_members_bytes_and_damage_read_as_no_groups() {
        use crate::group::published::decode;
        let good = g_group_members();
        assert_eq!(hex(&good), GROUP_MEMBERS);
        let (pid, groups) = decode(&good).unwrap();
        assert_eq!((pid, groups.len()), (4242, 1));
        for (what, bytes) in mangled_text(&good, "riverbed-group-members v2") {
            assert!(decode(&bytes).is_none(), "{what}");
        }
    }
}
