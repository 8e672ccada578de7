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
    let data_dir = config.data_dir.clone();
    let ledger = tokio::task::spawn_blocking(move || Ledger::open(&data_dir, genesis)).await??;
    let head = ledger.head();
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
    tracing::info!("stopped");
    Ok(())
}
