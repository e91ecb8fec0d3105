//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), the server side, as Kafka's
//! `ScramSaslServer` runs it (KIP-84): no channel binding (`n,,` only), the authorization id
//! empty or the user's own, extensions after the nonce ignored, at least 4096 iterations.
//!
//! The server keeps, per user and mechanism, only what RFC 5802 §3 calls the stored key and
//! server key with the salt and iteration count: a leaked credentials file does not reveal a
//! password, and a client proves it knows one without sending it.
//!
//! ```text
//! client-first  n,,n=<user>,r=<client nonce>
//! server-first  r=<client nonce><server nonce>,s=<salt, base64>,i=<iterations>
//! client-final  c=biws,r=<nonce>,p=<ClientKey XOR HMAC(StoredKey, AuthMessage), base64>
//! server-final  v=<HMAC(ServerKey, AuthMessage), base64>
//! ```

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

/// Kafka's lower bound on SCRAM iterations (`ScramMechanism.minIterations`).
pub const MIN_ITERATIONS: u32 = 4096;
/// Kafka's upper bound (`ScramMechanism.maxIterations`), also ours: it bounds the PBKDF2 work a
/// PLAIN login against a SCRAM credential costs.
pub const MAX_ITERATIONS: u32 = 16384;

/// One of the two SCRAM mechanisms Kafka supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mechanism {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl Mechanism {
    /// Its SASL name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism named `name` (SASL names are case-sensitive: upper case).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "SCRAM-SHA-256" => Some(Mechanism::Sha256),
            "SCRAM-SHA-512" => Some(Mechanism::Sha512),
            _ => None,
        }
    }

    fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            // HMAC accepts keys of any length: new_from_slice cannot fail.
            let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }
        match self {
            Mechanism::Sha256 => run::<Hmac<Sha256>>(key, parts),
            Mechanism::Sha512 => run::<Hmac<Sha512>>(key, parts),
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => Sha256::digest(data).to_vec(),
            Mechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            Mechanism::Sha512 => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

/// What the server stores for one user and mechanism (Kafka's `ScramCredential`).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    /// The salt.
    pub salt: Vec<u8>,
    /// H(HMAC(SaltedPassword, "Client Key")).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// The credential of `password` with `salt` and `iterations`.
    pub fn derive(mech: Mechanism, password: &str, salt: &[u8], iterations: u32) -> Self {
        let salted = mech.salted_password(password.as_bytes(), salt, iterations);
        let client_key = mech.hmac(&salted, &[b"Client Key"]);
        ScramCredential {
            salt: salt.to_vec(),
            stored_key: mech.hash(&client_key),
            server_key: mech.hmac(&salted, &[b"Server Key"]),
            iterations,
        }
    }

    /// Whether `password` is the one this credential was derived from (for SASL/PLAIN, which
    /// sends the password: it is checked against the SCRAM credential, so no password is
    /// stored anywhere).
    pub fn matches_password(&self, mech: Mechanism, password: &str) -> bool {
        let d = ScramCredential::derive(mech, password, &self.salt, self.iterations);
        constant_time_eq(&d.stored_key, &self.stored_key)
    }
}

/// Compares without an early exit, so timing does not tell how many leading bytes matched.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why an exchange failed: the message the client gets with SASL_AUTHENTICATION_FAILED.
pub type Failure = String;

/// The server side of one SCRAM exchange.
#[derive(Debug)]
pub enum Exchange {
    /// Waiting for client-first.
    Start,
    /// Sent server-first; waiting for client-final.
    SentFirst {
        /// The user being authenticated.
        user: String,
        /// client-first-bare + "," + server-first, the start of AuthMessage.
        auth_prefix: String,
        /// The combined nonce.
        nonce: String,
        /// The user's credential (`None`: unknown user; the exchange goes on with a made-up
        /// salt and fails at the proof, so a client cannot tell unknown users from wrong
        /// passwords, as RFC 5802 §5.1 suggests).
        credential: Option<ScramCredential>,
    },
    /// Finished (authenticated or failed); nothing more may come.
    Done,
}

