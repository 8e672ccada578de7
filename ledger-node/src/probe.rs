//! `ledger-node health --config FILE`: asks the node of this config, on this machine, whether
//! it serves (the standard gRPC health service), for container, Kubernetes and systemd probes.
//! It speaks TLS like any client and pins the node's own key, read from its data directory, so
//! a probe needs no client config; kubelet's built-in gRPC probe cannot speak TLS.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use ledger_client::transport::{channel, Pins, Transport};
use ledger_core::envelope::parse_secret_key;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

use crate::config::{NodeConfig, TlsMode};

/// Where a local probe reaches a node listening on `listen`: a wildcard address is reached on
/// loopback.
pub fn local_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// What a probe asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The node takes submissions now: SERVING (readiness).
    Ready,
    /// The process answers at all, SERVING or NOT_SERVING (liveness, start-up): a node cut off
    /// from its majority is alive, and restarting it would not bring the majority back.
    Live,
}

/// Succeeds when the node answers SERVING (or, for [`Probe::Live`], answers) within `timeout`.
pub async fn check(config: &NodeConfig, timeout: Duration, probe: Probe) -> anyhow::Result<()> {
    let address = local_address(config.listen);
    let (url, transport) = match config.tls.mode {
        TlsMode::Plaintext => (format!("http://{address}"), Transport::Plaintext),
        TlsMode::Tls => {
            // Read, never created: a probe must not give a node that never started a key.
            let path = config.data_dir.join("node.key");
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!("reading {} (has the node started once?)", path.display())
            })?;
            let key =
                parse_secret_key(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let pins = Pins::keys([key.verifying_key().to_bytes()]);
            (
                format!("https://{address}"),
                Transport::Tls {
                    pins,
                    identity: None,
                },
            )
        }
    };
    let ask = async {
        let channel = channel(&url, &transport)
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach the node at {url}: {e}"))?;
        let answer = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(|s| {
                anyhow::anyhow!("the node at {url} answered {:?}: {}", s.code(), s.message())
            })?;
        let status = answer.into_inner().status;
        if status == ServingStatus::Serving as i32 || probe == Probe::Live {
            Ok(())
        } else {
            let name = ServingStatus::try_from(status)
                .map(|s| s.as_str_name().to_string())
                .unwrap_or_else(|_| status.to_string());
            anyhow::bail!("the node at {url} is not serving ({name})")
        }
    };
    tokio::time::timeout(timeout, ask)
        .await
        .map_err(|_| anyhow::anyhow!("the node at {url} did not answer within {timeout:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listen_is_probed_on_loopback() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(local_address(a("0.0.0.0:7100")), a("127.0.0.1:7100"));
        assert_eq!(local_address(a("[::]:7100")), a("[::1]:7100"));
        assert_eq!(local_address(a("10.0.0.4:7100")), a("10.0.0.4:7100"));
    }
}
