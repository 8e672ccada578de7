//! Read tokens at the door. Every read of a worker's records names a token: a key registered on
//! this ledger signed this very read — this ledger, this node (its `node_id`), this method, this
//! subject — within [`READ_TOKEN_WINDOW_SECONDS`] of the node's clock, with a nonce this node
//! has not seen. The node checks the signature with its *own* ledger id, node id and method,
//! so a token captured from one call is refused on any other method, node or ledger, and on
//! the same one the second time. The check runs before anything is looked up.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use ledger_core::envelope::{read_message, LedgerId, ReadScope, READ_NONCE_BYTES};
use ledger_core::event::PublicKeyBytes;
use ledger_core::kv::StateRead;
use ledger_core::records::KeyRecord;
use ledger_core::schema as keys;
use ledger_proto::node as pb;
use tonic::Status;

use crate::ledger::{now, Ledger};
use crate::limits::MAX_LIVE_READ_TOKENS;

/// A used token: its key and nonce.
type Used = [u8; 32 + READ_NONCE_BYTES];

/// The tokens used within the window, in the order the node saw them (so the oldest expire
/// from the front).
#[derive(Default)]
struct Seen {
    order: VecDeque<(i64, Used)>,
    set: HashSet<Used>,
}

impl Seen {
    /// Records `used` at node time `now`; false when it was used before. Forgets tokens seen
    /// more than two windows ago: a token is accepted only within one window either side of
    /// the node's clock, so by then it can no longer pass the time check.
    fn first_use(&mut self, used: Used, now: i64) -> Result<bool, Status> {
        while let Some((at, old)) = self.order.front() {
            if *at >= now - 2 * READ_TOKEN_WINDOW_SECONDS {
                break;
            }
            self.set.remove(old);
            self.order.pop_front();
        }
        if self.set.contains(&used) {
            return Ok(false);
        }
        if self.set.len() >= MAX_LIVE_READ_TOKENS {
            return Err(Status::resource_exhausted(format!(
                "this node has admitted {MAX_LIVE_READ_TOKENS} reads within {} s; try again shortly",
                2 * READ_TOKEN_WINDOW_SECONDS
            )));
        }
        self.set.insert(used);
        self.order.push_back((now, used));
        Ok(true)
    }
}

/// How far a read token's issued_at may be from the node's clock.
pub const READ_TOKEN_WINDOW_SECONDS: i64 = 5 * 60;

/// Checks that a registered, unrevoked key signed `message` (which embeds `issued_at`) within
/// [`READ_TOKEN_WINDOW_SECONDS`] of the node's clock; returns the key and its record.
pub(crate) fn signed_by_key(
    ledger: &Ledger,
    public_key: &[u8],
    issued_at: i64,
    signature: &[u8],
    message: &[u8],
) -> Result<(PublicKeyBytes, KeyRecord), Status> {
    let pk = PublicKeyBytes::from_slice(public_key).map_err(Status::invalid_argument)?;
    let skew = (now().unix_seconds() - issued_at).abs();
    if skew > READ_TOKEN_WINDOW_SECONDS {
        return Err(Status::unauthenticated(format!(
            "token issued {skew} s away from the node's clock (limit {READ_TOKEN_WINDOW_SECONDS} s); check the clocks"
        )));
    }
    let rec: KeyRecord = match ledger
        .store()
        .get(&keys::key(&pk))
        .map_err(|e| Status::internal(e.0))?
    {
        Some(b) => serde_json::from_slice(&b).map_err(|e| Status::internal(e.to_string()))?,
        None => {
            return Err(Status::permission_denied(format!(
                "key {pk} is not registered on this ledger"
            )))
        }
    };
    if rec.revoked_at.is_some() {
        return Err(Status::permission_denied(format!("key {pk} was revoked")));
    }
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&pk.0)
        .map_err(|_| Status::unauthenticated("bad public key"))?;
    let sig: [u8; 64] = signature
        .try_into()
        .map_err(|_| Status::unauthenticated("token signature must be 64 bytes"))?;
    vk.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&sig))
        .map_err(|_| Status::unauthenticated("token signature does not verify"))?;
    Ok((pk, rec))
}

