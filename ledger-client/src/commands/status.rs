//! `status`: the cluster as the asked node sees it and as each member sees itself; and the
//! load generator, `bench`.

use std::process::ExitCode;

use ledger_client::report::Status;
use ledger_client::{keys, Client};

use super::{exit, Ctx};
use crate::cli::BenchArgs;
use crate::failure::invalid;
use crate::render;

pub async fn status(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut session = ctx.session()?;
    let s = session.call(|c| Box::pin(c.status())).await?;
    let mut client = session.connect().await?;
    // The node's signed checkpoint and any fork evidence it holds (the alarm).
    let checkpoint = client.checkpoint().await.ok();
    // Each member's own view: its state and how far it has applied.
    let mut views = Vec::new();
    for m in &s.raft_members {
        let view = match Client::connect(&m.public_address).await {
            Ok(mut c) => c.status().await.ok(),
            Err(_) => None,
        };
        views.push((m.clone(), view));
    }
    let doc = Status::new(&s, &views, checkpoint.as_ref());
    ctx.emit(&doc, render::status)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn bench(ctx: &Ctx, args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let cfg = ledger_client::bench::BenchConfig {
        url: ctx.node_url(),
        agency: keys::load(&args.key)?,
        jurisdiction: args
            .jurisdiction
            .parse()
            .map_err(|e| invalid("--jurisdiction", e))?,
        employers: args.employers,
        lines_per_declaration: args.lines,
        declarations: args.declarations,
        concurrency: args.concurrency,
        batch: args.batch,
        run_id: format!("bench{:x}", rand::random::<u32>()),
    };
    let bar = indicatif::ProgressBar::new(u64::from(args.declarations));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {pos}/{len} declarations [{elapsed}] {wide_bar}",
        )
        .expect("valid template"),
    );
    let b = bar.clone();
    eprintln!(
        "setting up {} employers and {} persons, signing {} declarations...",
        args.employers,
        args.employers * args.lines,
        args.declarations
    );
    let report = ledger_client::bench::run(cfg, move |n| b.set_position(n)).await?;
    bar.finish_and_clear();
    ctx.emit(&report, render::bench)?;
    Ok(exit(report.refused == 0))
}
