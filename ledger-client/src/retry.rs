//! Riding through failover: a [`Session`] calls one node of the cluster and, when the answer
//! says "nothing was decided, try again" (no leader, the leader unreachable, a lost connection,
//! a commit that timed out), waits with backoff and calls again, moving through the cluster's
//! endpoints, for a bounded time. It never retries a refusal (a bad argument, a permission, a
//! per-event refusal): those would be answered the same way again.
//!
//! Resending a submission is safe: the node answers a known event id with its receipt, and the
//! same content signed again with the committed receipt ("already recorded"), appending nothing.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::{client_endpoints, Client, ClientError, DEFAULT_NODE};

/// How long a call keeps retrying by default. An election takes a few seconds (the election
/// timeout plus a vote); a minute also covers split votes and a leader that restarts, yet
/// still tells the user soon when the cluster has really lost its majority.
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(60);
/// First wait after a failed attempt: about one Raft heartbeat, so a leader that has just been
/// elected is found at once.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Longest wait between attempts: long enough not to hammer a recovering cluster, short enough
/// to notice a new leader within a couple of seconds.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A boxed future borrowing the client for one attempt.
pub type Attempt<'c, T> = Pin<Box<dyn Future<Output = Result<T, ClientError>> + Send + 'c>>;

impl ClientError {
    /// True when the request decided nothing and may succeed shortly or on another node.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Connect { .. } => true,
            ClientError::Rpc(s) => match s.code() {
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => true,
                // A connection cut mid-call (the node was killed) comes back as Unknown or
                // Cancelled with the transport error as its source; a node's own answer has none.
                tonic::Code::Unknown | tonic::Code::Cancelled => {
                    std::error::Error::source(s).is_some()
                }
                _ => false,
            },
            ClientError::Key(_) | ClientError::Invalid(_) => false,
        }
    }
}

/// The client config's setting `retry_seconds`, if it sets it.
pub fn configured_retry_for() -> Option<Duration> {
    #[derive(serde::Deserialize)]
    struct RetryToml {
        retry_seconds: Option<u64>,
    }
    std::fs::read_to_string(crate::transport::client_config_path())
        .ok()
        .and_then(|t| toml::from_str::<RetryToml>(&t).ok())
        .and_then(|c| c.retry_seconds)
        .map(Duration::from_secs)
}

