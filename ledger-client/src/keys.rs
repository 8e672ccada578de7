//! Secret key files: 64 hex digits of an ed25519 seed, readable by the owner only.

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
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| ClientError::Key(format!("cannot create key file {}: {e}", path.display())))?;
    f.write_all(format_secret_key(&key).as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| ClientError::Key(format!("writing {}: {e}", path.display())))?;
    Ok(key)
}
