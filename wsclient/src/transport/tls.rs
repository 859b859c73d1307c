//! TLS for `wss://`, with rustls.
//!
//! Verification is on by default, against the Mozilla roots compiled in
//! (feature `webpki-roots`, default) and/or the platform's store (feature
//! `native-roots`), plus any CA files the user adds. SNI is sent for host
//! names, ALPN offers `http/1.1`. Turning verification off is possible only
//! through the loudly named [`TlsOptions::danger_accept_invalid_certs`].
//!
//! The roots are chosen with the crate's features:
//!
//! - default (`webpki-roots`): the Mozilla set only;
//! - `features = ["native-roots"]`: the Mozilla set and the platform store;
//! - `default-features = false, features = ["native-roots"]`: the platform
//!   store only (what the operating system trusts, including CAs an
//!   administrator added).
//!
//! The platform store is read with `rustls-native-certs`: on Linux and
//! other Unix systems the system bundle found by `openssl-probe`, or the
//! file named by `SSL_CERT_FILE` and the directories in `SSL_CERT_DIR` when
//! those are set (they replace the system bundle); the keychain on macOS,
//! the system store on Windows. It is read once and reused for later
//! connections (read again only if `SSL_CERT_FILE` or `SSL_CERT_DIR`
//! change); certificates it cannot parse are skipped, and problems reading
//! it are logged (`tracing` warnings).
//!
//! The client configuration built from a [`TlsOptions`] is shared by every
//! connection made with the same options (while the files they name and the
//! platform store's variables are unchanged): building it parses every root
//! certificate (~85 µs per connection with the platform store), and one
//! configuration per set of options lets reconnects resume their TLS
//! session (rustls keeps session tickets in the configuration) instead of
//! running a full handshake each time.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{
    self, ClientConfig, RootCertStore,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime},
};

/// TLS settings for `wss://` connections.
#[derive(Clone, Default)]
pub struct TlsOptions {
    /// Extra trusted CA certificates (PEM files), added to the default roots.
    pub ca_files: Vec<PathBuf>,
    /// A client certificate chain and its private key (PEM files), for
    /// mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// **Testing only**: accept any server certificate. Anyone on the path
    /// can then read and change the traffic.
    pub danger_accept_invalid_certs: bool,
    /// A complete rustls configuration, used as is (the other fields are
    /// then ignored).
    pub config: Option<Arc<ClientConfig>>,
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca_files", &self.ca_files)
            .field("client_cert", &self.client_cert)
            .field(
                "danger_accept_invalid_certs",
                &self.danger_accept_invalid_certs,
            )
            .field("config", &self.config.as_ref().map(|_| "custom"))
            .finish()
    }
}

/// What went wrong setting up or running TLS.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A CA or certificate file could not be read.
    #[error("cannot read {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A PEM file held no usable certificate or key.
    #[error("{path}: no usable PEM {what} found")]
    Pem {
        /// The file.
        path: PathBuf,
        /// "certificate" or "private key".
        what: &'static str,
    },
    /// The rustls configuration was refused (bad client key, no roots...).
    #[error("invalid TLS configuration: {0}")]
    Config(rustls::Error),
    /// The host is not a valid TLS server name.
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    /// The server's certificate has expired (or is not yet valid).
    #[error("the server's certificate has expired or is not yet valid")]
    CertificateExpired,
    /// The server's certificate is not valid for the host name.
    #[error("the server's certificate is not valid for this host name")]
    CertificateWrongHost,
    /// The server's certificate was issued by an unknown authority (add
    /// its CA with a CA file).
    #[error("the server's certificate is signed by an unknown issuer (add its CA file)")]
    UnknownIssuer,
    /// Another certificate problem.
    #[error("invalid server certificate: {0}")]
    Certificate(rustls::Error),
    /// The server requires a client certificate (mutual TLS) and none was
    /// given: set [`TlsOptions::client_cert`].
    #[error("the server requires a client certificate (set one for mutual TLS)")]
    ClientCertificateRequired,
    /// The server ended the handshake with this TLS alert (for instance
    /// `BadCertificate` or `UnknownCA` when it refuses the client
    /// certificate).
    #[error("the server sent TLS alert {0:?}")]
    Alert(rustls::AlertDescription),
    /// The TLS handshake or stream failed.
    #[error("TLS handshake failed: {0}")]
    Handshake(io::Error),
}

