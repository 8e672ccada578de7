//! The node's transport identity: its ed25519 node key (`DATA_DIR/node.key`, the same key that
//! signs its checkpoints), a self-signed certificate over it made at start-up, and the TLS
//! servers of the public and Raft ports. Peers are pinned by node key (the Raft membership
//! carries each member's), not by a certificate authority: see ARCHITECTURE.md, "Trust model:
//! transport".

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use ed25519_dalek::SigningKey;
use ledger_client::transport::{self, Identity, NodeKey, PinnedClient, Pins, Transport};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A connection must finish its TLS handshake within this, so a silent client cannot hold a
/// handshake slot.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress per port at once; more connections wait in the kernel's backlog.
pub const MAX_PENDING_HANDSHAKES: usize = 256;
/// PKCS#8 v1 (RFC 8410) of an ed25519 key, before its 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The node's certificate and key, made from its node key.
pub struct NodeTls {
    pub public_key: NodeKey,
    identity: Arc<Identity>,
    /// A second certificate, ECDSA P-256, for clients whose TLS library offers no ed25519
    /// (gRPC's C core with BoringSSL: Python, C++, C#, Ruby). They pin this certificate file.
    p256: Identity,
}

/// Where the P-256 key of the second certificate is kept (PKCS#8 DER), so that its certificate
/// keeps its key across restarts.
pub const P256_KEY_FILE: &str = "node-p256.key";
/// The second certificate (PEM), for clients that cannot verify ed25519.
pub const P256_CERT_FILE: &str = "node-p256.crt";

impl NodeTls {
    /// Makes the self-signed certificate of `key` for the names `sans` (IPs or DNS names), and
    /// writes it to `DATA_DIR/node.crt` for operators and clients that pin by certificate file.
    pub fn new(key: &SigningKey, sans: &[String], data_dir: &Path) -> anyhow::Result<NodeTls> {
        let identity = node_identity(key, sans)?;
        let path = data_dir.join("node.crt");
        std::fs::write(&path, pem_certificate(identity.cert.as_ref()))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(NodeTls {
            public_key: key.verifying_key().to_bytes(),
            identity: Arc::new(identity),
            p256: p256_identity(sans, data_dir)?,
        })
    }

    /// Connections this node opens to peers pinned by `pins`, presenting its own certificate.
    pub fn outgoing(&self, pins: Pins) -> Transport {
        Transport::Tls {
            pins,
            identity: Some(self.identity.clone()),
        }
    }

    /// A TLS server: peers must present a pinned certificate when `clients` is mandatory.
    /// A client that offers ed25519 gets the node-key certificate; any other gets the P-256 one.
    pub fn acceptor(&self, clients: PinnedClient) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
        self.acceptor_for(clients, &[b"h2"])
    }

    /// The acceptor of the HTTP/JSON API: clients are anonymous, and HTTP/1.1 clients (scripts,
    /// browsers through a proxy) are served as well as HTTP/2 ones.
    pub fn http_acceptor(&self) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
        let anyone = PinnedClient {
            pins: ledger_client::transport::Pins::dynamic(|_| true),
            mandatory: false,
        };
        self.acceptor_for(anyone, &[b"h2", b"http/1.1"])
    }

    fn acceptor_for(
        &self,
        clients: PinnedClient,
        alpn: &[&[u8]],
    ) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
        let certified = |id: &Identity| -> anyhow::Result<Arc<rustls::sign::CertifiedKey>> {
            let key = transport::provider()
                .key_provider
                .load_private_key(id.key.clone_key())
                .context("loading a node certificate key")?;
            Ok(Arc::new(rustls::sign::CertifiedKey::new(
                vec![id.cert.clone()],
                key,
            )))
        };
        let mut config = rustls::ServerConfig::builder_with_provider(transport::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(Arc::new(clients))
            .with_cert_resolver(Arc::new(ByScheme {
                ed25519: certified(&self.identity)?,
                p256: certified(&self.p256)?,
            }));
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

/// A self-signed certificate over the node key for the names `sans`: what the node presents,
/// and what a local tool holding the node key presents to prove it is the node's operator.
pub fn node_identity(key: &SigningKey, sans: &[String]) -> anyhow::Result<Identity> {
    let mut pkcs8 = ED25519_PKCS8_PREFIX.to_vec();
    pkcs8.extend_from_slice(key.as_bytes());
    let pkcs8 = PrivatePkcs8KeyDer::from(pkcs8);
    let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_ED25519)
        .context("the node key as a certificate key")?;
    let params = rcgen::CertificateParams::new(sans.to_vec())
        .context("the certificate's names ([tls] names)")?;
    let cert = params
        .self_signed(&key_pair)
        .context("signing the node certificate")?;
    Ok(Identity {
        cert: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(pkcs8),
    })
}

