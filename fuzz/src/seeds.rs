//! Real encodings for the seed corpora: envelopes signed with fixed keys, a statement that
//! verifies, signed checkpoints, read tokens, Raft messages carrying real entries, and a framed
//! snapshot of a genesis store. Fixed keys and times keep the corpus reproducible.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ed25519_dalek::{Signer, SigningKey};
use ledger_core::checkpoint::{Checkpoint, NoteKey, SignedNote, Trust};
use ledger_core::envelope::{read_message, read_method, Envelope, LedgerId, ReadScope};
use ledger_core::event::Hash32;
use ledger_core::event::{EventBody, PublicKeyBytes};
use ledger_core::json::parse_json_event;
use ledger_core::genesis::{Genesis, GenesisJurisdiction};
use ledger_core::log_tree::event_leaf;
use ledger_core::statement::{self, Contents, Statement, StatementEvent, STATEMENT_FORMAT};
use ledger_core::time::Instant;
use ledger_core::{merkle, state};
use ledger_node::raft::{wire as raft_wire, LedgerNode, LedgerRequest, TypeConfig};
use openraft::error::{Fatal, Infallible, InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, Membership, SnapshotMeta, StoredMembership, Vote,
};
use prost::Message;

/// The ledger every seed event and read token is signed for.
pub const LEDGER: LedgerId = LedgerId(Hash32([0x1e; 32]));
/// The node (audience) and method every seed read token is made for.
pub const TOKEN_AUDIENCE: &str = "node-1";
pub const TOKEN_METHOD: &str = read_method::ENTITLEMENT;
/// The nonce of every seed read token.
pub const TOKEN_NONCE: [u8; 16] = [0x0e; 16];

/// The message a seed read token of `subject` at `issued_at` signs.
pub fn token_message(subject: &str, issued_at: i64) -> Option<Vec<u8>> {
    let scope = ReadScope {
        ledger: LEDGER,
        audience: TOKEN_AUDIENCE,
        method: TOKEN_METHOD,
        subject,
    };
    read_message(&scope, &TOKEN_NONCE, issued_at)
}

/// The trust file of the statement target: the seed node's key alone (a quorum of one).
pub fn trust() -> Trust {
    Trust::parse(&format!("CN-44 {}\n", node_note_key().verifier_string()))
        .expect("a valid trust file")
}

/// The name of the node key that signs seed checkpoints; the statement target trusts it.
pub const NODE_NAME: &str = "node-1";

const EVENTS: &[&str] = &[
    r#"{"type":"person_registered","worker":"W-1","jurisdiction":"CN-44","sex":"M","birth_date":"1980-01-01","nationality":"CN"}"#,
    r#"{"type":"contributions_declared","employer":"E1","jurisdiction":"CN-44","period":"2024-01","lines":[{"worker":"W-1","scheme":"pension","base":"5000.00","employer_amount":"800.00","employee_amount":"400.00"},{"worker":"W-2","scheme":"injury","base":"5000.00","employer_amount":"10.00","employee_amount":"0.00"}]}"#,
    r#"{"type":"platform_orders","platform":"Meituan","jurisdiction":"CN-44","date":"2024-03-15","lines":[{"worker":"W-1","order":"M1","accepted_at":"2024-03-15T14:00:00+08:00","completed_at":"2024-03-15T14:20:00+08:00","premium":"0.50"}]}"#,
    r#"{"type":"flexible_contribution","worker":"W-1","jurisdiction":"CN-44","period":"2024-02","scheme":"pension","base":"4000.00","amount":"800.00"}"#,
    r#"{"type":"transfer_requested","transfer":"T-1","worker":"W-1","from":"CN-44","to":"CN-33","requested":"2015-01"}"#,
    r#"{"type":"hukou_changed","worker":"W-1","hukou":"CN-44","effective":"2020-01-01"}"#,
    r#"{"type":"key_revoked","public_key":"8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c","reason":"left the company"}"#,
];

pub fn signed_at() -> Instant {
    Instant::from_unix_utc(1_700_000_000, 0).expect("in range")
}

fn author_key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

fn node_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

