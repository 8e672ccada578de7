//! `ledger-node dev`: a local ledger on this machine. Creates (or reuses) an agency key per
//! jurisdiction of the dev cluster file, the genesis, node configs and `client.toml` under the
//! data directory, then runs the nodes as child processes until Ctrl-C or SIGTERM.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use ledger_core::event::PublicKeyBytes;
use ledger_core::genesis::{Genesis, GenesisJurisdiction};
use ledger_core::jurisdiction::Jurisdiction;
use serde::Deserialize;

use crate::config::{load_genesis, NodeConfig, Peer, RaftConfig, RaftMember};

/// The dev cluster definition, compiled in so `dev` works from any directory.
const DEV_CLUSTER: &str = include_str!("../../deploy/dev-cluster.toml");
/// How long a node may take to start listening before `dev` gives up.
const NODE_START_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DevCluster {
    ledger: String,
    jurisdictions: Vec<Jurisdiction>,
}

/// Node i's Raft service listens on base-port + RAFT_PORT_OFFSET + i - 1 (7200.. by default).
pub const RAFT_PORT_OFFSET: u16 = 100;
/// Node i's HTTP/JSON API listens on base-port + HTTP_PORT_OFFSET + i - 1 (7180.. by default).
pub const HTTP_PORT_OFFSET: u16 = 80;
/// How long `dev` waits for the cluster to elect its first leader.
const LEADER_TIMEOUT: Duration = Duration::from_secs(60);

/// The shape of a dev cluster, fixed when it is created (`DIR/cluster.toml`).
#[derive(serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DevLayout {
    nodes: usize,
    base_port: u16,
}

pub struct DevOptions {
    pub data_dir: PathBuf,
    pub nodes: usize,
    pub base_port: u16,
}

/// Prepares the data directory: keys, genesis, node configs, client.toml. Idempotent.
pub fn prepare(opts: &DevOptions) -> anyhow::Result<Vec<(NodeConfig, PathBuf)>> {
    let cluster: DevCluster =
        toml::from_str(DEV_CLUSTER).context("the built-in dev cluster file")?;
    if opts.nodes == 0 || opts.nodes > cluster.jurisdictions.len() {
        bail!(
            "--nodes must be between 1 and {} (one per dev jurisdiction)",
            cluster.jurisdictions.len()
        );
    }
    let dir = &opts.data_dir;
    write_genesis(dir, &cluster)?;
    let layout = cluster_layout(dir, opts)?;
    if layout.nodes == 0 || layout.nodes > cluster.jurisdictions.len() {
        bail!(
            "the cluster must have between 1 and {} nodes",
            cluster.jurisdictions.len()
        );
    }
    // Each node's key is made now (the node would make it on first start) so the membership
    // and client.toml can name it.
    let mut node_keys = Vec::new();
    for i in 0..layout.nodes {
        let data = dir.join(format!("node-{}", i + 1)).join("data");
        std::fs::create_dir_all(&data)?;
        let key = crate::notary::load_or_create_key(&data.join("node.key"))?;
        node_keys.push(hex::encode(key.verifying_key().to_bytes()));
    }
    let configs = node_configs(dir, &cluster, &layout, &node_keys)?;
    let endpoints: Vec<String> = configs
        .iter()
        .map(|(c, _)| format!("https://{}", c.listen))
        .collect();
    let array =
        |v: Vec<String>| toml::Value::Array(v.into_iter().map(toml::Value::String).collect());
    let client = format!(
        "# Written by `ledger-node dev`: where ledger-client finds the local ledger, and the\n\
         # node keys it trusts (TLS: a node must prove one of these keys).\nendpoints = {}\n\n\
         [tls]\nnode_keys = {}\n",
        array(endpoints),
        array(node_keys)
    );
    std::fs::write(dir.join("client.toml"), client)?;
    Ok(configs)
}

