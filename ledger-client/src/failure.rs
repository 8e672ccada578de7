//! How `ledger-client` fails: one exit code per kind of error (docs/cli.md, "Exit codes"), the
//! message printed once, as JSON under `--json`, and a closed standard output ending the
//! program quietly.

use std::process::ExitCode;

use ledger_client::ClientError;
use serde_json::json;

/// A bad argument or input file, found before anything was sent.
#[derive(Debug)]
pub struct InvalidInput(pub String);

impl std::fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidInput {}

/// An [`InvalidInput`] error: `what` names the option or file, `why` says what is wrong.
pub fn invalid(what: &str, why: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::new(InvalidInput(format!("{what}: {why}")))
}

pub use ledger_client::report::ErrorKind as Kind;

fn kind_of_client_error(e: &ClientError) -> Kind {
    match e {
        ClientError::Connect { .. } => Kind::Unavailable,
        ClientError::Key(_) => Kind::InvalidInput,
        ClientError::Invalid(_) => Kind::Failed,
        ClientError::Rpc(s) => Kind::of_code(s.code(), e.is_transient()),
    }
}

/// The kind of the first error in the chain that says what went wrong.
pub fn classify(e: &anyhow::Error) -> Kind {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<ClientError>() {
            return kind_of_client_error(c);
        }
        if cause.is::<InvalidInput>() || cause.is::<std::io::Error>() {
            return Kind::InvalidInput;
        }
    }
    Kind::Failed
}

/// The message, each cause once: a [`ClientError`] already says what its gRPC status says, so
/// the status below it is not repeated.
pub fn message(e: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in e.chain() {
        parts.push(cause.to_string());
        if cause.is::<ClientError>() {
            break;
        }
    }
    parts.join(": ")
}

/// Reports `e` (text on stderr; with `json` also the error document on stdout) and returns the
/// exit code of its kind.
pub fn report(e: &anyhow::Error, json: bool) -> ExitCode {
    let kind = classify(e);
    let message = message(e);
    eprintln!("error: {message}");
    if json {
        let doc = ledger_client::report::ErrorDoc::new(kind, message);
        match serde_json::to_string(&doc) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("error: {e}"),
        }
    }
    ExitCode::from(kind.exit_code())
}

/// The `--json` error document of a command line that could not be parsed (exit 2, clap's).
pub fn usage_document(message: &str) {
    let message = message.trim().trim_start_matches("error: ");
    println!(
        "{}",
        json!({"error": {"code": "usage", "message": message}})
    );
}

/// Exit status after standard output was closed by its reader: what a shell shows for a tool
/// ended by SIGPIPE (128 + 13), so `set -o pipefail` scripts see what they see with `cat`.
pub const CLOSED_PIPE_EXIT: i32 = 141;

/// Called when writing to standard output failed. A reader that went away (`| head -1`) ends
/// the program quietly; any other failure is reported.
pub fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(CLOSED_PIPE_EXIT);
    }
    eprintln!("error: writing to standard output: {e}");
    std::process::exit(i32::from(Kind::Failed.exit_code()));
}

/// Writes `bytes` whole to standard output (generated completions, the man page).
pub fn write_stdout(bytes: &[u8]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|_| out.flush()) {
        stdout_failed(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpc(code: tonic::Code) -> anyhow::Error {
        anyhow::Error::new(ClientError::Rpc(tonic::Status::new(code, "why")))
    }

    #[test]
    fn each_kind_has_its_code() {
        assert_eq!(classify(&rpc(tonic::Code::NotFound)), Kind::NotFound);
        assert_eq!(classify(&rpc(tonic::Code::PermissionDenied)), Kind::Denied);
        assert_eq!(classify(&rpc(tonic::Code::Unauthenticated)), Kind::Denied);
        assert_eq!(classify(&rpc(tonic::Code::Unavailable)), Kind::Unavailable);
        assert_eq!(
            classify(&rpc(tonic::Code::InvalidArgument)),
            Kind::InvalidInput
        );
        assert_eq!(classify(&rpc(tonic::Code::Internal)), Kind::Failed);
        assert_eq!(
            classify(&invalid("--as-of", "not a date")),
            Kind::InvalidInput
        );
        let io = std::fs::read("/nonexistent/file").unwrap_err();
        assert_eq!(
            classify(&anyhow::Error::new(io).context("reading events")),
            Kind::InvalidInput
        );
        assert_eq!(classify(&anyhow::anyhow!("disagree")), Kind::Failed);
        let connect = ClientError::Connect {
            url: "https://127.0.0.1:1".into(),
            message: "refused".into(),
        };
        assert_eq!(
            classify(&anyhow::Error::new(connect).context("submission interrupted")),
            Kind::Unavailable
        );
        let codes: std::collections::BTreeSet<u8> = [
            Kind::Failed,
            Kind::NotFound,
            Kind::Denied,
            Kind::Unavailable,
            Kind::InvalidInput,
        ]
        .iter()
        .map(|k| k.exit_code())
        .collect();
        assert_eq!(codes.len(), 5, "one code per kind");
        assert!(
            !codes.contains(&2) && !codes.contains(&4),
            "2 is clap's, 4 the node's"
        );
    }

    #[test]
    fn a_status_is_said_once() {
        let e = rpc(tonic::Code::NotFound).context("entitlement");
        let m = message(&e);
        assert_eq!(m.matches("why").count(), 1, "{m}");
        assert!(
            m.starts_with("entitlement: the node answered NotFound"),
            "{m}"
        );
    }
}
