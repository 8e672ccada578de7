//! `ledger-client`: keys, submissions and reads against a ledger node (cli.md).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use ledger_client::{
    default_node_url, jsonl, keys, split_requests, Client, ClientError, SubmitOutcome,
};
use ledger_core::event::{
    to_json_event, EventBody, EventKind, KeyRegistered, PublicKeyBytes, Role,
};
use serde_json::json;

mod render;

#[derive(Parser)]
#[command(
    name = "ledger-client",
    version,
    about = "Client of the portable contribution ledger"
)]
struct Cli {
    /// Node to talk to [default: first endpoint of ./ledger-data/client.toml, else http://127.0.0.1:7100]
    #[arg(long, global = true)]
    node: Option<String>,
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a new ed25519 secret key (mode 0600) and print its public key.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Key administration.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Sign each event of a JSONL file with every --key and submit them.
    Submit {
        /// Signing key file; repeat for co-signatures (e.g. employer and worker on a contract).
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// One event per line in the JSON form of events.md; `-` reads standard input.
        events: PathBuf,
    },
    /// A worker's records as appended, with only that worker's lines of each batch.
    Events {
        worker: String,
        /// The worker's key or an agency key.
        #[arg(long)]
        key: PathBuf,
    },
    /// The worker's portable entitlement: pension months, relation, transfers, retirement,
    /// claim province, estimate, postings and foreign periods (cli.md).
    Entitlement {
        worker: String,
        /// The worker's key or an agency key.
        #[arg(long)]
        key: PathBuf,
        /// Count contribution months up to this date's month (YYYY-MM-DD) [default: today].
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Injury coverage at an instant: who answers, and under which scheme.
    Coverage {
        worker: String,
        /// The worker's key or an agency key.
        #[arg(long)]
        key: PathBuf,
        /// The instant, RFC 3339 with offset, e.g. 2024-03-15T14:20:00+08:00.
        #[arg(long)]
        at: String,
        /// Where the worker is at that instant (the place of the accident), e.g. CN-44.
        #[arg(long)]
        jurisdiction: String,
    },
    /// Coverage indicators of a month (rules.md §4): insured workers and coverage rates by
    /// scheme and by jurisdiction, sex, age band, hukou and contract form; small cells suppressed.
    Indicators {
        /// An agency key (only agencies may read indicators).
        #[arg(long)]
        key: PathBuf,
        /// The month, YYYY-MM.
        #[arg(long)]
        period: String,
        /// A province or country (e.g. CN-44 or CN) [default: the whole ledger].
        #[arg(long)]
        jurisdiction: Option<String>,
    },
    /// The node's view of the ledger: members, leader, log size, head.
    Status,
    /// Load generator: registers employers and persons, then submits signed payroll
    /// declarations from concurrent clients; reports lines/s and latency percentiles.
    Bench {
        /// An agency key of --jurisdiction (registers the bench's employers and persons).
        #[arg(long)]
        key: PathBuf,
        #[arg(long, default_value = "CN-44")]
        jurisdiction: String,
        #[arg(long, default_value_t = 20)]
        employers: u32,
        /// Lines per declaration (workers per employer).
        #[arg(long, default_value_t = 500)]
        lines: u32,
        /// Declarations in all.
        #[arg(long, default_value_t = 400)]
        declarations: u32,
        /// Concurrent clients.
        #[arg(long, default_value_t = 8)]
        concurrency: u32,
        /// Declarations per request.
        #[arg(long, default_value_t = 4)]
        batch: u32,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Register an employer, platform or worker key (signed by an agency key of J).
    Register {
        /// The agency's secret key file.
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        jurisdiction: String,
        /// employer, platform or worker.
        #[arg(long)]
        role: String,
        /// The employer, platform or worker id the key acts for.
        #[arg(long)]
        subject: String,
        /// The key to register (64 hex digits).
        #[arg(long)]
        public_key: String,
    },
}

/// Exit code for a worker the ledger does not know (cli.md).
const EXIT_UNKNOWN_WORKER: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if let Some(ClientError::Rpc(s)) = e.downcast_ref::<ClientError>() {
                if s.code() == tonic::Code::NotFound {
                    return ExitCode::from(EXIT_UNKNOWN_WORKER);
                }
            }
            ExitCode::FAILURE
        }
    }
}

