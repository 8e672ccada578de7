//! What a worker carries and what a third party checks: `statement`, `verify`, `proof`, and
//! the agencies' `audit` of the nodes' checkpoints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use ledger_client::keys;
use ledger_client::report::{
    Audit, CheckpointSummary, NotVerified, ProofChecked, StatementWritten, TrustWritten, Verified,
};
use ledger_core::checkpoint::{Checkpoint, SignedNote};
use ledger_core::time::{Date, Instant};

use super::{exit, load_trust, Ctx};
use crate::failure::invalid;
use crate::render;

pub async fn statement(
    ctx: &Ctx,
    worker: &str,
    key: &Path,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let key = keys::load(key)?;
    let mut client = ctx.connect().await?;
    let text = client.statement(worker, &key).await?;
    // Check what the node sent before handing it on: it must parse, with a signed checkpoint,
    // and it is written only whole.
    let st: ledger_core::statement::Statement = serde_json::from_str(&text)?;
    let note = SignedNote::parse(&st.checkpoint)?;
    let cp = Checkpoint::parse_body(&note.text)?;
    let tmp = out.with_extension("partial");
    std::fs::write(&tmp, &text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    let doc = StatementWritten {
        file: out.to_path_buf(),
        worker: worker.to_string(),
        events: st.events.len(),
        checkpoint: CheckpointSummary::from(&cp),
        signed_by: note.signatures.iter().map(|s| s.name.clone()).collect(),
    };
    ctx.emit(&doc, render::statement_written)?;
    Ok(ExitCode::SUCCESS)
}

pub fn verify(
    ctx: &Ctx,
    file: &Path,
    trust: &PathBuf,
    quorum: Option<usize>,
    as_of: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let trusted = load_trust(Some(trust), quorum)?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let proven = match ledger_client::proofs::verify_statement(&text, &trusted) {
        Ok(p) => p,
        Err(e) => {
            // The document is the answer: invalid is a result, not an error document.
            if ctx.json {
                let doc = NotVerified {
                    valid: false,
                    reason: e.to_string(),
                };
                println!("{}", serde_json::to_string(&doc)?);
                eprintln!("error: {e}");
                return Ok(ExitCode::FAILURE);
            }
            anyhow::bail!("{e}");
        }
    };
    let as_of: Date = match as_of {
        Some(d) => d.parse().map_err(|e| invalid("--as-of", e))?,
        None => today()?,
    };
    // The proofs stand on their own; an entitlement that cannot be recomputed (say, the
    // person's registration was voided) is reported, not a verification failure.
    let (entitlement, not_recomputed) = match ledger_client::proofs::recompute(&proven, as_of) {
        Ok(e) => (Some(serde_json::to_value(e)?), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let doc = Verified::new(&proven, trusted.quorum, entitlement, not_recomputed);
    let signers: Vec<String> = proven
        .signed_by
        .iter()
        .map(|n| trusted.describe(n))
        .collect();
    ctx.emit(&doc, |d| {
        render::verified(d, &proven, &signers, trusted.nodes.len())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn today() -> anyhow::Result<Date> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    Ok(Instant::from_unix_utc(now.as_secs() as i64, 0)?.local_date())
}

pub async fn proof(
    ctx: &Ctx,
    event_id: &str,
    key: &Path,
    trust: Option<&PathBuf>,
    quorum: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let id = ledger_core::event::Hash32::from_hex(event_id).map_err(|e| invalid("EVENT_ID", e))?;
    let trusted = load_trust(trust, quorum)?;
    let key = keys::load(key)?;
    let mut client = ctx.connect().await?;
    let (index, appended_at, checkpoint) = client.proof(&id, &key, &trusted).await?;
    let doc = ProofChecked {
        event_id: event_id.to_string(),
        index,
        appended_at,
        checkpoint,
        verified: true,
    };
    ctx.emit(&doc, render::proof_checked)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn audit(
    ctx: &Ctx,
    endpoints: &[String],
    trust: Option<&PathBuf>,
) -> anyhow::Result<ExitCode> {
    let mut urls = endpoints.to_vec();
    if urls.is_empty() {
        urls = ledger_client::client_endpoints();
    }
    if urls.is_empty() {
        urls.push(ctx.node_url());
    }
    let trusted = trust
        .map(|t| ledger_client::proofs::load_trust(t))
        .transpose()?;
    let (nodes, forks) = ledger_client::proofs::audit(&urls, trusted.as_deref()).await;
    let doc = Audit::new(nodes, forks);
    ctx.emit(&doc, render::audit)?;
    Ok(exit(doc.agree))
}

/// The verifiers' trust file from the genesis a node serves, once it hashes to `genesis_hash`.
pub async fn trust(ctx: &Ctx, genesis_hash: &str, out: &Path) -> anyhow::Result<ExitCode> {
    let expected = ledger_core::envelope::LedgerId::from_hex(genesis_hash)
        .map_err(|e| invalid("--genesis-hash", e))?;
    let mut session = ctx.session()?;
    let genesis = session.call(|c| Box::pin(c.genesis(expected))).await?;
    let trust = genesis.trust().ok_or_else(|| {
        anyhow::anyhow!(
            "the genesis of {} names no members (it was not made by a ceremony): ask the \
             agencies for the trust file",
            genesis.ledger
        )
    })?;
    let text = format!(
        "# Checkpoint keys of the members of ledger {} (genesis {}).\n{}",
        genesis.ledger,
        genesis_hash.to_ascii_lowercase(),
        trust.format()
    );
    std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
    let doc = TrustWritten {
        trust: out.to_path_buf(),
        nodes: trust.nodes.len(),
        quorum: trust.quorum,
        ledger: genesis.ledger.clone(),
    };
    ctx.emit(&doc, render::trust_written)?;
    Ok(ExitCode::SUCCESS)
}
