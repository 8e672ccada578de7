//! `ledger-node ceremony`: starting a ledger between agencies without anyone writing a genesis
//! by hand or seeing another agency's secret keys.
//!
//! 1. Each agency, on its own machine: `ceremony agency` makes its agency key and the node key
//!    of each of its nodes, and writes `public.toml` with only the public halves and the nodes'
//!    addresses.
//! 2. One coordinator: `ceremony assemble` gathers every agency's `public.toml` into the genesis
//!    (jurisdictions, agency keys, the initial members with their node keys) and prints its
//!    hash. Every agency runs `ceremony hash` on the genesis it received and compares the hash
//!    with the others out of band (a call, a signed letter): one hash covers every key.
//! 3. Each agency: `ceremony node-config` writes its node's config (members, addresses, trust
//!    file) from the genesis; verifiers get the trust file from `ceremony trust` or from any node
//!    (`ledger-client trust`, checked against the genesis hash).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ledger_core::checkpoint::{NoteKey, Trust, TrustedNode};
use ledger_core::event::PublicKeyBytes;
use ledger_core::genesis::{Genesis, GenesisJurisdiction, GenesisMember};
use ledger_core::jurisdiction::Jurisdiction;
use serde::{Deserialize, Serialize};

use crate::config::{load_genesis, NodeConfig, RaftConfig, RaftMember, TlsConfig};

/// The format line of an agency's public file.
pub const PUBLIC_FORMAT: &str = "pcl-ceremony-public/1";