/// An agency key per dev jurisdiction (kept from an earlier run) and the genesis naming them;
/// an existing genesis must name the same keys.
fn write_genesis(dir: &Path, cluster: &DevCluster) -> anyhow::Result<()> {
    let keys_dir = dir.join("keys");
    std::fs::create_dir_all(&keys_dir)
        .with_context(|| format!("creating {}", keys_dir.display()))?;
    let mut jurisdictions = Vec::new();
    for j in &cluster.jurisdictions {
        let key = ledger_client::keys::load_or_create(&keys_dir.join(format!("{j}.key")))?;
        jurisdictions.push(GenesisJurisdiction {
            code: j.clone(),
            agency_keys: vec![PublicKeyBytes(key.verifying_key().to_bytes())],
        });
    }
    let genesis = Genesis {
        ledger: cluster.ledger.clone(),
        jurisdictions,
        authority_quorum: None,
        members: Vec::new(),
    };
    let genesis_path = dir.join("genesis.toml");
    if genesis_path.exists() {
        if load_genesis(&genesis_path)? != genesis {
            bail!(
                "{} does not match the keys in {}: was a key file replaced? Use a fresh --data-dir",
                genesis_path.display(),
                keys_dir.display()
            );
        }
        return Ok(());
    }
    std::fs::write(&genesis_path, toml::to_string(&genesis)?)
        .with_context(|| format!("writing {}", genesis_path.display()))
}

/// The cluster's layout: the one it was created with (its members' addresses live in the Raft
/// log, so a re-run keeps them whatever --nodes and --base-port say now), else the options'.
fn cluster_layout(dir: &Path, opts: &DevOptions) -> anyhow::Result<DevLayout> {
    let layout_path = dir.join("cluster.toml");
    if layout_path.exists() {
        let text = std::fs::read_to_string(&layout_path)?;
        let layout: DevLayout =
            toml::from_str(&text).with_context(|| format!("reading {}", layout_path.display()))?;
        if (layout.nodes, layout.base_port) != (opts.nodes, opts.base_port) {
            tracing::warn!(
                nodes = layout.nodes,
                base_port = layout.base_port,
                "this data directory holds an existing cluster; restarting it as it was created"
            );
        }
        return Ok(layout);
    }
    if dir.join("node-1").join("data").exists() {
        bail!(
            "{} holds a ledger of an earlier single-node version; use a fresh --data-dir",
            dir.display()
        );
    }
    let layout = DevLayout {
        nodes: opts.nodes,
        base_port: opts.base_port,
    };
    std::fs::write(&layout_path, toml::to_string(&layout)?)?;
    Ok(layout)
}

/// Each node's config (node i on base-port + offset + i - 1), written to `node-i/node.toml`.
fn node_configs(
    dir: &Path,
    cluster: &DevCluster,
    layout: &DevLayout,
    node_keys: &[String],
) -> anyhow::Result<Vec<(NodeConfig, PathBuf)>> {
    let port = |i: usize, offset: u16| -> anyhow::Result<u16> {
        layout
            .base_port
            .checked_add(offset)
            .and_then(|p| p.checked_add(i as u16))
            .context("--base-port too high")
    };
    let mut members = Vec::new();
    for (i, node_key) in node_keys.iter().enumerate() {
        members.push(RaftMember {
            id: i as u64 + 1,
            raft_address: format!("https://127.0.0.1:{}", port(i, RAFT_PORT_OFFSET)?),
            public_address: format!("https://127.0.0.1:{}", port(i, 0)?),
            node_key: node_key.clone(),
        });
    }
    let mut configs = Vec::new();
    for i in 0..layout.nodes {
        let node_dir = dir.join(format!("node-{}", i + 1));
        std::fs::create_dir_all(&node_dir)?;
        let cfg = NodeConfig {
            node_id: format!("node-{}", i + 1),
            jurisdiction: cluster.jurisdictions[i].clone(),
            listen: format!("127.0.0.1:{}", port(i, 0)?).parse()?,
            data_dir: PathBuf::from("data"),
            genesis: PathBuf::from("../genesis.toml"),
            peers: Vec::<Peer>::new(),
            trust: Some(PathBuf::from("../trust.txt")),
            raft: Some(RaftConfig {
                id: i as u64 + 1,
                listen: format!("127.0.0.1:{}", port(i, RAFT_PORT_OFFSET)?).parse()?,
                members: members.clone(),
                snapshot_every: crate::raft::SNAPSHOT_EVERY_ENTRIES,
            }),
            tls: Default::default(),
            http_listen: Some(format!("127.0.0.1:{}", port(i, HTTP_PORT_OFFSET)?).parse()?),
            metrics_listen: None,
            log_format: Default::default(),
        };
        let path = node_dir.join("node.toml");
        std::fs::write(&path, toml::to_string(&cfg)?)?;
        configs.push((cfg, path));
    }
    Ok(configs)
}