impl TlsError {
    /// The TLS error inside an I/O error of a TLS stream, if there is one:
    /// some failures (the server refusing a client certificate under TLS
    /// 1.3) only show on the first read after the handshake.
    ///
    /// # Errors
    /// The I/O error back when it is not a TLS error.
    pub fn from_io(e: io::Error) -> Result<TlsError, io::Error> {
        if e.get_ref().is_some_and(|i| i.is::<rustls::Error>()) {
            Ok(TlsError::from_handshake(e))
        } else {
            Err(e)
        }
    }

    fn from_handshake(e: io::Error) -> TlsError {
        let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
            return TlsError::Handshake(e);
        };
        match inner {
            rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired) => {
                TlsError::ClientCertificateRequired
            }
            rustls::Error::AlertReceived(alert) => TlsError::Alert(*alert),
            rustls::Error::InvalidCertificate(c) => match c {
                rustls::CertificateError::Expired
                | rustls::CertificateError::ExpiredContext { .. }
                | rustls::CertificateError::NotValidYet
                | rustls::CertificateError::NotValidYetContext { .. } => {
                    TlsError::CertificateExpired
                }
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. } => {
                    TlsError::CertificateWrongHost
                }
                rustls::CertificateError::UnknownIssuer => TlsError::UnknownIssuer,
                _ => TlsError::Certificate(inner.clone()),
            },
            _ => TlsError::Handshake(e),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = std::fs::read(path).map_err(|source| TlsError::File {
        path: path.to_owned(),
        source,
    })?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice())
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            what: "certificate",
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let data = std::fs::read(path).map_err(|source| TlsError::File {
        path: path.to_owned(),
        source,
    })?;
    rustls_pemfile::private_key(&mut data.as_slice())
        .ok()
        .flatten()
        .ok_or_else(|| TlsError::Pem {
            path: path.to_owned(),
            what: "private key",
        })
}

/// The root store: compiled-in and/or platform roots, plus CA files.
fn roots(opts: &TlsOptions) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    #[cfg(feature = "webpki-roots")]
    store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    #[cfg(feature = "native-roots")]
    for cert in native::certs().iter() {
        // A platform certificate rustls cannot parse is skipped, as the
        // platform's own tools do.
        let _ = store.add(cert.clone());
    }
    for path in &opts.ca_files {
        for cert in read_certs(path)? {
            store.add(cert).map_err(TlsError::Config)?;
        }
    }
    Ok(store)
}

/// The platform's root certificates, read once per value of the
/// variables that choose them.
#[cfg(feature = "native-roots")]
mod native {
    use std::ffi::OsString;
    use std::sync::{Arc, Mutex, PoisonError};

    use tokio_rustls::rustls::pki_types::CertificateDer;

    /// The variables `rustls-native-certs` reads (on Unix) to choose the
    /// store, and the certificates read with those values.
    type Cached = ([Option<OsString>; 2], Arc<Vec<CertificateDer<'static>>>);

    static CACHE: Mutex<Option<Cached>> = Mutex::new(None);

    /// The platform store's certificates. Problems are logged; a store
    /// that yielded nothing but errors is read again next time.
    pub(super) fn certs() -> Arc<Vec<CertificateDer<'static>>> {
        let key = [
            std::env::var_os("SSL_CERT_FILE"),
            std::env::var_os("SSL_CERT_DIR"),
        ];
        let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, certs)) = cache.as_ref().filter(|(k, _)| *k == key) {
            return certs.clone();
        }
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "reading the platform's root certificates");
        }
        if found.certs.is_empty() {
            tracing::warn!("the platform's certificate store holds no root certificate");
        }
        let certs = Arc::new(found.certs);
        if !certs.is_empty() || found.errors.is_empty() {
            *cache = Some((key, certs.clone()));
        }
        certs
    }
}