impl Exchange {
    /// Handles the client's next message; returns the server's answer, or why the exchange
    /// failed. `lookup` finds a user's credential for this mechanism; `server_nonce` is fresh
    /// randomness (printable, without ','). On success after client-final, the answer is
    /// server-final and `authenticated` is set to the user.
    pub fn step(
        &mut self,
        mech: Mechanism,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
        server_nonce: &str,
        authenticated: &mut Option<String>,
    ) -> Result<Vec<u8>, Failure> {
        let state = std::mem::replace(self, Exchange::Done);
        let message =
            std::str::from_utf8(message).map_err(|_| "SCRAM message is not UTF-8".to_string())?;
        match state {
            Exchange::Start => {
                let (user, client_nonce, bare) = parse_client_first(message)?;
                let credential = lookup(&user);
                let (salt, iterations) = match &credential {
                    Some(c) => (c.salt.clone(), c.iterations),
                    None => (
                        mech.hash(format!("riverbed unknown user {user}").as_bytes())[..16]
                            .to_vec(),
                        MIN_ITERATIONS,
                    ),
                };
                let nonce = format!("{client_nonce}{server_nonce}");
                let first = format!("r={nonce},s={},i={iterations}", B64.encode(&salt));
                *self = Exchange::SentFirst {
                    user,
                    auth_prefix: format!("{bare},{first}"),
                    nonce,
                    credential,
                };
                Ok(first.into_bytes())
            }
            Exchange::SentFirst {
                user,
                auth_prefix,
                nonce,
                credential,
            } => {
                let (without_proof, proof) = message
                    .rsplit_once(",p=")
                    .ok_or_else(|| "SCRAM client-final message without a proof".to_string())?;
                let mut fields = without_proof.split(',');
                let channel = fields.next().unwrap_or("");
                let got_nonce = fields.next().unwrap_or("");
                // "biws" is base64("n,,"): no channel binding, no authorization id; "eSws"
                // ("y,,") a client that supports binding but thinks we do not.
                if channel != "c=biws" && channel != "c=eSws" {
                    return Err(format!(
                        "SCRAM channel binding {channel:?} is not supported (expected c=biws)"
                    ));
                }
                if got_nonce.strip_prefix("r=") != Some(nonce.as_str()) {
                    return Err("SCRAM nonce does not match".into());
                }
                let proof = B64
                    .decode(proof)
                    .map_err(|_| "SCRAM proof is not base64".to_string())?;
                let auth_message = format!("{auth_prefix},{without_proof}");
                let fail = || {
                    format!("Authentication failed during authentication due to invalid credentials with SASL mechanism {}", mech.name())
                };
                let Some(c) = credential else {
                    return Err(fail());
                };
                let signature = mech.hmac(&c.stored_key, &[auth_message.as_bytes()]);
                if proof.len() != signature.len() {
                    return Err(fail());
                }
                let client_key: Vec<u8> =
                    proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
                if !constant_time_eq(&mech.hash(&client_key), &c.stored_key) {
                    return Err(fail());
                }
                let server_signature = mech.hmac(&c.server_key, &[auth_message.as_bytes()]);
                *authenticated = Some(user);
                Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
            }
            Exchange::Done => Err("SCRAM exchange already finished".into()),
        }
    }
}

/// Parses client-first: `gs2-header client-first-bare`, returning (user, client nonce,
/// client-first-bare).
fn parse_client_first(message: &str) -> Result<(String, String, String), Failure> {
    let bad = || format!("invalid SCRAM client-first message {message:?}");
    let (cb, rest) = message.split_once(',').ok_or_else(bad)?;
    if cb != "n" && cb != "y" {
        return Err(format!(
            "SCRAM channel binding {cb:?} is not supported (expected n)"
        ));
    }
    let (authzid, bare) = rest.split_once(',').ok_or_else(bad)?;
    let mut fields = bare.split(',');
    let user = fields
        .next()
        .and_then(|f| f.strip_prefix("n="))
        .ok_or_else(bad)?;
    let user = decode_saslname(user).ok_or_else(bad)?;
    let nonce = fields
        .next()
        .and_then(|f| f.strip_prefix("r="))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b','))
        .ok_or_else(bad)?;
    if !authzid.is_empty() {
        let authzid = authzid
            .strip_prefix("a=")
            .and_then(decode_saslname)
            .ok_or_else(bad)?;
        if authzid != user {
            return Err(format!(
                "authorization id {authzid:?} is not the user {user:?}: impersonation is not supported"
            ));
        }
    }
    if user.is_empty() {
        return Err(bad());
    }
    // Anything after the nonce is an extension (Kafka's `tokenauth`); none is acted on.
    Ok((user, nonce.to_string(), bare.to_string()))
}