pub fn node_note_key() -> NoteKey {
    NoteKey::new(
        NODE_NAME,
        PublicKeyBytes(node_key().verifying_key().to_bytes()),
    )
    .expect("a valid name")
}

/// Every seed event, signed by the author key.
pub fn envelopes() -> Vec<Envelope> {
    EVENTS
        .iter()
        .map(|json| {
            let (kind, _) = parse_json_event(json).expect("seed events parse");
            let body = EventBody {
                signed_at: signed_at(),
                kind,
            };
            Envelope::sign(&LEDGER, &body, &[&author_key()])
        })
        .collect()
}

fn envelope_bytes() -> Vec<Vec<u8>> {
    envelopes()
        .iter()
        .map(|e| e.to_pb().encode_to_vec())
        .collect()
}

fn submit_seeds() -> Vec<Vec<u8>> {
    let envs: Vec<_> = envelopes().iter().map(Envelope::to_pb).collect();
    let mut out: Vec<Vec<u8>> = envs
        .iter()
        .map(|e| {
            ledger_proto::node::SubmitRequest {
                events: vec![e.clone()],
            }
            .encode_to_vec()
        })
        .collect();
    out.push(ledger_proto::node::SubmitRequest { events: envs }.encode_to_vec());
    out
}

fn json_seeds() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = EVENTS.iter().map(|e| e.as_bytes().to_vec()).collect();
    out.push(br#"{"type":"person_registered","signed_at":"2024-06-01T00:00:00Z","worker":"W-9","jurisdiction":"CN-33","sex":"F","birth_date":"1990-02-28","nationality":"CN"}"#.to_vec());
    out
}

fn stamp(i: u32) -> Instant {
    Instant::from_unix_utc(1_717_200_000, i).expect("in range")
}

/// A statement of worker W-1 that verifies against [`node_note_key`]: W-1's events of the seed
/// log (the batch redacted to W-1's line), each proven into a checkpoint the node signed.
pub fn statement_text() -> String {
    let envs = envelopes();
    let leaves: Vec<_> = envs
        .iter()
        .enumerate()
        .map(|(i, e)| event_leaf(&e.id(&LEDGER), stamp(i as u32)))
        .collect();
    let cp = Checkpoint {
        origin: "pcl-fuzz".into(),
        size: leaves.len() as u64,
        root: merkle::root_of_hashes(&leaves),
    };
    let mut note = SignedNote::new(cp.body());
    note.sign(NODE_NAME, &node_key()).expect("a valid name");
    let indexes: Vec<u64> = (1..=envs.len() as u64).collect();
    let mut contents = SignedNote::new(Contents::new(cp.clone(), "W-1", &indexes, &[]).body());
    contents.sign(NODE_NAME, &node_key()).expect("a valid name");
    let events = envs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let positions = if e.lines.is_empty() { vec![] } else { vec![0] };
            let (env, kept, proofs) = statement::redacted(e, &positions);
            let inclusion = merkle::inclusion_proof(&leaves, i);
            StatementEvent::new(i as u64 + 1, stamp(i as u32), &env, kept, proofs, inclusion)
        })
        .collect();
    let st = Statement {
        format: STATEMENT_FORMAT.into(),
        worker: "W-1".into(),
        ledger: LEDGER.to_hex(),
        checkpoint: note.format(),
        contents: contents.format(),
        events,
        parameters: vec![],
    };
    serde_json::to_string_pretty(&st).expect("statements serialize") + "\n"
}

fn checkpoint_seeds() -> Vec<Vec<u8>> {
    let cp = Checkpoint {
        origin: "pcl-fuzz".into(),
        size: 7,
        root: ledger_core::event::Hash32([1; 32]),
    };
    let mut note = SignedNote::new(cp.body());
    note.sign(NODE_NAME, &node_key()).expect("a valid name");
    let one = note.format();
    note.sign("node-2", &author_key()).expect("a valid name");
    vec![
        one.into_bytes(),
        note.format().into_bytes(),
        cp.body().into_bytes(),
        node_note_key().verifier_string().into_bytes(),
    ]
}

