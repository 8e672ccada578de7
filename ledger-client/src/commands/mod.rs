//! What each command does. A command gathers its answer as a typed document
//! (`ledger_client::report`) and hands it to [`Ctx::emit`], which prints it as JSON under
//! `--json` or as text through `render`; the exit code says whether the answer is a success.

mod acts;
mod keys;
mod proofs;
mod reads;
mod status;
mod submit;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ledger_client::retry::{self, Session};
use ledger_client::Client;
use serde::Serialize;

use crate::cli::{Cli, Command};
use crate::failure::{self, invalid};

/// What every command needs of the command line besides its own arguments.
pub struct Ctx {
    /// `--node`, as a URL.
    pub node: Option<String>,
    pub json: bool,
    /// How long calls retry: `--retry-for`, else client.toml, else the default.
    pub retry_for: Duration,
}

impl Ctx {
    fn new(cli: &Cli) -> Self {
        let node = cli.node.as_ref().map(|node| {
            let trust = ledger_client::transport::ClientTrust::load_default().unwrap_or_default();
            ledger_client::transport::node_url(node, &trust)
        });
        let retry_for = cli
            .retry_for
            .map(Duration::from_secs)
            .or_else(retry::configured_retry_for)
            .unwrap_or(retry::DEFAULT_RETRY_FOR);
        Ctx {
            node,
            json: cli.json,
            retry_for,
        }
    }

    /// A session over `--node` then the endpoints of client.toml, retrying for `--retry-for`.
    pub fn session(&self) -> anyhow::Result<Session> {
        Ok(Session::new(
            retry::endpoints(self.node.as_deref()),
            self.retry_for,
        )?)
    }

    /// A client connected to the first endpoint that answers.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        Ok(self.session()?.connect().await?)
    }

    /// `--node`, else the first endpoint of client.toml, else the default address.
    pub fn node_url(&self) -> String {
        self.node
            .clone()
            .unwrap_or_else(ledger_client::default_node_url)
    }

    /// Prints `doc`: as one line of JSON under `--json`, else in the words of `text`.
    pub fn emit<T: Serialize>(
        &self,
        doc: &T,
        text: impl FnOnce(&T) -> String,
    ) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string(doc)?);
        } else {
            print!("{}", text(doc));
        }
        Ok(())
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::new(&cli);
    match &cli.command {
        Command::Keygen { out } => keys::keygen(&ctx, out),
        Command::Key(k) => keys::key(&ctx, k).await,
        Command::Submit { keys, events } => submit::submit(&ctx, keys, events).await,
        Command::Events { worker, key } => reads::events(&ctx, worker, key).await,
        Command::Entitlement { worker, key, as_of } => {
            reads::entitlement(&ctx, worker, key, as_of.as_deref()).await
        }
        Command::Coverage {
            worker,
            key,
            at,
            jurisdiction,
        } => reads::coverage(&ctx, worker, key, at, jurisdiction).await,
        Command::Indicators {
            key,
            period,
            jurisdiction,
        } => reads::indicators(&ctx, key, period, jurisdiction.as_deref()).await,
        Command::Statement { worker, key, out } => proofs::statement(&ctx, worker, key, out).await,
        Command::Verify {
            file,
            trust,
            quorum,
            as_of,
        } => proofs::verify(&ctx, file, trust, *quorum, as_of.as_deref()),
        Command::Proof {
            event_id,
            key,
            trust,
            quorum,
        } => proofs::proof(&ctx, event_id, key, trust.as_ref(), *quorum).await,
        Command::Audit { endpoints, trust } => proofs::audit(&ctx, endpoints, trust.as_ref()).await,
        Command::Member(m) => acts::member(&ctx, m).await,
        Command::Act(a) => acts::act(&ctx, a).await,
        Command::Status => status::status(&ctx).await,
        Command::Trust { genesis_hash, out } => proofs::trust(&ctx, genesis_hash, out).await,
        Command::Bench(args) => status::bench(&ctx, args).await,
        Command::Completions { .. } | Command::Man => {
            failure::write_stdout(&generated(&cli.command)?);
            Ok(ExitCode::SUCCESS)
        }
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

/// Success only when `ok`; the document already said why not.
fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
