//! `keygen` and `key register`.

use std::path::Path;
use std::process::ExitCode;

use ledger_client::keys;
use ledger_client::report::KeyCreated;
use ledger_core::event::{EventBody, EventKind, KeyRegistered, PublicKeyBytes, Role};

use super::{submit, Ctx};
use crate::cli::KeyCommand;
use crate::failure::invalid;

pub fn keygen(ctx: &Ctx, out: &Path) -> anyhow::Result<ExitCode> {
    let key = keys::generate(out)?;
    let doc = KeyCreated {
        public_key: hex::encode(key.verifying_key().to_bytes()),
        file: out.to_path_buf(),
    };
    ctx.emit(&doc, |d| format!("{}\n", d.public_key))?;
    Ok(ExitCode::SUCCESS)
}

pub async fn key(ctx: &Ctx, command: &KeyCommand) -> anyhow::Result<ExitCode> {
    let KeyCommand::Register {
        key,
        jurisdiction,
        role,
        subject,
        public_key,
    } = command;
    let agency = keys::load(key)?;
    let role: Role = serde_json::from_value(serde_json::json!(role)).map_err(|_| {
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
        public_key: PublicKeyBytes::from_hex(public_key).map_err(|e| invalid("--public-key", e))?,
    });
    let body = EventBody {
        signed_at: ledger_client::jsonl::now(),
        kind,
    };
    let mut session = ctx.session()?;
    let ledger = session.call(|c| Box::pin(c.ledger_id())).await?;
    let envelope = ledger_client::jsonl::sign(&ledger, &body, &[agency]);
    let outcome = session
        .call(|c| Box::pin(c.submit(vec![envelope.clone()])))
        .await?
        .remove(0);
    Ok(submit::print_outcomes(ctx.json, &[(1, outcome)]))
}