async fn connect(cli_node: &Option<String>) -> anyhow::Result<Client> {
    let url = cli_node.clone().unwrap_or_else(default_node_url);
    Ok(Client::connect(&url).await?)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Keygen { out } => {
            let key = keys::generate(out)?;
            let public = hex::encode(key.verifying_key().to_bytes());
            if cli.json {
                println!("{}", json!({ "public_key": public, "file": out }));
            } else {
                println!("{public}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Key(KeyCommand::Register {
            key,
            jurisdiction,
            role,
            subject,
            public_key,
        }) => {
            let agency = keys::load(key)?;
            let role: Role = serde_json::from_value(json!(role)).map_err(|_| {
                anyhow::anyhow!("--role must be employer, platform or worker, not {role:?}")
            })?;
            let kind = EventKind::KeyRegistered(KeyRegistered {
                jurisdiction: jurisdiction
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--jurisdiction: {e}"))?,
                role,
                subject: subject
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--subject: {e}"))?,
                public_key: PublicKeyBytes::from_hex(public_key)
                    .map_err(|e| anyhow::anyhow!("--public-key: {e}"))?,
            });
            let body = EventBody {
                signed_at: jsonl::now(),
                kind,
            };
            let envelope = jsonl::sign(&body, &[agency]);
            let mut client = connect(&cli.node).await?;
            let outcome = client.submit(vec![envelope]).await?.remove(0);
            Ok(print_outcomes(cli.json, &[(1, outcome)]))
        }
        Command::Submit {
            keys: key_files,
            events,
        } => submit(&cli, key_files, events).await,
        Command::Events { worker, key } => {
            let key = keys::load(key)?;
            let mut client = connect(&cli.node).await?;
            let list = client.worker_events(worker, &key).await?;
            for e in &list {
                let event = to_json_event(&e.body);
                if cli.json {
                    println!(
                        "{}",
                        json!({
                            "index": e.index,
                            "event_id": e.event_id.to_hex(),
                            "appended_at": e.appended_at,
                            "signers": e.signers,
                            "line_positions": e.line_positions,
                            "event": event,
                        })
                    );
                } else {
                    println!(
                        "#{:<6} {}  {}  {}",
                        e.index,
                        e.appended_at,
                        e.body.kind.type_name(),
                        event
                    );
                }
            }
            if !cli.json {
                eprintln!(
                    "{} event(s) of worker {worker}; signatures and batch lines verified",
                    list.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Entitlement { worker, key, as_of } => {
            let key = keys::load(key)?;
            let mut client = connect(&cli.node).await?;
            let (doc, log_size) = client.entitlement(worker, &key, as_of.as_deref()).await?;
            if cli.json {
                println!("{doc}");
            } else {
                print!("{}", render::entitlement(&doc, log_size));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Coverage {
            worker,
            key,
            at,
            jurisdiction,
        } => {
            let key = keys::load(key)?;
            let mut client = connect(&cli.node).await?;
            let (doc, _) = client.coverage(worker, &key, at, jurisdiction).await?;
            if cli.json {
                println!("{doc}");
            } else {
                print!("{}", render::coverage(&doc));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Indicators {
            key,
            period,
            jurisdiction,
        } => {
            let key = keys::load(key)?;
            let mut client = connect(&cli.node).await?;
            let (doc, log_size) = client
                .indicators(&key, period, jurisdiction.as_deref())
                .await?;
            if cli.json {
                println!("{doc}");
            } else {
                print!("{}", render::indicators(&doc, log_size));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            key,
            jurisdiction,
            employers,
            lines,
            declarations,
            concurrency,
            batch,
        } => {
            let cfg = ledger_client::bench::BenchConfig {
                url: cli.node.clone().unwrap_or_else(default_node_url),
                agency: keys::load(key)?,
                jurisdiction: jurisdiction
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--jurisdiction: {e}"))?,
                employers: *employers,
                lines_per_declaration: *lines,
                declarations: *declarations,
                concurrency: *concurrency,
                batch: *batch,
                run_id: format!("bench{:x}", rand::random::<u32>()),
            };
            let bar = indicatif::ProgressBar::new(u64::from(*declarations));
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {pos}/{len} declarations [{elapsed}] {wide_bar}",
                )
                .expect("valid template"),
            );
            let b = bar.clone();
            eprintln!("setting up {employers} employers and {} persons, signing {declarations} declarations...", employers * lines);
            let report = ledger_client::bench::run(cfg, move |n| b.set_position(n)).await?;
            bar.finish_and_clear();
            if cli.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "{} lines in {} declarations ({} refused) over {} requests in {:.2} s",
                    report.lines,
                    report.declarations,
                    report.refused,
                    report.requests,
                    report.seconds
                );
                println!(
                    "throughput  {:.0} lines/s, {:.0} declarations/s",
                    report.lines_per_second, report.events_per_second
                );
                println!(
                    "latency     p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (submit to receipt, {} declarations of {} lines per request, {} clients)",
                    report.latency_ms_p50, report.latency_ms_p99, report.latency_ms_max, report.batch, report.lines_per_declaration, report.concurrency
                );
            }
            Ok(if report.refused == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Status => {
            let mut client = connect(&cli.node).await?;
            let s = client.status().await?;
            // Each member's own view: its state and how far it has applied.
            let mut nodes = Vec::new();
            for m in &s.raft_members {
                let view = match Client::connect(&m.public_address).await {
                    Ok(mut c) => c.status().await.ok(),
                    Err(_) => None,
                };
                nodes.push((m, view));
            }
            if cli.json {
                let nodes: Vec<serde_json::Value> = nodes
                    .iter()
                    .map(|(m, v)| {
                        json!({
                            "id": m.id, "address": m.public_address, "voter": m.voter,
                            "matched_index": m.matched_index, "reachable": v.is_some(),
                            "state": v.as_ref().map(|v| v.raft_state.clone()),
                            "term": v.as_ref().map(|v| v.term),
                            "last_log_index": v.as_ref().map(|v| v.last_log_index),
                            "applied_index": v.as_ref().map(|v| v.applied_index),
                            "log_size": v.as_ref().map(|v| v.log_size),
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    json!({
                        "node_id": s.node_id, "jurisdiction": s.jurisdiction, "ledger": s.ledger,
                        "log_size": s.log_size, "head_hash": s.head_hash, "genesis_hash": s.genesis_hash,
                        "version": s.version, "members": s.members, "leader": s.leader,
                        "raft": if s.raft_id == 0 { serde_json::Value::Null } else { json!({
                            "id": s.raft_id, "state": s.raft_state, "term": s.term,
                            "last_log_index": s.last_log_index, "applied_index": s.applied_index,
                            "snapshot_index": s.snapshot_index,
                        }) },
                        "nodes": nodes,
                    })
                );
            } else {
                println!("ledger    {} (genesis {})", s.ledger, &s.genesis_hash[..16]);
                println!(
                    "node      {} ({}), version {}",
                    s.node_id, s.jurisdiction, s.version
                );
                println!("leader    {}", s.leader);
                println!("log size  {} events", s.log_size);
                println!("head      {}", s.head_hash);
                if nodes.is_empty() {
                    println!("members   {}", s.members.join(", "));
                } else {
                    println!("members   id  state      term  last log  applied  events  address");
                    for (m, v) in &nodes {
                        match v {
                            Some(v) => println!(
                                "          {:<3} {:<10} {:<5} {:<9} {:<8} {:<7} {}{}",
                                m.id,
                                v.raft_state,
                                v.term,
                                v.last_log_index,
                                v.applied_index,
                                v.log_size,
                                m.public_address,
                                if m.voter { "" } else { " (learner)" }
                            ),
                            None => {
                                println!("          {:<3} unreachable {}", m.id, m.public_address)
                            }
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn submit(cli: &Cli, key_files: &[PathBuf], events: &PathBuf) -> anyhow::Result<ExitCode> {
    let keys = key_files
        .iter()
        .map(|k| keys::load(k))
        .collect::<Result<Vec<_>, _>>()?;
    let text = if events.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading events from standard input")?
    } else {
        std::fs::read_to_string(events).with_context(|| format!("reading {}", events.display()))?
    };
    let parsed = jsonl::parse(&text, jsonl::now());
    if parsed.is_empty() {
        bail!(
            "{} holds no events (one JSON event per line)",
            events.display()
        );
    }
    let mut results: Vec<(usize, SubmitOutcome)> = Vec::with_capacity(parsed.len());
    let mut to_send = Vec::new();
    let mut lines_sent = Vec::new();
    for p in parsed {
        match p.body {
            Ok(body) => {
                lines_sent.push(p.line);
                to_send.push(jsonl::sign(&body, &keys));
            }
            Err(message) => results.push((
                p.line,
                SubmitOutcome::Refused {
                    code: "invalid_event".into(),
                    message,
                },
            )),
        }
    }
    let progress = indicatif::ProgressBar::new(to_send.len() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {pos}/{len} events [{elapsed}] {per_sec} {wide_bar} eta {eta}",
        )
        .expect("valid template"),
    );
    if to_send.len() < 1000 {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut lines = lines_sent.into_iter();
    if !to_send.is_empty() {
        let mut client = connect(&cli.node).await?;
        for request in split_requests(to_send) {
            let n = request.len() as u64;
            let outcomes = match client.submit(request).await {
                Ok(o) => o,
                Err(e) => {
                    progress.abandon();
                    results.sort_by_key(|(l, _)| *l);
                    print_outcomes(cli.json, &results);
                    return Err(anyhow::Error::new(e).context("submission interrupted; the events listed above were answered, the rest were not"));
                }
            };
            results.extend(
                outcomes
                    .into_iter()
                    .map(|o| (lines.next().expect("a line per outcome"), o)),
            );
            progress.inc(n);
        }
    }
    progress.finish_and_clear();
    results.sort_by_key(|(l, _)| *l);
    Ok(print_outcomes(cli.json, &results))
}

/// Prints one line per event (receipts on stdout, refusals on stderr too) and a summary;
/// success only if every event was accepted.
fn print_outcomes(json: bool, results: &[(usize, SubmitOutcome)]) -> ExitCode {
    let mut refused = 0;
    for (line, o) in results {
        match o {
            SubmitOutcome::Accepted {
                event_id,
                index,
                appended_at,
                duplicate,
            } => {
                if json {
                    println!(
                        "{}",
                        json!({"line": line, "event_id": event_id.to_hex(), "index": index, "appended_at": appended_at, "duplicate": duplicate})
                    );
                } else if *duplicate {
                    println!("line {line}: already in the ledger as #{index} (event {event_id}), nothing appended");
                } else {
                    println!("line {line}: appended as #{index} (event {event_id})");
                }
            }
            SubmitOutcome::Refused { code, message } => {
                refused += 1;
                if json {
                    println!(
                        "{}",
                        json!({"line": line, "event_id": null, "index": null, "refused": {"code": code, "message": message}})
                    );
                }
                eprintln!("line {line}: refused [{code}]: {message}");
            }
        }
    }
    let accepted = results.len() - refused;
    if !json || refused > 0 {
        eprintln!("{accepted} accepted, {refused} refused");
    }
    if refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
