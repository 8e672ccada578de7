//! The command line: every command, its arguments and their help, as clap reads them. What each
//! command does is in `commands/`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ledger-client",
    version,
    about = "Client of the portable contribution ledger"
)]
pub struct Cli {
    /// Node to talk to: a URL, or HOST:PORT (https when the client config trusts node keys,
    /// else http) [default: first endpoint of the client config, else http://127.0.0.1:7100]
    #[arg(long, global = true)]
    pub node: Option<String>,
    /// Machine-readable output on stdout; an error is the document {"error": {"code", "message"}}.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to keep retrying when the cluster cannot answer yet (no leader, a node down, a
    /// lost connection), moving through the endpoints of client.toml; 0 never retries
    /// [default: `retry_seconds` of ./ledger-data/client.toml, else 60]
    #[arg(long, global = true, value_name = "SECONDS")]
    pub retry_for: Option<u64>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// Fetch the verifiers' trust file from a node: the genesis is fetched, checked against the
    /// genesis hash the agencies compared, and its members' checkpoint keys written to --out.
    Trust {
        /// The genesis hash (64 hex digits, `ledger-node ceremony hash`).
        #[arg(long)]
        genesis_hash: String,
        /// Where to write the trust file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Load generator: registers employers and persons, then submits signed payroll
    /// declarations from concurrent clients; reports lines/s and latency percentiles.
    Bench(BenchArgs),
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
pub enum MemberCommand {
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
pub enum ActCommand {
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
pub enum KeyCommand {
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

/// What the load generator does.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchMode {
    /// Submit `--declarations` declarations of `--lines` lines from `--employers` employers.
    Submit,
    /// Fill the ledger with `--workers` workers × `--months` months of declarations (signed in
    /// advance), and print the run id that `--mode query` reads them back with.
    Preload,
    /// Read back a preloaded run's workers: entitlement, coverage and events, `--queries` in
    /// all, with the latency of each kind.
    Query,
}

/// The load generator's settings.
#[derive(clap::Args)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value = "submit")]
    pub mode: BenchMode,
    /// Preload: workers in all (employers of `--lines` workers each).
    #[arg(long, default_value_t = 10_000)]
    pub workers: u32,
    /// Preload and query: months declared for every worker, from 2000-01.
    #[arg(long, default_value_t = 12)]
    pub months: u32,
    /// Query: the run id the preload printed (its `--employers` and `--lines` too).
    #[arg(long)]
    pub run_id: Option<String>,
    /// Query: queries in all, a third of each kind.
    #[arg(long, default_value_t = 3000)]
    pub queries: u32,
    /// An agency key of --jurisdiction (registers the bench's employers and persons).
    #[arg(long)]
    pub key: PathBuf,
    #[arg(long, default_value = "CN-44")]
    pub jurisdiction: String,
    #[arg(long, default_value_t = 20)]
    pub employers: u32,
    /// Lines per declaration (workers per employer).
    #[arg(long, default_value_t = 500)]
    pub lines: u32,
    /// Declarations in all.
    #[arg(long, default_value_t = 400)]
    pub declarations: u32,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    pub concurrency: u32,
    /// Declarations per request.
    #[arg(long, default_value_t = 4)]
    pub batch: u32,
}
