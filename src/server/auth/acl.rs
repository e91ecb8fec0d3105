//! Simple ACLs: principal × resource × operation, allow or deny, read from a file, with
//! Kafka's `AclAuthorizer` rules (Kafka's `kafka.security.authorizer.AclAuthorizer` and its
//! test `AclAuthorizerTest`):
//!
//! - with an ACL file, whatever no ACL allows is denied (Kafka's default,
//!   `allow.everyone.if.no.acl.found=false`); without one, everything is allowed;
//! - a matching `deny` wins over any `allow`;
//! - `all` matches every operation; `describe` is implied by `read`, `write`, `delete` or
//!   `alter`, and `describe_configs` by `alter_configs` (for allow ACLs only: a deny of `read`
//!   does not deny `describe`);
//! - `idempotent_write` on the cluster is implied by `write` on any topic (KIP-679);
//! - principal `User:*` matches everyone; a resource name `*` matches every resource of its
//!   type, and a name ending in `*` every name with that prefix (Kafka's PREFIXED pattern);
//! - `super` lines name principals allowed everything (Kafka's `super.users`).
//!
//! ```text
//! # <allow|deny> <principal> <type>:<name> <operation>[,<operation>...]
//! super User:admin
//! allow User:alice topic:events read,write
//! allow User:* topic:public-* read,describe
//! deny User:mallory topic:* all
//! allow User:alice group:billing read
//! allow User:alice transactional_id:loader-* write,describe
//! allow User:alice cluster:kafka-cluster create
//! ```
//!
//! Types: `topic`, `group`, `transactional_id`, `cluster` (whose one name is `kafka-cluster`).
//! Operations: `read`, `write`, `create`, `delete`, `alter`, `describe`, `cluster_action`,
//! `describe_configs`, `alter_configs`, `idempotent_write`, `all`.

use std::path::Path;

use crate::error::{Error, Result};

/// What kind of thing a request touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResourceType {
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
    /// A transactional id.
    TransactionalId,
    /// The cluster (this one node).
    Cluster,
}

impl ResourceType {
    fn parse(s: &str) -> Option<ResourceType> {
        Some(match s {
            "topic" => ResourceType::Topic,
            "group" => ResourceType::Group,
            "transactional_id" => ResourceType::TransactionalId,
            "cluster" => ResourceType::Cluster,
            _ => return None,
        })
    }

    /// The Kafka error code a request denied on this type of resource gets:
    /// TOPIC_AUTHORIZATION_FAILED (29), GROUP_AUTHORIZATION_FAILED (30),
    /// CLUSTER_AUTHORIZATION_FAILED (31), TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53).
    pub fn denied_code(self) -> i16 {
        match self {
            ResourceType::Topic => 29,
            ResourceType::Group => 30,
            ResourceType::Cluster => 31,
            ResourceType::TransactionalId => 53,
        }
    }
}

/// A resource a request touches: a type and a name (the cluster's name is `kafka-cluster`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resource<'a> {
    /// Its type.
    pub kind: ResourceType,
    /// Its name.
    pub name: &'a str,
}

impl<'a> Resource<'a> {
    /// The topic `name`.
    pub fn topic(name: &'a str) -> Self {
        Resource {
            kind: ResourceType::Topic,
            name,
        }
    }
    /// The consumer group `name`.
    pub fn group(name: &'a str) -> Self {
        Resource {
            kind: ResourceType::Group,
            name,
        }
    }
    /// The transactional id `name`.
    pub fn transactional_id(name: &'a str) -> Self {
        Resource {
            kind: ResourceType::TransactionalId,
            name,
        }
    }
    /// The cluster.
    pub fn cluster() -> Self {
        Resource {
            kind: ResourceType::Cluster,
            name: CLUSTER_NAME,
        }
    }
}

/// The name of the cluster resource, Kafka's.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// An operation on a resource (Kafka's `AclOperation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Every operation (in an ACL only).
    All,
    /// Fetch, commit offsets, join a group.
    Read,
    /// Produce.
    Write,
    /// Create topics.
    Create,
    /// Delete topics, records or groups.
    Delete,
    /// Create partitions.
    Alter,
    /// Metadata, list offsets, describe groups, find coordinator.
    Describe,
    /// Inter-broker requests.
    ClusterAction,
    /// Describe configs.
    DescribeConfigs,
    /// Alter configs.
    AlterConfigs,
    /// Init an idempotent producer.
    IdempotentWrite,
}

impl Operation {
    fn parse(s: &str) -> Option<Operation> {
        Some(match s {
            "all" => Operation::All,
            "read" => Operation::Read,
            "write" => Operation::Write,
            "create" => Operation::Create,
            "delete" => Operation::Delete,
            "alter" => Operation::Alter,
            "describe" => Operation::Describe,
            "cluster_action" => Operation::ClusterAction,
            "describe_configs" => Operation::DescribeConfigs,
            "alter_configs" => Operation::AlterConfigs,
            "idempotent_write" => Operation::IdempotentWrite,
            _ => return None,
        })
    }

