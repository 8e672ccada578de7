//! `ledger-client`: keys, submissions and reads against a ledger node (docs/cli.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use ledger_client::acts::{fresh_nonce, ActFile};
use ledger_client::retry::{self, Session};
use ledger_client::{default_node_url, jsonl, keys, split_requests, Client, SubmitOutcome};
use ledger_core::authority::Act;
use ledger_core::event::{EventBody, EventKind, KeyRegistered, PublicKeyBytes, Role};
use ledger_core::json::to_json_event;
use serde_json::json;

/// Standard output through [`failure::stdout_failed`]: a reader that closed the pipe
/// (`ledger-client status | head -1`) ends the program quietly instead of a panic. These
/// shadow std's macros for the whole binary.
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            $crate::failure::stdout_failed(e);
        }
    }};
}
macro_rules! print {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout().lock(), $($arg)*) {
            $crate::failure::stdout_failed(e);
        }
    }};
}

mod failure;
mod render;

use failure::invalid;

#[derive(Parser)]
#[command(
    name = "ledger-client",
    version,
    about = "Client of the portable contribution ledger"
)]
struct Cli {
    /// Node to talk to: a URL, or HOST:PORT (https when the client config trusts node keys,
    /// else http) [default: first endpoint of the client config, else http://127.0.0.1:7100]
    #[arg(long, global = true)]
    node: Option<String>,
    /// Machine-readable output on stdout; an error is the document {"error": {"code", "message"}}.
    #[arg(long, global = true)]
    json: bool,
    /// How long to keep retrying when the cluster cannot answer yet (no leader, a node down, a
    /// lost connection), moving through the endpoints of client.toml; 0 never retries
    /// [default: `retry_seconds` of ./ledger-data/client.toml, else 60]
    #[arg(long, global = true, value_name = "SECONDS")]
    retry_for: Option<u64>,
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
    /// Cluster membership: add a learner, promote it, remove a node, as a ledger act signed here
    /// by every --key (agency keys of the authority quorum of jurisdictions).
    #[command(subcommand)]
    Member(MemberCommand),
    /// Ledger acts signed by several agencies on their own machines: new, sign, show, submit.
    #[command(subcommand)]
    Act(ActCommand),
    /// Sign each event of a JSONL file with every --key and submit them.
    Submit {
        /// Signing key file; repeat for co-signatures (e.g. employer and worker on a contract).
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// One event per line in the JSON form of docs/events.md; `-` reads standard input.
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
    /// claim province, estimate, postings and foreign periods (docs/cli.md).
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
    /// A self-contained statement of the worker's records: the worker's events (only their lines
    /// of each batch), each with its inclusion proof, and a checkpoint cosigned by the nodes.
    Statement {
        worker: String,
        /// The worker's key or an agency key.
        #[arg(long)]
        key: PathBuf,
        /// Where to write the statement (JSON, format pcl-statement/1).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a statement offline against trusted node keys, and print what it proves. Exit 0
    /// only if every byte verifies.
    Verify {
        /// The statement file.
        file: PathBuf,
        /// Trusted node keys: `JURISDICTION name+keyid+base64key` per line (or the older bare
        /// key per line); `ledger-node dev` writes ledger-data/trust.txt.
        #[arg(long)]
        trust: PathBuf,
        /// Trusted node signatures needed on the checkpoint and on the statement's contents
        /// [default: a majority of the keys in the trust file].
        #[arg(long)]
        quorum: Option<usize>,
        /// Date of the recomputed entitlement (YYYY-MM-DD) [default: today].
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Fetch every node's checkpoint, check the consistency proofs between them, and report
    /// agreement or the evidence of a fork. Exit 0 only on agreement.
    Audit {
        /// Nodes to audit (repeat) [default: every endpoint of ./ledger-data/client.toml, else --node].
        #[arg(long = "endpoint")]
        endpoints: Vec<String>,
        /// Also require each node's key to be in this trust file.
        #[arg(long)]
        trust: Option<PathBuf>,
    },
    /// The receipt proof of an event: its index, its inclusion proof and a checkpoint that
    /// includes it, checked here against a quorum of the trusted node keys.
    Proof {
        /// The event id (64 hex digits), as `submit` printed it.
        event_id: String,
        /// A key that may read the event: an agency key, a key that signed it, or the key of a
        /// worker it names.
        #[arg(long)]
        key: PathBuf,
        /// Trusted node keys [default: ./ledger-data/trust.txt].
        #[arg(long)]
        trust: Option<PathBuf>,
        /// Trusted node signatures needed on the checkpoint [default: a majority].
        #[arg(long)]
        quorum: Option<usize>,
    },
    /// Coverage indicators of a month (docs/rules.md §4): insured workers and coverage rates by
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
    /// Print a shell completion script, e.g. `ledger-client completions bash >
    /// /etc/bash_completion.d/ledger-client`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `ledger-client man > ledger-client.1`.
    Man,
}

#[derive(Subcommand)]
enum MemberCommand {
    /// Add a node as a learner; returns once it has caught up with the log.
    Add {
        /// An agency key that signs the act; repeat for the agencies of the authority quorum.
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// The new node's Raft id (its `[raft] id`).
        #[arg(long)]
        id: u64,
        /// URL of its Raft service, e.g. http://10.0.0.4:7200
        #[arg(long)]
        raft_address: String,
        /// URL of its public service, e.g. https://10.0.0.4:7100
        #[arg(long)]
        public_address: String,
        /// Its node key: the hex key its log prints at start ("node key"), or its certificate
        /// file DATA_DIR/node.crt. The members accept connections from it with this key only.
        #[arg(long)]
        node_key: Option<String>,
    },
    /// Make a learner a voter.
    Promote {
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        #[arg(long)]
        id: u64,
    },
    /// Remove a voter or a learner from the cluster.
    Remove {
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        #[arg(long)]
        id: u64,
    },
}

#[derive(Subcommand)]
enum ActCommand {
    /// Write a new, unsigned act file: the act's words, e.g. `remove 3`, `promote 4`,
    /// `add-learner 4 RAFT_URL PUBLIC_URL NODE_KEY`, `register-agency-key CN-44 KEY`,
    /// `revoke-agency-key CN-44 KEY`.
    New {
        /// Where to write the act file (never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// The act's nonce [default: today's date and 64 random bits].
        #[arg(long)]
        nonce: Option<String>,
        #[arg(required = true, num_args = 1..)]
        act: Vec<String>,
    },
    /// Add signatures to an act file (rewritten in place).
    Sign {
        file: PathBuf,
        /// An agency secret key; repeat to sign with several.
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
    },
    /// Show what an act file says and which keys signed it (every signature checked).
    Show { file: PathBuf },
    /// Submit a signed act file: the node records it and, for a membership act, the leader
    /// carries it out.
    Submit { file: PathBuf },
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

fn main() -> ExitCode {
    let cli = Cli::try_parse().unwrap_or_else(|e| {
        // Help and --version are not errors; anything else under --json gets its document.
        if e.use_stderr() && std::env::args().any(|a| a == "--json") {
            failure::usage_document(&e.render().to_string());
        }
        e.exit()
    });
    let json = cli.json;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => failure::report(&e, json),
    }
}

/// The completion script or man page, generated from the command definition.
fn generated(command: &Command) -> anyhow::Result<Vec<u8>> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    match command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut cmd, "ledger-client", &mut out)
        }
        _ => clap_mangen::Man::new(cmd).render(&mut out)?,
    }
    Ok(out)
}

