//! The deterministic state machine: applies one committed entry (a stamp and the verified events
//! it orders) to the ledger state and says, per event, receipt or refusal. It reads state through
//! [`StateRead`] and returns the writes as one batch; it never touches a clock, randomness or a
//! disk. The same state and entry give the same outcomes and byte-identical writes on every node.
//!
//! A refused event leaves no trace by construction: each event is decided on its own child
//! [`Overlay`] of the entry's state, merged into the entry only when the event is appended.
//! Who may sign what is one function, [`authorize`]; what each kind checks and writes in the
//! state is in `effects`. The key layout is [`crate::schema`], the records
//! [`crate::records`].

use crate::authority::Authority;
use crate::effects;
use crate::envelope::VerifiedEvent;
use crate::event::*;
use crate::genesis::Genesis;
use crate::kv::{Overlay, StateRead, StoreFault, Writes};
use crate::log_tree::event_leaf;
use crate::records::{self, chain_next, Head, KeyRecord, StoredRecord};
use crate::refusal::Refusal;
use crate::rulebook::Rulebook;
use crate::signers::{authorize, signer_records, About};
use crate::time::Instant;
use crate::{projection, schema, validate, wire};

/// What happened to one submitted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Appended(Receipt),
    Refused(Refusal),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub event_id: Hash32,
    pub index: u64,
    pub appended_at: Instant,
    /// The event was already recorded: the same event id, or the same content signed again by
    /// the same signers ([`content_key`]). This is the committed event's receipt (its id, which
    /// may differ from the submitted one, its index and its stamp); nothing was appended.
    pub duplicate: bool,
}

/// The result of applying one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub outcomes: Vec<Outcome>,
    pub writes: Writes,
    pub head: Head,
}

/// The writes that create a ledger from its genesis: agency keys, the genesis hash, an empty head.
pub fn genesis_writes(genesis: &Genesis) -> Writes {
    let mut w = Writes::new();
    for j in &genesis.jurisdictions {
        for k in &j.agency_keys {
            let rec = KeyRecord {
                role: Role::Agency,
                jurisdiction: j.code.clone(),
                subject: j.code.to_string(),
                registered_at: 0,
                revoked_at: None,
            };
            w.insert(
                schema::key(k),
                Some(serde_json::to_vec(&rec).expect("serializes")),
            );
        }
    }
    w.insert(schema::GENESIS.to_vec(), Some(genesis.hash().0.to_vec()));
    w.insert(
        schema::AUTHORITY.to_vec(),
        Some(serde_json::to_vec(&Authority::of(genesis)).expect("serializes")),
    );
    w.insert(
        schema::RULEBOOK.to_vec(),
        Some(Rulebook::builtin().to_bytes()),
    );
    w.insert(
        schema::PROJECTION_VERSION.to_vec(),
        Some(projection::PROJECTION_VERSION.to_be_bytes().to_vec()),
    );
    w.insert(schema::HEAD.to_vec(), Some(Head::default().encode()));
    w
}

/// Applies one entry. `events` have passed [`Envelope::open`](crate::envelope::Envelope::open);
/// everything that depends on the ledger state or the stamp is decided here, identically on
/// every node.
pub fn apply_entry(
    view: &dyn StateRead,
    stamp: Instant,
    events: &[VerifiedEvent],
) -> Result<Applied, StoreFault> {
    let mut head = records::read_head(view)?;
    let mut st = Overlay::new(view);
    let mut outcomes = Vec::with_capacity(events.len());
    for ev in events {
        outcomes.push(apply_event(&mut st, &mut head, ev, stamp)?);
    }
    st.put(schema::HEAD.to_vec(), head.encode());
    Ok(Applied {
        outcomes,
        writes: st.into_writes(),
        head,
    })
}

/// One event of an entry: the original receipt of a known event or content, a refusal that
/// leaves `st` as it was, or the event appended at the next index with every write it gives.
fn apply_event(
    st: &mut Overlay<'_>,
    head: &mut Head,
    ev: &VerifiedEvent,
    stamp: Instant,
) -> Result<Outcome, StoreFault> {
    if let Some(index) = records::index_of(st, &ev.id)? {
        let original = records::record(st, index)?;
        return Ok(Outcome::Appended(Receipt {
            event_id: ev.id,
            index,
            appended_at: original.stamp,
            duplicate: true,
        }));
    }
    let content = content_key(ev);
    if let Some(original) = recorded_content(st, &content)? {
        return Ok(Outcome::Appended(Receipt {
            event_id: original.event_id,
            index: original.index,
            appended_at: original.stamp,
            duplicate: true,
        }));
    }
    let index = head.size + 1;
    let mut child = Overlay::new(st);
    if let Err(refusal) = admit(&mut child, ev, index, stamp)? {
        return Ok(Outcome::Refused(refusal));
    }
    let chain = chain_next(&head.chain, index, &ev.id, stamp);
    append(&mut child, ev, &content, index, chain, stamp)?;
    let writes = child.into_writes();
    st.extend(writes);
    *head = Head { size: index, chain };
    Ok(Outcome::Appended(Receipt {
        event_id: ev.id,
        index,
        appended_at: stamp,
        duplicate: false,
    }))
}