async fn wait_listening(
    addr: std::net::SocketAddr,
    child: &mut tokio::process::Child,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + NODE_START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("node process exited during start-up ({status}); see its log above");
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("node did not listen on {addr} within {NODE_START_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until node 1 reports an elected leader, so the first submission does not meet an election.
async fn wait_for_leader(first: &NodeConfig) -> anyhow::Result<()> {
    use ledger_client::transport::{channel, parse_node_key, Pins, Transport};
    use ledger_proto::node::{ledger_client::LedgerClient, StatusRequest};
    let key = first
        .raft
        .iter()
        .flat_map(|r| &r.members)
        .find_map(|m| parse_node_key(&m.node_key).ok())
        .context("node 1 has no node key")?;
    let transport = Transport::Tls {
        pins: Pins::keys([key]),
        identity: None,
    };
    let deadline = tokio::time::Instant::now() + LEADER_TIMEOUT;
    loop {
        let url = format!("https://{}", first.listen);
        if let Ok(mut c) = channel(&url, &transport).await.map(LedgerClient::new) {
            if let Ok(s) = c.status(StatusRequest {}).await {
                if s.into_inner().leader_id != 0 {
                    return Ok(());
                }
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the cluster elected no leader within {LEADER_TIMEOUT:?}; see the nodes' logs above");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn terminate(child: &tokio::process::Child) {
    if let Some(pid) = child.id() {
        // SIGTERM lets the node finish its current entry and flush.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
}

/// Gathers every node's checkpoint verifier key (written by the node at start) into
/// `DIR/trust.txt`, the file `ledger-client verify --trust` reads.
fn write_trust_file(dir: &Path, configs: &[(NodeConfig, PathBuf)]) -> anyhow::Result<()> {
    let mut trust = String::from(
        "# Checkpoint keys of the local ledger's nodes: JURISDICTION and C2SP verifier key, one node per line.\n",
    );
    for (cfg, path) in configs {
        let base = path.parent().unwrap_or(Path::new("."));
        let pub_file = base.join(&cfg.data_dir).join("node.pub");
        let key = std::fs::read_to_string(&pub_file)
            .with_context(|| format!("reading {}", pub_file.display()))?;
        trust.push_str(&format!("{} {}\n", cfg.jurisdiction, key.trim()));
    }
    // Written whole or not at all: readers may be waiting for it.
    std::fs::write(dir.join("trust.txt.partial"), trust).context("writing trust.txt")?;
    std::fs::rename(dir.join("trust.txt.partial"), dir.join("trust.txt"))
        .context("writing trust.txt")?;
    Ok(())
}

pub async fn run(opts: DevOptions) -> anyhow::Result<()> {
    let stop = crate::signals::shutdown_signal();
    let configs = prepare(&opts)?;
    let exe = std::env::current_exe().context("locating the ledger-node binary")?;
    let mut children = Vec::new();
    for (cfg, path) in &configs {
        let mut child = tokio::process::Command::new(&exe)
            .arg("run")
            .arg("--config")
            .arg(path)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", cfg.node_id))?;
        wait_listening(cfg.listen, &mut child)
            .await
            .with_context(|| format!("{} ({})", cfg.node_id, cfg.jurisdiction))?;
        children.push(Node {
            name: format!(
                "{} ({}, http://{})",
                cfg.node_id, cfg.jurisdiction, cfg.listen
            ),
            restart: format!("{} run --config {}", exe.display(), path.display()),
            child: Some(child),
        });
    }
    wait_for_leader(&configs[0].0).await?;
    write_trust_file(&opts.data_dir, &configs)?;
    let dir = opts.data_dir.display();
    println!(
        "local ledger running ({} node{}):",
        configs.len(),
        if configs.len() == 1 { "" } else { "s" }
    );
    for (cfg, _) in &configs {
        println!(
            "  {}  {}  https://{}",
            cfg.node_id, cfg.jurisdiction, cfg.listen
        );
    }
    println!("agency keys:   {dir}/keys/<JURISDICTION>.key");
    println!("client config: {dir}/client.toml");
    println!("node keys:     {dir}/trust.txt (for `ledger-client verify --trust`)");
    println!("press Ctrl-C to stop");
    supervise(children, stop).await
}

/// A node process of the local ledger.
struct Node {
    /// How the node is named in reports: id, jurisdiction and public address.
    name: String,
    /// The command that starts the node again by hand.
    restart: String,
    /// `None` once the process has exited.
    child: Option<tokio::process::Child>,
}

/// Keeps the nodes running until Ctrl-C or SIGTERM (then stops them all). A node that dies is
/// reported, with how it died and which nodes keep serving; the others go on, so a failover
/// can be watched and the node restarted by hand. Ends with an error once every node is gone.
async fn supervise(
    mut nodes: Vec<Node>,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => {
                println!("stopping");
                break;
            }
            (i, status) = next_exit(&mut nodes) => {
                report_exit(&nodes, i, status);
                if nodes.iter().all(|n| n.child.is_none()) {
                    bail!("every node of the local ledger has exited");
                }
            }
        }
    }
    for n in &nodes {
        if let Some(c) = &n.child {
            terminate(c);
        }
    }
    for n in &mut nodes {
        if let Some(c) = &mut n.child {
            let _ = c.wait().await;
        }
    }
    Ok(())
}

/// Tells which node died and how, and what the survivors can still do.
fn report_exit(nodes: &[Node], i: usize, status: std::process::ExitStatus) {
    let survivors: Vec<&str> = nodes
        .iter()
        .filter(|n| n.child.is_some())
        .map(|n| n.name.as_str())
        .collect();
    let majority = nodes.len() / 2 + 1;
    eprintln!("{} exited: {}", nodes[i].name, describe_exit(status));
    if survivors.is_empty() {
        return;
    }
    eprintln!(
        "still serving: {} (if it led, they elect a new leader within seconds)",
        survivors.join(", ")
    );
    if survivors.len() < majority {
        eprintln!(
            "fewer than a majority ({majority} of {}) keep running: the ledger can be read but not appended to until a node is back",
            nodes.len()
        );
    }
    eprintln!("restart it with: {}", nodes[i].restart);
}

/// "exit code 70" or "killed by signal 9 (SIGKILL)".
fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exit code {code}");
    }
    match status.signal() {
        Some(sig) => {
            let name = match sig {
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGTERM => " (SIGTERM)",
                libc::SIGINT => " (SIGINT)",
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGBUS => " (SIGBUS)",
                _ => "",
            };
            format!("killed by signal {sig}{name}")
        }
        None => status.to_string(),
    }
}

/// Waits for the next running node to exit; marks it gone and returns its position and status.
async fn next_exit(nodes: &mut [Node]) -> (usize, std::process::ExitStatus) {
    loop {
        for (i, n) in nodes.iter_mut().enumerate() {
            let Some(c) = &mut n.child else { continue };
            if let Ok(Some(status)) = c.try_wait() {
                n.child = None;
                return (i, status);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn exits_are_described() {
        assert_eq!(
            describe_exit(std::process::ExitStatus::from_raw(70 << 8)),
            "exit code 70"
        );
        assert_eq!(
            describe_exit(std::process::ExitStatus::from_raw(9)),
            "killed by signal 9 (SIGKILL)"
        );
    }
}
