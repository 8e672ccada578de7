//! `ledger-node`: run one node of a deployment, or a local development ledger.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ledger_node::config::NodeConfig;
use ledger_node::dev::{self, DevOptions};
use ledger_node::ledger::LedgerError;
use ledger_node::logging::{self, LogFormat};

/// glibc malloc/free took about a third of the node's CPU under load (small, short-lived
/// allocations in sled and the apply path); mimalloc handles that pattern far better.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ledger-node",
    version,
    about = "A node of the portable contribution ledger"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a local ledger: agency keys, genesis and nodes under DIR, until Ctrl-C or SIGTERM.
    Dev {
        /// Where keys, configs, stores and client.toml live.
        #[arg(long, default_value = "./ledger-data")]
        data_dir: PathBuf,
        /// How many nodes (one per jurisdiction of deploy/dev-cluster.toml).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Port of node 1; node i listens on base-port + i - 1.
        #[arg(long, default_value_t = 7100)]
        base_port: u16,
    },
    /// Run one node of a deployment from its TOML config; LEDGER_* variables override its
    /// values (docs/cli.md).
    Run {
        #[arg(long, env = "LEDGER_CONFIG")]
        config: PathBuf,
    },
    /// Rebuild the projection (the read model of entitlements) from the node's log. The node
    /// must be stopped. Nodes also do this on start when their projection is missing or stale.
    RebuildProjections {
        /// The node's TOML config (its data dir is rebuilt).
        #[arg(long, env = "LEDGER_CONFIG")]
        config: PathBuf,
    },
    /// Ask the node of this config, on this machine, whether it serves (the gRPC health
    /// service, over TLS pinned to the node's own key): exit 0 when it does, 1 otherwise. For
    /// container, Kubernetes and systemd probes. A replica serves when it knows a leader and
    /// (on the leader) a majority acknowledges it.
    Health {
        #[arg(long, env = "LEDGER_CONFIG")]
        config: PathBuf,
        /// How long to wait for the answer.
        #[arg(long, default_value_t = 5, value_name = "SECONDS")]
        timeout: u64,
        /// Exit 0 when the node answers at all, serving or not (liveness and start-up probes:
        /// a node without a majority is alive, and a restart would not help it).
        #[arg(long)]
        live: bool,
    },
    /// Make the node key before the first start (the node would make it then), so the other
    /// members' configs and the trust files can name it. Prints `node_key=HEX` (for
    /// `[[raft.members]] node_key` and client.toml) and `verifier=...` (the node's line of a
    /// trust file, after its jurisdiction). An existing key is kept.
    NodeKey {
        /// The node's data directory: the key is DATA_DIR/node.key.
        #[arg(long, env = "LEDGER_DATA_DIR")]
        data_dir: PathBuf,
        /// The node's `node_id` (names its checkpoint signatures).
        #[arg(long, env = "LEDGER_NODE_ID")]
        node_id: String,
    },
    /// Start a ledger between agencies: agency and node keys made where they are kept, a genesis
    /// assembled from public files only and compared by hash, node configs and the trust file.
    #[command(subcommand)]
    Ceremony(ledger_node::ceremony::CeremonyCommand),
    /// Take an online, consistent backup of the running node of this config (on its machine:
    /// the request proves the node's key), and check it before keeping it.
    Backup {
        #[arg(long, env = "LEDGER_CONFIG")]
        config: PathBuf,
        /// The backup file to write (never replaced).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a backup: every event opened and replayed from the genesis, head and Merkle root as
    /// claimed, and with --checkpoint the root a quorum of nodes signed at that size.
    VerifyBackup {
        file: PathBuf,
        #[arg(long)]
        genesis: PathBuf,
        /// A signed checkpoint (a note, or a statement file holding one).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Trusted node keys for the checkpoint [default: the genesis members'].
        #[arg(long)]
        trust: Option<PathBuf>,
    },
    /// Build a new data directory for this config from a backup (checked first). Under Raft the
    /// config must give the node a new [raft] id; it then joins as a new member.
    Restore {
        file: PathBuf,
        #[arg(long, env = "LEDGER_CONFIG")]
        config: PathBuf,
    },
}

