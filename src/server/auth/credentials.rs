//! The credentials file: who may log in, as SCRAM credentials (salted keys, never passwords).
//!
//! ```text
//! # comments and blank lines are ignored
//! SCRAM-SHA-256 alice iterations=8192 salt=<base64> stored_key=<base64> server_key=<base64>
//! SCRAM-SHA-512 alice iterations=8192 salt=<base64> stored_key=<base64> server_key=<base64>
//! ```
//!
//! One line per user and mechanism (the fields of Kafka's `ScramCredential`, as
//! `kafka-configs --alter --add-config 'SCRAM-SHA-256=[...]'` stores them). A user may log in
//! with a SCRAM mechanism it has a line for, and with PLAIN if it has either: PLAIN's password
//! is checked by deriving that credential again (so a PLAIN login costs `iterations` PBKDF2
//! rounds). [`Credentials::line`] makes a line from a password. User names are 1..=255
//! characters without whitespace or control characters; iterations are 4096..=16384, Kafka's
//! bounds.

use std::collections::BTreeMap;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::scram::{Mechanism, ScramCredential, MAX_ITERATIONS, MIN_ITERATIONS};
use crate::error::{Error, Result};

/// Everyone who may authenticate, read from a credentials file.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    users: BTreeMap<(String, Mechanism), ScramCredential>,
}

impl Credentials {
    /// Reads a credentials file (format in the module docs).
    ///
    /// # Errors
    /// [`InvalidConfig`](crate::ErrorKind::InvalidConfig) naming the file and line that does
    /// not parse; [`Io`](crate::ErrorKind::Io) if it cannot be read.
    pub fn load(path: impl AsRef<Path>) -> Result<Credentials> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io("read credentials file", path, e))?;
        Credentials::parse(&text).map_err(|(line, reason)| {
            Error::config(
                "credentials_file",
                format!("{}: line {line}: {reason}", path.display()),
            )
        })
    }

    /// Parses the text of a credentials file; an error names the line (1-based) and why.
    pub fn parse(text: &str) -> std::result::Result<Credentials, (usize, String)> {
        let mut users = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let mech = words.next().unwrap_or("");
            let mech = Mechanism::from_name(mech).ok_or_else(|| {
                (
                    n,
                    format!("unknown mechanism {mech:?} (SCRAM-SHA-256 or SCRAM-SHA-512)"),
                )
            })?;
            let user = words.next().ok_or((n, "no user name".to_string()))?;
            check_user(user).map_err(|e| (n, e))?;
            let mut fields = BTreeMap::new();
            for w in words {
                let (k, v) = w
                    .split_once('=')
                    .ok_or_else(|| (n, format!("{w:?} is not key=value")))?;
                if fields.insert(k, v).is_some() {
                    return Err((n, format!("{k} given twice")));
                }
            }
            let mut take = |k: &str| fields.remove(k).ok_or_else(|| (n, format!("no {k}")));
            let iterations: u32 = take("iterations")?
                .parse()
                .map_err(|_| (n, "iterations is not a number".to_string()))?;
            if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
                return Err((
                    n,
                    format!(
                        "iterations {iterations} is outside {MIN_ITERATIONS}..={MAX_ITERATIONS}"
                    ),
                ));
            }
            let mut b64 = |k: &str| -> std::result::Result<Vec<u8>, (usize, String)> {
                B64.decode(take(k)?)
                    .map_err(|_| (n, format!("{k} is not base64")))
            };
            let salt = b64("salt")?;
            let stored_key = b64("stored_key")?;
            let server_key = b64("server_key")?;
            let len = match mech {
                Mechanism::Sha256 => 32,
                Mechanism::Sha512 => 64,
            };
            if salt.is_empty() || stored_key.len() != len || server_key.len() != len {
                return Err((
                    n,
                    format!(
                        "{} keys are {len} bytes and the salt is not empty",
                        mech.name()
                    ),
                ));
            }
            if let Some(k) = fields.keys().next() {
                return Err((n, format!("unknown key {k:?}")));
            }
            let c = ScramCredential {
                salt,
                stored_key,
                server_key,
                iterations,
            };
            if users.insert((user.to_string(), mech), c).is_some() {
                return Err((n, format!("{user} has two {} lines", mech.name())));
            }
        }
        Ok(Credentials { users })
    }

    /// A credentials file line for `user` with `password`: a fresh random salt and `iterations`
    /// PBKDF2 rounds (Kafka's default is 4096).
    ///
    /// # Errors
    /// [`InvalidArgument`](crate::ErrorKind::InvalidArgument) for a user name the file cannot
    /// hold or iterations outside 4096..=16384.
    pub fn line(mech: &str, user: &str, password: &str, iterations: u32) -> Result<String> {
        let m = Mechanism::from_name(mech).ok_or_else(|| {
            Error::invalid(format!(
                "unknown mechanism {mech:?} (SCRAM-SHA-256 or SCRAM-SHA-512)"
            ))
        })?;
        check_user(user).map_err(Error::invalid)?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(Error::invalid(format!(
                "iterations {iterations} is outside {MIN_ITERATIONS}..={MAX_ITERATIONS}"
            )));
        }
        let salt = super::random_bytes(24);
        let c = ScramCredential::derive(m, password, &salt, iterations);
        Ok(format!(
            "{} {user} iterations={iterations} salt={} stored_key={} server_key={}",
            m.name(),
            B64.encode(&c.salt),
            B64.encode(&c.stored_key),
            B64.encode(&c.server_key)
        ))
    }

    /// `user`'s credential for `mech`.
    pub(crate) fn scram(&self, user: &str, mech: Mechanism) -> Option<ScramCredential> {
        self.users.get(&(user.to_string(), mech)).cloned()
    }

    /// Whether `password` is `user`'s (SASL/PLAIN), checked against any of its credentials.
    pub(crate) fn check_plain(&self, user: &str, password: &str) -> bool {
        [Mechanism::Sha512, Mechanism::Sha256].into_iter().any(|m| {
            self.users
                .get(&(user.to_string(), m))
                .is_some_and(|c| c.matches_password(m, password))
        })
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        let mut names: Vec<&str> = self.users.keys().map(|(u, _)| u.as_str()).collect();
        names.dedup();
        names.len()
    }

    /// Whether no user is defined.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

