//! The query load generator behind `ledger-client bench --mode query`: reads the workers a
//! preloaded run made (`bench --mode preload`), from concurrent clients, and measures the
//! latency of each kind of read (entitlement, coverage, a worker's events) as a client sees it:
//! a fresh read token, the call over TLS, and the client's own checks (for events, every
//! signature and line proof). The node's share of that time is its `ledger_*` metrics'.

use std::time::{Duration, Instant as Clock};

use ed25519_dalek::SigningKey;
use rand::Rng;

use crate::bench::{percentile, worker_id};
use crate::{Client, ClientError};

/// Most queries one run may make.
pub const MAX_QUERIES: u32 = 1_000_000;

#[derive(Debug, Clone)]
pub struct QueryConfig {
    pub url: String,
    /// An agency key (agencies may read every worker).
    pub key: SigningKey,
    /// Where the preloaded workers are registered (the place asked about for coverage).
    pub jurisdiction: String,
    /// The preloaded run: its id, employers, workers per employer, months declared.
    pub run_id: String,
    pub employers: u32,
    pub workers_per_employer: u32,
    pub months: u32,
    /// Queries in all, spread evenly over the three kinds.
    pub queries: u32,
    pub concurrency: u32,
}

/// Latency of one kind of query.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct QueryReport {
    pub queries: u64,
    pub errors: u64,
    pub seconds: f64,
    pub queries_per_second: f64,
    pub entitlement: Latency,
    pub coverage: Latency,
    pub events: Latency,
    pub concurrency: u32,
    pub run_id: String,
}

#[derive(Clone, Copy)]
enum Kind {
    Entitlement,
    Coverage,
    Events,
}

const KINDS: [Kind; 3] = [Kind::Entitlement, Kind::Coverage, Kind::Events];

fn check(cfg: &QueryConfig) -> Result<(), ClientError> {
    if cfg.employers == 0
        || cfg.workers_per_employer == 0
        || cfg.months == 0
        || cfg.queries == 0
        || cfg.concurrency == 0
    {
        return Err(ClientError::Invalid(
            "employers, lines, months, queries and concurrency must be at least 1".into(),
        ));
    }
    if cfg.queries > MAX_QUERIES {
        return Err(ClientError::Invalid(format!(
            "at most {MAX_QUERIES} queries per run"
        )));
    }
    Ok(())
}

/// One query of `kind` about a random preloaded worker; its latency.
async fn one(client: &mut Client, cfg: &QueryConfig, kind: Kind) -> Result<Duration, ClientError> {
    let (e, i, m) = {
        let mut rng = rand::thread_rng();
        (
            rng.gen_range(0..cfg.employers),
            rng.gen_range(0..cfg.workers_per_employer),
            rng.gen_range(0..cfg.months),
        )
    };
    let worker = worker_id(&cfg.run_id, e, i).to_string();
    let started = Clock::now();
    match kind {
        Kind::Entitlement => {
            client.entitlement(&worker, &cfg.key, None).await?;
        }
        Kind::Coverage => {
            // A day inside one of the declared months (they start at 2000-01).
            let at = format!("{:04}-{:02}-15T10:00:00+08:00", 2000 + m / 12, m % 12 + 1);
            client
                .coverage(&worker, &cfg.key, &at, &cfg.jurisdiction)
                .await?;
        }
        Kind::Events => {
            client.worker_events(&worker, &cfg.key).await?;
        }
    }
    Ok(started.elapsed())
}

fn latency(mut samples: Vec<Duration>) -> Latency {
    samples.sort();
    Latency {
        count: samples.len() as u64,
        p50_ms: percentile(&samples, 0.50),
        p99_ms: percentile(&samples, 0.99),
        max_ms: samples.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    }
}

/// Runs the queries; `progress` is told how many were answered.
pub async fn run(
    cfg: QueryConfig,
    progress: impl Fn(u64) + Send + Sync + 'static,
) -> Result<QueryReport, ClientError> {
    check(&cfg)?;
    let cfg = std::sync::Arc::new(cfg);
    let progress = std::sync::Arc::new(progress);
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Clock::now();
    let mut tasks = Vec::new();
    for c in 0..cfg.concurrency {
        let (cfg, progress, answered) = (cfg.clone(), progress.clone(), answered.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(&cfg.url).await?;
            let mut samples: [Vec<Duration>; 3] = Default::default();
            let mut errors = 0u64;
            // Client c makes queries c, c + concurrency, ...: the kinds interleave evenly.
            for q in (c..cfg.queries).step_by(cfg.concurrency as usize) {
                let k = q as usize % KINDS.len();
                match one(&mut client, &cfg, KINDS[k]).await {
                    Ok(d) => samples[k].push(d),
                    Err(_) => errors += 1,
                }
                progress(answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
            }
            Ok::<_, ClientError>((samples, errors))
        }));
    }
    let mut all: [Vec<Duration>; 3] = Default::default();
    let mut errors = 0;
    for t in tasks {
        let (samples, e) = t
            .await
            .map_err(|e| ClientError::Invalid(format!("query client failed: {e}")))??;
        for (into, from) in all.iter_mut().zip(samples) {
            into.extend(from);
        }
        errors += e;
    }
    let seconds = start.elapsed().as_secs_f64();
    let [entitlement, coverage, events] = all;
    let queries = u64::from(cfg.queries);
    Ok(QueryReport {
        queries,
        errors,
        seconds,
        queries_per_second: (queries - errors) as f64 / seconds,
        entitlement: latency(entitlement),
        coverage: latency(coverage),
        events: latency(events),
        concurrency: cfg.concurrency,
        run_id: cfg.run_id.clone(),
    })
}