#[derive(clap::Subcommand)]
pub enum CeremonyCommand {
    /// On the agency's own machine: make (or keep) the agency key DIR/agency.key and the node
    /// key DIR/NODE_ID/data/node.key, and write DIR/public.toml with their public halves only.
    /// Run it again with another --node-id for each further node of the agency.
    Agency {
        #[arg(long)]
        jurisdiction: Jurisdiction,
        /// The node's name (its checkpoint signatures carry it), unique in the ledger.
        #[arg(long)]
        node_id: String,
        /// Where clients and peers reach the node's public API, e.g. https://cn44.example:7100.
        #[arg(long)]
        public_address: String,
        /// Where peers reach the node's Raft service, e.g. https://cn44.example:7200.
        #[arg(long)]
        raft_address: String,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// The coordinator: assemble the genesis from every agency's public.toml (Raft ids follow
    /// the order of the files and of their nodes) and print its hash for every agency to compare.
    Assemble {
        /// The ledger's name (the checkpoint origin).
        #[arg(long)]
        ledger: String,
        /// Jurisdictions that must sign a ledger act [default: a majority].
        #[arg(long)]
        quorum: Option<u32>,
        /// Where to write the genesis (refused if it exists).
        #[arg(long, value_name = "GENESIS")]
        out: PathBuf,
        /// Every agency's public.toml.
        #[arg(required = true, value_name = "PUBLIC.toml")]
        public: Vec<PathBuf>,
    },
    /// Print the hash of a genesis (the ledger id), to compare with the other agencies.
    Hash { genesis: PathBuf },
    /// Write a node's config from the genesis (its members, addresses and jurisdiction) and
    /// the verifiers' trust file beside it (trust.txt).
    NodeConfig {
        #[arg(long)]
        genesis: PathBuf,
        #[arg(long)]
        node_id: String,
        /// The config file to write (refused if it exists).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// The node's data directory, relative to the config [default: NODE_ID/data beside it].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Listen address of the public API [default: 0.0.0.0 and the port of its address].
        #[arg(long)]
        listen: Option<String>,
        /// Listen address of the Raft service [default: 0.0.0.0 and the port of its address].
        #[arg(long)]
        raft_listen: Option<String>,
    },
    /// Write a client.toml for ledger-client: the members' public addresses and node keys.
    ClientConfig {
        #[arg(long)]
        genesis: PathBuf,
        /// The file to write (refused if it exists).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Write the verifiers' trust file: the genesis members' checkpoint keys, and those of
    /// nodes added later (their agencies' public.toml).
    Trust {
        #[arg(long)]
        genesis: PathBuf,
        /// public.toml of agencies whose nodes joined after the genesis.
        #[arg(long = "members", value_name = "PUBLIC.toml")]
        members: Vec<PathBuf>,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// What an agency gives the coordinator: nothing secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgencyPublic {
    pub format: String,
    pub jurisdiction: Jurisdiction,
    pub agency_keys: Vec<PublicKeyBytes>,
    #[serde(default)]
    pub nodes: Vec<PublicNode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicNode {
    pub node_id: String,
    pub node_key: PublicKeyBytes,
    pub public_address: String,
    pub raft_address: String,
}

pub fn run(cmd: CeremonyCommand) -> anyhow::Result<()> {
    match cmd {
        CeremonyCommand::Agency {
            jurisdiction,
            node_id,
            public_address,
            raft_address,
            out,
        } => {
            let node = agency(&out, jurisdiction, &node_id, public_address, raft_address)?;
            println!("agency key (secret): {}", out.join("agency.key").display());
            println!("node key (secret):   {}", node.display());
            println!("public file:         {}", out.join("public.toml").display());
            Ok(())
        }
        CeremonyCommand::Assemble {
            ledger,
            quorum,
            out,
            public,
        } => {
            let genesis = assemble(&ledger, quorum, &public)?;
            write_new(&out, &toml::to_string(&genesis)?)?;
            eprintln!(
                "genesis of {ledger}: {} jurisdictions, {} members; every agency compares this hash",
                genesis.jurisdictions.len(),
                genesis.members.len()
            );
            println!("genesis_hash={}", genesis.hash().to_hex());
            Ok(())
        }
        CeremonyCommand::Hash { genesis } => {
            println!("genesis_hash={}", load_genesis(&genesis)?.hash().to_hex());
            Ok(())
        }
        CeremonyCommand::NodeConfig {
            genesis,
            node_id,
            out,
            data_dir,
            listen,
            raft_listen,
        } => node_config(&genesis, &node_id, &out, data_dir, listen, raft_listen),
        CeremonyCommand::ClientConfig { genesis, out } => {
            write_new(&out, &client_config(&load_genesis(&genesis)?)?)?;
            eprintln!(
                "{}: the genesis members' addresses and node keys",
                out.display()
            );
            Ok(())
        }
        CeremonyCommand::Trust {
            genesis,
            members,
            out,
        } => {
            let trust = trust_of(&load_genesis(&genesis)?, &members)?;
            std::fs::write(&out, trust_text(&trust))
                .with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "{}: {} node keys, quorum {}",
                out.display(),
                trust.nodes.len(),
                trust.quorum
            );
            Ok(())
        }
    }
}

/// The trust file text, with a header saying what it is.
pub fn trust_text(trust: &Trust) -> String {
    format!(
        "# Checkpoint keys of the ledger's nodes: JURISDICTION and verifier key, one node per line.\n{}",
        trust.format()
    )
}

fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| {
            format!(
                "writing {} (an existing file is never replaced)",
                path.display()
            )
        })?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

fn read_public(path: &Path) -> anyhow::Result<AgencyPublic> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let p: AgencyPublic = toml::from_str(&text)
        .with_context(|| format!("{}: not an agency's public file", path.display()))?;
    if p.format != PUBLIC_FORMAT {
        bail!(
            "{}: format {:?}, expected {PUBLIC_FORMAT:?}",
            path.display(),
            p.format
        );
    }
    Ok(p)
}

/// Makes or keeps the agency key and the node key, and adds the node to DIR/public.toml.
/// Returns the node key's path.
pub fn agency(
    dir: &Path,
    jurisdiction: Jurisdiction,
    node_id: &str,
    public_address: String,
    raft_address: String,
) -> anyhow::Result<PathBuf> {
    NoteKey::new(node_id, PublicKeyBytes([0; 32]))
        .map_err(|e| anyhow::anyhow!("--node-id: {}", e.0))?;
    for (flag, url) in [
        ("--public-address", &public_address),
        ("--raft-address", &raft_address),
    ] {
        host_port(url).with_context(|| flag.to_string())?;
    }
    crate::store::durable::create_dir_all_synced(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let public_path = dir.join("public.toml");
    let mut public = if public_path.exists() {
        let p = read_public(&public_path)?;
        if p.jurisdiction != jurisdiction {
            bail!(
                "{} is agency {}'s; use another --out for {jurisdiction}",
                dir.display(),
                p.jurisdiction
            );
        }
        p
    } else {
        AgencyPublic {
            format: PUBLIC_FORMAT.into(),
            jurisdiction,
            agency_keys: Vec::new(),
            nodes: Vec::new(),
        }
    };
    let agency = crate::notary::load_or_create_key(&dir.join("agency.key"))?;
    let agency_public = PublicKeyBytes(agency.verifying_key().to_bytes());
    if !public.agency_keys.contains(&agency_public) {
        public.agency_keys.push(agency_public);
    }
    let data = dir.join(node_id).join("data");
    let (node_key, _) = crate::notary::init_node_key(&data, node_id)?;
    let node = PublicNode {
        node_id: node_id.to_string(),
        node_key: PublicKeyBytes::from_hex(&node_key).map_err(anyhow::Error::msg)?,
        public_address,
        raft_address,
    };
    match public.nodes.iter().find(|n| n.node_id == node_id) {
        Some(known) if *known != node => bail!(
            "{} already lists node {node_id} with other addresses or key; nothing changed",
            public_path.display()
        ),
        Some(_) => {}
        None => public.nodes.push(node),
    }
    let text = format!(
        "# Public keys and addresses of agency {}: give this file to the ceremony's coordinator.\n{}",
        public.jurisdiction,
        toml::to_string(&public)?
    );
    std::fs::write(&public_path, text)
        .with_context(|| format!("writing {}", public_path.display()))?;
    Ok(data.join("node.key"))
}

/// The genesis of the agencies' public files, checked like any genesis a node loads.
pub fn assemble(ledger: &str, quorum: Option<u32>, files: &[PathBuf]) -> anyhow::Result<Genesis> {
    let mut genesis = Genesis {
        ledger: ledger.to_string(),
        jurisdictions: Vec::new(),
        authority_quorum: quorum,
        members: Vec::new(),
    };
    for path in files {
        let p = read_public(path)?;
        if genesis
            .jurisdictions
            .iter()
            .any(|j| j.code == p.jurisdiction)
        {
            bail!(
                "{}: jurisdiction {} is already given by another file",
                path.display(),
                p.jurisdiction
            );
        }
        for n in &p.nodes {
            genesis.members.push(GenesisMember {
                id: genesis.members.len() as u64 + 1,
                node_id: n.node_id.clone(),
                jurisdiction: p.jurisdiction.clone(),
                public_address: n.public_address.clone(),
                raft_address: n.raft_address.clone(),
                node_key: n.node_key,
            });
        }
        genesis.jurisdictions.push(GenesisJurisdiction {
            code: p.jurisdiction,
            agency_keys: p.agency_keys,
        });
    }
    genesis.validate().map_err(anyhow::Error::msg)?;
    if genesis.members.is_empty() {
        bail!("no agency names a node: a ledger needs at least one member");
    }
    Ok(genesis)
}

/// The genesis members' keys and those of the public files of nodes that joined later.
pub fn trust_of(genesis: &Genesis, later: &[PathBuf]) -> anyhow::Result<Trust> {
    let mut nodes = genesis.trust().map(|t| t.nodes).unwrap_or_default();
    for path in later {
        let p = read_public(path)?;
        for n in &p.nodes {
            nodes.push(TrustedNode {
                key: NoteKey::new(&n.node_id, n.node_key).map_err(|e| anyhow::anyhow!(e.0))?,
                jurisdiction: Some(p.jurisdiction.to_string()),
            });
        }
    }
    let mut names = BTreeSet::new();
    let mut keys = BTreeSet::new();
    for n in &nodes {
        if !names.insert(n.key.name.clone()) || !keys.insert(n.key.public_key) {
            bail!("node {} or its key is listed twice", n.key.name);
        }
    }
    if nodes.is_empty() {
        bail!("the genesis lists no members and no --members file was given");
    }
    Ok(Trust {
        quorum: nodes.len() / 2 + 1,
        nodes,
    })
}

/// `HOST:PORT` of a URL such as `https://cn44.example:7100`.
fn host_port(url: &str) -> anyhow::Result<(String, u16)> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .with_context(|| format!("{url:?} must start with https:// (or http:// for plaintext)"))?;
    let (host, port) = rest
        .rsplit_once(':')
        .with_context(|| format!("{url:?} must name a port"))?;
    let port = port
        .trim_end_matches('/')
        .parse()
        .with_context(|| format!("{url:?}: bad port"))?;
    if host.is_empty() {
        bail!("{url:?} names no host");
    }
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// A node key already in the data directory must be the one the genesis names.
fn same_key_if_any(key_path: &Path, me: &GenesisMember) -> anyhow::Result<()> {
    if !key_path.exists() {
        return Ok(());
    }
    let key = crate::notary::load_or_create_key(key_path)?;
    if key.verifying_key().to_bytes() != me.node_key.0 {
        bail!(
            "{} is not the node key the genesis names for {} ({})",
            key_path.display(),
            me.node_id,
            me.node_key
        );
    }
    Ok(())
}

/// How a config in `base` names `file`: by its name when it lies beside the config, so the pair
/// can move together (into a container's /etc/ledger, say), else by its absolute path.
fn path_from(base: &Path, file: &Path) -> anyhow::Result<PathBuf> {
    let abs = std::fs::canonicalize(file).with_context(|| format!("reading {}", file.display()))?;
    Ok(match (abs.parent(), std::fs::canonicalize(base).ok()) {
        (Some(dir), Some(b)) if dir == b => PathBuf::from(abs.file_name().unwrap_or_default()),
        _ => abs,
    })
}

/// Writes the config of `node_id` from the genesis, and trust.txt beside it.
fn node_config(
    genesis_path: &Path,
    node_id: &str,
    out: &Path,
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    raft_listen: Option<String>,
) -> anyhow::Result<()> {
    let genesis = load_genesis(genesis_path)?;
    let me = genesis
        .members
        .iter()
        .find(|m| m.node_id == node_id)
        .with_context(|| format!("the genesis has no member {node_id}"))?;
    let base = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let data_dir = data_dir.unwrap_or_else(|| Path::new(node_id).join("data"));
    same_key_if_any(&base.join(&data_dir).join("node.key"), me)?;
    let (host, port) = host_port(&me.public_address)?;
    let (_, raft_port) = host_port(&me.raft_address)?;
    let resolve = |given: Option<String>, port: u16| {
        crate::config::resolve_listen(&given.unwrap_or_else(|| format!("0.0.0.0:{port}")))
            .map_err(anyhow::Error::msg)
    };
    let genesis_ref = path_from(base, genesis_path)?;
    let cfg = NodeConfig {
        node_id: node_id.to_string(),
        jurisdiction: me.jurisdiction.clone(),
        listen: resolve(listen, port)?,
        data_dir,
        genesis: genesis_ref,
        peers: Vec::new(),
        trust: Some(PathBuf::from("trust.txt")),
        raft: Some(RaftConfig {
            id: me.id,
            listen: resolve(raft_listen, raft_port)?,
            members: raft_members(&genesis),
            snapshot_every: crate::raft::SNAPSHOT_EVERY_ENTRIES,
        }),
        tls: TlsConfig {
            names: vec![host],
            ..Default::default()
        },
        http_listen: None,
        metrics_listen: None,
        log_format: Default::default(),
    };
    let trust = trust_of(&genesis, &[])?;
    let text = format!(
        "# Node {node_id} of ledger {} (genesis {}), written by `ledger-node ceremony node-config`.\n{}",
        genesis.ledger,
        genesis.hash().to_hex(),
        toml::to_string(&cfg)?
    );
    write_new(out, &text)?;
    std::fs::write(base.join("trust.txt"), trust_text(&trust))
        .with_context(|| format!("writing {}", base.join("trust.txt").display()))?;
    eprintln!(
        "{}: node {node_id}, Raft id {}; trust file {}",
        out.display(),
        me.id,
        base.join("trust.txt").display()
    );
    Ok(())
}

/// client.toml of the genesis members: where ledger-client finds them and the keys it pins.
pub fn client_config(genesis: &Genesis) -> anyhow::Result<String> {
    if genesis.members.is_empty() {
        bail!("the genesis lists no members");
    }
    let array =
        |v: Vec<String>| toml::Value::Array(v.into_iter().map(toml::Value::String).collect());
    let endpoints = genesis
        .members
        .iter()
        .map(|m| m.public_address.clone())
        .collect();
    let keys = genesis
        .members
        .iter()
        .map(|m| m.node_key.to_hex())
        .collect();
    Ok(format!(
        "# The members of ledger {} (genesis {}): where ledger-client finds them and the node\n\
         # keys it pins (TLS).\nendpoints = {}\n\n[tls]\nnode_keys = {}\n",
        genesis.ledger,
        genesis.hash().to_hex(),
        array(endpoints),
        array(keys)
    ))
}

/// A node of a genesis that lists members must be the member of its name: the same Raft id,
/// jurisdiction and node key. Checked at start, so a node started with another node's config or
/// a fresh key does not join as a stranger the genesis did not name.
pub fn check_identity(
    config: &NodeConfig,
    genesis: &Genesis,
    node_key: &PublicKeyBytes,
) -> anyhow::Result<()> {
    let Some(me) = genesis.members.iter().find(|m| m.node_id == config.node_id) else {
        return Ok(());
    };
    if me.node_key != *node_key {
        bail!(
            "the genesis names node key {} for {}, but its DATA_DIR/node.key is {node_key}: \
             restore the node's own key, or join under a new name and Raft id",
            me.node_key,
            config.node_id
        );
    }
    if me.jurisdiction != config.jurisdiction {
        bail!(
            "the genesis puts {} in {}, its config in {}",
            config.node_id,
            me.jurisdiction,
            config.jurisdiction
        );
    }
    match &config.raft {
        Some(r) if r.id != me.id => bail!(
            "the genesis gives {} Raft id {}, its config {}",
            config.node_id,
            me.id,
            r.id
        ),
        _ => Ok(()),
    }
}

/// The genesis members as a config's `[[raft.members]]`.
pub fn raft_members(genesis: &Genesis) -> Vec<RaftMember> {
    genesis
        .members
        .iter()
        .map(|m| RaftMember {
            id: m.id,
            raft_address: m.raft_address.clone(),
            public_address: m.public_address.clone(),
            node_key: m.node_key.to_hex(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agency_in(dir: &Path, j: &str, name: &str, port: u16) -> PathBuf {
        let out = dir.join(j);
        agency(
            &out,
            j.parse().unwrap(),
            name,
            format!("https://127.0.0.1:{port}"),
            format!("https://127.0.0.1:{}", port + 100),
        )
        .unwrap();
        out.join("public.toml")
    }

    #[test]
    fn agencies_assemble_a_genesis_whose_members_are_their_nodes() {
        let d = tempfile::tempdir().unwrap();
        let files = vec![
            agency_in(d.path(), "CN-44", "cn44", 7101),
            agency_in(d.path(), "CN-33", "cn33", 7102),
            agency_in(d.path(), "DE", "de", 7103),
        ];
        // A second run keeps the keys: the same public file.
        let before = std::fs::read_to_string(&files[0]).unwrap();
        agency_in(d.path(), "CN-44", "cn44", 7101);
        assert_eq!(std::fs::read_to_string(&files[0]).unwrap(), before);
        assert!(!before.contains("secret") && !before.to_lowercase().contains("private"));

        let g = assemble("pcl-test", Some(2), &files).unwrap();
        assert_eq!(g.jurisdictions.len(), 3);
        let ids: Vec<u64> = g.members.iter().map(|m| m.id).collect();
        assert_eq!(ids, [1, 2, 3]);
        let key =
            crate::notary::load_or_create_key(&d.path().join("CN-33/cn33/data/node.key")).unwrap();
        assert_eq!(g.members[1].node_key.0, key.verifying_key().to_bytes());
        // The TOML written is the same genesis (same hash) when read back.
        let text = toml::to_string(&g).unwrap();
        let back: Genesis = toml::from_str(&text).unwrap();
        assert_eq!(back.hash(), g.hash());

        // The same jurisdiction twice is refused.
        let err = assemble("pcl-test", None, &[files[0].clone(), files[0].clone()]).unwrap_err();
        assert!(err.to_string().contains("already given"), "{err}");
        // A quorum beyond the jurisdictions is refused.
        assert!(assemble("pcl-test", Some(4), &files).is_err());
    }

    #[test]
    fn the_node_config_names_the_genesis_members_and_its_own_key() {
        let d = tempfile::tempdir().unwrap();
        let files = vec![
            agency_in(d.path(), "CN-44", "cn44", 7101),
            agency_in(d.path(), "DE", "de", 7103),
        ];
        let g = assemble("pcl-test", None, &files).unwrap();
        let gpath = d.path().join("genesis.toml");
        std::fs::write(&gpath, toml::to_string(&g).unwrap()).unwrap();
        let out = d.path().join("DE/node.toml");
        node_config(&gpath, "de", &out, None, None, None).unwrap();
        let cfg = NodeConfig::load(&out).unwrap();
        let raft = cfg.raft.unwrap();
        assert_eq!((raft.id, raft.members.len()), (2, 2));
        assert_eq!(cfg.jurisdiction.to_string(), "DE");
        let trust =
            Trust::parse(&std::fs::read_to_string(d.path().join("DE/trust.txt")).unwrap()).unwrap();
        assert_eq!(trust, g.trust().unwrap());
        // Never replaced; an unknown node and a foreign key are refused.
        assert!(node_config(&gpath, "de", &out, None, None, None).is_err());
        let err =
            node_config(&gpath, "xx", &d.path().join("x.toml"), None, None, None).unwrap_err();
        assert!(err.to_string().contains("no member xx"), "{err}");
        let err = node_config(
            &gpath,
            "cn44",
            &d.path().join("DE/cn44.toml"),
            Some(PathBuf::from("de/data")),
            None,
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("is not the node key"), "{err}");
    }

    #[test]
    fn a_node_must_be_the_member_the_genesis_names() {
        let d = tempfile::tempdir().unwrap();
        let files = vec![agency_in(d.path(), "CN-44", "cn44", 7101)];
        let g = assemble("pcl-test", None, &files).unwrap();
        let gpath = d.path().join("CN-44/genesis.toml");
        std::fs::write(&gpath, toml::to_string(&g).unwrap()).unwrap();
        let out = d.path().join("CN-44/node.toml");
        node_config(&gpath, "cn44", &out, None, None, None).unwrap();
        assert!(std::fs::read_to_string(&out)
            .unwrap()
            .contains("genesis = \"genesis.toml\""));
        let cfg = NodeConfig::load(&out).unwrap();
        let own = g.members[0].node_key;
        check_identity(&cfg, &g, &own).unwrap();
        let other = PublicKeyBytes(
            ed25519_dalek::SigningKey::from_bytes(&[9; 32])
                .verifying_key()
                .to_bytes(),
        );
        let err = check_identity(&cfg, &g, &other).unwrap_err();
        assert!(err.to_string().contains("DATA_DIR/node.key"), "{err}");
        let mut moved = cfg.clone();
        moved.raft.as_mut().unwrap().id = 7;
        assert!(check_identity(&moved, &g, &own)
            .unwrap_err()
            .to_string()
            .contains("Raft id"));
        // A name the genesis does not list (a node added later by act) is not its business.
        let mut later = moved;
        later.node_id = "cn44-b".into();
        check_identity(&later, &g, &other).unwrap();
    }

    #[test]
    fn urls_give_host_and_port() {
        assert_eq!(
            host_port("https://a.example:7100").unwrap(),
            ("a.example".into(), 7100)
        );
        assert_eq!(
            host_port("https://[::1]:7100").unwrap(),
            ("::1".into(), 7100)
        );
        assert!(host_port("a.example:7100").is_err());
        assert!(host_port("https://a.example").is_err());
    }
}