/// `ledger-node verify-backup`.
fn verify_backup(
    file: &std::path::Path,
    genesis: &std::path::Path,
    checkpoint: Option<&std::path::Path>,
    trust: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let genesis = ledger_node::config::load_genesis(genesis)?;
    let trust = match (checkpoint, trust) {
        (None, _) => None,
        (Some(_), Some(t)) => {
            let text =
                std::fs::read_to_string(t).with_context(|| format!("reading {}", t.display()))?;
            Some(ledger_core::checkpoint::Trust::parse(&text).map_err(|e| anyhow::anyhow!(e.0))?)
        }
        (Some(_), None) => Some(genesis.trust().context(
            "the genesis lists no members: give the trust file of the checkpoint's signers (--trust)",
        )?),
    };
    let v = ledger_node::backup::verify(file, &genesis, checkpoint.zip(trust.as_ref()))?;
    println!(
        "VALID: {}: {}",
        file.display(),
        ledger_node::backup::describe(&v.header)
    );
    if let Some((size, signers)) = v.checkpoint {
        println!(
            "the root at {size} events is the checkpoint's, signed by {}",
            signers.join(", ")
        );
    }
    Ok(())
}

/// `restore FILE --config C`: a new data directory from a checked backup.
fn restore(file: &std::path::Path, config: &std::path::Path) -> anyhow::Result<()> {
    let cfg = NodeConfig::load(config)?;
    let h = ledger_node::backup::restore(file, &cfg)?;
    println!(
        "restored {}: {}",
        cfg.data_dir.display(),
        ledger_node::backup::describe(&h)
    );
    if cfg.raft.is_some() {
        eprintln!(
            "start the node, then have the agencies add it (member add, member \
             promote) and remove the old member: it catches up from the backup's index"
        );
    }
    Ok(())
}

/// `rebuild-projections --config C`: the stopped node's projection replayed from its log.
fn rebuild_projections(config: &std::path::Path) -> anyhow::Result<()> {
    let cfg = NodeConfig::load(config)?;
    let started = std::time::Instant::now();
    let n = ledger_node::ledger::rebuild_projection_in(&cfg.data_dir, |done, total| {
        eprintln!("replayed {done} of {total} events");
    })?;
    eprintln!(
        "projection rebuilt from {n} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Carries out one command (one arm each).
async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Dev {
            data_dir,
            nodes,
            base_port,
        } => {
            dev::run(DevOptions {
                data_dir,
                nodes,
                base_port,
            })
            .await
        }
        Command::Run { config } => {
            let cfg = NodeConfig::load(&config)?;
            logging::init(cfg.log_format, &cfg.node_id);
            ledger_node::server::run(cfg).await
        }
        Command::Health {
            config,
            timeout,
            live,
        } => {
            use ledger_node::probe::{check, Probe};
            let cfg = NodeConfig::load(&config)?;
            let probe = if live { Probe::Live } else { Probe::Ready };
            check(&cfg, std::time::Duration::from_secs(timeout), probe).await?;
            println!("{}", if live { "alive" } else { "serving" });
            Ok(())
        }
        Command::NodeKey { data_dir, node_id } => {
            let (key, verifier) = ledger_node::notary::init_node_key(&data_dir, &node_id)?;
            println!("node_key={key}\nverifier={verifier}");
            Ok(())
        }
        Command::Ceremony(cmd) => ledger_node::ceremony::run(cmd),
        Command::Backup { config, out } => {
            let cfg = NodeConfig::load(&config)?;
            let v = ledger_node::backup::take(&cfg, &out).await?;
            println!(
                "{}: {}",
                out.display(),
                ledger_node::backup::describe(&v.header)
            );
            Ok(())
        }
        Command::VerifyBackup {
            file,
            genesis,
            checkpoint,
            trust,
        } => verify_backup(&file, &genesis, checkpoint.as_deref(), trust.as_deref()),
        Command::Restore { file, config } => restore(&file, &config),
        Command::RebuildProjections { config } => rebuild_projections(&config),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `run` installs its logger once its config says how; every other command logs text.
    if !matches!(cli.command, Command::Run { .. }) {
        logging::init(LogFormat::Text, "");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(dispatch(cli.command));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // A corrupt store has its own exit code so supervisors do not restart it in a loop.
            if e.downcast_ref::<LedgerError>()
                .is_some_and(|l| matches!(l, LedgerError::Integrity { .. }))
            {
                ExitCode::from(4)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
