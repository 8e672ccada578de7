//! The load generator behind `ledger-client bench`: registers employer keys and persons, then
//! submits signed payroll declarations from concurrent clients and measures what the ledger
//! sustains (lines and events per second, submit-to-receipt latency percentiles). Envelopes are
//! signed before the clock starts, so the figures are the ledger's, not the client's signing.

use std::time::{Duration, Instant as Clock};

use ed25519_dalek::SigningKey;
use ledger_core::envelope::{Envelope, LedgerId};
use ledger_core::event::{
    ContributionLine, ContributionsDeclared, EventBody, EventKind, KeyRegistered, PersonRegistered,
    PublicKeyBytes, Role, Salt, Scheme, Sex,
};
use ledger_core::ids::{EmployerId, SubjectId, WorkerId};
use ledger_core::jurisdiction::Jurisdiction;
use ledger_core::money::Money;
use ledger_core::time::Month;

use crate::{jsonl, Client, ClientError, SubmitOutcome};

/// Most declarations one bench run may prepare (bounds its memory: ~100 bytes a line).
pub const MAX_BENCH_LINES: u64 = 20_000_000;

#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The node to load.
    pub url: String,
    /// An agency key of `jurisdiction`, to register employers and persons.
    pub agency: SigningKey,
    pub jurisdiction: Jurisdiction,
    /// Employers, each with its own key and workforce.
    pub employers: u32,
    /// Lines per declaration (= workers per employer).
    pub lines_per_declaration: u32,
    /// Declarations in all.
    pub declarations: u32,
    /// Concurrent clients.
    pub concurrency: u32,
    /// Declarations per request.
    pub batch: u32,
    /// Prefix of generated ids, so runs against the same ledger do not collide.
    pub run_id: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    pub declarations: u64,
    pub lines: u64,
    pub refused: u64,
    pub requests: u64,
    pub seconds: f64,
    pub lines_per_second: f64,
    pub events_per_second: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
    pub concurrency: u32,
    pub batch: u32,
    pub lines_per_declaration: u32,
    /// What the generated ids start with, and how many employers (each with
    /// `lines_per_declaration` workers): what `bench --mode query` needs to find the workers.
    pub run_id: String,
    pub employers: u32,
}

/// Worker `i` of employer `employer` in run `run`.
pub fn worker_id(run: &str, employer: u32, i: u32) -> WorkerId {
    WorkerId::new(format!("{run}-w{employer}-{i}")).expect("generated ids are valid")
}

fn employer_id(run: &str, employer: u32) -> EmployerId {
    EmployerId::new(format!("{run}-e{employer}")).expect("generated ids are valid")
}

async fn submit_all(
    client: &mut Client,
    envelopes: Vec<Envelope>,
    what: &str,
) -> Result<(), ClientError> {
    for request in crate::split_requests(envelopes) {
        for o in client.submit(request).await? {
            if let SubmitOutcome::Refused { code, message } = o {
                return Err(ClientError::Invalid(format!(
                    "bench set-up: a {what} was refused [{code}]: {message}"
                )));
            }
        }
    }
    Ok(())
}

/// Registers the employers' keys and the persons; returns the ledger's id and the employers'
/// signing keys.
async fn set_up(cfg: &BenchConfig) -> Result<(LedgerId, Vec<SigningKey>), ClientError> {
    let mut client = Client::connect(&cfg.url).await?;
    let ledger = client.ledger_id().await?;
    let now = jsonl::now();
    let keys: Vec<SigningKey> = (0..cfg.employers)
        .map(|_| SigningKey::generate(&mut rand::rngs::OsRng))
        .collect();
    let registrations = keys
        .iter()
        .enumerate()
        .map(|(e, k)| {
            let kind = EventKind::KeyRegistered(KeyRegistered {
                jurisdiction: cfg.jurisdiction.clone(),
                role: Role::Employer,
                subject: SubjectId::new(employer_id(&cfg.run_id, e as u32).to_string())
                    .expect("valid"),
                public_key: PublicKeyBytes(k.verifying_key().to_bytes()),
            });
            Envelope::sign(
                &ledger,
                &EventBody {
                    signed_at: now,
                    kind,
                },
                &[&cfg.agency],
            )
        })
        .collect();
    submit_all(&mut client, registrations, "key registration").await?;
    let persons = (0..cfg.employers)
        .flat_map(|e| (0..cfg.lines_per_declaration).map(move |i| (e, i)))
        .map(|(e, i)| {
            let kind = EventKind::PersonRegistered(PersonRegistered {
                worker: worker_id(&cfg.run_id, e, i),
                jurisdiction: cfg.jurisdiction.clone(),
                sex: Sex::Male,
                birth_date: "1985-01-01".parse().expect("valid date"),
                female_category: None,
                nationality: "CN".parse().expect("valid"),
                hukou: None,
            });
            Envelope::sign(
                &ledger,
                &EventBody {
                    signed_at: now,
                    kind,
                },
                &[&cfg.agency],
            )
        })
        .collect();
    submit_all(&mut client, persons, "person registration").await?;
    Ok((ledger, keys))
}