    /// The operations whose allow ACL also allows `self` (Kafka's implied operations).
    fn allowed_by(self) -> &'static [Operation] {
        match self {
            Operation::Describe => &[
                Operation::Describe,
                Operation::Read,
                Operation::Write,
                Operation::Delete,
                Operation::Alter,
            ],
            Operation::DescribeConfigs => &[Operation::DescribeConfigs, Operation::AlterConfigs],
            Operation::Read => &[Operation::Read],
            Operation::Write => &[Operation::Write],
            Operation::Create => &[Operation::Create],
            Operation::Delete => &[Operation::Delete],
            Operation::Alter => &[Operation::Alter],
            Operation::ClusterAction => &[Operation::ClusterAction],
            Operation::AlterConfigs => &[Operation::AlterConfigs],
            Operation::IdempotentWrite => &[Operation::IdempotentWrite],
            Operation::All => &[],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    /// `*`: every name.
    Any,
    /// `name*`: names starting with it.
    Prefix(String),
    /// An exact name.
    Literal(String),
}

impl Pattern {
    fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Prefix(p) => name.starts_with(p.as_str()),
            Pattern::Literal(l) => l == name,
        }
    }
}

#[derive(Clone, Debug)]
struct Rule {
    allow: bool,
    /// `None`: `User:*`.
    principal: Option<String>,
    kind: ResourceType,
    pattern: Pattern,
    operations: Vec<Operation>,
}

/// The ACLs of an ACL file.
#[derive(Clone, Debug, Default)]
pub struct Acls {
    rules: Vec<Rule>,
    super_users: Vec<String>,
}