fn read_token_seed(subject: &str, issued_at: i64) -> Vec<u8> {
    let key = author_key();
    let token = ledger_proto::node::ReadToken {
        public_key: key.verifying_key().to_bytes().to_vec(),
        issued_at,
        signature: key
            .sign(&token_message(subject, issued_at).expect("no NUL"))
            .to_bytes()
            .to_vec(),
        nonce: TOKEN_NONCE.to_vec(),
        method: TOKEN_METHOD.into(),
        audience: TOKEN_AUDIENCE.into(),
    };
    let mut out = vec![subject.len() as u8];
    out.extend_from_slice(subject.as_bytes());
    out.extend_from_slice(&token.encode_to_vec());
    out
}

fn log_id(index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(3, 1), index)
}

fn membership() -> Membership<u64, LedgerNode> {
    let nodes: BTreeMap<u64, LedgerNode> = (1..=3)
        .map(|id| {
            let n = LedgerNode {
                raft_address: format!("https://127.0.0.1:720{id}"),
                public_address: format!("https://127.0.0.1:710{id}"),
                node_key: format!("{id:02x}").repeat(32),
            };
            (id, n)
        })
        .collect();
    Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes)
}

fn ledger_request() -> LedgerRequest {
    LedgerRequest {
        stamp_seconds: 1_717_200_000,
        stamp_nanos: 5,
        envelopes: envelope_bytes(),
    }
}

fn entries() -> Vec<Entry<TypeConfig>> {
    vec![
        Entry {
            log_id: log_id(1),
            payload: EntryPayload::Blank,
        },
        Entry {
            log_id: log_id(2),
            payload: EntryPayload::Membership(membership()),
        },
        Entry {
            log_id: log_id(3),
            payload: EntryPayload::Normal(ledger_request()),
        },
    ]
}

fn raft_seeds() -> BTreeMap<&'static str, Vec<Vec<u8>>> {
    let vote = Vote::new_committed(3, 1);
    let append = AppendEntriesRequest::<TypeConfig> {
        vote,
        prev_log_id: Some(log_id(0)),
        entries: entries(),
        leader_commit: Some(log_id(2)),
    };
    let heartbeat = AppendEntriesRequest::<TypeConfig> {
        entries: vec![],
        ..append.clone()
    };
    let vote_req = VoteRequest::new(Vote::new(4, 2), Some(log_id(3)));
    let meta = SnapshotMeta {
        last_log_id: Some(log_id(3)),
        last_membership: StoredMembership::new(Some(log_id(2)), membership()),
        snapshot_id: "3-1-3-1".into(),
    };
    let install = InstallSnapshotRequest::<TypeConfig> {
        vote,
        meta,
        offset: 0,
        data: genesis_snapshot(),
        done: true,
    };
    let ok_append: raft_wire::Reply<AppendEntriesResponse<u64>, Infallible> =
        Ok(AppendEntriesResponse::Conflict);
    let ok_vote: raft_wire::Reply<VoteResponse<u64>, Infallible> =
        Ok(VoteResponse::new(Vote::new(4, 2), Some(log_id(3)), true));
    let ok_install: raft_wire::Reply<InstallSnapshotResponse<u64>, InstallSnapshotError> =
        Ok(InstallSnapshotResponse { vote });
    let fatal: raft_wire::Reply<VoteResponse<u64>, Infallible> =
        Err(RaftError::Fatal(Fatal::Stopped));
    let mut m = BTreeMap::new();
    m.insert(
        "raft_append_entries",
        vec![
            raft_wire::encode_append_entries(&append),
            raft_wire::encode_append_entries(&heartbeat),
        ],
    );
    m.insert("raft_vote", vec![raft_wire::encode_vote(&vote_req)]);
    m.insert(
        "raft_install_snapshot",
        vec![raft_wire::encode_install_snapshot(&install)],
    );
    m.insert(
        "raft_replies",
        vec![
            raft_wire::encode_reply(&ok_append),
            raft_wire::encode_reply(&ok_vote),
            raft_wire::encode_reply(&ok_install),
            raft_wire::encode_reply(&fatal),
        ],
    );
    let mut entry_seeds: Vec<Vec<u8>> = entries().iter().map(raft_wire::encode_entry).collect();
    entry_seeds.push(raft_wire::encode_ledger_request(&ledger_request()));
    m.insert("raft_entry", entry_seeds);
    m
}