/// `--node-key`: 64 hex digits, or a certificate file holding the key.
fn node_key_arg(arg: Option<&str>) -> anyhow::Result<String> {
    let Some(arg) = arg else {
        return Ok(String::new());
    };
    if let Ok(key) = ledger_client::transport::parse_node_key(arg) {
        return Ok(hex::encode(key));
    }
    let path = std::path::Path::new(arg);
    if path.exists() {
        return Ok(hex::encode(
            ledger_client::transport::key_of_cert_file(path).map_err(anyhow::Error::msg)?,
        ));
    }
    Err(invalid(
        "--node-key",
        format!("{arg:?} is neither a hex node key (64 hex digits) nor a certificate file"),
    ))
}

/// How long calls retry: `--retry-for`, else client.toml, else the default (set once in `run`).
static RETRY_FOR: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();

/// A session over `--node` then the endpoints of client.toml, retrying for `--retry-for`.
fn session(cli_node: &Option<String>) -> anyhow::Result<Session> {
    let retry_for = *RETRY_FOR.get().unwrap_or(&retry::DEFAULT_RETRY_FOR);
    Ok(Session::new(
        retry::endpoints(cli_node.as_deref()),
        retry_for,
    )?)
}

/// The trust file (`--trust`, else the one `ledger-node dev` writes) with the quorum asked for.
fn load_trust(
    path: Option<&PathBuf>,
    quorum: Option<usize>,
) -> anyhow::Result<ledger_core::checkpoint::Trust> {
    let default = PathBuf::from("ledger-data/trust.txt");
    let path = match path {
        Some(p) => p,
        None if default.exists() => &default,
        None => {
            return Err(invalid(
                "--trust",
                "none given, and ledger-data/trust.txt does not exist: pass --trust FILE (the node keys you trust)",
            ))
        }
    };
    let trust = ledger_client::proofs::load_trust_file(path)?;
    Ok(match quorum {
        Some(q) => trust.with_quorum(q).map_err(|e| invalid("--quorum", e.0))?,
        None => trust,
    })
}