/// Signs every declaration: employer `d % employers`, month `2000-01 + d / employers`.
fn declarations(cfg: &BenchConfig, ledger: &LedgerId, keys: &[SigningKey]) -> Vec<Envelope> {
    let now = jsonl::now();
    let first = Month::new(2000, 1).expect("valid").ordinal();
    (0..cfg.declarations)
        .map(|d| {
            let e = d % cfg.employers;
            let period =
                Month::from_ordinal(first + i64::from(d / cfg.employers)).expect("in range");
            let lines = (0..cfg.lines_per_declaration)
                .map(|i| {
                    let mut salt = Salt::default();
                    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt.0);
                    ContributionLine {
                        salt,
                        worker: worker_id(&cfg.run_id, e, i),
                        scheme: Scheme::Pension,
                        base: Money::from_minor(800_000),
                        employer_amount: Money::from_minor(128_000),
                        employee_amount: Money::from_minor(64_000),
                    }
                })
                .collect();
            let kind = EventKind::ContributionsDeclared(ContributionsDeclared {
                employer: employer_id(&cfg.run_id, e),
                jurisdiction: cfg.jurisdiction.clone(),
                period,
                lines,
                back_pay: false,
            });
            Envelope::sign(
                ledger,
                &EventBody {
                    signed_at: now,
                    kind,
                },
                &[&keys[e as usize]],
            )
        })
        .collect()
}

/// The `p` quantile of sorted latencies, in milliseconds.
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Submits each client's requests from a task of its own; the latency of every request and
/// how many declarations were refused.
async fn timed_submissions(
    url: &str,
    per_client: Vec<Vec<Vec<Envelope>>>,
    progress: impl Fn(u64) + Send + Sync + 'static,
) -> Result<(Vec<Duration>, u64), ClientError> {
    let progress = std::sync::Arc::new(progress);
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for work in per_client {
        let (url, progress, answered) = (url.to_string(), progress.clone(), answered.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(&url).await?;
            let mut latencies = Vec::with_capacity(work.len());
            let mut refused = 0u64;
            for request in work {
                let n = request.len() as u64;
                let sent = Clock::now();
                let outcomes = client.submit(request).await?;
                latencies.push(sent.elapsed());
                refused += outcomes
                    .iter()
                    .filter(|o| matches!(o, SubmitOutcome::Refused { .. }))
                    .count() as u64;
                let done = answered.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
                progress(done);
            }
            Ok::<_, ClientError>((latencies, refused))
        }));
    }
    let mut latencies = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let (l, r) = t
            .await
            .map_err(|e| ClientError::Invalid(format!("bench client failed: {e}")))??;
        latencies.extend(l);
        refused += r;
    }
    Ok((latencies, refused))
}

/// Refuses settings that would measure nothing or run past the generator's limits.
fn check(cfg: &BenchConfig) -> Result<(), ClientError> {
    let months_needed = u64::from(cfg.declarations.div_ceil(cfg.employers.max(1)));
    if cfg.employers == 0
        || cfg.lines_per_declaration == 0
        || cfg.declarations == 0
        || cfg.concurrency == 0
        || cfg.batch == 0
    {
        return Err(ClientError::Invalid(
            "employers, lines, declarations, concurrency and batch must be at least 1".into(),
        ));
    }
    if u64::from(cfg.declarations) * u64::from(cfg.lines_per_declaration) > MAX_BENCH_LINES {
        return Err(ClientError::Invalid(format!(
            "at most {MAX_BENCH_LINES} lines per run"
        )));
    }
    if months_needed > 300 {
        return Err(ClientError::Invalid(
            "each employer declares one month per declaration from 2000-01: use more --employers or fewer --declarations".into(),
        ));
    }
    Ok(())
}

/// Runs the whole benchmark; `progress` is told how many declarations were answered.
pub async fn run(
    cfg: BenchConfig,
    progress: impl Fn(u64) + Send + Sync + 'static,
) -> Result<BenchReport, ClientError> {
    check(&cfg)?;
    let (ledger, keys) = set_up(&cfg).await?;
    let envelopes = declarations(&cfg, &ledger, &keys);
    // Deal the requests out round-robin to the clients.
    let requests: Vec<Vec<Envelope>> = envelopes
        .chunks(cfg.batch as usize)
        .map(<[Envelope]>::to_vec)
        .collect();
    let mut per_client: Vec<Vec<Vec<Envelope>>> =
        (0..cfg.concurrency).map(|_| Vec::new()).collect();
    for (i, r) in requests.into_iter().enumerate() {
        per_client[i % cfg.concurrency as usize].push(r);
    }
    let start = Clock::now();
    let (mut latencies, refused) = timed_submissions(&cfg.url, per_client, progress).await?;
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort();
    let declarations = u64::from(cfg.declarations);
    let lines = declarations * u64::from(cfg.lines_per_declaration);
    Ok(BenchReport {
        declarations,
        lines,
        refused,
        requests: latencies.len() as u64,
        seconds,
        lines_per_second: (lines - refused * u64::from(cfg.lines_per_declaration)) as f64 / seconds,
        events_per_second: (declarations - refused) as f64 / seconds,
        latency_ms_p50: percentile(&latencies, 0.50),
        latency_ms_p99: percentile(&latencies, 0.99),
        latency_ms_max: latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        concurrency: cfg.concurrency,
        batch: cfg.batch,
        lines_per_declaration: cfg.lines_per_declaration,
        run_id: cfg.run_id.clone(),
        employers: cfg.employers,
    })
}
