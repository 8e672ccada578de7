//! `submit`: sign each event of a JSONL file and send them in requests of bounded size.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use ledger_client::report::SubmitLine;
use ledger_client::{jsonl, keys, split_requests, SubmitOutcome};

use super::{exit, Ctx};
use crate::failure::invalid;

pub async fn submit(ctx: &Ctx, key_files: &[PathBuf], events: &Path) -> anyhow::Result<ExitCode> {
    let keys = key_files
        .iter()
        .map(|k| keys::load(k))
        .collect::<Result<Vec<_>, _>>()?;
    let parsed = jsonl::parse(&read_events(events)?, jsonl::now());
    if parsed.is_empty() {
        return Err(invalid(
            &events.display().to_string(),
            "holds no events (one JSON event per line)",
        ));
    }
    // Lines that do not parse are answered here; the others go to the node.
    let mut results: Vec<(usize, SubmitOutcome)> = Vec::with_capacity(parsed.len());
    let mut bodies = Vec::new();
    for p in parsed {
        match p.body {
            Ok(body) => bodies.push((p.line, body)),
            Err(message) => results.push((
                p.line,
                SubmitOutcome::Refused {
                    code: "invalid_event".into(),
                    message,
                },
            )),
        }
    }
    if bodies.is_empty() {
        results.sort_by_key(|(l, _)| *l);
        return Ok(print_outcomes(ctx.json, &results));
    }
    // Resending a request after a failover is safe: known ids and already recorded content
    // return their committed receipts.
    let mut session = ctx.session()?;
    let ledger = session.call(|c| Box::pin(c.ledger_id())).await?;
    let to_send: Vec<_> = bodies
        .iter()
        .map(|(_, b)| jsonl::sign(&ledger, b, &keys))
        .collect();
    let progress = progress_bar(to_send.len());
    let mut lines = bodies.iter().map(|(line, _)| *line);
    for request in split_requests(to_send) {
        let n = request.len() as u64;
        let outcomes = match session.call(|c| Box::pin(c.submit(request.clone()))).await {
            Ok(o) => o,
            Err(e) => {
                progress.abandon();
                results.sort_by_key(|(l, _)| *l);
                print_outcomes(ctx.json, &results);
                return Err(anyhow::Error::new(e).context(
                    "submission interrupted; the events listed above were answered, the rest were not",
                ));
            }
        };
        results.extend(
            outcomes
                .into_iter()
                .map(|o| (lines.next().expect("a line per outcome"), o)),
        );
        progress.inc(n);
    }
    progress.finish_and_clear();
    results.sort_by_key(|(l, _)| *l);
    Ok(print_outcomes(ctx.json, &results))
}

fn read_events(events: &Path) -> anyhow::Result<String> {
    if events.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading events from standard input")
    } else {
        std::fs::read_to_string(events).with_context(|| format!("reading {}", events.display()))
    }
}

/// A bar on standard error for long submissions only.
fn progress_bar(len: usize) -> indicatif::ProgressBar {
    let progress = indicatif::ProgressBar::new(len as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {pos}/{len} events [{elapsed}] {per_sec} {wide_bar} eta {eta}",
        )
        .expect("valid template"),
    );
    if len < 1000 {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    progress
}

/// Prints one line per event (receipts on stdout, refusals on stderr too) and a summary;
/// success only if every event was appended or already recorded.
pub fn print_outcomes(json: bool, results: &[(usize, SubmitOutcome)]) -> ExitCode {
    let (mut refused, mut recorded) = (0, 0);
    for (line, outcome) in results {
        let doc = SubmitLine::new(*line, outcome);
        if json {
            match serde_json::to_string(&doc) {
                Ok(text) => println!("{text}"),
                Err(e) => eprintln!("line {line}: {e}"),
            }
        }
        match outcome {
            SubmitOutcome::Accepted {
                event_id,
                index,
                already_recorded,
                ..
            } => {
                recorded += usize::from(*already_recorded);
                if !json {
                    if *already_recorded {
                        println!("line {line}: already recorded as #{index} (event {event_id}), nothing appended");
                    } else {
                        println!("line {line}: appended as #{index} (event {event_id})");
                    }
                }
            }
            SubmitOutcome::Refused { code, message } => {
                refused += 1;
                eprintln!("line {line}: refused [{code}]: {message}");
            }
        }
    }
    let appended = results.len() - refused - recorded;
    if !json || refused > 0 {
        eprintln!("{appended} appended, {recorded} already recorded, {refused} refused");
    }
    exit(refused == 0)
}