fn read_act_file(path: &std::path::Path) -> anyhow::Result<ActFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    ActFile::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Writes whole and renames, so a reader never sees half a file.
fn write_act_file(path: &std::path::Path, file: &ActFile) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, file.to_json()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

async fn act_command(cli: &Cli, command: &ActCommand) -> anyhow::Result<ExitCode> {
    match command {
        ActCommand::New { out, nonce, act } => {
            let act = Act::parse(&act.join(" ")).map_err(anyhow::Error::msg)?;
            let signed_at = ledger_client::clock_now();
            let nonce = nonce.clone().unwrap_or_else(|| fresh_nonce(signed_at));
            // The act is signed for the ledger the node keeps (its genesis hash).
            let ledger = session(&cli.node)?
                .call(|c| Box::pin(c.ledger_id()))
                .await?;
            let file =
                ActFile::new(&ledger, &act, &nonce, signed_at).map_err(anyhow::Error::msg)?;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(out)
                .and_then(|mut f| std::io::Write::write_all(&mut f, file.to_json().as_bytes()))
                .with_context(|| {
                    format!(
                        "creating {} (an existing file is never replaced)",
                        out.display()
                    )
                })?;
            println!("{act} (nonce {nonce}): written to {}", out.display());
        }
        ActCommand::Sign { file: path, keys } => {
            let mut file = read_act_file(path)?;
            for k in keys {
                file.sign(&keys::load(k)?).map_err(anyhow::Error::msg)?;
            }
            write_act_file(path, &file)?;
            println!("{} ({} signatures)", file.act, file.signatures.len());
        }
        ActCommand::Show { file: path } => {
            let file = read_act_file(path)?;
            if cli.json {
                let signers: Vec<String> = file
                    .signatures
                    .iter()
                    .map(|s| s.public_key.to_hex())
                    .collect();
                println!(
                    "{}",
                    json!({"act": file.act, "nonce": file.nonce, "signed_at": file.signed_at.to_string(), "signers": signers})
                );
            } else {
                println!("act        {}", file.act);
                println!("nonce      {}", file.nonce);
                println!("signed at  {}", file.signed_at);
                for s in &file.signatures {
                    println!("signed by  {}", s.public_key);
                }
            }
        }
        ActCommand::Submit { file: path } => return submit_act(cli, &read_act_file(path)?).await,
    }
    Ok(ExitCode::SUCCESS)
}

