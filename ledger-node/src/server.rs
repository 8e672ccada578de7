//! `ledger-node run`: one node serving the public gRPC API with health and reflection, until
//! SIGTERM or Ctrl-C.

use std::sync::Arc;

use anyhow::Context;
use ledger_proto::node::ledger_server::LedgerServer;

use crate::config::{load_genesis, NodeConfig};
use crate::ledger::Ledger;
use crate::service::{NodeService, MAX_MESSAGE_BYTES};

/// How long in-flight requests get to finish after SIGTERM before idle or slow connections are
/// dropped. Appends are atomic, so a request cut off here was simply never acknowledged.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Installs the SIGTERM and SIGINT handlers now (so a signal that arrives during start-up is not
/// fatal) and resolves when either arrives.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing the SIGINT handler");
    async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    }
}

pub async fn run(config: NodeConfig) -> anyhow::Result<()> {
    let stop = shutdown_signal();
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
    let ledger = match &config.raft {
        None => {
            let data_dir = config.data_dir.clone();
            tokio::task::spawn_blocking(move || Ledger::open(&data_dir, genesis)).await??
        }
        Some(raft) => start_replicated(&config, raft, genesis).await?,
    };
    let head = ledger.head()?;
    tracing::info!(node = %config.node_id, jurisdiction = %config.jurisdiction, log_size = head.size, "store verified");
    let ledger = Arc::new(ledger);

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<LedgerServer<NodeService>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(ledger_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building the reflection service")?;
    let service = LedgerServer::new(NodeService::new(ledger.clone(), config.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let notary = Arc::new(crate::notary::Notary::open(
        &config.data_dir,
        &config.node_id,
        &ledger.genesis().ledger,
        cosigning_peers(&config),
        config.trust.clone(),
    )?);
    notary.spawn_refresher(ledger.clone());
    tracing::info!(verifier = %notary.verifier().verifier_string(), "checkpoint key");
    let rights = ledger_proto::rights::rights_server::RightsServer::new(
        crate::rights::RightsService::new(ledger.clone(), notary),
    );

    let admin = ledger_proto::admin::admin_server::AdminServer::new(
        crate::admin::AdminService::new(ledger.clone()),
    );
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    tracing::info!(address = %config.listen, "serving");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(service)
            .add_service(rights)
            .add_service(admin)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stop_rx.await;
                },
            ),
    );
    stop.await;
    tracing::info!("stopping: finishing in-flight requests");
    let _ = stop_tx.send(());
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

/// Opens the ledger under Raft, serves the internal Raft service on `[raft] listen`, and lets the
/// member with the lowest id initialise a new cluster.
async fn start_replicated(
    config: &NodeConfig,
    raft_cfg: &crate::config::RaftConfig,
    genesis: ledger_core::genesis::Genesis,
) -> anyhow::Result<Ledger> {
    let ids: Vec<u64> = raft_cfg.members.iter().map(|m| m.id).collect();
    // A node not among the initial members joins later: it serves its Raft service and waits
    // for an agency to add it (`ledger-client member add`); it never initialises a cluster.
    let joining = !ids.contains(&raft_cfg.id);
    let ledger = Ledger::open_replicated(&config.data_dir, genesis, raft_cfg).await?;
    let raft = ledger.raft().expect("replicated ledger").clone();
    let listener = tokio::net::TcpListener::bind(raft_cfg.listen)
        .await
        .with_context(|| format!("listening for Raft on {}", raft_cfg.listen))?;
    let service = crate::raft::network::RaftService::server(raft.clone());
    tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
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
        let members: std::collections::BTreeMap<u64, crate::raft::LedgerNode> = raft_cfg
            .members
            .iter()
            .map(|m| {
                (
                    m.id,
                    crate::raft::LedgerNode {
                        raft_address: m.raft_address.clone(),
                        public_address: m.public_address.clone(),
                    },
                )
            })
            .collect();
        raft.initialize(members)
            .await
            .context("initialising the Raft cluster")?;
        tracing::info!(members = ids.len(), "initialised a new Raft cluster");
    }
    Ok(ledger)
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
