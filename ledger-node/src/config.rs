//! Node and genesis configuration files (TOML). Relative paths in a node config are resolved
//! against the directory of the config file, so a config can move with its data.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ledger_core::genesis::Genesis;
use ledger_core::jurisdiction::Jurisdiction;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid {what}: {message}")]
    Parse {
        path: String,
        what: &'static str,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// One node of a deployment (`ledger-node run --config FILE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Stable name of this node, unique in the cluster (e.g. "cn44-a").
    pub node_id: String,
    /// The jurisdiction whose agency runs this node.
    pub jurisdiction: Jurisdiction,
    /// Address of the public gRPC service, e.g. "127.0.0.1:7100", or a host name and port
    /// ("cn44-a:7100"), resolved when the config is loaded.
    #[serde(deserialize_with = "listen_address")]
    pub listen: SocketAddr,
    /// Where the node keeps its sled store and head marker.
    pub data_dir: PathBuf,
    /// The genesis file shared by every node of the ledger.
    pub genesis: PathBuf,
    /// The other members (listed in `status`).
    #[serde(default)]
    pub peers: Vec<Peer>,
    /// The node keys this node trusts (the trust file format of `ledger-client verify`): only
    /// a note signed by one of them is cosigned or kept as fork evidence, and only their
    /// cosignatures are added. Without it the node trusts its own key alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<PathBuf>,
    /// Replication: when present, the node runs Raft with these members; when absent, it is a
    /// single node that appends on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft: Option<RaftConfig>,
    /// Transport security of every port (TLS unless explicitly turned off on loopback).
    #[serde(default)]
    pub tls: TlsConfig,
    /// Address of the HTTP/JSON API (docs/http.md), e.g. "127.0.0.1:7180"; absent: none. Over
    /// TLS with the node's certificate, like the public port.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_listen_address"
    )]
    pub http_listen: Option<SocketAddr>,
    /// Where to serve Prometheus metrics over plain HTTP (`GET /metrics`), e.g.
    /// "127.0.0.1:9100". Off when absent. Plain HTTP: keep it on loopback or a private network.
    #[serde(
        default,
        deserialize_with = "optional_listen_address",
        skip_serializing_if = "Option::is_none"
    )]
    pub metrics_listen: Option<SocketAddr>,
    /// "text" (the default) or "json": one JSON object per line, each naming this node.
    #[serde(default, skip_serializing_if = "is_text")]
    pub log_format: crate::logging::LogFormat,
}

fn is_text(f: &crate::logging::LogFormat) -> bool {
    *f == crate::logging::LogFormat::Text
}

/// The `[tls]` section of a node config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    pub mode: TlsMode,
    /// Names (IP addresses or DNS names) written into the node's certificate. Peers and clients
    /// pin the key, not the names, so these are informational. Default: the listen IPs and
    /// "localhost".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS 1.3 on both ports; mutual TLS between nodes.
    #[default]
    Tls,
    /// No encryption or authentication at all: only for a ledger whose every port is on
    /// loopback (refused otherwise).
    Plaintext,
}

/// The `[raft]` section of a node config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftConfig {
    /// This node's Raft id: unique and stable. A node whose data was wiped rejoins under a new id.
    pub id: u64,
    /// Address of the internal Raft service (reachable by the peers only); an IP or a host
    /// name, like the public `listen`.
    #[serde(deserialize_with = "listen_address")]
    pub listen: SocketAddr,
    /// Every voting member, this node included. The member with the lowest id initialises the
    /// cluster on first start.
    pub members: Vec<RaftMember>,
    /// Raft entries between snapshots; the Raft log behind a snapshot is purged (the ledger
    /// never is). A follower that falls further behind catches up through a snapshot.
    #[serde(default = "default_snapshot_every")]
    pub snapshot_every: u64,
}

fn default_snapshot_every() -> u64 {
    crate::raft::SNAPSHOT_EVERY_ENTRIES
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftMember {
    pub id: u64,
    /// URL of the member's Raft service, e.g. "http://10.0.2.11:7200".
    pub raft_address: String,
    /// URL of the member's public service (where submissions are forwarded to the leader).
    pub public_address: String,
    /// The member's node key (hex ed25519 public key, its `DATA_DIR/node.key`): the identity its
    /// peers pin. Written into the membership when the cluster is created.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub node_id: String,
    pub address: String,
    /// The peer's node key (hex), pinned when this node asks it to cosign.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_key: String,
}

/// `HOST:PORT` where HOST is an IP address or a name. A name is resolved once, here: a container
/// or pod knows its own name before it knows its address. The first address the resolver
/// returns is used (the one a peer resolving the same name is most likely to reach).
pub fn resolve_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = text
        .rsplit_once(':')
        .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        .ok_or_else(|| {
            format!("{text:?} is not HOST:PORT (e.g. 0.0.0.0:7100 or cn44-a.example:7100)")
        })?;
    use std::net::ToSocketAddrs;
    let mut addrs = (host, port.parse::<u16>().expect("checked above"))
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host:?} of {text:?}: {e}"))?;
    addrs
        .next()
        .ok_or_else(|| format!("{host:?} of {text:?} resolves to no address"))
}

