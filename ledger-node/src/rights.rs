//! The projection's query service (`rights.proto`): entitlement, coverage and the coverage
//! indicators, answered from the projected facts of the local store (read-your-writes for a submitter on this node; a follower
//! answers for the log it has applied, reported as `log_size`).

use std::sync::Arc;

use ledger_core::event::Role;
use ledger_core::fact;
use ledger_core::jurisdiction::Jurisdiction;
use ledger_core::kv::{StateRead, StoreFault};
use ledger_core::projection;
use ledger_core::records;
use ledger_core::rules::{self, Params, RuleError};
use ledger_core::time::{Date, Instant, Month};
use ledger_proto::rights::{self as pb, rights_server};
use tonic::{Request, Response, Status};

use crate::ledger::{now, Ledger};
use crate::notary::Notary;
use crate::read_gate::ReadGate;
use ledger_core::envelope::read_method;

pub struct RightsService {
    ledger: Arc<Ledger>,
    notary: Arc<Notary>,
    gate: Arc<ReadGate>,
}

impl RightsService {
    pub fn new(ledger: Arc<Ledger>, notary: Arc<Notary>, gate: Arc<ReadGate>) -> Self {
        Self {
            ledger,
            notary,
            gate,
        }
    }

    /// The worker id, once the token shows the worker's own key or an agency key.
    fn authorize(
        &self,
        worker: &str,
        token: Option<ledger_proto::node::ReadToken>,
        method: &str,
    ) -> Result<String, Status> {
        let worker = ledger_core::ids::WorkerId::new(worker.to_string())
            .map_err(|e| Status::invalid_argument(e.0))?;
        let (_, key) = self.gate.admit(token, method, worker.as_str())?;
        let allowed = key.role == Role::Agency
            || (key.role == Role::Worker && key.subject == worker.as_str());
        if !allowed {
            return Err(Status::permission_denied(format!(
                "only worker {worker}'s own key or an agency key may read worker {worker}'s rights"
            )));
        }
        Ok(worker.to_string())
    }

    /// Runs `f` over the worker's facts and the parameters, off the async executor.
    async fn with_facts<T: Send + 'static>(
        &self,
        worker: String,
        f: impl FnOnce(&str, &[fact::Fact], &Params<'_>) -> Result<T, RuleError> + Send + 'static,
    ) -> Result<(T, u64), Status> {
        let ledger = self.ledger.clone();
        tokio::task::spawn_blocking(move || {
            let store = ledger.store();
            let read = |e: StoreFault| Status::internal(e.to_string());
            let size = records::read_head(store).map_err(read)?.size;
            let facts = projection::worker_facts(store, &worker).map_err(read)?;
            let stored = projection::StoredParams::read(store).map_err(read)?;
            let params = stored.params();
            let out = f(&worker, &facts, &params).map_err(|e| match e {
                RuleError::UnknownWorker(_) => Status::not_found(e.to_string()),
                other => Status::failed_precondition(other.to_string()),
            })?;
            Ok((out, size))
        })
        .await
        .map_err(|e| Status::internal(format!("query task: {e}")))?
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("rule outputs serialize")
}

#[tonic::async_trait]
impl rights_server::Rights for RightsService {
    async fn entitlement(
        &self,
        request: Request<pb::EntitlementRequest>,
    ) -> Result<Response<pb::EntitlementResponse>, Status> {
        let req = request.into_inner();
        let worker = self.authorize(&req.worker, req.token, read_method::ENTITLEMENT)?;
        let as_of: Date = if req.as_of.is_empty() {
            now().local_date()
        } else {
            req.as_of
                .parse()
                .map_err(|e: ledger_core::time::CalendarError| {
                    Status::invalid_argument(format!("as_of: {e}"))
                })?
        };
        let (doc, log_size) = self
            .with_facts(worker, move |w, facts, params| {
                rules::entitlement(w, facts, params, as_of)
            })
            .await?;
        Ok(Response::new(pb::EntitlementResponse {
            json: json(&doc),
            log_size,
        }))
    }

    async fn coverage(
        &self,
        request: Request<pb::CoverageRequest>,
    ) -> Result<Response<pb::CoverageResponse>, Status> {
        let req = request.into_inner();
        let worker = self.authorize(&req.worker, req.token, read_method::COVERAGE)?;
        let at: Instant = req
            .at
            .parse()
            .map_err(|e: ledger_core::time::CalendarError| {
                Status::invalid_argument(format!("at: {e}"))
            })?;
        let place = Jurisdiction::new(req.jurisdiction.clone())
            .map_err(|e| Status::invalid_argument(format!("jurisdiction: {e}")))?;
        let (doc, log_size) = self
            .with_facts(worker, move |w, facts, params| {
                rules::injury::coverage(w, facts, params, at, &place)
            })
            .await?;
        Ok(Response::new(pb::CoverageResponse {
            json: json(&doc),
            log_size,
        }))
    }