/// Picks the node-key (ed25519) certificate when the client can verify it, else the P-256 one.
#[derive(Debug)]
struct ByScheme {
    ed25519: Arc<rustls::sign::CertifiedKey>,
    p256: Arc<rustls::sign::CertifiedKey>,
}

impl rustls::server::ResolvesServerCert for ByScheme {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let schemes = hello.signature_schemes();
        if schemes.contains(&rustls::SignatureScheme::ED25519) {
            Some(self.ed25519.clone())
        } else if schemes.contains(&rustls::SignatureScheme::ECDSA_NISTP256_SHA256) {
            Some(self.p256.clone())
        } else {
            None
        }
    }
}

/// The P-256 certificate for clients without ed25519: its key made once and kept in
/// `DATA_DIR/node-p256.key`, the certificate written to `DATA_DIR/node-p256.crt`.
fn p256_identity(sans: &[String], data_dir: &Path) -> anyhow::Result<Identity> {
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let path = data_dir.join(P256_KEY_FILE);
    let key_pair = match std::fs::read(&path) {
        Ok(der) => {
            rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(der), alg)
                .with_context(|| format!("{} is not a P-256 key", path.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let k = rcgen::KeyPair::generate_for(alg).context("making a P-256 key")?;
            write_private(&path, &k.serialize_der())?;
            k
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let cert = rcgen::CertificateParams::new(sans.to_vec())
        .context("the certificate's names ([tls] names)")?
        .self_signed(&key_pair)
        .context("signing the P-256 certificate")?;
    let crt = data_dir.join(P256_CERT_FILE);
    std::fs::write(&crt, pem_certificate(cert.der()))
        .with_context(|| format!("writing {}", crt.display()))?;
    Ok(Identity {
        cert: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der())),
    })
}

/// Writes a secret file readable by its owner only, whole or not at all.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// PEM (RFC 7468) of a DER certificate: base64 in lines of 64 characters.
fn pem_certificate(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// What the server knows about the other end of a connection (in each request's extensions).
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The node key the peer proved in the TLS handshake; `None` in plaintext or without a
    /// client certificate.
    pub key: Option<NodeKey>,
    pub remote: Option<SocketAddr>,
}

/// One accepted connection, plaintext or TLS.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        match self {
            Conn::Plain(s) => PeerInfo {
                key: None,
                remote: s.peer_addr().ok(),
            },
            Conn::Tls(s) => {
                let (tcp, session) = s.get_ref();
                PeerInfo {
                    key: session
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c: &CertificateDer<'_>| transport::cert_key(c).ok()),
                    remote: tcp.peer_addr().ok(),
                }
            }
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

type Incoming = tokio_stream::wrappers::ReceiverStream<std::io::Result<Conn>>;

/// The connections of `listener` as tonic's incoming stream: each TLS handshake runs on its
/// own task (bounded by [`HANDSHAKE_TIMEOUT`] and [`MAX_PENDING_HANDSHAKES`]), and a failed
/// one is logged and dropped without reaching the gRPC server.
pub fn incoming(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) -> Incoming {
    let (tx, rx) = tokio::sync::mpsc::channel(MAX_PENDING_HANDSHAKES);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let (tcp, remote) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection");
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let tx = tx.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let conn = match tls {
                    None => Conn::Plain(tcp),
                    Some(acceptor) => {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(s)) => Conn::Tls(Box::new(s)),
                            Ok(Err(e)) => {
                                tracing::warn!(%remote, error = %e, "TLS handshake refused");
                                return;
                            }
                            Err(_) => {
                                tracing::warn!(%remote, "TLS handshake timed out");
                                return;
                            }
                        }
                    }
                };
                drop(slot);
                let _ = tx.send(Ok(conn)).await;
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_carries_the_node_key_and_its_pem_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[7; 32]);
        let tls =
            NodeTls::new(&key, &["127.0.0.1".into(), "localhost".into()], dir.path()).unwrap();
        assert_eq!(tls.public_key, key.verifying_key().to_bytes());
        assert_eq!(
            transport::cert_key(&tls.identity.cert).unwrap(),
            tls.public_key
        );
        let from_file = transport::key_of_cert_file(&dir.path().join("node.crt")).unwrap();
        assert_eq!(from_file, tls.public_key);
    }

    #[test]
    fn the_p256_certificate_keeps_its_key_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[7; 32]);
        let names = ["127.0.0.1".to_string()];
        let first = NodeTls::new(&key, &names, dir.path()).unwrap();
        let again = NodeTls::new(&key, &names, dir.path()).unwrap();
        assert_eq!(first.p256.key.secret_der(), again.p256.key.secret_der());
        // It is not the node key's certificate: our own clients never pin it.
        assert!(transport::cert_key(&first.p256.cert).is_err());
        let mode = std::fs::metadata(dir.path().join(P256_KEY_FILE))
            .unwrap()
            .permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600);
    }
}