fn listen_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    resolve_listen(&text).map_err(serde::de::Error::custom)
}

fn optional_listen_address<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    listen_address(d).map(Some)
}

/// The environment variables that override a node config's values, and what each sets. An
/// empty variable counts as unset. Paths from the environment are taken as they are (relative
/// to the working directory), not from the config file's directory.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("LEDGER_NODE_ID", "node_id"),
    ("LEDGER_JURISDICTION", "jurisdiction"),
    ("LEDGER_LISTEN", "listen"),
    ("LEDGER_HTTP_LISTEN", "http_listen"),
    ("LEDGER_DATA_DIR", "data_dir"),
    ("LEDGER_GENESIS", "genesis"),
    ("LEDGER_TRUST", "trust"),
    ("LEDGER_RAFT_ID", "[raft] id"),
    ("LEDGER_RAFT_LISTEN", "[raft] listen"),
    ("LEDGER_TLS_NAMES", "[tls] names (comma-separated)"),
    ("LEDGER_METRICS_LISTEN", "metrics_listen"),
    ("LEDGER_LOG_FORMAT", "log_format (text or json)"),
];

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })
}

impl NodeConfig {
    /// Loads `path`, then applies the process environment's overrides ([`ENV_OVERRIDES`]).
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        NodeConfig::load_with_env(path, |name| std::env::var(name).ok())
    }

    /// Loads `path` with the overrides `env` gives (a lookup by variable name).
    pub fn load_with_env(
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<NodeConfig, ConfigError> {
        let mut cfg = NodeConfig::load_file(path)?;
        cfg.apply_env(|name| env(name).filter(|v| !v.trim().is_empty()))
            .map_err(ConfigError::Invalid)?;
        cfg.check(path)?;
        Ok(cfg)
    }

    /// Overrides values from the environment; a bad value is refused naming its variable, and
    /// then nothing is changed that matters (the config is not used).
    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        let bad = |var: &str, e: String| format!("{var}: {e}");
        if let Some(v) = env("LEDGER_NODE_ID") {
            self.node_id = v;
        }
        if let Some(v) = env("LEDGER_JURISDICTION") {
            self.jurisdiction = v
                .parse()
                .map_err(|e| bad("LEDGER_JURISDICTION", format!("{e}")))?;
        }
        if let Some(v) = env("LEDGER_LISTEN") {
            self.listen = resolve_listen(&v).map_err(|e| bad("LEDGER_LISTEN", e))?;
        }
        if let Some(v) = env("LEDGER_HTTP_LISTEN") {
            self.http_listen = Some(resolve_listen(&v).map_err(|e| bad("LEDGER_HTTP_LISTEN", e))?);
        }
        if let Some(v) = env("LEDGER_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("LEDGER_GENESIS") {
            self.genesis = PathBuf::from(v);
        }
        if let Some(v) = env("LEDGER_TRUST") {
            self.trust = Some(PathBuf::from(v));
        }
        let raft_id = env("LEDGER_RAFT_ID");
        let raft_listen = env("LEDGER_RAFT_LISTEN");
        if raft_id.is_some() || raft_listen.is_some() {
            let raft = self.raft.as_mut().ok_or_else(|| {
                "LEDGER_RAFT_ID and LEDGER_RAFT_LISTEN need a [raft] section in the config file \
                 (its members)"
                    .to_string()
            })?;
            if let Some(v) = raft_id {
                raft.id = v.trim().parse().ok().filter(|id| *id > 0).ok_or_else(|| {
                    bad(
                        "LEDGER_RAFT_ID",
                        format!("{v:?} is not a Raft id (a positive integer)"),
                    )
                })?;
            }
            if let Some(v) = raft_listen {
                raft.listen = resolve_listen(&v).map_err(|e| bad("LEDGER_RAFT_LISTEN", e))?;
            }
        }
        if let Some(v) = env("LEDGER_METRICS_LISTEN") {
            self.metrics_listen =
                Some(resolve_listen(&v).map_err(|e| bad("LEDGER_METRICS_LISTEN", e))?);
        }
        if let Some(v) = env("LEDGER_LOG_FORMAT") {
            self.log_format = v.parse().map_err(|e| bad("LEDGER_LOG_FORMAT", e))?;
        }
        if let Some(v) = env("LEDGER_TLS_NAMES") {
            self.tls.names = v
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect();
        }
        Ok(())
    }

    /// The file alone, relative paths resolved from its directory.
    fn load_file(path: &Path) -> Result<NodeConfig, ConfigError> {
        let mut cfg: NodeConfig = toml::from_str(&read(path)?).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            what: "node config",
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        if cfg.data_dir.is_relative() {
            cfg.data_dir = base.join(&cfg.data_dir);
        }
        if cfg.genesis.is_relative() {
            cfg.genesis = base.join(&cfg.genesis);
        }
        if let Some(t) = cfg.trust.as_mut().filter(|t| t.is_relative()) {
            *t = base.join(&*t);
        }
        Ok(cfg)
    }

    /// What must hold once the file and the environment are combined.
    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        self.check_tls()
            .map_err(|m| ConfigError::Invalid(format!("{}: {m}", path.display())))?;
        if self.node_id.is_empty() || self.node_id.len() > 64 {
            return Err(ConfigError::Invalid(format!(
                "{}: node_id must be 1 to 64 characters",
                path.display()
            )));
        }
        Ok(())
    }
}