/// One per node, shared by the services that serve reads.
pub struct ReadGate {
    ledger: Arc<Ledger>,
    id: LedgerId,
    audience: String,
    seen: Mutex<Seen>,
}

impl ReadGate {
    pub fn new(ledger: Arc<Ledger>, node_id: &str) -> ReadGate {
        ReadGate {
            id: ledger.genesis().ledger_id(),
            ledger,
            audience: node_id.to_string(),
            seen: Mutex::default(),
        }
    }

    /// Admits one read of `subject` through `method`: the token's key and its record (role,
    /// jurisdiction, subject), for the caller's permission check.
    pub fn admit(
        &self,
        token: Option<pb::ReadToken>,
        method: &str,
        subject: &str,
    ) -> Result<(PublicKeyBytes, KeyRecord), Status> {
        let t = token.ok_or_else(|| {
            Status::unauthenticated(
                "this read needs a read token signed by the worker's own key or an agency key",
            )
        })?;
        let nonce: [u8; READ_NONCE_BYTES] = t.nonce.as_slice().try_into().map_err(|_| {
            Status::unauthenticated(format!(
                "the read token has no {READ_NONCE_BYTES}-byte nonce: it is of format 1, which \
                 was good on any node and method; update the client"
            ))
        })?;
        self.named_right(&t, method)?;
        let scope = ReadScope {
            ledger: self.id,
            audience: &self.audience,
            method,
            subject,
        };
        let message = read_message(&scope, &nonce, t.issued_at)
            .ok_or_else(|| Status::invalid_argument("the subject holds a NUL byte"))?;
        let (pk, rec) = signed_by_key(
            &self.ledger,
            &t.public_key,
            t.issued_at,
            &t.signature,
            &message,
        )
        .map_err(|s| self.explain(s, subject))?;
        let mut used = [0u8; 32 + READ_NONCE_BYTES];
        used[..32].copy_from_slice(&pk.0);
        used[32..].copy_from_slice(&nonce);
        let fresh = self
            .seen
            .lock()
            .expect("read gate lock")
            .first_use(used, now().unix_seconds())?;
        if !fresh {
            return Err(Status::unauthenticated(
                "this read token was already used: a token is good for one read; sign a new one",
            ));
        }
        Ok((pk, rec))
    }

    /// The method and node a token says it was made for must be these (they are signed too;
    /// comparing first gives a refusal that says what is wrong).
    fn named_right(&self, t: &pb::ReadToken, method: &str) -> Result<(), Status> {
        if !t.method.is_empty() && t.method != method {
            return Err(Status::permission_denied(format!(
                "the read token was made for {}, not {method}",
                t.method
            )));
        }
        if !t.audience.is_empty() && t.audience != self.audience {
            return Err(Status::permission_denied(format!(
                "the read token was made for node {:?}, this is node {:?}",
                t.audience, self.audience
            )));
        }
        Ok(())
    }

    /// A signature that does not verify over this node's scope: say what the token must bind.
    fn explain(&self, s: Status, subject: &str) -> Status {
        if s.message() == "token signature does not verify" {
            Status::unauthenticated(format!(
                "the read token's signature does not verify for ledger {}, node {:?}, this \
                 method and subject {subject:?}",
                self.id, self.audience
            ))
        } else {
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(b: u8) -> Used {
        [b; 32 + READ_NONCE_BYTES]
    }

    #[test]
    fn a_token_is_admitted_once_and_forgotten_only_after_two_windows() {
        let mut seen = Seen::default();
        assert!(seen.first_use(used(1), 1000).unwrap());
        assert!(!seen
            .first_use(used(1), 1000 + READ_TOKEN_WINDOW_SECONDS)
            .unwrap());
        assert!(seen.first_use(used(2), 1001).unwrap());
        // Two windows on, the first token is forgotten (it can no longer pass the time check).
        assert!(seen
            .first_use(used(1), 1001 + 2 * READ_TOKEN_WINDOW_SECONDS)
            .unwrap());
        assert_eq!(seen.set.len(), seen.order.len());
    }
}
