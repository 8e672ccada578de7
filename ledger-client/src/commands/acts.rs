//! Ledger acts (membership and agency keys) signed by several agencies: `act new|sign|show|
//! submit`, and `member ...`, which writes, signs and submits one act in a single step.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use ledger_client::acts::{fresh_nonce, ActFile};
use ledger_client::keys;
use ledger_client::report::{ActDone, ActShown};
use ledger_core::authority::Act;

use super::Ctx;
use crate::cli::{ActCommand, MemberCommand};
use crate::failure::invalid;
use crate::render;

pub async fn member(ctx: &Ctx, command: &MemberCommand) -> anyhow::Result<ExitCode> {
    let (keys, act) = match command {
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
    let ledger = ctx.session()?.call(|c| Box::pin(c.ledger_id())).await?;
    let mut file = ActFile::new(&ledger, &act, &fresh_nonce(signed_at), signed_at)
        .map_err(anyhow::Error::msg)?;
    for k in keys {
        file.sign(&keys::load(k)?).map_err(anyhow::Error::msg)?;
    }
    submit_act(ctx, &file).await
}

/// `--node-key`: 64 hex digits, or a certificate file holding the key.
fn node_key_arg(arg: Option<&str>) -> anyhow::Result<String> {
    let Some(arg) = arg else {
        return Ok(String::new());
    };
    if let Ok(key) = ledger_client::transport::parse_node_key(arg) {
        return Ok(hex::encode(key));
    }
    let path = Path::new(arg);
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

pub async fn act(ctx: &Ctx, command: &ActCommand) -> anyhow::Result<ExitCode> {
    match command {
        ActCommand::New { out, nonce, act } => new_act(ctx, out, nonce.as_deref(), act).await?,
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
            let doc = ActShown {
                act: file.act.clone(),
                nonce: file.nonce.clone(),
                signed_at: file.signed_at.to_string(),
                signers: file
                    .signatures
                    .iter()
                    .map(|s| s.public_key.to_hex())
                    .collect(),
            };
            ctx.emit(&doc, render::act_shown)?;
        }
        ActCommand::Submit { file: path } => return submit_act(ctx, &read_act_file(path)?).await,
    }
    Ok(ExitCode::SUCCESS)
}

async fn new_act(
    ctx: &Ctx,
    out: &Path,
    nonce: Option<&str>,
    words: &[String],
) -> anyhow::Result<()> {
    let act = Act::parse(&words.join(" ")).map_err(anyhow::Error::msg)?;
    let signed_at = ledger_client::clock_now();
    let nonce = nonce.map_or_else(|| fresh_nonce(signed_at), str::to_string);
    // The act is signed for the ledger the node keeps (its genesis hash).
    let ledger = ctx.session()?.call(|c| Box::pin(c.ledger_id())).await?;
    let file = ActFile::new(&ledger, &act, &nonce, signed_at).map_err(anyhow::Error::msg)?;
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
    Ok(())
}

async fn submit_act(ctx: &Ctx, file: &ActFile) -> anyhow::Result<ExitCode> {
    let envelope = file.envelope().map_err(anyhow::Error::msg)?;
    let mut client = ctx.connect().await?;
    let done = ActDone::from(&client.submit_act(&envelope).await?);
    ctx.emit(&done, render::act_done)?;
    Ok(ExitCode::SUCCESS)
}

fn read_act_file(path: &Path) -> anyhow::Result<ActFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    ActFile::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Writes whole and renames, so a reader never sees half a file.
fn write_act_file(path: &Path, file: &ActFile) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, file.to_json()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}