    async fn indicators(
        &self,
        request: Request<pb::IndicatorsRequest>,
    ) -> Result<Response<pb::IndicatorsResponse>, Status> {
        let req = request.into_inner();
        let period: Month = req
            .period
            .parse()
            .map_err(|e: ledger_core::time::CalendarError| {
                Status::invalid_argument(format!("period: {e}"))
            })?;
        let scope = if req.jurisdiction.is_empty() {
            None
        } else {
            Some(
                Jurisdiction::new(req.jurisdiction.clone())
                    .map_err(|e| Status::invalid_argument(format!("jurisdiction: {e}")))?,
            )
        };
        let (_, key) = self.gate.admit(
            req.token,
            read_method::INDICATORS,
            &rules::indicators::read_subject(&req.period),
        )?;
        if key.role != Role::Agency {
            return Err(Status::permission_denied(
                "only an agency key may read coverage indicators",
            ));
        }
        let ledger = self.ledger.clone();
        let (doc, log_size) = tokio::task::spawn_blocking(move || {
            let store = ledger.store();
            let read = |e: StoreFault| Status::internal(e.to_string());
            let size = records::read_head(store).map_err(read)?.size;
            let stored = projection::StoredParams::read(store).map_err(read)?;
            let params = stored.params();
            let mut tally = rules::indicators::Tally::new(&params, period, scope.as_ref());
            projection::for_each_worker(store, |w, facts| tally.add(w, facts)).map_err(read)?;
            Ok::<_, Status>((tally.finish(), size))
        })
        .await
        .map_err(|e| Status::internal(format!("query task: {e}")))??;
        Ok(Response::new(pb::IndicatorsResponse {
            json: json(&doc),
            log_size,
        }))
    }

    async fn statement(
        &self,
        request: Request<pb::StatementRequest>,
    ) -> Result<Response<pb::StatementResponse>, Status> {
        let req = request.into_inner();
        let worker = self.authorize(&req.worker, req.token, read_method::STATEMENT)?;
        let read = |e: StoreFault| Status::internal(e.to_string());
        // Read-your-writes: a checkpoint that covers the log as this node holds it now.
        let size = records::read_head(self.ledger.store()).map_err(read)?.size;
        let note = self.notary.cosigned_at_least(size).await?;
        let cp = ledger_core::checkpoint::Checkpoint::parse_body(&note.text)
            .map_err(|e| Status::internal(e.to_string()))?;
        let (events, parameters) =
            projection::listed_indexes(self.ledger.store(), &worker, cp.size).map_err(read)?;
        if events.is_empty() {
            return Err(Status::not_found(format!(
                "unknown worker {worker}: no records on this ledger"
            )));
        }
        let contents = self
            .notary
            .contents(&cp, &worker, &events, &parameters)
            .await?;
        let ledger = self.ledger.clone();
        let json = tokio::task::spawn_blocking(move || {
            build_statement(&ledger, &worker, note, contents, &events, &parameters)
        })
        .await
        .map_err(|e| Status::internal(format!("statement task: {e}")))??;
        Ok(Response::new(pb::StatementResponse { json }))
    }

    async fn checkpoint(
        &self,
        _: Request<pb::CheckpointRequest>,
    ) -> Result<Response<pb::CheckpointResponse>, Status> {
        let note = self.notary.checkpoint(self.ledger.store())?;
        Ok(Response::new(pb::CheckpointResponse {
            note: note.format(),
            verifier: self.notary.verifier().verifier_string(),
            forks: self.notary.forks(),
            forks_dropped: self.notary.forks_dropped(),
        }))
    }

    async fn cosign(
        &self,
        request: Request<pb::CosignRequest>,
    ) -> Result<Response<pb::CosignResponse>, Status> {
        let text = request.into_inner().note;
        if text.len() > MAX_NOTE_BYTES {
            return Err(Status::invalid_argument("checkpoint note too large"));
        }
        let note = self.notary.cosign(self.ledger.store(), &text)?;
        Ok(Response::new(pb::CosignResponse {
            note: note.format(),
        }))
    }

    async fn proof(
        &self,
        request: Request<pb::ProofRequest>,
    ) -> Result<Response<pb::ProofResponse>, Status> {
        let req = request.into_inner();
        Ok(Response::new(
            self.proof_of(&req.event_id, req.token).await?,
        ))
    }