async fn submit_act(cli: &Cli, file: &ActFile) -> anyhow::Result<ExitCode> {
    let envelope = file.envelope().map_err(anyhow::Error::msg)?;
    let mut client = connect(&cli.node).await?;
    let r = client.submit_act(&envelope).await?;
    if cli.json {
        let members: Vec<serde_json::Value> = r
            .members
            .iter()
            .map(|m| json!({"id": m.id, "raft_address": m.raft_address, "public_address": m.public_address, "voter": m.voter, "node_key": m.node_key}))
            .collect();
        println!(
            "{}",
            json!({"message": r.message, "members": members, "event_id": hex::encode(&r.event_id), "index": r.index})
        );
    } else {
        println!("{}", r.message);
        for m in &r.members {
            println!(
                "  {:<3} {:<7} {}  (raft {})",
                m.id,
                if m.voter { "voter" } else { "learner" },
                m.public_address,
                m.raft_address
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A client connected to the first endpoint that answers.
async fn connect(cli_node: &Option<String>) -> anyhow::Result<Client> {
    Ok(session(cli_node)?.connect().await?)
}

async fn run(mut cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(node) = &cli.node {
        let trust = ledger_client::transport::ClientTrust::load_default().unwrap_or_default();
        cli.node = Some(ledger_client::transport::node_url(node, &trust));
    }
    let retry_for = cli
        .retry_for
        .map(Duration::from_secs)
        .or_else(retry::configured_retry_for)
        .unwrap_or(retry::DEFAULT_RETRY_FOR);
    RETRY_FOR.get_or_init(|| retry_for);
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
                invalid(
                    "--role",
                    format!("must be employer, platform or worker, not {role:?}"),
                )
            })?;
            let kind = EventKind::KeyRegistered(KeyRegistered {
                jurisdiction: jurisdiction
                    .parse()
                    .map_err(|e| invalid("--jurisdiction", e))?,
                role,
                subject: subject.parse().map_err(|e| invalid("--subject", e))?,
                public_key: PublicKeyBytes::from_hex(public_key)
                    .map_err(|e| invalid("--public-key", e))?,
            });
            let body = EventBody {
                signed_at: jsonl::now(),
                kind,
            };
            let mut session = session(&cli.node)?;
            let ledger = session.call(|c| Box::pin(c.ledger_id())).await?;
            let envelope = jsonl::sign(&ledger, &body, &[agency]);
            let outcome = session
                .call(|c| Box::pin(c.submit(vec![envelope.clone()])))
                .await?
                .remove(0);
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
        Command::Statement { worker, key, out } => {
            let key = keys::load(key)?;
            let mut client = connect(&cli.node).await?;
            let text = client.statement(worker, &key).await?;
            // Check what the node sent before handing it on: it must verify with the keys that
            // signed it, and it is written only whole.
            let st: ledger_core::statement::Statement = serde_json::from_str(&text)?;
            let note = ledger_core::checkpoint::SignedNote::parse(&st.checkpoint)?;
            let tmp = out.with_extension("partial");
            std::fs::write(&tmp, &text).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
            let cp = ledger_core::checkpoint::Checkpoint::parse_body(&note.text)?;
            let signers: Vec<&str> = note.signatures.iter().map(|s| s.name.as_str()).collect();
            if cli.json {
                println!(
                    "{}",
                    json!({"file": out, "worker": worker, "events": st.events.len(),
                           "checkpoint": {"origin": cp.origin, "size": cp.size, "root": cp.root.to_hex()},
                           "signed_by": signers})
                );
            } else {
                println!(
                    "wrote {}: {} event(s) of worker {worker}, checkpoint of {} at {} events signed by {}",
                    out.display(),
                    st.events.len(),
                    cp.origin,
                    cp.size,
                    signers.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            file,
            trust,
            quorum,
            as_of,
        } => {
            let trusted = load_trust(Some(trust), *quorum)?;
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let proven = match ledger_client::proofs::verify_statement(&text, &trusted) {
                Ok(p) => p,
                Err(e) => {
                    // The document is the answer: invalid is a result, not an error document.
                    if cli.json {
                        println!("{}", json!({"valid": false, "reason": e.to_string()}));
                        eprintln!("error: {e}");
                        return Ok(ExitCode::FAILURE);
                    }
                    bail!("{e}");
                }
            };
            let as_of: ledger_core::time::Date = match as_of {
                Some(d) => d.parse().map_err(|e| invalid("--as-of", e))?,
                None => ledger_core::time::Instant::from_unix_utc(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)?
                        .as_secs() as i64,
                    0,
                )?
                .local_date(),
            };
            // The proofs stand on their own; an entitlement that cannot be recomputed (say, the
            // person's registration was voided) is reported, not a verification failure.
            let (entitlement, not_recomputed) =
                match ledger_client::proofs::recompute(&proven, as_of) {
                    Ok(e) => (Some(e), None),
                    Err(e) => (None, Some(e.to_string())),
                };
            let signers: Vec<String> = proven
                .signed_by
                .iter()
                .map(|n| trusted.describe(n))
                .collect();
            if cli.json {
                let events: Vec<serde_json::Value> = proven
                    .events
                    .iter()
                    .map(|e| {
                        json!({"index": e.index, "event_id": e.event_id.to_hex(),
                               "appended_at": e.appended_at, "type": e.body.kind.type_name(),
                               "line_positions": e.line_positions,
                               "signers": e.signers.iter().map(|s| s.to_hex()).collect::<Vec<_>>(),
                               "event": to_json_event(&e.body)})
                    })
                    .collect();
                println!(
                    "{}",
                    json!({"valid": true, "worker": proven.worker,
                           "checkpoint": {"origin": proven.checkpoint.origin, "size": proven.checkpoint.size,
                                          "root": proven.checkpoint.root.to_hex()},
                           "signed_by": proven.signed_by, "contents_signed_by": proven.contents_signed_by,
                           "quorum": trusted.quorum, "complete": true,
                           "events": events, "entitlement": entitlement,
                           "entitlement_not_recomputed": not_recomputed})
                );
            } else {
                println!(
                    "VALID: statement of worker {} — all {} of their event(s) in ledger {} (checkpoint at {} events, root {}), signed by {} ({} of {} trusted keys, {} needed)",
                    proven.worker,
                    proven.events.len(),
                    proven.checkpoint.origin,
                    proven.checkpoint.size,
                    &proven.checkpoint.root.to_hex()[..16],
                    signers.join(", "),
                    signers.len(),
                    trusted.nodes.len(),
                    trusted.quorum
                );
                for e in &proven.events {
                    println!(
                        "  #{:<6} {}  {}",
                        e.index,
                        e.appended_at,
                        render::proven_event(&e.body.kind)
                    );
                }
                if let Some(ent) = &entitlement {
                    println!("Recomputed from the proven events:");
                    print!(
                        "{}",
                        render::entitlement(&serde_json::to_value(ent)?, proven.checkpoint.size)
                    );
                }
                if let Some(why) = &not_recomputed {
                    println!("Entitlement not recomputed: {why}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Member(m) => {
            let (keys, act) = match m {
                MemberCommand::Add {
                    keys,
                    id,
                    raft_address,
                    public_address,
                    node_key,
                } => {
                    let key = node_key_arg(node_key.as_deref())?;
                    let mut words = format!("add-learner {id} {raft_address} {public_address}");
                    if !key.is_empty() {
                        words.push(' ');
                        words.push_str(&key);
                    }
                    (keys, Act::parse(&words).map_err(anyhow::Error::msg)?)
                }
                MemberCommand::Promote { keys, id } => (keys, Act::Promote(*id)),
                MemberCommand::Remove { keys, id } => (keys, Act::Remove(*id)),
            };
            let signed_at = ledger_client::clock_now();
            let ledger = session(&cli.node)?
                .call(|c| Box::pin(c.ledger_id()))
                .await?;
            let mut file = ActFile::new(&ledger, &act, &fresh_nonce(signed_at), signed_at)
                .map_err(anyhow::Error::msg)?;
            for k in keys {
                file.sign(&keys::load(k)?).map_err(anyhow::Error::msg)?;
            }
            submit_act(&cli, &file).await
        }
        Command::Act(a) => act_command(&cli, a).await,
        Command::Proof {
            event_id,
            key,
            trust,
            quorum,
        } => {
            let id = ledger_core::event::Hash32::from_hex(event_id)
                .map_err(|e| invalid("EVENT_ID", e))?;
            let trusted = load_trust(trust.as_ref(), *quorum)?;
            let key = keys::load(key)?;
            let mut client = connect(&cli.node).await?;
            let (index, appended_at, checkpoint) = client.proof(&id, &key, &trusted).await?;
            if cli.json {
                println!(
                    "{}",
                    json!({"event_id": event_id, "index": index, "appended_at": appended_at,
                           "checkpoint": checkpoint, "verified": true})
                );
            } else {
                println!("event {event_id}\n  index {index}, appended at {appended_at}\n  included in this checkpoint (proof verified):");
                for l in checkpoint.lines() {
                    println!("    {l}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit { endpoints, trust } => {
            let mut urls = endpoints.clone();
            if urls.is_empty() {
                urls = ledger_client::client_endpoints();
            }
            if urls.is_empty() {
                urls.push(cli.node.clone().unwrap_or_else(default_node_url));
            }
            let trusted = trust
                .as_ref()
                .map(|t| ledger_client::proofs::load_trust(t))
                .transpose()?;
            let (nodes, forks) = ledger_client::proofs::audit(&urls, trusted.as_deref()).await;
            let held: usize = nodes.iter().map(|n| n.forks.len()).sum();
            let agree = forks.is_empty() && held == 0 && nodes.iter().all(|n| n.error.is_none());
            if cli.json {
                println!(
                    "{}",
                    json!({"agree": agree, "nodes": nodes, "forks": forks})
                );
            } else {
                for n in &nodes {
                    match &n.error {
                        None => println!(
                            "  {:<28} {:<10} size {:<8} root {}{}",
                            n.url,
                            n.name.clone().unwrap_or_default(),
                            n.size.unwrap_or(0),
                            &n.root.clone().unwrap_or_default()
                                [..16.min(n.root.as_ref().map_or(0, String::len))],
                            if n.forks.is_empty() {
                                String::new()
                            } else {
                                format!("  HOLDS {} FORK NOTE(S)", n.forks.len())
                            }
                        ),
                        Some(e) => println!("  {:<28} unreachable or invalid: {e}", n.url),
                    }
                }
                for f in &forks {
                    println!("FORK between {} and {}: {}", f.a, f.b, f.why);
                }
                println!(
                    "{}",
                    if agree {
                        "all nodes agree: every checkpoint is consistent with every other"
                    } else {
                        "the nodes do NOT agree (see above)"
                    }
                );
            }
            Ok(if agree {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
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
                    .map_err(|e| invalid("--jurisdiction", e))?,
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
        Command::Completions { .. } | Command::Man => {
            failure::write_stdout(&generated(&cli.command)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => {
            let mut session = session(&cli.node)?;
            let s = session.call(|c| Box::pin(c.status())).await?;
            let mut client = session.connect().await?;
            // The node's signed checkpoint and any fork evidence it holds (the alarm).
            let cp = client.checkpoint().await.ok();
            let cp_body = cp.as_ref().and_then(|c| {
                ledger_core::checkpoint::SignedNote::parse(&c.note)
                    .ok()
                    .and_then(|n| ledger_core::checkpoint::Checkpoint::parse_body(&n.text).ok())
            });
            let forks = cp.as_ref().map_or(0, |c| c.forks.len());
            let forks_dropped = cp.as_ref().map_or(0, |c| c.forks_dropped);
            // Each member's own view: its state and how far it has applied.
            let mut nodes = Vec::new();
            for m in &s.raft_members {
                let view = match Client::connect(&m.public_address).await {
                    Ok(mut c) => c.status().await.ok(),
                    Err(_) => None,
                };
                nodes.push((m, view));
            }
            // The commit index is the leader's knowledge: take it from whichever view is the
            // leader's.
            let commit_index = std::iter::once(&s)
                .chain(nodes.iter().filter_map(|(_, v)| v.as_ref()))
                .map(|v| v.commit_index)
                .max()
                .unwrap_or(0);
            if cli.json {
                let nodes: Vec<serde_json::Value> = nodes
                    .iter()
                    .map(|(m, v)| {
                        json!({
                            "id": m.id, "address": m.public_address, "raft_address": m.raft_address, "voter": m.voter,
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
                            "snapshot_index": s.snapshot_index, "commit_index": commit_index,
                        }) },
                        "commit_index": commit_index,
                        "nodes": nodes,
                        "checkpoint": cp_body.as_ref().map(|c| json!({
                            "origin": c.origin, "size": c.size, "root": c.root.to_hex(),
                            "note": cp.as_ref().map(|c| c.note.clone()),
                            "verifier": cp.as_ref().map(|c| c.verifier.clone()),
                        })),
                        "forks": forks,
                        "forks_dropped": forks_dropped,
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
                if s.raft_id != 0 {
                    println!("commit    Raft log index {commit_index} (the log size counts ledger events only)");
                }
                println!("head      {}", s.head_hash);
                if let Some(c) = &cp_body {
                    println!("checkpoint {} events, root {}", c.size, c.root.to_hex());
                }
                if forks > 0 {
                    println!("ALARM     this node holds evidence of {forks} conflicting checkpoint(s): run `ledger-client audit`");
                }
                if forks_dropped > 0 {
                    println!("ALARM     {forks_dropped} more conflicting note(s) seen beyond the evidence limits (counted, not kept)");
                }
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
        return Err(invalid(
            &events.display().to_string(),
            "holds no events (one JSON event per line)",
        ));
    }
    let mut results: Vec<(usize, SubmitOutcome)> = Vec::with_capacity(parsed.len());
    let mut bodies = Vec::new();
    let mut lines_sent = Vec::new();
    for p in parsed {
        match p.body {
            Ok(body) => {
                lines_sent.push(p.line);
                bodies.push(body);
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
    // Resending a request after a failover is safe: known ids and already recorded content
    // return their committed receipts.
    let mut session = session(&cli.node)?;
    let to_send: Vec<_> = if bodies.is_empty() {
        Vec::new()
    } else {
        let ledger = session.call(|c| Box::pin(c.ledger_id())).await?;
        bodies
            .iter()
            .map(|b| jsonl::sign(&ledger, b, &keys))
            .collect()
    };
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
        for request in split_requests(to_send) {
            let n = request.len() as u64;
            let sent = session.call(|c| Box::pin(c.submit(request.clone()))).await;
            let outcomes = match sent {
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
/// success only if every event was appended or already recorded.
fn print_outcomes(json: bool, results: &[(usize, SubmitOutcome)]) -> ExitCode {
    let (mut refused, mut recorded) = (0, 0);
    for (line, o) in results {
        match o {
            SubmitOutcome::Accepted {
                event_id,
                index,
                appended_at,
                already_recorded,
            } => {
                recorded += usize::from(*already_recorded);
                if json {
                    // `duplicate` is kept for scripts written against the first release.
                    println!(
                        "{}",
                        json!({"line": line, "event_id": event_id.to_hex(), "index": index, "appended_at": appended_at, "already_recorded": already_recorded, "duplicate": already_recorded})
                    );
                } else if *already_recorded {
                    println!("line {line}: already recorded as #{index} (event {event_id}), nothing appended");
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
    let appended = results.len() - refused - recorded;
    if !json || refused > 0 {
        eprintln!("{appended} appended, {recorded} already recorded, {refused} refused");
    }
    if refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