/// The writes of an admitted event: its projection (which sees the event's own state writes),
/// its record, its id and content indexes, and its leaf of the log's Merkle tree.
fn append(
    st: &mut Overlay<'_>,
    ev: &VerifiedEvent,
    content: &Hash32,
    index: u64,
    chain: Hash32,
    stamp: Instant,
) -> Result<(), StoreFault> {
    let rec = StoredRecord {
        index,
        stamp,
        event_id: ev.id,
        chain,
        envelope: ev.envelope.clone(),
    };
    let projected = projection::project_event(st, index, &ev.body.kind)?;
    st.put(schema::event(index), rec.encode());
    st.put(schema::event_id(&ev.id), index.to_be_bytes().to_vec());
    st.put(schema::content(content), index.to_be_bytes().to_vec());
    st.extend(projected);
    records::append_leaf(st, index - 1, event_leaf(&ev.id, stamp))
}

/// Domain of [`content_key`], so a content key never equals an event id or another hash.
const CONTENT_DOMAIN: &[u8] = b"portable-contribution-ledger/content/v1\n";

/// What makes two signed events "the same submission": the body without `signed_at` and with
/// every line salt zeroed (so `lines_root` is recomputed over salt-free lines), and the set of
/// signer keys. A client that lost the answer to a submission signs the event again with a new
/// `signed_at` and new salts, hence a new event id; the content key still matches.
pub fn content_key(ev: &VerifiedEvent) -> Hash32 {
    let body = EventBody {
        signed_at: Instant::from_unix_utc(0, 0).expect("the epoch is a valid instant"),
        kind: without_salts(&ev.body.kind),
    };
    let encoded = wire::encode_body(&body);
    let signers: std::collections::BTreeSet<[u8; 32]> = ev
        .envelope
        .signatures
        .iter()
        .map(|s| s.public_key.0)
        .collect();
    let mut h = blake3::Hasher::new();
    h.update(CONTENT_DOMAIN);
    h.update(&(encoded.body.len() as u64).to_be_bytes());
    h.update(&encoded.body);
    for pk in &signers {
        h.update(pk);
    }
    Hash32(*h.finalize().as_bytes())
}

/// The event kind with every batch line's salt (and any replacement line's) set to zero.
fn without_salts(kind: &EventKind) -> EventKind {
    let mut kind = kind.clone();
    match &mut kind {
        EventKind::ContributionsDeclared(d) => {
            d.lines.iter_mut().for_each(|l| l.salt = Salt::default())
        }
        EventKind::PlatformOrders(o) => o.lines.iter_mut().for_each(|l| l.salt = Salt::default()),
        EventKind::Correction(c) => match &mut c.replacement {
            Some(Replacement::Line(Line::Contribution(l))) => l.salt = Salt::default(),
            Some(Replacement::Line(Line::Order(l))) => l.salt = Salt::default(),
            Some(Replacement::Event(e)) => **e = without_salts(e),
            None => {}
        },
        _ => {}
    }
    kind
}

/// The committed event that recorded this content, if it still stands: a correction that voided
/// it (wholly or any line) frees the content, so the same declaration can be made again after a
/// void, and is then decided like any new event.
fn recorded_content(
    st: &dyn StateRead,
    content: &Hash32,
) -> Result<Option<StoredRecord>, StoreFault> {
    let Some(index) = crate::kv::get_u64(st, &schema::content(content))? else {
        return Ok(None);
    };
    let rec = records::record(st, index)?;
    if !st.scan_prefix(&schema::voids_of(&rec.event_id))?.is_empty() {
        return Ok(None);
    }
    Ok(Some(rec))
}

/// Decides one event on its own overlay: `Ok(Err(refusal))` refuses it, and the caller drops
/// the overlay with whatever it holds.
fn admit(
    st: &mut Overlay<'_>,
    ev: &VerifiedEvent,
    index: u64,
    stamp: Instant,
) -> Result<Result<(), Refusal>, StoreFault> {
    if let Err(r) = validate::check_body(&ev.body, stamp) {
        return Ok(Err(r));
    }
    let signers = match signer_records(st, ev)? {
        Ok(signers) => signers,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if let Err(r) = authorize(&ev.body.kind, &signers, &About::Nothing) {
        return Ok(Err(r));
    }
    effects::apply(st, &ev.body.kind, &signers, index, stamp)
}

/// What apply refuses from the signers' keys alone, before any other state is read: unknown or
/// revoked keys ([`signer_records`]), then the role and jurisdiction the kind requires
/// ([`authorize`]). The edge of a node calls it to refuse such events before consensus; apply
/// decides them again with the same functions, since the state may change in between.
pub fn precheck(
    view: &dyn StateRead,
    ev: &VerifiedEvent,
) -> Result<Result<(), Refusal>, StoreFault> {
    let signers = match signer_records(view, ev)? {
        Ok(s) => s,
        Err(r) => return Ok(Err(r)),
    };
    if let Err(r) = authorize(&ev.body.kind, &signers, &About::Nothing) {
        return Ok(Err(r));
    }
    match &ev.body.kind {
        EventKind::LedgerAct(_) => {
            let authority = Authority::read(view)?;
            Ok(authorize(
                &ev.body.kind,
                &signers,
                &About::Authority(&authority),
            ))
        }
        _ => Ok(Ok(())),
    }
}