/// The key/value pairs of a store holding a genesis of two jurisdictions.
fn genesis() -> Genesis {
    let key = |seed: u8| {
        PublicKeyBytes(
            SigningKey::from_bytes(&[seed; 32])
                .verifying_key()
                .to_bytes(),
        )
    };
    Genesis {
        ledger: "pcl-fuzz".into(),
        jurisdictions: vec![
            GenesisJurisdiction {
                code: "CN-44".parse().expect("valid"),
                agency_keys: vec![key(1)],
            },
            GenesisJurisdiction {
                code: "CN-33".parse().expect("valid"),
                agency_keys: vec![key(2)],
            },
        ],
        authority_quorum: None,
        members: Vec::new(),
    }
}

/// A snapshot (format 2, trailer included) of a ledger that holds only its genesis, written
/// by the node's own code from a real store.
pub fn genesis_snapshot() -> Vec<u8> {
    use ledger_node::store::Store;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = ledger_node::store::SledStore::open(dir.path()).expect("a store");
    store
        .commit(&state::genesis_writes(&genesis()))
        .expect("genesis written");
    let header = ledger_node::raft::snapshot::current_header(&store, None, Default::default())
        .expect("a header");
    let mut out = Vec::new();
    ledger_node::raft::snapshot::write(&store, &header, &mut out).expect("a snapshot");
    out
}

/// Every target's seeds.
pub fn all() -> BTreeMap<&'static str, Vec<Vec<u8>>> {
    let mut m = raft_seeds();
    m.insert("submit", submit_seeds());
    m.insert("json_event", json_seeds());
    m.insert("statement", vec![statement_text().into_bytes()]);
    m.insert("checkpoint", checkpoint_seeds());
    let event_subject = hex_id();
    m.insert(
        "read_token",
        vec![
            read_token_seed("W-1", 1_700_000_000),
            read_token_seed(&event_subject, 1_700_000_300),
        ],
    );
    m.insert(
        "snapshot",
        vec![genesis_snapshot()],
    );
    m
}

fn hex_id() -> String {
    envelopes()[0].id(&LEDGER).to_hex()
}

/// Writes the seeds to `dir/<target>/seed-<n>` (existing files, e.g. kept crashes, stay).
pub fn write(dir: &Path) -> std::io::Result<()> {
    check_accepted();
    for (target, seeds) in all() {
        let d = dir.join(target);
        std::fs::create_dir_all(&d)?;
        for (i, s) in seeds.iter().enumerate() {
            std::fs::write(d.join(format!("seed-{i}")), s)?;
        }
    }
    Ok(())
}

/// The seeds reach the accepting paths, not only the refusals: the statement verifies, every
/// envelope opens, the tokens verify, the Raft messages and the snapshot decode.
fn check_accepted() {
    statement::verify(&statement_text(), &trust()).expect("the seed statement verifies");
    for e in envelopes() {
        e.open(&LEDGER).expect("seed envelopes open");
    }
    let key = author_key().verifying_key();
    for seed in &all()["read_token"] {
        let n = seed[0] as usize;
        let subject = std::str::from_utf8(&seed[1..1 + n]).expect("utf-8");
        let t = ledger_proto::node::ReadToken::decode(&seed[1 + n..]).expect("a token");
        let sig = ed25519_dalek::Signature::from_slice(&t.signature).expect("64 bytes");
        key.verify_strict(&token_message(subject, t.issued_at).expect("no NUL"), &sig)
            .expect("seed tokens verify");
    }
    let m = all();
    for s in &m["raft_append_entries"] {
        raft_wire::decode_append_entries(s).expect("decodes");
    }
    for s in &m["raft_install_snapshot"] {
        let r = raft_wire::decode_install_snapshot(s).expect("decodes");
        raft_wire::decode_snapshot(&r.data).expect("a valid snapshot");
    }
    raft_wire::decode_vote(&m["raft_vote"][0]).expect("decodes");
    for s in &m["snapshot"] {
        raft_wire::decode_snapshot(s).expect("a valid snapshot");
    }
}
