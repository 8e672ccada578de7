//! Reading `submit` input: one event per line in the JSON form of docs/events.md. Blank lines and
//! lines starting with `#` are skipped; line numbers count every line, from 1.

use ed25519_dalek::SigningKey;
use ledger_core::envelope::{Envelope, LedgerId};
use ledger_core::event::{EventBody, EventKind, Salt};
use ledger_core::json::parse_json_event;
use ledger_core::time::Instant;
use rand::RngCore;

/// One event line of the input, parsed, or why not.
pub struct ParsedLine {
    pub line: usize,
    pub body: Result<EventBody, String>,
}

/// Parses every event line. `now` becomes the `signed_at` of lines without one; batch lines
/// without a salt get a random one (so their hashes cannot be guessed from a proof).
pub fn parse(text: &str, now: Instant) -> Vec<ParsedLine> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| ParsedLine {
            line: i + 1,
            body: parse_json_event(l).map(|(mut kind, signed_at)| {
                salt_lines(&mut kind);
                EventBody {
                    signed_at: signed_at.unwrap_or(now),
                    kind,
                }
            }),
        })
        .collect()
}

fn fresh_salt(salt: &mut Salt) {
    if salt.is_zero() {
        rand::rngs::OsRng.fill_bytes(&mut salt.0);
    }
}

fn salt_lines(kind: &mut EventKind) {
    match kind {
        EventKind::ContributionsDeclared(e) => {
            e.lines.iter_mut().for_each(|l| fresh_salt(&mut l.salt))
        }
        EventKind::PlatformOrders(e) => e.lines.iter_mut().for_each(|l| fresh_salt(&mut l.salt)),
        _ => {}
    }
}

/// Signs a body for `ledger` with every key, in order.
pub fn sign(ledger: &LedgerId, body: &EventBody, keys: &[SigningKey]) -> Envelope {
    let refs: Vec<&SigningKey> = keys.iter().collect();
    Envelope::sign(ledger, body, &refs)
}

/// The client's clock as a ledger instant.
pub fn now() -> Instant {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    Instant::from_unix_utc(d.as_secs() as i64, 0).expect("clock in range")
}
