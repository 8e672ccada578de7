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
    /// Address of the public gRPC service, e.g. "127.0.0.1:7100".
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
}

/// The `[raft]` section of a node config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftConfig {
    /// This node's Raft id: unique and stable. A node whose data was wiped rejoins under a new id.
    pub id: u64,
    /// Address of the internal Raft service (reachable by the peers only).
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub node_id: String,
    pub address: String,
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })
}

impl NodeConfig {
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
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
        if cfg.node_id.is_empty() || cfg.node_id.len() > 64 {
            return Err(ConfigError::Invalid(format!(
                "{}: node_id must be 1 to 64 characters",
                path.display()
            )));
        }
        Ok(cfg)
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
        std::fs::write(&p, "node_id = \"n1\"\ncolour = 1\n").unwrap();
        assert!(NodeConfig::load(&p)
            .unwrap_err()
            .to_string()
            .contains("node config"));
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
        let genesis = load_genesis(&dir.join("genesis.example.toml")).unwrap();
        assert_eq!(genesis.jurisdictions.len(), 3);
    }
}
