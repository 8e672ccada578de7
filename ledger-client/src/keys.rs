//! Secret key files: 64 hex digits of an ed25519 seed, readable by the owner only. The one
//! place that reads and writes them, for the client's keys and the node's alike.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ed25519_dalek::SigningKey;
use ledger_core::envelope::{format_secret_key, parse_secret_key};

use crate::ClientError;

pub fn load(path: &Path) -> Result<SigningKey, ClientError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ClientError::Key(format!("cannot read key file {}: {e}", path.display())))?;
    parse_secret_key(&text).map_err(|e| ClientError::Key(format!("{}: {e}", path.display())))
}

/// Creates a new key at `path` (mode 0600); refuses to overwrite an existing file.
pub fn generate(path: &Path) -> Result<SigningKey, ClientError> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    write_new(path, &key)?;
    Ok(key)
}

/// The key at `path`, made there first if there is none (a node's own keys).
pub fn load_or_create(path: &Path) -> Result<SigningKey, ClientError> {
    if path.exists() {
        load(path)
    } else {
        generate(path)
    }
}

/// Writes `key` to a new file at `path`, readable by its owner only, synced with its directory
/// entry: a node that lost its key after a crash would come back as a stranger to its peers.
pub fn write_new(path: &Path, key: &SigningKey) -> Result<(), ClientError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| ClientError::Key(format!("cannot create key file {}: {e}", path.display())))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    f.write_all(format_secret_key(key).as_bytes())
        .and_then(|_| f.sync_all())
        .and_then(|_| std::fs::File::open(dir)?.sync_all())
        .map_err(|e| ClientError::Key(format!("writing {}: {e}", path.display())))
}