impl NodeConfig {
    /// Every address this node listens on.
    pub fn listen_addresses(&self) -> Vec<SocketAddr> {
        let mut out = vec![self.listen];
        out.extend(self.raft.as_ref().map(|r| r.listen));
        out.extend(self.http_listen);
        out
    }

    /// Plaintext only on loopback; node keys well-formed.
    pub fn check_tls(&self) -> Result<(), String> {
        if self.tls.mode == TlsMode::Plaintext {
            if let Some(a) = self
                .listen_addresses()
                .iter()
                .find(|a| !a.ip().is_loopback())
            {
                return Err(format!(
                    "[tls] mode = \"plaintext\" is only allowed when every listen address is \
                     loopback, and {a} is not: remove the setting to use TLS"
                ));
            }
        }
        let members = self.raft.iter().flat_map(|r| &r.members);
        let keys = members
            .map(|m| (format!("member {}", m.id), &m.node_key))
            .chain(
                self.peers
                    .iter()
                    .map(|p| (format!("peer {}", p.node_id), &p.node_key)),
            );
        for (who, key) in keys.filter(|(_, k)| !k.is_empty()) {
            ledger_client::transport::parse_node_key(key).map_err(|e| format!("{who}: {e}"))?;
        }
        Ok(())
    }

    /// The names of this node's certificate: `[tls] names`, else the listen IPs and localhost.
    pub fn certificate_names(&self) -> Vec<String> {
        if !self.tls.names.is_empty() {
            return self.tls.names.clone();
        }
        let mut names: Vec<String> = Vec::new();
        for a in self.listen_addresses() {
            let ip = a.ip().to_string();
            if !names.contains(&ip) {
                names.push(ip);
            }
        }
        names.push("localhost".into());
        names
    }
}

pub fn load_genesis(path: &Path) -> Result<Genesis, ConfigError> {
    let g: Genesis = toml::from_str(&read(path)?).map_err(|e| ConfigError::Parse {
        path: path.display().to_string(),
        what: "genesis file",
        message: e.to_string(),
    })?;
    g.validate()
        .map_err(|m| ConfigError::Invalid(format!("{}: {m}", path.display())))?;
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_follow_the_config_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("node.toml");
        std::fs::write(
            &p,
            "node_id = \"n1\"\njurisdiction = \"CN-44\"\nlisten = \"127.0.0.1:7100\"\ndata_dir = \"data\"\ngenesis = \"../genesis.toml\"\n",
        )
        .unwrap();
        let c = NodeConfig::load(&p).unwrap();
        assert_eq!(c.data_dir, d.path().join("data"));
        assert!(c.peers.is_empty());
        // Plaintext only when every port is on loopback.
        let plain = |listen: &str| {
            format!("node_id = \"n1\"\njurisdiction = \"CN-44\"\nlisten = \"{listen}\"\ndata_dir = \"data\"\ngenesis = \"g.toml\"\n[tls]\nmode = \"plaintext\"\n")
        };
        std::fs::write(&p, plain("127.0.0.1:7100")).unwrap();
        assert_eq!(NodeConfig::load(&p).unwrap().tls.mode, TlsMode::Plaintext);
        std::fs::write(&p, plain("10.0.0.4:7100")).unwrap();
        assert!(NodeConfig::load(&p)
            .unwrap_err()
            .to_string()
            .contains("only allowed when every listen address is loopback"));
        std::fs::write(&p, "node_id = \"n1\"\ncolour = 1\n").unwrap();
        assert!(NodeConfig::load(&p)
            .unwrap_err()
            .to_string()
            .contains("node config"));
    }
}

#[cfg(test)]
mod env_tests {
    use super::*;
    use std::collections::HashMap;

