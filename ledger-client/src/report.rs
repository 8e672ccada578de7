//! The documents the command line prints under `--json`, as types: one definition of each
//! document, built by the command that answers and printed (as JSON, or as text by the binary's
//! `render`) by the caller. docs/cli.md describes them field by field.
//!
//! The entitlement, coverage and indicators documents are not here: the node computes them and
//! the client passes them through unchanged.

use std::path::PathBuf;

use ledger_core::checkpoint::Checkpoint;
use ledger_core::json::to_json_event;
use ledger_core::statement::Proven;
use ledger_core::time::Instant;
use ledger_proto::node::{RaftMemberStatus, StatusResponse};
use ledger_proto::rights::CheckpointResponse;
use serde::Serialize;
use serde_json::Value;

use crate::proofs::{Fork, NodeCheckpoint};
use crate::{SubmitOutcome, WorkerEvent};

/// `keygen`.
#[derive(Debug, Serialize)]
pub struct KeyCreated {
    pub public_key: String,
    pub file: PathBuf,
}

/// One line of `submit` (and of `key register`): its receipt or its refusal.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum SubmitLine {
    Accepted {
        line: usize,
        event_id: String,
        index: u64,
        appended_at: String,
        already_recorded: bool,
        /// The first release's name of `already_recorded`, kept for scripts written against it.
        duplicate: bool,
    },
    Refused {
        line: usize,
        /// Always null: a refused event has no place in the log.
        event_id: Option<String>,
        index: Option<u64>,
        refused: RefusalDoc,
    },
}

#[derive(Debug, Serialize)]
pub struct RefusalDoc {
    pub code: String,
    pub message: String,
}

impl SubmitLine {
    pub fn new(line: usize, outcome: &SubmitOutcome) -> Self {
        match outcome {
            SubmitOutcome::Accepted {
                event_id,
                index,
                appended_at,
                already_recorded,
            } => SubmitLine::Accepted {
                line,
                event_id: event_id.to_hex(),
                index: *index,
                appended_at: appended_at.clone(),
                already_recorded: *already_recorded,
                duplicate: *already_recorded,
            },
            SubmitOutcome::Refused { code, message } => SubmitLine::Refused {
                line,
                event_id: None,
                index: None,
                refused: RefusalDoc {
                    code: code.clone(),
                    message: message.clone(),
                },
            },
        }
    }
}

/// One event of `events`: as appended, with only the worker's lines of a batch.
#[derive(Debug, Serialize)]
pub struct EventRecord {
    pub index: u64,
    pub event_id: String,
    pub appended_at: String,
    pub signers: Vec<String>,
    pub line_positions: Vec<u32>,
    /// The event in the JSON form `submit` reads.
    pub event: Value,
    /// The kind (`type` of the event), for the text form.
    #[serde(skip)]
    pub type_name: &'static str,
}

impl From<&WorkerEvent> for EventRecord {
    fn from(e: &WorkerEvent) -> Self {
        EventRecord {
            index: e.index,
            event_id: e.event_id.to_hex(),
            appended_at: e.appended_at.clone(),
            signers: e.signers.clone(),
            line_positions: e.line_positions.clone(),
            event: to_json_event(&e.body),
            type_name: e.body.kind.type_name(),
        }
    }
}

/// A checkpoint's public part: which log, how many events, which root.
#[derive(Debug, Serialize)]
pub struct CheckpointSummary {
    pub origin: String,
    pub size: u64,
    pub root: String,
}

impl From<&Checkpoint> for CheckpointSummary {
    fn from(c: &Checkpoint) -> Self {
        CheckpointSummary {
            origin: c.origin.clone(),
            size: c.size,
            root: c.root.to_hex(),
        }
    }
}

/// `statement`: the file written and what it holds.
#[derive(Debug, Serialize)]
pub struct StatementWritten {
    pub file: PathBuf,
    pub worker: String,
    pub events: usize,
    pub checkpoint: CheckpointSummary,
    pub signed_by: Vec<String>,
}

/// `verify` of a statement that verified: what it proves.
#[derive(Debug, Serialize)]
pub struct Verified {
    /// Always true here; a statement that does not verify is [`NotVerified`].
    pub valid: bool,
    pub worker: String,
    pub checkpoint: CheckpointSummary,
    pub signed_by: Vec<String>,
    pub contents_signed_by: Vec<String>,
    pub quorum: usize,
    /// Every event of the worker up to the checkpoint is in the statement (the contents note
    /// signed by a quorum says so); a shortened statement does not verify.
    pub complete: bool,
    pub events: Vec<ProvenEventDoc>,
    /// The entitlement recomputed from the proven events alone.
    pub entitlement: Option<Value>,
    /// Why the entitlement could not be recomputed, when it could not.
    pub entitlement_not_recomputed: Option<String>,
}

