//! `ledger-node run`: one node serving the public gRPC API with health and reflection, until
//! SIGTERM or Ctrl-C.

use std::sync::Arc;

use anyhow::Context;
use ledger_proto::node::ledger_server::LedgerServer;

use crate::config::{load_genesis, NodeConfig, TlsMode};
use crate::ledger::Ledger;
use crate::raft::{MemberKeys, Net};
use crate::service::{NodeService, MAX_MESSAGE_BYTES};
use crate::signals::shutdown_signal;
use crate::tls::NodeTls;
use ledger_client::transport::{NodeKey, PinnedClient, Pins, Transport};

/// How long in-flight requests get to finish after SIGTERM before idle or slow connections are
/// dropped. Appends are atomic, so a request cut off here was simply never acknowledged.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn run(config: NodeConfig) -> anyhow::Result<()> {
    let stop = shutdown_signal();
    let net = node_net(&config)?;
    let ledger = open_ledger(&config, &net).await?;
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let health = Arc::new(crate::health::Health::start(reporter, ledger.raft().cloned()).await);
    let notary = open_notary(&config, &net, &ledger)?;
    serve_metrics(&config, &ledger, &notary, &health).await?;
    // One read gate for both services: a token is admitted once, whichever service reads.
    let gate = Arc::new(crate::read_gate::ReadGate::new(
        ledger.clone(),
        &config.node_id,
    ));
    let node_service = Arc::new(NodeService::new(
        ledger.clone(),
        config.clone(),
        gate.clone(),
    ));
    let service = LedgerServer::from_arc(node_service.clone())
        .max_decoding_message_size(crate::limits::MAX_SUBMIT_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let rights_service = Arc::new(crate::rights::RightsService::new(
        ledger.clone(),
        notary,
        gate,
    ));
    let rights =
        ledger_proto::rights::rights_server::RightsServer::from_arc(rights_service.clone());
    let admin = ledger_proto::admin::admin_server::AdminServer::new(
        crate::admin::AdminService::new(ledger.clone())
            .with_node_key(net.tls.as_ref().map(|t| t.public_key)),
    );
    let (listener, acceptor) = public_listener(&config, &net).await?;
    let (http_stop, http) = serve_http(
        &config,
        crate::http::HttpApi::new(ledger.clone(), node_service, rights_service),
        net.tls
            .as_ref()
            .map(|tls| tls.http_acceptor())
            .transpose()?,
    )
    .await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        crate::limits::public_server()
            .add_service(health_service)
            .add_service(reflection_v1()?)
            .add_service(reflection_v1alpha()?)
            .add_service(service)
            .add_service(rights)
            .add_service(admin)
            .serve_with_incoming_shutdown(crate::tls::incoming(listener, acceptor), async {
                let _ = stop_rx.await;
            }),
    );
    stop.await;
    let stops = Stops {
        grpc: stop_tx,
        http: http_stop,
    };
    shut_down(&health, stops, server, http, &ledger).await
}

/// Serves `/metrics` when the config asks for it (`metrics_listen`).
async fn serve_metrics(
    config: &NodeConfig,
    ledger: &Arc<Ledger>,
    notary: &Arc<crate::notary::Notary>,
    health: &Arc<crate::health::Health>,
) -> anyhow::Result<()> {
    let Some(address) = config.metrics_listen else {
        return Ok(());
    };
    let scraped = crate::scrape::Scraped {
        ledger: ledger.clone(),
        notary: notary.clone(),
        health: health.clone(),
    };
    crate::scrape::serve(address, scraped).await
}

/// The public port's listener and, over TLS, its acceptor. Clients are anonymous there (they
/// sign what they send); a node connecting to forward or cosign presents its certificate, which
/// must prove its key.
async fn public_listener(
    config: &NodeConfig,
    net: &Net,
) -> anyhow::Result<(tokio::net::TcpListener, Option<tokio_rustls::TlsAcceptor>)> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let acceptor = match &net.tls {
        Some(tls) => Some(tls.acceptor(PinnedClient {
            pins: Pins::dynamic(|_| true),
            mandatory: false,
        })?),
        None => None,
    };
    tracing::info!(address = %config.listen, tls = acceptor.is_some(), "serving");
    Ok((listener, acceptor))
}

/// Checks the node against its genesis, opens its store (under Raft when configured) and
/// verifies it.
async fn open_ledger(config: &NodeConfig, net: &Net) -> anyhow::Result<Arc<Ledger>> {
    let genesis = load_genesis(&config.genesis)?;
    if !genesis
        .jurisdictions
        .iter()
        .any(|j| j.code == config.jurisdiction)
    {
        anyhow::bail!(
            "jurisdiction {} of node {} is not in the genesis {}",
            config.jurisdiction,
            config.node_id,
            config.genesis.display()
        );
    }
    let own_key = crate::notary::load_or_create_key(&config.data_dir.join("node.key"))?;
    crate::ceremony::check_identity(
        config,
        &genesis,
        &ledger_core::event::PublicKeyBytes(own_key.verifying_key().to_bytes()),
    )?;
    let ledger = match &config.raft {
        None => {
            let data_dir = config.data_dir.clone();
            tokio::task::spawn_blocking(move || Ledger::open(&data_dir, genesis)).await??
        }
        Some(raft) => start_replicated(config, raft, genesis, net.clone()).await?,
    };
    let head = ledger.head()?;
    tracing::info!(node = %config.node_id, jurisdiction = %config.jurisdiction, log_size = head.size, "store verified");
    Ok(Arc::new(ledger))
}

