//! Every connection to a node is built here: by the CLI, the SDK, the bench, the tests, and by
//! the nodes themselves (forwarding, cosigning, Raft).
//!
//! Identity is a node's ed25519 **node key**, the key that already signs its checkpoints. A node
//! presents a self-signed certificate over that key; a peer is accepted only when the public key
//! inside its certificate is *pinned* (listed in the client's trust, or in the Raft membership),
//! and only after it proved possession of that key in the TLS 1.3 handshake. No certificate
//! authority, names or expiry are involved: the key is the identity.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, ServerName, SubjectPublicKeyInfoDer, UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tonic::transport::{Channel, Endpoint, Uri};

/// An ed25519 public key: the identity of a node.
pub type NodeKey = [u8; 32];

/// How long opening a connection (TCP and TLS handshake) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the check "does this plaintext URL point at a TLS node?" may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// DER of an Ed25519 SubjectPublicKeyInfo (RFC 8410) before its 32 key bytes: the one shape a
/// node key has inside a certificate.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// id-Ed25519 (RFC 8410).
const ED25519_OID: &str = "1.3.101.112";

/// The TLS implementation: rustls on ring, TLS 1.3 only (ed25519 handshake signatures).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The ed25519 public key a certificate carries; any other key type is refused.
pub fn cert_key(der: &[u8]) -> Result<NodeKey, String> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid.to_string() != ED25519_OID || spki.algorithm.parameters.is_some() {
        return Err(format!(
            "the certificate's key is not an ed25519 node key (algorithm {})",
            spki.algorithm.oid
        ));
    }
    spki.subject_public_key
        .as_bytes()
        .and_then(|b| NodeKey::try_from(b).ok())
        .ok_or_else(|| "the certificate's ed25519 key is not 32 bytes".to_string())
}

/// Parses a hex node key (64 hex digits), as configs and client.toml spell them.
pub fn parse_node_key(hex_key: &str) -> Result<NodeKey, String> {
    hex::decode(hex_key.trim())
        .ok()
        .and_then(|b| NodeKey::try_from(b.as_slice()).ok())
        .ok_or_else(|| format!("{hex_key:?} is not a node key (64 hex digits, ed25519)"))
}

/// Checks a TLS 1.3 handshake signature against `key` itself, so the key that proved possession
/// is exactly the key that was pinned.
fn verify_with_key(
    message: &[u8],
    key: &NodeKey,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    if dss.scheme != SignatureScheme::ED25519 {
        return Err(rustls::Error::General(format!(
            "handshake signed with {:?}; node keys are ed25519",
            dss.scheme
        )));
    }
    let mut spki = ED25519_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(key);
    rustls::crypto::verify_tls13_signature_with_raw_key(
        message,
        &SubjectPublicKeyInfoDer::from(spki),
        dss,
        &provider().signature_verification_algorithms,
    )
}

/// Which node keys a verifier accepts. Dynamic for nodes (the Raft membership changes).
#[derive(Clone)]
pub struct Pins(Arc<dyn Fn(&NodeKey) -> bool + Send + Sync>);

impl Pins {
    pub fn keys(keys: impl IntoIterator<Item = NodeKey>) -> Pins {
        let set: BTreeSet<NodeKey> = keys.into_iter().collect();
        Pins(Arc::new(move |k| set.contains(k)))
    }
    pub fn dynamic(f: impl Fn(&NodeKey) -> bool + Send + Sync + 'static) -> Pins {
        Pins(Arc::new(f))
    }
    pub fn accepts(&self, key: &NodeKey) -> bool {
        (self.0)(key)
    }
    fn check(&self, der: &[u8], whose: &str) -> Result<NodeKey, rustls::Error> {
        let key = cert_key(der).map_err(rustls::Error::General)?;
        if !self.accepts(&key) {
            return Err(rustls::Error::General(format!(
                "the {whose}'s node key {} is not trusted",
                hex::encode(key)
            )));
        }
        Ok(key)
    }
}

impl std::fmt::Debug for Pins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pins")
    }
}