    async fn consistency(
        &self,
        request: Request<pb::ConsistencyRequest>,
    ) -> Result<Response<pb::ConsistencyResponse>, Status> {
        let r = request.into_inner();
        let store = self.ledger.store();
        let read = |e: StoreFault| Status::internal(e.to_string());
        let size = records::read_head(store).map_err(read)?.size;
        if r.old_size > r.new_size || r.new_size > size {
            return Err(Status::invalid_argument(format!(
                "no consistency proof from {} to {} on a tree of {size}",
                r.old_size, r.new_size
            )));
        }
        let proof = records::consistency_proof(store, r.old_size, r.new_size).map_err(read)?;
        Ok(Response::new(pb::ConsistencyResponse {
            proof: ledger_core::merkle::proof_to_bytes(&proof),
        }))
    }
}

impl RightsService {
    /// The receipt proof of an event, for a key that may read it: an agency key, a key that
    /// signed the event, or the key of a worker it names. Any other key hears the same "not
    /// found" whether or not the event exists, since its existence may itself be private.
    async fn proof_of(
        &self,
        id: &[u8],
        token: Option<ledger_proto::node::ReadToken>,
    ) -> Result<pb::ProofResponse, Status> {
        let id = ledger_core::event::Hash32::from_slice(id).map_err(Status::invalid_argument)?;
        let (pk, key) =
            self.gate
                .admit(token, read_method::PROOF, &format!("proof:{}", id.to_hex()))?;
        let hidden = || Status::not_found(format!("no event {id} that this key may read"));
        let store = self.ledger.store();
        let read = |e: StoreFault| Status::internal(e.to_string());
        let Some(index) = records::index_of(store, &id).map_err(read)? else {
            return Err(hidden());
        };
        let rec = self
            .ledger
            .record(index)
            .map_err(|e| Status::internal(e.to_string()))?
            .ok_or_else(|| Status::internal(format!("event {index} missing")))?;
        if key.role != Role::Agency && !may_read_event(&rec.envelope, &pk, &key) {
            return Err(hidden());
        }
        let note = self.notary.cosigned_at_least(index).await?;
        let cp = ledger_core::checkpoint::Checkpoint::parse_body(&note.text)
            .map_err(|e| Status::internal(e.to_string()))?;
        let inclusion = records::inclusion_proof(store, index - 1, cp.size).map_err(read)?;
        Ok(pb::ProofResponse {
            index,
            appended_at: rec.stamp.to_string(),
            inclusion: ledger_core::merkle::proof_to_bytes(&inclusion),
            checkpoint: note.format(),
        })
    }
}

/// A key signed the event, or is the key of a worker the event names.
fn may_read_event(
    env: &ledger_core::envelope::Envelope,
    pk: &ledger_core::event::PublicKeyBytes,
    key: &records::KeyRecord,
) -> bool {
    if env.signatures.iter().any(|s| s.public_key == *pk) {
        return true;
    }
    key.role == Role::Worker
        && ledger_core::wire::decode_event(&env.body, &env.lines).is_ok_and(|b| {
            b.kind
                .workers()
                .iter()
                .any(|w| w.as_str() == key.subject.as_str())
        })
}

/// Largest checkpoint note a node accepts to cosign.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;

/// The statement of `worker`'s listed events up to the checkpoint's size (statement.rs has the
/// format), with the contents note the nodes signed for exactly these lists.
fn build_statement(
    ledger: &Ledger,
    worker: &str,
    note: ledger_core::checkpoint::SignedNote,
    contents: ledger_core::checkpoint::SignedNote,
    events: &[u64],
    parameters: &[u64],
) -> Result<String, Status> {
    use ledger_core::statement::{redacted, Statement, StatementEvent, STATEMENT_FORMAT};
    let store = ledger.store();
    let read = |e: StoreFault| Status::internal(e.to_string());
    let cp = ledger_core::checkpoint::Checkpoint::parse_body(&note.text)
        .map_err(|e| Status::internal(e.to_string()))?;
    let pack = |index: u64, positions: &[u32]| -> Result<StatementEvent, Status> {
        let rec = ledger
            .record(index)
            .map_err(|e| Status::internal(e.to_string()))?
            .ok_or_else(|| Status::internal(format!("event {index} missing")))?;
        let (env, kept, proofs) = redacted(&rec.envelope, positions);
        let inclusion = records::inclusion_proof(store, index - 1, cp.size).map_err(read)?;
        Ok(StatementEvent::new(
            index, rec.stamp, &env, kept, proofs, inclusion,
        ))
    };
    let mut packed = Vec::with_capacity(events.len());
    for (k, v) in store
        .scan_prefix(&ledger_core::schema::worker_prefix(worker))
        .map_err(read)?
    {
        let index = ledger_core::schema::index_of_worker_key(&k)
            .ok_or_else(|| Status::internal("bad key"))?;
        if events.binary_search(&index).is_ok() {
            let entry = fact::WorkerEntry::decode(&v).map_err(read)?;
            packed.push(pack(index, &entry.positions)?);
        }
    }
    let st = Statement {
        format: STATEMENT_FORMAT.to_string(),
        worker: worker.to_string(),
        ledger: ledger_core::records::read_ledger_id(store)
            .map_err(read)?
            .to_hex(),
        checkpoint: note.format(),
        contents: contents.format(),
        events: packed,
        parameters: parameters
            .iter()
            .map(|i| pack(*i, &[]))
            .collect::<Result<_, _>>()?,
    };
    Ok(serde_json::to_string_pretty(&st).expect("statements serialize"))
}
