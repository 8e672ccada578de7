//! The projection's query service (`rights.proto`): entitlement, coverage and the coverage
//! indicators, answered from the projected facts of the local store (read-your-writes for a submitter on this node; a follower
//! answers for the log it has applied, reported as `log_size`).

use std::sync::Arc;

use ledger_core::event::Role;
use ledger_core::jurisdiction::Jurisdiction;
use ledger_core::projection;
use ledger_core::rules::{self, Params, RuleError};
use ledger_core::state::{self, StoreFault};
use ledger_core::time::{Date, Instant, Month};
use ledger_proto::rights::{self as pb, rights_server};
use tonic::{Request, Response, Status};

use crate::ledger::{now, Ledger};
use crate::service::reader;

pub struct RightsService {
    ledger: Arc<Ledger>,
}

impl RightsService {
    pub fn new(ledger: Arc<Ledger>) -> Self {
        Self { ledger }
    }

    /// The worker id, once the token shows the worker's own key or an agency key.
    fn authorize(
        &self,
        worker: &str,
        token: Option<ledger_proto::node::ReadToken>,
    ) -> Result<String, Status> {
        let worker = ledger_core::ids::WorkerId::new(worker.to_string())
            .map_err(|e| Status::invalid_argument(e.0))?;
        let (_, key) = reader(&self.ledger, token, worker.as_str())?;
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
        f: impl FnOnce(&str, &[projection::Fact], &Params<'_>) -> Result<T, RuleError> + Send + 'static,
    ) -> Result<(T, u64), Status> {
        let ledger = self.ledger.clone();
        tokio::task::spawn_blocking(move || {
            let store = ledger.store();
            let read = |e: StoreFault| Status::internal(e.to_string());
            let size = state::read_head(store).map_err(read)?.size;
            let facts = projection::worker_facts(store, &worker).map_err(read)?;
            let rulebook = projection::rulebook(store).map_err(read)?;
            let published = projection::published(store).map_err(read)?;
            let params = Params {
                rulebook: &rulebook,
                published: &published,
            };
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
        let worker = self.authorize(&req.worker, req.token)?;
        let as_of: Date = if req.as_of.is_empty() {
            now().local_date()
        } else {
            req.as_of
                .parse()
                .map_err(|e: ledger_core::time::CalendarError| {
                    Status::invalid_argument(format!("--as-of: {e}"))
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
        let worker = self.authorize(&req.worker, req.token)?;
        let at: Instant = req
            .at
            .parse()
            .map_err(|e: ledger_core::time::CalendarError| {
                Status::invalid_argument(format!("--at: {e}"))
            })?;
        let place = Jurisdiction::new(req.jurisdiction.clone())
            .map_err(|e| Status::invalid_argument(format!("--jurisdiction: {e}")))?;
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
                Status::invalid_argument(format!("--period: {e}"))
            })?;
        let scope = if req.jurisdiction.is_empty() {
            None
        } else {
            Some(
                Jurisdiction::new(req.jurisdiction.clone())
                    .map_err(|e| Status::invalid_argument(format!("--jurisdiction: {e}")))?,
            )
        };
        let (_, key) = reader(
            &self.ledger,
            req.token,
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
            let size = state::read_head(store).map_err(read)?.size;
            let rulebook = projection::rulebook(store).map_err(read)?;
            let published = projection::published(store).map_err(read)?;
            let params = Params {
                rulebook: &rulebook,
                published: &published,
            };
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
}