/// A client's check of the node it connects to: its certificate's key must be pinned. The
/// server name is not checked: the key is the identity.
#[derive(Debug)]
pub struct PinnedServer(pub Pins);

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0
            .check(end_entity, "node")
            .map(|_| ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not accepted".into()))
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let key = self.0.check(cert, "node")?;
        verify_with_key(message, &key, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// A node's check of the certificate a connecting peer presents (mutual TLS).
#[derive(Debug)]
pub struct PinnedClient {
    pub pins: Pins,
    /// Whether a connection without a certificate is refused (the Raft port) or let in (the
    /// public port, where clients are anonymous and sign their own requests).
    pub mandatory: bool,
}

impl ClientCertVerifier for PinnedClient {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.pins
            .check(end_entity, "peer")
            .map(|_| ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not accepted".into()))
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let key = self.pins.check(cert, "peer")?;
        verify_with_key(message, &key, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// A certificate and its private key (PKCS#8), presented by a node when it connects to a peer.
pub struct Identity {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
}

/// How to reach a node: plaintext HTTP/2, or TLS pinned to node keys.
#[derive(Clone)]
pub enum Transport {
    Plaintext,
    Tls {
        pins: Pins,
        /// The node's own certificate, for connections between nodes.
        identity: Option<Arc<Identity>>,
    },
}

impl Transport {
    fn client_config(&self) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
        let Transport::Tls { pins, identity } = self else {
            return Ok(None);
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedServer(pins.clone())));
        let mut config = match identity {
            Some(id) => builder
                .with_client_auth_cert(vec![id.cert.clone()], id.key.clone_key())
                .map_err(|e| format!("the node's certificate: {e}"))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Some(Arc::new(config)))
    }
}

/// The connector tonic calls for each new connection: TCP, then TLS when configured.
#[derive(Clone)]
struct Connector {
    tls: Option<tokio_rustls::TlsConnector>,
}

type Io = hyper_util::rt::TokioIo<Box<dyn IoStream>>;
trait IoStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> IoStream for T {}

impl tower_service::Service<Uri> for Connector {
    type Response = Io;
    type Error = std::io::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Io, std::io::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| std::io::Error::other(format!("{uri} has no host")))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri
                .port_u16()
                .unwrap_or(if uri.scheme_str() == Some("https") {
                    443
                } else {
                    80
                });
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let io: Box<dyn IoStream> = match tls {
                None => Box::new(tcp),
                Some(tls) => {
                    let name = ServerName::try_from(host)
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                    Box::new(tls.connect(name, tcp).await?)
                }
            };
            Ok(hyper_util::rt::TokioIo::new(io))
        })
    }
}

fn endpoint(url: &str) -> Result<Endpoint, String> {
    Channel::from_shared(url.to_string())
        .map_err(|e| format!("not a URL ({e}); expected e.g. https://127.0.0.1:7100"))
        .map(|e| e.connect_timeout(CONNECT_TIMEOUT))
}

fn connector(transport: &Transport) -> Result<Connector, String> {
    Ok(Connector {
        tls: transport
            .client_config()?
            .map(tokio_rustls::TlsConnector::from),
    })
}

/// A channel to `url` that connects on first use (and reconnects), over `transport`.
pub fn channel_lazy(url: &str, transport: &Transport) -> Result<Channel, String> {
    Ok(endpoint(url)?.connect_with_connector_lazy(connector(transport)?))
}

/// A connected channel to `url` over `transport`.
pub async fn channel(url: &str, transport: &Transport) -> Result<Channel, String> {
    let endpoint = endpoint(url)?;
    endpoint
        .connect_with_connector(connector(transport)?)
        .await
        .map_err(|e| {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                // Layers often repeat their source's text ("Connection refused: Connection refused").
                let text = s.to_string();
                if !msg.contains(&text) {
                    msg = format!("{msg}: {text}");
                }
                source = s.source();
            }
            msg
        })
}

/// What a client trusts: the node keys of client.toml (`[tls] node_keys`, and the keys inside
/// `[tls] node_certs` files).
#[derive(Debug, Clone, Default)]
pub struct ClientTrust {
    pub endpoints: Vec<String>,
    pub node_keys: Vec<NodeKey>,
}

