//! `status`: the cluster as the asked node sees it and as each member sees itself; and the
//! load generator, `bench`.

use std::process::ExitCode;

use ledger_client::report::Status;
use ledger_client::{keys, Client};

use super::{exit, Ctx};
use crate::cli::{BenchArgs, BenchMode};
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
    if args.mode == BenchMode::Query {
        return bench_query(ctx, args).await;
    }
    // A preload is a submission sized by workers and months: employers of `--lines` workers
    // each, one declaration per employer and month.
    let (employers, declarations) = match args.mode {
        BenchMode::Preload => {
            let employers = args.workers.div_ceil(args.lines.max(1));
            let declarations = employers
                .checked_mul(args.months)
                .ok_or_else(|| invalid("--workers/--months", "too many declarations"))?;
            (employers, declarations)
        }
        _ => (args.employers, args.declarations),
    };
    let cfg = ledger_client::bench::BenchConfig {
        url: ctx.node_url(),
        agency: keys::load(&args.key)?,
        jurisdiction: args
            .jurisdiction
            .parse()
            .map_err(|e| invalid("--jurisdiction", e))?,
        employers,
        lines_per_declaration: args.lines,
        declarations,
        concurrency: args.concurrency,
        batch: args.batch,
        run_id: format!("bench{:x}", rand::random::<u32>()),
    };
    let bar = progress(u64::from(declarations), "declarations");
    let b = bar.clone();
    eprintln!(
        "setting up {employers} employers and {} persons, signing {declarations} declarations...",
        u64::from(employers) * u64::from(args.lines),
    );
    let report = ledger_client::bench::run(cfg, move |n| b.set_position(n)).await?;
    bar.finish_and_clear();
    ctx.emit(&report, render::bench)?;
    Ok(exit(report.refused == 0))
}

/// `bench --mode query`: reads back a preloaded run's workers.
async fn bench_query(ctx: &Ctx, args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let run_id = args.run_id.clone().ok_or_else(|| {
        invalid(
            "--run-id",
            "needed with --mode query (the preload printed it)",
        )
    })?;
    let cfg = ledger_client::bench_query::QueryConfig {
        url: ctx.node_url(),
        key: keys::load(&args.key)?,
        jurisdiction: args.jurisdiction.clone(),
        run_id,
        employers: args.employers,
        workers_per_employer: args.lines,
        months: args.months,
        queries: args.queries,
        concurrency: args.concurrency,
    };
    let bar = progress(u64::from(args.queries), "queries");
    let b = bar.clone();
    let report = ledger_client::bench_query::run(cfg, move |n| b.set_position(n)).await?;
    bar.finish_and_clear();
    ctx.emit(&report, render::bench_query)?;
    Ok(exit(report.errors == 0))
}

fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {{pos}}/{{len}} {what} [{{elapsed}}] {{wide_bar}}"
        ))
        .expect("valid template"),
    );
    bar
}
