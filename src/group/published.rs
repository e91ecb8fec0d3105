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