impl Acls {
    /// Reads an ACL file (format in the module docs).
    ///
    /// # Errors
    /// [`InvalidConfig`](crate::ErrorKind::InvalidConfig) naming the file and line that does
    /// not parse; [`Io`](crate::ErrorKind::Io) if it cannot be read.
    pub fn load(path: impl AsRef<Path>) -> Result<Acls> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::io("read ACL file", path, e))?;
        Acls::parse(&text).map_err(|(line, reason)| {
            Error::config(
                "acl_file",
                format!("{}: line {line}: {reason}", path.display()),
            )
        })
    }

    /// Parses the text of an ACL file; an error names the line (1-based) and why.
    pub fn parse(text: &str) -> std::result::Result<Acls, (usize, String)> {
        let mut acls = Acls::default();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let principal = |w: &str| -> std::result::Result<Option<String>, (usize, String)> {
                match w.strip_prefix("User:") {
                    Some("*") => Ok(None),
                    Some(name) if !name.is_empty() => Ok(Some(name.to_string())),
                    _ => Err((n, format!("principal {w:?} is not User:<name> or User:*"))),
                }
            };
            match words[..] {
                ["super", p] => match principal(p)? {
                    Some(name) => acls.super_users.push(name),
                    None => return Err((n, "a super user must be named, not User:*".into())),
                },
                [verb @ ("allow" | "deny"), p, resource, ops] => {
                    let (kind, name) = resource.split_once(':').ok_or_else(|| {
                        (n, format!("resource {resource:?} is not <type>:<name>"))
                    })?;
                    let kind = ResourceType::parse(kind).ok_or_else(|| {
                        (
                            n,
                            format!(
                                "unknown resource type {kind:?} (topic, group, transactional_id, cluster)"
                            ),
                        )
                    })?;
                    let pattern = match name {
                        "" => return Err((n, "empty resource name".into())),
                        "*" => Pattern::Any,
                        _ => match name.strip_suffix('*') {
                            Some(prefix) => Pattern::Prefix(prefix.to_string()),
                            None => Pattern::Literal(name.to_string()),
                        },
                    };
                    if kind == ResourceType::Cluster
                        && !matches!(&pattern, Pattern::Any)
                        && pattern != Pattern::Literal(CLUSTER_NAME.into())
                    {
                        return Err((n, format!("the cluster resource is cluster:{CLUSTER_NAME}")));
                    }
                    let operations = ops
                        .split(',')
                        .map(|o| {
                            Operation::parse(o)
                                .ok_or_else(|| (n, format!("unknown operation {o:?}")))
                        })
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    acls.rules.push(Rule {
                        allow: verb == "allow",
                        principal: principal(p)?,
                        kind,
                        pattern,
                        operations,
                    });
                }
                _ => {
                    return Err((
                        n,
                        "expected `allow|deny <principal> <type>:<name> <operations>` or \
                         `super <principal>`"
                            .into(),
                    ))
                }
            }
        }
        Ok(acls)
    }

    /// Whether `user` (a principal's name, `User:` left out) may do `op` on `resource`.
    pub fn authorize(&self, user: &str, op: Operation, resource: Resource<'_>) -> bool {
        if self.super_users.iter().any(|s| s == user) {
            return true;
        }
        let applies = |r: &Rule| {
            r.kind == resource.kind
                && r.principal.as_deref().is_none_or(|p| p == user)
                && r.pattern.matches(resource.name)
        };
        // Deny first: an explicit deny of the operation (or of all) wins.
        let denied = self.rules.iter().any(|r| {
            !r.allow
                && applies(r)
                && r.operations
                    .iter()
                    .any(|o| *o == Operation::All || *o == op)
        });
        if denied {
            return false;
        }
        let allowed = self.rules.iter().any(|r| {
            r.allow
                && applies(r)
                && r.operations
                    .iter()
                    .any(|o| *o == Operation::All || op.allowed_by().contains(o))
        });
        if allowed {
            return true;
        }
        // KIP-679: a producer that may write to some topic may be idempotent.
        op == Operation::IdempotentWrite
            && resource.kind == ResourceType::Cluster
            && self.rules.iter().any(|r| {
                r.allow
                    && r.kind == ResourceType::Topic
                    && r.principal.as_deref().is_none_or(|p| p == user)
                    && r.operations
                        .iter()
                        .any(|o| matches!(o, Operation::All | Operation::Write))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# a test file
super User:admin
allow User:alice topic:events read,write
allow User:* topic:public-* read
deny User:mallory topic:* all
allow User:mallory topic:public-news read
allow User:alice group:billing read
allow User:alice transactional_id:loader-* write
allow User:bob topic:configs alter_configs
allow User:bob cluster:kafka-cluster create
";

    #[test]
    fn kafka_rules() {
        let a = Acls::parse(FILE).unwrap();
        let t = Resource::topic;
        // Literal allow, and nothing else for that principal.
        assert!(a.authorize("alice", Operation::Write, t("events")));
        assert!(!a.authorize("alice", Operation::Delete, t("events")));
        assert!(!a.authorize("alice", Operation::Read, t("other")));
        // Read/write imply describe (AclAuthorizerTest.testDescribeImpliedByReadWriteDelete...).
        assert!(a.authorize("alice", Operation::Describe, t("events")));
        // Wildcard principal and prefixed resource.
        assert!(a.authorize("carol", Operation::Read, t("public-news")));
        assert!(!a.authorize("carol", Operation::Read, t("publi")));
        assert!(!a.authorize("carol", Operation::Write, t("public-news")));
        // Deny wins over allow (testDenyTakesPrecedence).
        assert!(!a.authorize("mallory", Operation::Read, t("public-news")));
        // Super users may do anything (testSuperUserHasAccess).
        assert!(a.authorize("admin", Operation::Delete, t("anything")));
        // Groups and transactional ids.
        assert!(a.authorize("alice", Operation::Read, Resource::group("billing")));
        assert!(!a.authorize("bob", Operation::Read, Resource::group("billing")));
        assert!(a.authorize(
            "alice",
            Operation::Write,
            Resource::transactional_id("loader-1")
        ));
        // alter_configs implies describe_configs.
        assert!(a.authorize("bob", Operation::DescribeConfigs, t("configs")));
        assert!(!a.authorize("bob", Operation::DescribeConfigs, t("events")));
        // Cluster, and idempotent write implied by write on a topic (KIP-679).
        assert!(a.authorize("bob", Operation::Create, Resource::cluster()));
        assert!(!a.authorize("carol", Operation::Create, Resource::cluster()));
        assert!(a.authorize("alice", Operation::IdempotentWrite, Resource::cluster()));
        assert!(!a.authorize("carol", Operation::IdempotentWrite, Resource::cluster()));
        // No ACL at all: denied (allow.everyone.if.no.acl.found=false).
        assert!(!Acls::default().authorize("x", Operation::Read, t("events")));
        assert_eq!(ResourceType::Topic.denied_code(), 29);
        assert_eq!(ResourceType::TransactionalId.denied_code(), 53);
    }

    #[test]
    fn bad_lines_name_their_line() {
        for (bad, want) in [
            ("allow alice topic:x read", "principal"),
            ("allow User:a topic read", "<type>:<name>"),
            ("allow User:a table:x read", "unknown resource type"),
            ("allow User:a topic:x fly", "unknown operation"),
            ("allow User:a cluster:other create", "kafka-cluster"),
            ("super User:*", "named"),
            ("permit User:a topic:x read", "expected"),
        ] {
            let (line, reason) = Acls::parse(&format!("\n{bad}\n")).unwrap_err();
            assert!(line == 2 && reason.contains(want), "{bad}: {line} {reason}");
        }
    }
}
