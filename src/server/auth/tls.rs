//! The byte stream under a connection: plain TCP, or TLS over it (feature `server-tls`:
//! rustls with the `ring` provider, TLS 1.2 and 1.3, a certificate chain and key from PEM
//! files, as Kafka's `ssl.keystore` in PEM form).
//!
//! The TLS handshake runs inside the connection's first read, under the same socket timeouts
//! as any request: a client that never finishes it holds only its own thread, for at most the
//! socket timeout.

use std::io::{self, Read, Write};
use std::net::TcpStream;

#[cfg(feature = "server-tls")]
use std::sync::Arc;

#[cfg(feature = "server-tls")]
use crate::error::{Error, Result};

/// A server certificate and key for TLS connections, ready to serve
/// ([`ServerConfig::tls`](crate::server::ServerConfig::tls)).
#[derive(Clone)]
pub struct TlsConfig {
    #[cfg(feature = "server-tls")]
    inner: Arc<rustls::ServerConfig>,
    #[cfg(not(feature = "server-tls"))]
    _never: std::convert::Infallible,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig").finish_non_exhaustive()
    }
}

#[cfg(feature = "server-tls")]
impl TlsConfig {
    /// Reads a PEM certificate chain (the server's certificate first) and its PEM private key
    /// (PKCS#8, PKCS#1 or SEC1).
    ///
    /// # Errors
    /// [`Io`](crate::ErrorKind::Io) if a file cannot be read;
    /// [`InvalidConfig`](crate::ErrorKind::InvalidConfig) if it holds no certificate or key,
    /// or the key does not fit the certificate.
    pub fn from_pem_files(
        cert_chain: impl AsRef<std::path::Path>,
        key: impl AsRef<std::path::Path>,
    ) -> Result<TlsConfig> {
        let (c, k) = (cert_chain.as_ref(), key.as_ref());
        let certs = std::fs::read(c).map_err(|e| Error::io("read TLS certificate", c, e))?;
        let key_pem = std::fs::read(k).map_err(|e| Error::io("read TLS key", k, e))?;
        TlsConfig::from_pem(&certs, &key_pem)
    }

    /// As [`from_pem_files`](Self::from_pem_files), from the files' contents.
    ///
    /// # Errors
    /// [`InvalidConfig`](crate::ErrorKind::InvalidConfig) as there.
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<TlsConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_slice_iter(cert_chain)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::config("tls", format!("certificate chain: {e}")))?;
        if certs.is_empty() {
            return Err(Error::config("tls", "no certificate in the PEM chain"));
        }
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|e| Error::config("tls", format!("private key: {e}")))?;
        // ring's provider (aws-lc-rs, rustls' default, needs cmake to build). rustls marks it
        // deprecated only because ring has no post-quantum key exchange.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::config("tls", e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| Error::config("tls", format!("certificate and key: {e}")))?;
        Ok(TlsConfig {
            inner: Arc::new(config),
        })
    }
}

/// A connection's stream.
pub(crate) enum Transport {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    #[cfg(feature = "server-tls")]
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Transport {
    /// `tcp`, wrapped in TLS if `tls` is given.
    pub fn new(tcp: TcpStream, tls: Option<&TlsConfig>) -> io::Result<Transport> {
        match tls {
            None => Ok(Transport::Plain(tcp)),
            #[cfg(feature = "server-tls")]
            Some(t) => {
                let conn = rustls::ServerConnection::new(Arc::clone(&t.inner))
                    .map_err(io::Error::other)?;
                Ok(Transport::Tls(Box::new(rustls::StreamOwned::new(
                    conn, tcp,
                ))))
            }
            #[cfg(not(feature = "server-tls"))]
            Some(t) => match t._never {},
        }
    }

    /// The TCP socket under it (timeouts, shutdown).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            #[cfg(feature = "server-tls")]
            Transport::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            #[cfg(feature = "server-tls")]
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            #[cfg(feature = "server-tls")]
            Transport::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            #[cfg(feature = "server-tls")]
            Transport::Tls(s) => s.flush(),
        }
    }
}
