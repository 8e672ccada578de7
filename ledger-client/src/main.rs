//! `ledger-client`: keys, submissions and reads against a ledger node (docs/cli.md).
//!
//! `cli` declares the command line, `commands/` carries out each command and returns what it
//! found as a typed document (`ledger_client::report`), `render` prints those for people, and
//! `failure` turns errors into exit codes and `--json` error documents.

use std::process::ExitCode;

use clap::Parser;

/// Standard output through [`failure::stdout_failed`]: a reader that closed the pipe
/// (`ledger-client status | head -1`) ends the program quietly instead of a panic. These
/// shadow std's macros for the whole binary.
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            $crate::failure::stdout_failed(e);
        }
    }};
}
macro_rules! print {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout().lock(), $($arg)*) {
            $crate::failure::stdout_failed(e);
        }
    }};
}

mod cli;
mod commands;
mod failure;
mod render;

fn main() -> ExitCode {
    let cli = cli::Cli::try_parse().unwrap_or_else(|e| {
        // Help and --version are not errors; anything else under --json gets its document.
        if e.use_stderr() && std::env::args().any(|a| a == "--json") {
            failure::usage_document(&e.render().to_string());
        }
        e.exit()
    });
    let json = cli.json;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => failure::report(&e, json),
    }
}