/// The endpoints to try, in order: `node` first (when given), then those of client.toml, else
/// the default node.
pub fn endpoints(node: Option<&str>) -> Vec<String> {
    let mut urls: Vec<String> = node.map(str::to_string).into_iter().collect();
    for url in client_endpoints() {
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    if urls.is_empty() {
        urls.push(DEFAULT_NODE.to_string());
    }
    urls
}

/// Calls to a cluster through its endpoints, retrying what is safe to retry.
pub struct Session {
    urls: Vec<String>,
    current: usize,
    client: Option<Client>,
    retry_for: Duration,
    quiet: bool,
}

impl Session {
    /// A session over `urls` (tried in order) that retries for up to `retry_for`
    /// (zero: never). Every URL is checked here, so a typo fails at once instead of retrying.
    pub fn new(urls: Vec<String>, retry_for: Duration) -> Result<Session, ClientError> {
        if urls.is_empty() {
            return Err(ClientError::Invalid("no node endpoint to talk to".into()));
        }
        for url in &urls {
            tonic::transport::Endpoint::from_shared(url.clone()).map_err(|e| {
                ClientError::Invalid(format!(
                    "{url} is not a URL ({e}); expected e.g. http://127.0.0.1:7100"
                ))
            })?;
        }
        Ok(Session {
            urls,
            current: 0,
            client: None,
            retry_for,
            quiet: false,
        })
    }

    /// Does not print the waits on stderr.
    pub fn quiet(mut self) -> Session {
        self.quiet = true;
        self
    }

    /// The endpoint the next attempt goes to.
    pub fn url(&self) -> &str {
        &self.urls[self.current]
    }

    /// A connected client, trying the endpoints in turn for up to the retry time.
    pub async fn connect(mut self) -> Result<Client, ClientError> {
        self.call(|_| Box::pin(async { Ok(()) })).await?;
        Ok(self.client.take().expect("connected by the call"))
    }

    /// Runs `op` against the current node until it succeeds, fails for good, or the retry time
    /// is spent (then the last error is returned).
    pub async fn call<T, F>(&mut self, mut op: F) -> Result<T, ClientError>
    where
        F: for<'c> FnMut(&'c mut Client) -> Attempt<'c, T>,
    {
        let start = tokio::time::Instant::now();
        let mut backoff = FIRST_BACKOFF;
        loop {
            let error = match self.attempt(&mut op).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !error.is_transient() || start.elapsed() + backoff > self.retry_for {
                if error.is_transient() && !self.retry_for.is_zero() && !self.quiet {
                    eprintln!(
                        "giving up after {} s of retries (--retry-for)",
                        start.elapsed().as_secs()
                    );
                }
                return Err(error);
            }
            // A node that failed is left for the next one; the list wraps around.
            let failed = self.urls[self.current].clone();
            self.client = None;
            self.current = (self.current + 1) % self.urls.len();
            if !self.quiet {
                eprintln!(
                    "{failed}: {}; trying {} in {} ms (retrying for up to {} s)",
                    waiting_for(&error),
                    self.urls[self.current],
                    backoff.as_millis(),
                    self.retry_for.as_secs()
                );
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn attempt<T, F>(&mut self, op: &mut F) -> Result<T, ClientError>
    where
        F: for<'c> FnMut(&'c mut Client) -> Attempt<'c, T>,
    {
        if self.client.is_none() {
            self.client = Some(Client::connect(&self.urls[self.current]).await?);
        }
        op(self.client.as_mut().expect("connected above")).await
    }
}

/// What a failed attempt is waiting for, in the user's terms.
fn waiting_for(e: &ClientError) -> String {
    match e {
        ClientError::Connect { message, .. } => {
            format!("unreachable ({message}); waiting for a node to answer")
        }
        ClientError::Rpc(s) if s.code() == tonic::Code::DeadlineExceeded => format!(
            "not committed in time ({}); sending the same events again (safe)",
            s.message()
        ),
        ClientError::Rpc(s) if s.code() == tonic::Code::Unavailable => s.message().to_string(),
        other => format!("connection lost ({other}); waiting for a node to answer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_never_retried() {
        for code in [
            tonic::Code::InvalidArgument,
            tonic::Code::PermissionDenied,
            tonic::Code::Unauthenticated,
            tonic::Code::NotFound,
            tonic::Code::ResourceExhausted,
            tonic::Code::Internal,
            tonic::Code::Unknown,
        ] {
            let e = ClientError::Rpc(tonic::Status::new(code, "no"));
            assert!(!e.is_transient(), "{code:?}");
        }
        for code in [tonic::Code::Unavailable, tonic::Code::DeadlineExceeded] {
            assert!(ClientError::Rpc(tonic::Status::new(code, "later")).is_transient());
        }
        assert!(ClientError::Connect {
            url: "http://127.0.0.1:1".into(),
            message: "refused".into()
        }
        .is_transient());
        assert!(!ClientError::Invalid("bad".into()).is_transient());
    }

    #[test]
    fn a_bad_url_fails_at_once() {
        assert!(Session::new(vec!["not a url".into()], DEFAULT_RETRY_FOR).is_err());
        assert!(Session::new(Vec::new(), DEFAULT_RETRY_FOR).is_err());
    }

    #[tokio::test]
    async fn gives_up_after_the_retry_time_with_the_last_error() {
        // Nothing listens on port 1: every attempt is a connection error, retried until the
        // (short) retry time is spent, across both endpoints.
        let urls = vec!["http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()];
        let mut s = Session::new(urls, Duration::from_millis(600))
            .unwrap()
            .quiet();
        let mut attempts = 0;
        let r: Result<(), _> = s
            .call(|_| {
                attempts += 1;
                Box::pin(async { Ok(()) })
            })
            .await;
        assert!(matches!(r, Err(ClientError::Connect { .. })), "{r:?}");
        assert_eq!(attempts, 0, "the operation never ran without a connection");
    }
}
