//! Serving the metrics: `GET /metrics` at `metrics_listen`, and the state gauges read from the
//! node at each scrape (so they cost nothing between scrapes). The counters and histograms
//! themselves live in `metrics`, which every layer updates and which imports none of them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};

use crate::ledger::Ledger;
use crate::metrics::{get, FollowerLabel, Metrics};
use crate::notary::Notary;

/// Scrapes served at once; more wait for their turn (a scrape is cheap, a flood is not).
const MAX_SCRAPES: usize = 4;
/// How long a scrape connection may take, start to end.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the state gauges from the node, then writes every metric in the text format.
pub fn render(node: &Scraped) -> String {
    read_state(get(), node);
    get().encode()
}

fn read_state(metrics: &Metrics, node: &Scraped) {
    let ledger = &node.ledger;
    if let Ok(head) = ledger.head() {
        metrics.log_size.set(head.size as i64);
        if let Some(cp) = node.notary.checkpoint_state() {
            metrics.checkpoint_age.set(cp.made.elapsed().as_secs_f64());
            metrics
                .checkpoint_behind
                .set(head.size.saturating_sub(cp.size) as i64);
            metrics.cosignatures_missing.set(cp.missing as i64);
        } else {
            metrics.checkpoint_behind.set(head.size as i64);
            metrics
                .cosignatures_missing
                .set(node.notary.peer_count() as i64);
        }
    }
    metrics
        .store_bytes
        .set(ledger.store().db().size_on_disk().map_or(0, |b| b as i64));
    metrics
        .forks_detected
        .set((node.notary.forks().len() as u64 + node.notary.forks_dropped()) as i64);
    metrics.serving.set(i64::from(node.serving()));
    if let Some(raft) = ledger.raft() {
        read_raft(metrics, &raft.metrics().borrow());
    }
}

fn read_raft(
    metrics: &Metrics,
    m: &openraft::RaftMetrics<crate::raft::NodeId, crate::raft::LedgerNode>,
) {
    metrics.raft_term.set(m.current_term as i64);
    metrics
        .raft_leader
        .set(m.current_leader.unwrap_or(0) as i64);
    metrics
        .raft_is_leader
        .set(i64::from(m.current_leader == Some(m.id)));
    let last = m.last_log_index.unwrap_or(0);
    metrics.raft_last_log_index.set(last as i64);
    metrics
        .raft_applied_index
        .set(m.last_applied.map_or(0, |l| l.index) as i64);
    let voters: std::collections::BTreeSet<u64> =
        m.membership_config.membership().voter_ids().collect();
    metrics
        .raft_commit_index
        .set(crate::service::commit_index(m, &voters) as i64);
    metrics.raft_quorum_ack_age.set(
        m.millis_since_quorum_ack
            .map_or(0.0, |ms| ms as f64 / 1000.0),
    );
    // Members come and go: only the current leader's view of the current members.
    metrics.replication_lag.clear();
    for (id, matched) in m.replication.iter().flatten() {
        if *id == m.id {
            continue;
        }
        let matched = matched.map_or(0, |l| l.index);
        metrics
            .replication_lag
            .get_or_create(&FollowerLabel { follower: *id })
            .set(last.saturating_sub(matched) as i64);
    }
}

/// What a scrape reads.
pub struct Scraped {
    pub ledger: Arc<Ledger>,
    pub notary: Arc<Notary>,
    pub health: Arc<crate::health::Health>,
}

impl Scraped {
    fn serving(&self) -> bool {
        self.health.is_serving()
    }
}

/// Binds `address` now (so a port in use stops the start with a clear error) and serves
/// `GET /metrics` there until the process ends.
pub async fn serve(address: SocketAddr, node: Scraped) -> anyhow::Result<()> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("listening for metrics on {address} (metrics_listen)"))?;
    tracing::info!(%address, "serving metrics on /metrics");
    let node = Arc::new(node);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPES));
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, most likely: wait instead of spinning.
                    tracing::warn!(error = %e, "accepting a metrics connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let node = node.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let node = node.clone();
                    async move { Ok::<_, Infallible>(answer(&req, &node)) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .keep_alive(false)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                let _ = tokio::time::timeout(SCRAPE_TIMEOUT, conn).await;
                drop(slot);
            });
        }
    });
    Ok(())
}

fn answer(req: &Request<hyper::body::Incoming>, node: &Scraped) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &'static str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(content_type),
        );
        r
    };
    match (req.method(), req.uri().path()) {
        (&hyper::Method::GET, "/metrics") => reply(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            render(node),
        ),
        (&hyper::Method::GET, _) => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: metrics are at /metrics\n".into(),
        ),
        _ => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET /metrics\n".into(),
        ),
    }
}
