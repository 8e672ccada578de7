//! A worker's records and what they add up to, and an agency's indicators: the node computes
//! the documents; these commands fetch them with a read token and print them.

use std::path::Path;
use std::process::ExitCode;

use ledger_client::keys;
use ledger_client::report::EventRecord;

use super::Ctx;
use crate::render;

pub async fn events(ctx: &Ctx, worker: &str, key: &Path) -> anyhow::Result<ExitCode> {
    let key = keys::load(key)?;
    let mut client = ctx.connect().await?;
    let list = client.worker_events(worker, &key).await?;
    // One document per line (JSON lines), so that a long history streams.
    for e in &list {
        ctx.emit(&EventRecord::from(e), render::event_record)?;
    }
    if !ctx.json {
        eprintln!(
            "{} event(s) of worker {worker}; signatures and batch lines verified",
            list.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn entitlement(
    ctx: &Ctx,
    worker: &str,
    key: &Path,
    as_of: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let key = keys::load(key)?;
    let mut client = ctx.connect().await?;
    let (doc, log_size) = client.entitlement(worker, &key, as_of).await?;
    ctx.emit(&doc, |d| render::entitlement(d, log_size))?;
    Ok(ExitCode::SUCCESS)
}

pub async fn coverage(
    ctx: &Ctx,
    worker: &str,
    key: &Path,
    at: &str,
    jurisdiction: &str,
) -> anyhow::Result<ExitCode> {
    let key = keys::load(key)?;
    let mut client = ctx.connect().await?;
    let (doc, _) = client.coverage(worker, &key, at, jurisdiction).await?;
    ctx.emit(&doc, render::coverage)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn indicators(
    ctx: &Ctx,
    key: &Path,
    period: &str,
    jurisdiction: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let key = keys::load(key)?;
    let mut client = ctx.connect().await?;
    let (doc, log_size) = client.indicators(&key, period, jurisdiction).await?;
    ctx.emit(&doc, |d| render::indicators(d, log_size))?;
    Ok(ExitCode::SUCCESS)
}