/// The node's notary (its checkpoint key, cosigning peers and trust), refreshing the cosigned
/// checkpoint in the background.
fn open_notary(
    config: &NodeConfig,
    net: &Net,
    ledger: &Arc<Ledger>,
) -> anyhow::Result<Arc<crate::notary::Notary>> {
    let notary = Arc::new(
        crate::notary::Notary::open(
            &config.data_dir,
            &config.node_id,
            &ledger.genesis().ledger,
            cosigning_peers(config),
            config.trust.clone(),
        )?
        .with_transport(cosign_transport(config, net, ledger.raft())),
    );
    notary.spawn_refresher(ledger.clone());
    tracing::info!(verifier = %notary.verifier().verifier_string(), "checkpoint key");
    Ok(notary)
}

/// What ends the servers' accept loops.
struct Stops {
    grpc: tokio::sync::oneshot::Sender<()>,
    http: tokio::sync::oneshot::Sender<()>,
}

/// A bounded graceful shutdown: health says NOT_SERVING first, in-flight requests get
/// [`SHUTDOWN_GRACE`], then Raft stops.
async fn shut_down(
    health: &crate::health::Health,
    stops: Stops,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    http: Option<tokio::task::JoinHandle<()>>,
    ledger: &Ledger,
) -> anyhow::Result<()> {
    tracing::info!("stopping: finishing in-flight requests");
    health.shutting_down().await;
    let _ = stops.grpc.send(());
    let _ = stops.http.send(());
    if let Some(http) = http {
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, http).await;
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(result) => result.context("gRPC server task")?.context("gRPC server")?,
        Err(_) => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open after the grace period; closing them")
        }
    }
    if let Some(raft) = ledger.raft() {
        let _ = raft.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Starts the HTTP/JSON API when the config asks for it (`http_listen`), over TLS when the
/// public port is; stops accepting when the returned sender fires.
async fn serve_http(
    config: &NodeConfig,
    api: crate::http::HttpApi,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) -> anyhow::Result<(
    tokio::sync::oneshot::Sender<()>,
    Option<tokio::task::JoinHandle<()>>,
)> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let Some(address) = config.http_listen else {
        return Ok((tx, None));
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("listening for HTTP on {address}"))?;
    tracing::info!(%address, tls = acceptor.is_some(), "serving the HTTP/JSON API");
    let stop = async move {
        let _ = rx.await;
    };
    Ok((
        tx,
        Some(tokio::spawn(crate::http::serve(
            api, listener, acceptor, stop,
        ))),
    ))
}