    const RAFT_CONFIG: &str = "node_id = \"n1\"\njurisdiction = \"CN-44\"\nlisten = \"localhost:7100\"\ndata_dir = \"data\"\ngenesis = \"g.toml\"\n[raft]\nid = 1\nlisten = \"127.0.0.1:7200\"\n[[raft.members]]\nid = 1\nraft_address = \"https://n1:7200\"\npublic_address = \"https://n1:7100\"\n";

    fn load(text: &str, vars: &[(&str, &str)]) -> Result<NodeConfig, ConfigError> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("node.toml");
        std::fs::write(&p, text).unwrap();
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        NodeConfig::load_with_env(&p, |k| vars.get(k).cloned())
    }

    #[test]
    fn listen_takes_a_host_name_resolved_at_load() {
        let c = load(RAFT_CONFIG, &[]).unwrap();
        assert!(c.listen.ip().is_loopback(), "{}", c.listen);
        assert_eq!(c.listen.port(), 7100);
        let e = resolve_listen("no-such-host.invalid:7100").unwrap_err();
        assert!(e.contains("cannot resolve"), "{e}");
        assert!(resolve_listen("7100").unwrap_err().contains("HOST:PORT"));
        assert!(resolve_listen("host:port")
            .unwrap_err()
            .contains("HOST:PORT"));
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let c = load(
            RAFT_CONFIG,
            &[
                ("LEDGER_NODE_ID", "cn44-b"),
                ("LEDGER_JURISDICTION", "CN-33"),
                ("LEDGER_LISTEN", "0.0.0.0:7300"),
                ("LEDGER_DATA_DIR", "/var/lib/ledger"),
                ("LEDGER_GENESIS", "/etc/ledger/genesis.toml"),
                ("LEDGER_TRUST", "/etc/ledger/trust.txt"),
                ("LEDGER_RAFT_ID", "2"),
                ("LEDGER_RAFT_LISTEN", "localhost:7400"),
                ("LEDGER_TLS_NAMES", "cn44-b, cn44-b.ledger.svc"),
                ("LEDGER_METRICS_LISTEN", "127.0.0.1:9100"),
                ("LEDGER_LOG_FORMAT", "json"),
            ],
        )
        .unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(c.log_format, crate::logging::LogFormat::Json);
        assert_eq!(c.node_id, "cn44-b");
        assert_eq!(c.jurisdiction.to_string(), "CN-33");
        assert_eq!(c.listen, "0.0.0.0:7300".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/ledger"));
        assert_eq!(c.genesis, PathBuf::from("/etc/ledger/genesis.toml"));
        assert_eq!(c.trust, Some(PathBuf::from("/etc/ledger/trust.txt")));
        let raft = c.raft.unwrap();
        assert_eq!(raft.id, 2);
        assert_eq!(raft.listen.port(), 7400);
        assert_eq!(c.tls.names, vec!["cn44-b", "cn44-b.ledger.svc"]);
        // An empty variable counts as unset.
        let c = load(RAFT_CONFIG, &[("LEDGER_NODE_ID", "")]).unwrap();
        assert_eq!(c.node_id, "n1");
    }

    #[test]
    fn a_bad_override_is_refused_naming_its_variable() {
        for (var, value, says) in [
            ("LEDGER_LISTEN", "nowhere", "LEDGER_LISTEN"),
            ("LEDGER_RAFT_ID", "two", "LEDGER_RAFT_ID"),
            ("LEDGER_JURISDICTION", "Guangdong", "LEDGER_JURISDICTION"),
            ("LEDGER_METRICS_LISTEN", "9100", "LEDGER_METRICS_LISTEN"),
            ("LEDGER_LOG_FORMAT", "yaml", "LEDGER_LOG_FORMAT"),
            ("LEDGER_NODE_ID", &"x".repeat(65), "node_id"),
        ] {
            let e = load(RAFT_CONFIG, &[(var, value)]).unwrap_err().to_string();
            assert!(e.contains(says), "{var}={value}: {e}");
        }
        let single = RAFT_CONFIG.split("[raft]").next().unwrap();
        let e = load(single, &[("LEDGER_RAFT_ID", "2")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("need a [raft] section"), "{e}");
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    #[test]
    fn the_deploy_examples_load() {
        // deploy/ documents the formats; these files must stay valid.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        let node = NodeConfig::load(&dir.join("node.example.toml")).unwrap();
        assert_eq!(node.peers.len(), 2);
        assert_eq!(node.raft.as_ref().map(|r| r.members.len()), Some(3));
        assert!(node
            .raft
            .iter()
            .flat_map(|r| &r.members)
            .all(|m| m.node_key.len() == 64));
        assert_eq!(node.tls.mode, TlsMode::Tls);
        let genesis = load_genesis(&dir.join("genesis.example.toml")).unwrap();
        assert_eq!(genesis.jurisdictions.len(), 3);
    }
}