fn check_user(user: &str) -> std::result::Result<(), String> {
    if user.is_empty()
        || user.len() > 255
        || user.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "user name {user:?} must be 1..=255 characters without whitespace or control characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_check_passwords() {
        let text = format!(
            "# users\n\n{}\n{}\n",
            Credentials::line("SCRAM-SHA-256", "alice", "wonderland", 4096).unwrap(),
            Credentials::line("SCRAM-SHA-512", "bob", "builder", 4096).unwrap()
        );
        let c = Credentials::parse(&text).unwrap();
        assert_eq!(c.len(), 2);
        assert!(c.scram("alice", Mechanism::Sha256).is_some());
        assert!(c.scram("alice", Mechanism::Sha512).is_none());
        assert!(c.check_plain("alice", "wonderland"));
        assert!(c.check_plain("bob", "builder"));
        assert!(!c.check_plain("bob", "wonderland"));
        assert!(!c.check_plain("carol", "x"));
        assert!(!text.contains("wonderland"), "no password in the file");
    }

    #[test]
    fn bad_lines_name_their_line() {
        let good = Credentials::line("SCRAM-SHA-256", "a", "p", 4096).unwrap();
        for (bad, want) in [
            (
                "SCRAM-SHA-1 a iterations=4096".to_string(),
                "unknown mechanism",
            ),
            ("SCRAM-SHA-256".to_string(), "no user"),
            (good.replace("iterations=4096", "iterations=10"), "outside"),
            (good.replace("salt=", "salt=!"), "not base64"),
            (format!("{good} extra=1"), "unknown key"),
            (format!("{good}\n{good}"), "two"),
            (good.replace(" iterations=4096", ""), "no iterations"),
        ] {
            let (line, reason) = Credentials::parse(&format!("# x\n{bad}\n")).unwrap_err();
            assert!(line >= 2 && reason.contains(want), "{bad}: {line} {reason}");
        }
        assert!(Credentials::line("SCRAM-SHA-256", "has space", "p", 4096).is_err());
        assert!(Credentials::line("SCRAM-SHA-256", "a", "p", 100).is_err());
    }
}