/// gRPC server reflection (v1, and v1alpha for clients such as Python's grpcio-reflection) of
/// the public services only: the internal Raft service is served on its own port, to members.
fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(ledger_proto::PUBLIC_FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

fn reflection_v1() -> anyhow::Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
> {
    reflection_builder()
        .build_v1()
        .context("building the reflection service (v1)")
}

fn reflection_v1alpha() -> anyhow::Result<
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
> {
    reflection_builder()
        .build_v1alpha()
        .context("building the reflection service (v1alpha)")
}

/// The first start of a new cluster, on its lowest-numbered initial member.
async fn initialise_cluster(
    raft: &openraft::Raft<crate::raft::TypeConfig>,
    raft_cfg: &crate::config::RaftConfig,
    tls: bool,
) -> anyhow::Result<()> {
    // The members' node keys go into the membership, so the binding of ids to keys is
    // replicated with the log from the first entry on.
    if tls {
        if let Some(m) = raft_cfg.members.iter().find(|m| m.node_key.is_empty()) {
            anyhow::bail!(
                "member {} has no node_key in [[raft.members]]: a TLS cluster records every \
                 member's node key when it is created",
                m.id
            );
        }
    }
    let members: std::collections::BTreeMap<u64, crate::raft::LedgerNode> = raft_cfg
        .members
        .iter()
        .map(|m| {
            (
                m.id,
                crate::raft::LedgerNode {
                    raft_address: m.raft_address.clone(),
                    public_address: m.public_address.clone(),
                    node_key: m.node_key.to_ascii_lowercase(),
                },
            )
        })
        .collect();
    raft.initialize(members)
        .await
        .context("initialising the Raft cluster")?;
    tracing::info!(
        members = raft_cfg.members.len(),
        "initialised a new Raft cluster"
    );
    Ok(())
}

/// Opens the ledger under Raft, serves the internal Raft service on `[raft] listen`, and lets the
/// member with the lowest id initialise a new cluster.
async fn start_replicated(
    config: &NodeConfig,
    raft_cfg: &crate::config::RaftConfig,
    genesis: ledger_core::genesis::Genesis,
    net: Net,
) -> anyhow::Result<Ledger> {
    let ids: Vec<u64> = raft_cfg.members.iter().map(|m| m.id).collect();
    // A node not among the initial members joins later: it serves its Raft service and waits
    // for an agency to add it (`ledger-client member add`); it never initialises a cluster.
    let joining = !ids.contains(&raft_cfg.id);
    let ledger = Ledger::open_replicated(&config.data_dir, genesis, raft_cfg, net.clone()).await?;
    let raft = ledger.raft().expect("replicated ledger").clone();
    let listener = tokio::net::TcpListener::bind(raft_cfg.listen)
        .await
        .with_context(|| format!("listening for Raft on {}", raft_cfg.listen))?;
    // Mutual TLS: only a member's certificate gets through the handshake; each RPC is then
    // checked against the member it claims to come from (raft::network).
    let acceptor = match &net.tls {
        Some(tls) => Some(tls.acceptor(PinnedClient {
            pins: net.keys.any_member(&raft),
            mandatory: true,
        })?),
        None => None,
    };
    let service = ledger.raft_service().expect("replicated ledger");
    tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(crate::tls::incoming(listener, acceptor))
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the Raft service stopped");
        }
    });
    let lowest = ids.iter().min().copied();
    if joining && !raft.is_initialized().await? {
        tracing::info!(
            id = raft_cfg.id,
            "not an initial member: waiting to be added as a learner"
        );
    }
    if !joining && lowest == Some(raft_cfg.id) && !raft.is_initialized().await? {
        initialise_cluster(&raft, raft_cfg, net.tls.is_some()).await?;
    }
    Ok(ledger)
}

/// The node key, its certificate, and the members' keys of the config. Plaintext (loopback
/// only, checked when the config is loaded) is logged loudly.
fn node_net(config: &NodeConfig) -> anyhow::Result<Net> {
    crate::store::durable::create_dir_all_synced(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let key = crate::notary::load_or_create_key(&config.data_dir.join("node.key"))?;
    let public = hex::encode(key.verifying_key().to_bytes());
    tracing::info!(node_key = %public, "node key (peers and clients pin it)");
    let mut configured = std::collections::BTreeMap::new();
    for m in config.raft.iter().flat_map(|r| &r.members) {
        if let Ok(k) = ledger_client::transport::parse_node_key(&m.node_key) {
            configured.insert(m.id, k);
        }
    }
    if let Some(r) = &config.raft {
        if let Some(mine) = configured.get(&r.id) {
            if hex::encode(mine) != public {
                anyhow::bail!(
                    "[[raft.members]] lists node_key {} for this node (id {}), but its \
                     DATA_DIR/node.key is {public}",
                    hex::encode(mine),
                    r.id
                );
            }
        }
    }
    let tls = match config.tls.mode {
        TlsMode::Tls => Some(Arc::new(NodeTls::new(
            &key,
            &config.certificate_names(),
            &config.data_dir,
        )?)),
        TlsMode::Plaintext => {
            tracing::warn!(
                "[tls] mode = \"plaintext\": NOTHING on this node's ports is encrypted or \
                 authenticated; anyone who can reach them can impersonate a member"
            );
            None
        }
    };
    Ok(Net {
        tls,
        keys: MemberKeys::new(configured),
    })
}

/// Cosigning peers must prove a member's node key (or a `[[peers]] node_key`).
fn cosign_transport(
    config: &NodeConfig,
    net: &Net,
    raft: Option<&openraft::Raft<crate::raft::TypeConfig>>,
) -> Transport {
    let Some(tls) = &net.tls else {
        return Transport::Plaintext;
    };
    let peers: Vec<NodeKey> = config
        .peers
        .iter()
        .filter_map(|p| ledger_client::transport::parse_node_key(&p.node_key).ok())
        .collect();
    let members = raft.map(|r| net.keys.any_member(r));
    tls.outgoing(Pins::dynamic(move |k| {
        peers.contains(k) || members.as_ref().is_some_and(|m| m.accepts(k))
    }))
}

/// The public URLs of the other nodes, asked to cosign this node's checkpoints.
fn cosigning_peers(config: &NodeConfig) -> Vec<String> {
    let mut out: Vec<String> = config.peers.iter().map(|p| p.address.clone()).collect();
    if let Some(r) = &config.raft {
        for m in r.members.iter().filter(|m| m.id != r.id) {
            if !out.contains(&m.public_address) {
                out.push(m.public_address.clone());
            }
        }
    }
    out
}