/// `verify` of a statement that did not verify: the answer is a document, not an error.
#[derive(Debug, Serialize)]
pub struct NotVerified {
    pub valid: bool,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct ProvenEventDoc {
    pub index: u64,
    pub event_id: String,
    pub appended_at: Instant,
    #[serde(rename = "type")]
    pub type_name: &'static str,
    pub line_positions: Vec<u32>,
    pub signers: Vec<String>,
    pub event: Value,
}

impl Verified {
    pub fn new(
        proven: &Proven,
        quorum: usize,
        entitlement: Option<Value>,
        entitlement_not_recomputed: Option<String>,
    ) -> Self {
        let events = proven
            .events
            .iter()
            .map(|e| ProvenEventDoc {
                index: e.index,
                event_id: e.event_id.to_hex(),
                appended_at: e.appended_at,
                type_name: e.body.kind.type_name(),
                line_positions: e.line_positions.clone(),
                signers: e.signers.iter().map(|s| s.to_hex()).collect(),
                event: to_json_event(&e.body),
            })
            .collect();
        Verified {
            valid: true,
            worker: proven.worker.to_string(),
            checkpoint: CheckpointSummary::from(&proven.checkpoint),
            signed_by: proven.signed_by.clone(),
            contents_signed_by: proven.contents_signed_by.clone(),
            quorum,
            complete: true,
            events,
            entitlement,
            entitlement_not_recomputed,
        }
    }
}

/// `proof`: an event's receipt proof, checked.
#[derive(Debug, Serialize)]
pub struct ProofChecked {
    pub event_id: String,
    pub index: u64,
    pub appended_at: String,
    /// The signed checkpoint note that includes the event.
    pub checkpoint: String,
    pub verified: bool,
}

/// `trust`: the trust file written from a node's genesis.
#[derive(Debug, Serialize)]
pub struct TrustWritten {
    pub trust: PathBuf,
    pub nodes: usize,
    pub quorum: usize,
    /// The ledger's name, for the text form.
    #[serde(skip)]
    pub ledger: String,
}

/// `audit`: every node's checkpoint and the forks between them.
#[derive(Debug, Serialize)]
pub struct Audit {
    pub agree: bool,
    pub nodes: Vec<NodeCheckpoint>,
    pub forks: Vec<Fork>,
}

impl Audit {
    pub fn new(nodes: Vec<NodeCheckpoint>, forks: Vec<Fork>) -> Self {
        let held: usize = nodes.iter().map(|n| n.forks.len()).sum();
        let agree = forks.is_empty() && held == 0 && nodes.iter().all(|n| n.error.is_none());
        Audit {
            agree,
            nodes,
            forks,
        }
    }
}

/// `act show`.
#[derive(Debug, Serialize)]
pub struct ActShown {
    pub act: String,
    pub nonce: String,
    pub signed_at: String,
    pub signers: Vec<String>,
}

/// `act submit`, `member ...`: what the node did, and the membership after it.
#[derive(Debug, Serialize)]
pub struct ActDone {
    pub message: String,
    pub members: Vec<MemberDoc>,
    pub event_id: String,
    pub index: u64,
}

#[derive(Debug, Serialize)]
pub struct MemberDoc {
    pub id: u64,
    pub raft_address: String,
    pub public_address: String,
    pub voter: bool,
    pub node_key: String,
}

/// `status`: the node's view of the ledger, each member's own view, the node's checkpoint and
/// the fork alarm.
#[derive(Debug, Serialize)]
pub struct Status {
    pub node_id: String,
    pub jurisdiction: String,
    pub ledger: String,
    pub log_size: u64,
    pub head_hash: String,
    pub genesis_hash: String,
    pub version: String,
    pub members: Vec<String>,
    pub leader: String,
    /// Null on a single node.
    pub raft: Option<RaftView>,
    pub commit_index: u64,
    pub nodes: Vec<MemberView>,
    pub checkpoint: Option<CheckpointView>,
    /// Conflicting checkpoints this node holds evidence of (the alarm).
    pub forks: usize,
    pub forks_dropped: u64,
}

#[derive(Debug, Serialize)]
pub struct RaftView {
    pub id: u64,
    /// The leader's Raft id, null while an election is under way.
    pub leader_id: Option<u64>,
    pub state: String,
    pub term: u64,
    pub last_log_index: u64,
    pub applied_index: u64,
    pub snapshot_index: u64,
    pub commit_index: u64,
}

/// A member as the asked node lists it, and as it sees itself (`None`s when unreachable).
#[derive(Debug, Serialize)]
pub struct MemberView {
    pub id: u64,
    pub address: String,
    pub raft_address: String,
    pub voter: bool,
    pub matched_index: Option<u64>,
    pub reachable: bool,
    pub state: Option<String>,
    pub term: Option<u64>,
    pub last_log_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub log_size: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct CheckpointView {
    pub origin: String,
    pub size: u64,
    pub root: String,
    pub note: String,
    pub verifier: String,
}

impl Status {
    /// `s` is the asked node's status, `views` each member's own (None when it did not answer),
    /// `checkpoint` the asked node's signed checkpoint.
    pub fn new(
        s: &StatusResponse,
        views: &[(RaftMemberStatus, Option<StatusResponse>)],
        checkpoint: Option<&CheckpointResponse>,
    ) -> Self {
        // The commit index is the leader's knowledge: take it from whichever view is the leader's.
        let commit_index = std::iter::once(s)
            .chain(views.iter().filter_map(|(_, v)| v.as_ref()))
            .map(|v| v.commit_index)
            .max()
            .unwrap_or(0);
        let raft = (s.raft_id != 0).then(|| RaftView {
            id: s.raft_id,
            leader_id: (s.leader_id != 0).then_some(s.leader_id),
            state: s.raft_state.clone(),
            term: s.term,
            last_log_index: s.last_log_index,
            applied_index: s.applied_index,
            snapshot_index: s.snapshot_index,
            commit_index,
        });
        let nodes = views
            .iter()
            .map(|(m, v)| MemberView {
                id: m.id,
                address: m.public_address.clone(),
                raft_address: m.raft_address.clone(),
                voter: m.voter,
                matched_index: m.matched_index,
                reachable: v.is_some(),
                state: v.as_ref().map(|v| v.raft_state.clone()),
                term: v.as_ref().map(|v| v.term),
                last_log_index: v.as_ref().map(|v| v.last_log_index),
                applied_index: v.as_ref().map(|v| v.applied_index),
                log_size: v.as_ref().map(|v| v.log_size),
            })
            .collect();
        let checkpoint_view = checkpoint.and_then(|c| {
            let note = ledger_core::checkpoint::SignedNote::parse(&c.note).ok()?;
            let body = Checkpoint::parse_body(&note.text).ok()?;
            Some(CheckpointView {
                origin: body.origin,
                size: body.size,
                root: body.root.to_hex(),
                note: c.note.clone(),
                verifier: c.verifier.clone(),
            })
        });
        Status {
            node_id: s.node_id.clone(),
            jurisdiction: s.jurisdiction.clone(),
            ledger: s.ledger.clone(),
            log_size: s.log_size,
            head_hash: s.head_hash.clone(),
            genesis_hash: s.genesis_hash.clone(),
            version: s.version.clone(),
            members: s.members.clone(),
            leader: s.leader.clone(),
            raft,
            commit_index,
            nodes,
            checkpoint: checkpoint_view,
            forks: checkpoint.map_or(0, |c| c.forks.len()),
            forks_dropped: checkpoint.map_or(0, |c| c.forks_dropped),
        }
    }
}

impl From<&ledger_proto::admin::SubmitActResponse> for ActDone {
    fn from(r: &ledger_proto::admin::SubmitActResponse) -> Self {
        ActDone {
            message: r.message.clone(),
            members: r
                .members
                .iter()
                .map(|m| MemberDoc {
                    id: m.id,
                    raft_address: m.raft_address.clone(),
                    public_address: m.public_address.clone(),
                    voter: m.voter,
                    node_key: m.node_key.clone(),
                })
                .collect(),
            event_id: hex::encode(&r.event_id),
            index: r.index,
        }
    }
}

/// The kinds of failure a caller can tell apart: the CLI's exit codes and the `code` of every
/// error document (`{"error": {"code", "message"}}`), whichever front end answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Anything not below: a refused event, an invalid statement, nodes that disagree, a
    /// node's own fault.
    Failed,
    /// The node does not know what was asked: a worker, an event, a member.
    NotFound,
    /// The key may not do or read this (not registered, revoked, not the worker's or an
    /// agency's key, a read token out of date).
    Denied,
    /// No node answered in time: unreachable, no leader, not committed in time. Nothing was
    /// decided; the same request may be made again later.
    Unavailable,
    /// A bad argument or input (refused locally, or by the node as an invalid argument).
    InvalidInput,
}

impl ErrorKind {
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Failed => 1,
            ErrorKind::NotFound => 3,
            ErrorKind::Denied => 5,
            ErrorKind::Unavailable => 6,
            ErrorKind::InvalidInput => 7,
        }
    }

    /// The `error.code` of the error document.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Failed => "failed",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Denied => "permission_denied",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::InvalidInput => "invalid_input",
        }
    }

    /// The kind of a node's answer; `transient` when it decided nothing (see
    /// [`crate::ClientError::is_transient`]).
    pub fn of_code(code: tonic::Code, transient: bool) -> Self {
        use tonic::Code;
        match code {
            Code::NotFound => ErrorKind::NotFound,
            Code::PermissionDenied | Code::Unauthenticated => ErrorKind::Denied,
            Code::InvalidArgument | Code::OutOfRange | Code::ResourceExhausted => {
                ErrorKind::InvalidInput
            }
            _ if transient => ErrorKind::Unavailable,
            _ => ErrorKind::Failed,
        }
    }
}

/// `{"error": {"code", "message"}}`: how every front end reports a failure.
#[derive(Debug, Serialize)]
pub struct ErrorDoc {
    pub error: ErrorBody,
}

#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
}

impl ErrorDoc {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ErrorDoc {
            error: ErrorBody {
                code: kind.name(),
                message: message.into(),
            },
        }
    }
}