/// Where the client reads its config: `$LEDGER_CLIENT_CONFIG`, else ./ledger-data/client.toml
/// (what `ledger-node dev` writes) when it exists, else the user's
/// `$XDG_CONFIG_HOME/ledger/client.toml` (`~/.config/ledger/client.toml`) when that exists,
/// else ./ledger-data/client.toml (named in messages).
pub fn client_config_path() -> PathBuf {
    config_path_from(|name| std::env::var_os(name), |p| p.exists())
}

fn config_path_from(
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
    exists: impl Fn(&Path) -> bool,
) -> PathBuf {
    let set = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(path) = set("LEDGER_CLIENT_CONFIG") {
        return path;
    }
    let local = PathBuf::from(crate::DEFAULT_CLIENT_CONFIG);
    if exists(&local) {
        return local;
    }
    let user = set("XDG_CONFIG_HOME")
        .or_else(|| set("HOME").map(|h| h.join(".config")))
        .map(|dir| dir.join("ledger").join("client.toml"));
    match user {
        Some(user) if exists(&user) => user,
        _ => local,
    }
}

/// The URL of a `--node` argument: as given when it names a scheme, else `HOST:PORT` over TLS
/// when the client config trusts node keys (every node speaks TLS unless it was set up for
/// plaintext on loopback), else plaintext.
pub fn node_url(arg: &str, trust: &ClientTrust) -> String {
    if arg.contains("://") {
        return arg.to_string();
    }
    let scheme = if trust.node_keys.is_empty() {
        "http"
    } else {
        "https"
    };
    format!("{scheme}://{arg}")
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientToml {
    #[serde(default)]
    endpoints: Vec<String>,
    /// Read by [`crate::retry::configured_retry_for`]; accepted here so the file stays valid.
    #[serde(default, rename = "retry_seconds")]
    _retry_seconds: Option<u64>,
    #[serde(default)]
    tls: TlsToml,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TlsToml {
    #[serde(default)]
    node_keys: Vec<String>,
    #[serde(default)]
    node_certs: Vec<PathBuf>,
}

impl ClientTrust {
    /// Reads a client.toml; certificate paths are relative to its directory.
    pub fn load(path: &Path) -> Result<ClientTrust, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let parsed: ClientToml = toml::from_str(&text)
            .map_err(|e| format!("{} is not a client config: {e}", path.display()))?;
        let mut node_keys = Vec::new();
        for k in &parsed.tls.node_keys {
            node_keys.push(parse_node_key(k).map_err(|e| format!("{}: {e}", path.display()))?);
        }
        let base = path.parent().unwrap_or(Path::new("."));
        for c in &parsed.tls.node_certs {
            node_keys.push(key_of_cert_file(&base.join(c))?);
        }
        Ok(ClientTrust {
            endpoints: parsed.endpoints,
            node_keys,
        })
    }

    /// The default config (see [`client_config_path`]); empty when the file does not exist.
    pub fn load_default() -> Result<ClientTrust, String> {
        let path = client_config_path();
        if !path.exists() {
            return Ok(ClientTrust::default());
        }
        ClientTrust::load(&path)
    }

    /// The transport a URL asks for: `https://` is TLS pinned to the trusted node keys,
    /// `http://` plaintext.
    pub fn transport_for(&self, url: &str) -> Result<Transport, String> {
        if url.starts_with("http://") {
            return Ok(Transport::Plaintext);
        }
        if !url.starts_with("https://") {
            return Err(format!(
                "{url:?}: a node URL starts with https:// (TLS) or http:// (a plaintext node)"
            ));
        }
        if self.node_keys.is_empty() {
            return Err(format!(
                "no trusted node keys for {url}: list them in {} under [tls] node_keys (or \
                 node_certs), or set LEDGER_CLIENT_CONFIG",
                client_config_path().display()
            ));
        }
        Ok(Transport::Tls {
            pins: Pins::keys(self.node_keys.iter().copied()),
            identity: None,
        })
    }
}

/// The node key inside a PEM (or DER) certificate file.
pub fn key_of_cert_file(path: &Path) -> Result<NodeKey, String> {
    use rustls::pki_types::pem::PemObject;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let der = match CertificateDer::from_pem_slice(&bytes) {
        Ok(c) => c.to_vec(),
        Err(_) => bytes,
    };
    cert_key(&der).map_err(|e| format!("{}: {e}", path.display()))
}

/// Whether the server at an `http://` URL answers a TLS handshake, i.e. it is a TLS node that a
/// plaintext client cannot talk to.
pub async fn speaks_tls(url: &str) -> bool {
    let Ok(uri) = url.parse::<Uri>() else {
        return false;
    };
    let (Some(host), Some(port)) = (uri.host().map(str::to_string), uri.port_u16()) else {
        return false;
    };
    // Any certificate counts as "TLS answered"; the probe never sends application data.
    let probe = Transport::Tls {
        pins: Pins::dynamic(|_| true),
        identity: None,
    };
    let Ok(Some(config)) = probe.client_config() else {
        return false;
    };
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .ok()?;
        let name = ServerName::try_from(host.clone()).ok()?;
        let connector = tokio_rustls::TlsConnector::from(config);
        // A handshake that got as far as the certificate is a TLS server, even when the
        // server then refuses this anonymous client.
        match connector.connect(name, tcp).await {
            Ok(_) => Some(true),
            Err(e) => Some(e.to_string().contains("certificate")),
        }
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, attempt).await,
        Ok(Some(true))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_keys_parse_and_bad_ones_are_named() {
        let k = parse_node_key(&"ab".repeat(32)).unwrap();
        assert_eq!(k, [0xab; 32]);
        assert!(parse_node_key("abcd")
            .unwrap_err()
            .contains("64 hex digits"));
        assert!(cert_key(b"not a certificate").is_err());
    }

    #[test]
    fn a_client_config_may_set_retry_seconds() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("client.toml");
        std::fs::write(&p, "retry_seconds = 5\nendpoints = [\"https://h:1\"]\n").unwrap();
        assert_eq!(ClientTrust::load(&p).unwrap().endpoints, ["https://h:1"]);
        std::fs::write(&p, "colour = 5\n").unwrap();
        assert!(ClientTrust::load(&p).is_err());
    }

    #[test]
    fn a_bare_host_and_port_gets_the_scheme_of_the_config() {
        let none = ClientTrust::default();
        let some = ClientTrust {
            endpoints: vec![],
            node_keys: vec![[1; 32]],
        };
        assert_eq!(node_url("10.0.0.1:7100", &some), "https://10.0.0.1:7100");
        assert_eq!(node_url("cn44-a:7100", &none), "http://cn44-a:7100");
        assert_eq!(node_url("http://h:1", &some), "http://h:1");
        assert_eq!(node_url("https://h:1", &none), "https://h:1");
    }

    #[test]
    fn the_config_is_the_variable_then_ledger_data_then_the_user_dir() {
        use std::ffi::OsString;
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let local = PathBuf::from(crate::DEFAULT_CLIENT_CONFIG);
        let xdg = PathBuf::from("/x/ledger/client.toml");
        let home = PathBuf::from("/home/u/.config/ledger/client.toml");
        let vars = &[
            ("LEDGER_CLIENT_CONFIG", "/etc/c.toml"),
            ("XDG_CONFIG_HOME", "/x"),
        ];
        assert_eq!(
            config_path_from(env(vars), |_| true),
            PathBuf::from("/etc/c.toml")
        );
        let vars = &[("XDG_CONFIG_HOME", "/x"), ("HOME", "/home/u")];
        assert_eq!(config_path_from(env(vars), |_| true), local);
        assert_eq!(config_path_from(env(vars), |p| p == xdg), xdg);
        assert_eq!(
            config_path_from(env(&[("HOME", "/home/u")]), |p| p == home),
            home
        );
        // Nothing exists: the default path, which messages name.
        assert_eq!(config_path_from(env(vars), |_| false), local);
    }

    #[test]
    fn plaintext_and_tls_urls_pick_their_transport() {
        let none = ClientTrust::default();
        assert!(matches!(
            none.transport_for("http://127.0.0.1:1"),
            Ok(Transport::Plaintext)
        ));
        assert!(none
            .transport_for("https://127.0.0.1:1")
            .err()
            .unwrap()
            .contains("no trusted node keys"));
        assert!(none.transport_for("127.0.0.1:1").is_err());
        let some = ClientTrust {
            endpoints: vec![],
            node_keys: vec![[1; 32]],
        };
        assert!(matches!(
            some.transport_for("https://127.0.0.1:1"),
            Ok(Transport::Tls { .. })
        ));
    }
}