/// The rustls client configuration for `opts`: the one given in
/// [`TlsOptions::config`], else one built from the options and shared with
/// later calls for the same options (see the module's documentation).
///
/// # Errors
/// [`TlsError`] for unreadable files or a refused configuration.
pub fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>, TlsError> {
    if let Some(c) = &opts.config {
        return Ok(c.clone());
    }
    let Some(key) = shared::Key::of(opts) else {
        // A file that cannot be examined: build (and report its error).
        return build_config(opts);
    };
    if let Some(c) = shared::get(&key) {
        return Ok(c);
    }
    let config = build_config(opts)?;
    shared::put(key, config.clone());
    Ok(config)
}

/// Configurations already built, by what they were built from.
mod shared {
    use std::ffi::OsString;
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::SystemTime;

    use tokio_rustls::rustls::ClientConfig;

    use super::TlsOptions;

    /// How many different option sets are remembered.
    const KEEP: usize = 8;

    /// What a configuration was built from: the options, the size and
    /// modification time of every file they name (a replaced CA file or
    /// certificate gives a new configuration), and the variables that
    /// choose the platform store.
    #[derive(PartialEq, Eq)]
    pub(super) struct Key {
        files: Vec<(PathBuf, u64, SystemTime)>,
        client_cert: bool,
        danger: bool,
        env: [Option<OsString>; 2],
    }

    impl Key {
        /// `None` when a named file cannot be examined.
        pub(super) fn of(opts: &TlsOptions) -> Option<Key> {
            let cert_files = opts.client_cert.iter().flat_map(|(c, k)| [c, k]);
            let files = opts
                .ca_files
                .iter()
                .chain(cert_files)
                .map(|p| {
                    let m = std::fs::metadata(p).ok()?;
                    Some((p.clone(), m.len(), m.modified().ok()?))
                })
                .collect::<Option<Vec<_>>>()?;
            Some(Key {
                files,
                client_cert: opts.client_cert.is_some(),
                danger: opts.danger_accept_invalid_certs,
                env: [
                    std::env::var_os("SSL_CERT_FILE"),
                    std::env::var_os("SSL_CERT_DIR"),
                ],
            })
        }
    }

    static CACHE: Mutex<Vec<(Key, Arc<ClientConfig>)>> = Mutex::new(Vec::new());

    pub(super) fn get(key: &Key) -> Option<Arc<ClientConfig>> {
        let cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        cache.iter().find(|(k, _)| k == key).map(|(_, c)| c.clone())
    }

    pub(super) fn put(key: Key, config: Arc<ClientConfig>) {
        let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        cache.retain(|(k, _)| *k != key);
        if cache.len() >= KEEP {
            cache.remove(0);
        }
        cache.push((key, config));
    }
}

/// Builds a new client configuration for `opts` (no shared one).
fn build_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?;
    let builder = if opts.danger_accept_invalid_certs {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider())))
    } else {
        builder.with_root_certificates(roots(opts)?)
    };
    let mut config = match &opts.client_cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
            .map_err(TlsError::Config)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Runs the TLS handshake over `tcp` (a TCP stream, or a Unix domain
/// socket) for `host` (SNI for names; IP addresses are verified against
/// the certificate's IP entries).
///
/// # Errors
/// [`TlsError`], with certificate problems told apart.
pub async fn connect<S>(
    tcp: S,
    host: &str,
    config: Arc<ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<S>, TlsError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let name =
        ServerName::try_from(host.to_owned()).map_err(|_| TlsError::ServerName(host.to_owned()))?;
    TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(TlsError::from_handshake)
}

/// The verifier behind [`TlsOptions::danger_accept_invalid_certs`]: accepts
/// any certificate, still checks handshake signatures.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