/// RFC 5802's saslname: `=2C` is ',' and `=3D` is '='; any other '=' is invalid.
fn decode_saslname(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3's example exchange (SCRAM-SHA-256, user "user", password "pencil"), run
    /// against our server with the RFC's salt and nonces: the server-first and server-final
    /// messages must be the RFC's, byte for byte.
    #[test]
    fn rfc_7677_example() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let cred = ScramCredential::derive(Mechanism::Sha256, "pencil", &salt, 4096);
        let mut ex = Exchange::Start;
        let mut who = None;
        let first = ex
            .step(
                Mechanism::Sha256,
                b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
                |u| (u == "user").then(|| cred.clone()),
                "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
                &mut who,
            )
            .unwrap();
        assert_eq!(
            String::from_utf8(first).unwrap(),
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let last = ex
            .step(
                Mechanism::Sha256,
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                |_| None,
                "",
                &mut who,
            )
            .unwrap();
        assert_eq!(
            String::from_utf8(last).unwrap(),
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        assert_eq!(who.as_deref(), Some("user"));
    }

    /// RFC 5802 §5's example (SCRAM-SHA-1 there) has no SHA-512 twin; a SHA-512 exchange is
    /// checked against a client computed here from the RFC's formulas, and a wrong password,
    /// an unknown user and a replayed nonce all fail.
    #[test]
    fn sha512_exchange_and_failures() {
        let mech = Mechanism::Sha512;
        let cred = ScramCredential::derive(mech, "secret", b"0123456789abcdef", 4096);
        let run = |password: &str, user: &str, tamper_nonce: bool| -> Result<Vec<u8>, Failure> {
            let mut ex = Exchange::Start;
            let mut who = None;
            let cf = format!("n,,n={user},r=abc");
            let sf = ex.step(
                mech,
                cf.as_bytes(),
                |u| (u == "alice").then(|| cred.clone()),
                "XYZ",
                &mut who,
            )?;
            let sf = String::from_utf8(sf).unwrap();
            let nonce = if tamper_nonce { "abcXYQ" } else { "abcXYZ" };
            let without = format!("c=biws,r={nonce}");
            let auth = format!("n={user},r=abc,{sf},{without}");
            let mine = ScramCredential::derive(mech, password, b"0123456789abcdef", 4096);
            let salted = mech.salted_password(password.as_bytes(), b"0123456789abcdef", 4096);
            let client_key = mech.hmac(&salted, &[b"Client Key"]);
            let sig = mech.hmac(&mine.stored_key, &[auth.as_bytes()]);
            let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
            let cfinal = format!("{without},p={}", B64.encode(proof));
            ex.step(mech, cfinal.as_bytes(), |_| None, "", &mut who)
        };
        assert!(run("secret", "alice", false).is_ok());
        assert!(run("wrong", "alice", false).is_err());
        assert!(run("secret", "mallory", false).is_err());
        assert!(run("secret", "alice", true).is_err());
    }

    #[test]
    fn client_first_parsing() {
        assert_eq!(
            parse_client_first("n,,n=a=2Cb=3Dc,r=xyz,tokenauth=true")
                .unwrap()
                .0,
            "a,b=c"
        );
        assert!(parse_client_first("n,a=alice,n=alice,r=x").is_ok());
        for bad in [
            "",
            "p=tls-unique,,n=a,r=x",
            "n,a=bob,n=alice,r=x",
            "n,,n=a=2,r=x",
            "n,,n=,r=x",
            "n,,n=a",
            "n,,n=a,r=",
            "n,,r=x,n=a",
        ] {
            assert!(parse_client_first(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn plain_passwords_check_against_the_scram_credential() {
        let c = ScramCredential::derive(Mechanism::Sha256, "pw", b"salt", 4096);
        assert!(c.matches_password(Mechanism::Sha256, "pw"));
        assert!(!c.matches_password(Mechanism::Sha256, "pW"));
    }
}
