//! Harness for the workspace integration tests: real `ledger-node` processes on loopback, driven
//! by the real `ledger-client` binary (and its SDK), exactly as a user would. Nodes are killed
//! with SIGKILL to prove durability. Every wait is a condition polled against a deadline, never a
//! fixed sleep; every node gets its own free port so tests run in parallel.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use ledger_client::SubmitOutcome;
use ledger_core::envelope::format_secret_key;
use ledger_core::event::EventBody;
use ledger_core::event::PublicKeyBytes;
use ledger_core::genesis::{Genesis, GenesisJurisdiction};
use ledger_core::json::parse_json_event;
use ledger_core::Envelope;

pub mod netns;

/// How long a condition may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The jurisdictions of the test ledger's genesis.
pub const JURISDICTIONS: &[&str] = &["CN-44", "CN-33", "CN-51", "DE"];

pub struct Binaries {
    pub node: PathBuf,
    pub client: PathBuf,
}

/// Builds (once per test binary) and locates ledger-node and ledger-client.
pub fn binaries() -> &'static Binaries {
    static BINS: OnceLock<Binaries> = OnceLock::new();
    BINS.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "ledger-node",
                "-p",
                "ledger-client",
                "--bins",
            ])
            .status()
            .expect("running cargo build");
        assert!(status.success(), "building the binaries failed");
        // current_exe is target/<profile>/deps/<test>; the binaries sit in target/<profile>.
        let exe = std::env::current_exe().expect("test executable path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target profile dir")
            .to_path_buf();
        let debug = dir.parent().expect("target dir").join("debug");
        let pick = |name: &str| {
            let p = dir.join(name);
            if p.exists() {
                p
            } else {
                debug.join(name)
            }
        };
        let b = Binaries {
            node: pick("ledger-node"),
            client: pick("ledger-client"),
        };
        assert!(
            b.node.exists() && b.client.exists(),
            "binaries not found next to {}",
            exe.display()
        );
        // Before any node starts: every client of this test process (the binary and the SDK)
        // trusts the node keys the harness makes.
        std::env::set_var("LEDGER_CLIENT_CONFIG", trust_config());
        b
    })
}

/// The client config of this test process: `[tls] node_keys` lists every node key the harness
/// made (see [`new_node_key`]).
pub fn trust_config() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir").into_path();
        let path = dir.join("client.toml");
        std::fs::write(&path, "[tls]\nnode_keys = []\n").expect("write client.toml");
        path
    })
}

/// Makes a node key in `data_dir/node.key` (where the node would make its own on first start),
/// adds it to [`trust_config`], and returns its hex public key.
pub fn new_node_key(data_dir: &Path) -> String {
    static KEYS: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::fs::create_dir_all(data_dir).expect("create data dir");
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    write_key(&data_dir.join("node.key"), &key);
    let public = hex::encode(key.verifying_key().to_bytes());
    let mut keys = KEYS.lock().expect("keys lock");
    keys.push(public.clone());
    let list: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
    let text = format!("[tls]\nnode_keys = [{}]\n", list.join(", "));
    // Written whole and renamed, so a client never reads half a file.
    let tmp = trust_config().with_extension(format!("tmp{}", rand::random::<u32>()));
    std::fs::write(&tmp, text).expect("write client.toml");
    std::fs::rename(&tmp, trust_config()).expect("replace client.toml");
    public
}

/// A port for a test node to listen on, below the kernel's ephemeral range (32768 and up on
/// Linux). A port from `bind(0)` is itself ephemeral: between the test choosing it and the node
/// binding it, any outgoing connection (every client call, every Raft connection) may take it
/// as its local port, and the node then fails to start. Ports here are handed out once per
/// process, from a window chosen by the process id, and checked free before use.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    // 10000..20000: below the ephemeral range and below `free_port_block`'s ports.
    const FIRST: u32 = 10_000;
    const WINDOWS: u32 = 40;
    const WINDOW: u32 = 250;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = FIRST + (std::process::id() % WINDOWS) * WINDOW;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(
            n < WINDOWS * WINDOW,
            "no free test port left in 10000..20000"
        );
        // Past its own window a process walks on through the others (wrapping around).
        let port = (FIRST + (base - FIRST + n) % (WINDOWS * WINDOW)) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Polls `cond` until it holds or [`DEADLINE`] passes.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    let mut pause = Duration::from_millis(10);
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

pub fn write_key(path: &Path, key: &SigningKey) {
    std::fs::write(path, format_secret_key(key)).expect("write key file");
}

/// A single-node ledger in a temporary directory, with one agency key per jurisdiction in
/// `dir/keys/<J>.key`.
pub struct TestLedger {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The node's key (hex): what clients pin.
    pub node_key: String,
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl TestLedger {
    /// What this ledger's events are signed for.
    pub fn ledger_id(&self) -> ledger_core::envelope::LedgerId {
        ledger_id(self.dir.path())
    }

    pub fn start() -> TestLedger {
        Self::start_with("")
    }

    /// Like [`TestLedger::start`], with `extra` lines (top-level keys) in the node config.
    pub fn start_with(extra: &str) -> TestLedger {
        let dir = tempfile::tempdir().expect("tempdir");
        make_genesis(dir.path(), "pcl-test");
        let port = free_port();
        std::fs::write(
            dir.path().join("node.toml"),
            format!(
                "node_id = \"node-1\"\njurisdiction = \"CN-44\"\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\ngenesis = \"genesis.toml\"\n{extra}\n"
            ),
        )
        .unwrap();
        let log = dir.path().join("node.log");
        binaries();
        let node_key = new_node_key(&dir.path().join("data"));
        let mut ledger = TestLedger {
            dir,
            port,
            node_key,
            child: None,
            log,
        };
        ledger.spawn();
        ledger
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
    pub fn key_path(&self, jurisdiction: &str) -> PathBuf {
        self.path().join("keys").join(format!("{jurisdiction}.key"))
    }

    /// Starts the node process without waiting.
    pub fn spawn_raw(&mut self) -> &mut Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&binaries().node)
            .arg("run")
            .arg("--config")
            .arg(self.path().join("node.toml"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start ledger-node");
        self.child = Some(child);
        self.child.as_mut().unwrap()
    }

    /// Starts the node and waits until it answers `status`.
    pub fn spawn(&mut self) {
        self.spawn_raw();
        let url = self.url();
        wait_for("the node to serve", || {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "node exited during start-up ({status}); log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            client(&url, &["status", "--json"]).status.success()
        });
    }

    /// SIGKILL: no shutdown, no flush beyond what was acknowledged.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL");
            c.wait().expect("reap");
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running node");
        sigterm(c.id());
        c.wait().expect("reap")
    }

    /// Runs ledger-client against this node.
    pub fn client(&self, args: &[&str]) -> Output {
        client(&self.url(), args)
    }

    pub fn log_size(&self) -> u64 {
        let out = self.client(&["status", "--json"]);
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
        v["log_size"].as_u64().expect("log_size")
    }

    /// Writes `lines` to a JSONL file in the ledger's directory and returns its path.
    pub fn jsonl(&self, name: &str, lines: &[String]) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        p
    }

    /// Generates a key with `ledger-client keygen`, returning its path and public key.
    pub fn keygen(&self, name: &str) -> (PathBuf, String) {
        let p = self.path().join(format!("{name}.key"));
        let out = self.client(&["keygen", "--out", p.to_str().unwrap()]);
        assert!(out.status.success());
        (p, String::from_utf8(out.stdout).unwrap().trim().to_string())
    }

    /// Registers a key through `key register`, signed by the agency of `jurisdiction`.
    pub fn register_key(&self, jurisdiction: &str, role: &str, subject: &str, public_key: &str) {
        let agency = self.key_path(jurisdiction);
        let out = self.client(&[
            "key",
            "register",
            "--key",
            agency.to_str().unwrap(),
            "--jurisdiction",
            jurisdiction,
            "--role",
            role,
            "--subject",
            subject,
            "--public-key",
            public_key,
        ]);
        assert!(
            out.status.success(),
            "key register failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Submits `lines` signed with `keys`; returns the process output.
    pub fn submit(&self, keys: &[&Path], lines: &[String]) -> Output {
        let file = self.jsonl(&format!("submit-{}.jsonl", rand::random::<u64>()), lines);
        let mut args: Vec<String> = vec!["--json".into(), "submit".into()];
        for k in keys {
            args.push("--key".into());
            args.push(k.to_str().unwrap().into());
        }
        args.push(file.to_str().unwrap().into());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.client(&refs)
    }
}

impl Drop for TestLedger {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .expect("kill -TERM");
    assert!(status.success());
}

/// A gRPC channel to `url` over the transport every client of the tests uses (TLS pinned to the
/// node keys of the harness's client config), for tests that speak the raw API.
pub async fn test_channel(url: &str) -> tonic::transport::Channel {
    let transport = ledger_client::transport::ClientTrust::load_default()
        .and_then(|t| t.transport_for(url))
        .expect("the harness's client config");
    ledger_client::transport::channel(url, &transport)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

/// Runs the ledger-client binary with `--node url`, asking that node only (`--retry-for 0`):
/// a probe of one node must not ride through to another or wait for it.
pub fn client(url: &str, args: &[&str]) -> Output {
    Command::new(&binaries().client)
        .arg("--node")
        .arg(url)
        .args(["--retry-for", "0"])
        .args(args)
        .output()
        .expect("run ledger-client")
}

/// Runs the ledger-client binary as a user does: `--node url` first, then the endpoints of
/// `cwd/ledger-data/client.toml`, with the default retries.
pub fn client_retrying(cwd: &Path, url: &str, args: &[&str]) -> Output {
    Command::new(&binaries().client)
        .current_dir(cwd)
        .env(
            "LEDGER_CLIENT_CONFIG",
            cwd.join("ledger-data").join("client.toml"),
        )
        .arg("--node")
        .arg(url)
        .args(args)
        .output()
        .expect("run ledger-client")
}

/// Runs the ledger-client binary with `--node url`, trusting what `config` (a client.toml) says.
pub fn client_with_config(config: &Path, url: &str, args: &[&str]) -> Output {
    Command::new(&binaries().client)
        .env("LEDGER_CLIENT_CONFIG", config)
        .arg("--node")
        .arg(url)
        .args(args)
        .output()
        .expect("run ledger-client")
}

fn toml_genesis(g: &Genesis) -> String {
    let mut s = format!("ledger = \"{}\"\n", g.ledger);
    if let Some(m) = g.authority_quorum {
        s.push_str(&format!("authority_quorum = {m}\n"));
    }
    for j in &g.jurisdictions {
        let keys: Vec<String> = j.agency_keys.iter().map(|k| format!("\"{k}\"")).collect();
        s.push_str(&format!(
            "\n[[jurisdictions]]\ncode = \"{}\"\nagency_keys = [{}]\n",
            j.code,
            keys.join(", ")
        ));
    }
    s
}

/// Parses `--json` submit output: one object per event line.
pub fn receipts(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// A person_registered line.
pub fn person(worker: &str, jurisdiction: &str) -> String {
    format!(
        r#"{{"type":"person_registered","worker":"{worker}","jurisdiction":"{jurisdiction}","sex":"M","birth_date":"1980-05-01","nationality":"CN","hukou":"CN-51"}}"#
    )
}

/// A contributions_declared line with one pension line per worker.
pub fn declaration(
    employer: &str,
    jurisdiction: &str,
    period: &str,
    workers: &[&str],
    base: &str,
) -> String {
    let lines: Vec<String> = workers
        .iter()
        .map(|w| format!(r#"{{"worker":"{w}","scheme":"pension","base":"{base}","employer_amount":"800.00","employee_amount":"400.00"}}"#))
        .collect();
    format!(
        r#"{{"type":"contributions_declared","employer":"{employer}","jurisdiction":"{jurisdiction}","period":"{period}","lines":[{}]}}"#,
        lines.join(",")
    )
}

/// Agency keys (one per [`JURISDICTIONS`]) in `dir/keys` and the genesis file `dir/genesis.toml`,
/// with the default authority quorum (a majority: 3 of the 4 jurisdictions).
pub fn make_genesis(dir: &Path, ledger: &str) {
    make_genesis_with(dir, ledger, None)
}

/// Like [`make_genesis`], with `authority_quorum` set when given.
pub fn make_genesis_with(dir: &Path, ledger: &str, authority_quorum: Option<u32>) {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let mut jurisdictions = Vec::new();
    for j in JURISDICTIONS {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        write_key(&keys.join(format!("{j}.key")), &key);
        jurisdictions.push(GenesisJurisdiction {
            code: j.parse().unwrap(),
            agency_keys: vec![PublicKeyBytes(key.verifying_key().to_bytes())],
        });
    }
    let genesis = Genesis {
        ledger: ledger.into(),
        jurisdictions,
        authority_quorum,
        members: Vec::new(),
    };
    std::fs::write(dir.join("genesis.toml"), toml_genesis(&genesis)).unwrap();
}

/// The id of the ledger whose `genesis.toml` is in `dir`: what its events are signed for.
pub fn ledger_id(dir: &Path) -> ledger_core::envelope::LedgerId {
    ledger_node::config::load_genesis(&dir.join("genesis.toml"))
        .expect("the test genesis loads")
        .ledger_id()
}

/// A replicated ledger: `n` ledger-node processes with `[raft]` sections, on loopback ports or
/// on test hosts in network namespaces ([`Layout`]).
pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub ports: Vec<u16>,
    /// Where each node serves the internal Raft service.
    pub raft_ports: Vec<u16>,
    /// Each node's key (hex), as its `[[raft.members]] node_key` says.
    pub node_keys: Vec<String>,
    pub children: Vec<Option<Child>>,
    layout: Layout,
}

/// Where a cluster's nodes run and from where the test reaches them.
#[derive(Clone)]
pub struct Layout {
    /// Each node's address (its public and Raft services listen there).
    pub hosts: Vec<String>,
    pub public_ports: Vec<u16>,
    pub raft_ports: Vec<u16>,
    /// The network namespace each node runs in (None: this one).
    pub node_netns: Vec<Option<String>>,
    /// The namespace the test's client commands run in (None: this one).
    pub client_netns: Option<String>,
}

impl Layout {
    /// `n` nodes on loopback, each with free ports.
    pub fn loopback(n: usize) -> Layout {
        Layout {
            hosts: vec!["127.0.0.1".into(); n],
            public_ports: (0..n).map(|_| free_port()).collect(),
            raft_ports: (0..n).map(|_| free_port()).collect(),
            node_netns: vec![None; n],
            client_netns: None,
        }
    }

    /// One node per node host of `mesh`, the test's clients in its client namespace.
    pub fn mesh(mesh: &netns::Mesh, n: usize) -> Layout {
        use netns::Host;
        Layout {
            hosts: (0..n).map(|i| mesh.address(Host::Node(i))).collect(),
            public_ports: vec![7100; n],
            raft_ports: vec![7200; n],
            node_netns: (0..n).map(|i| Some(mesh.netns(Host::Node(i)))).collect(),
            client_netns: Some(mesh.netns(Host::Client)),
        }
    }
}

/// `program` run in namespace `netns` when given (through `ip netns exec`, which execs it, so the
/// child is the program itself and can be killed as such).
fn command_in(netns: Option<&str>, program: &Path) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

impl TestCluster {
    pub fn start(n: usize) -> TestCluster {
        Self::start_with(n, "")
    }

    /// Like [`TestCluster::start`], with extra keys in every node's `[raft]` section.
    pub fn start_with(n: usize, raft_extra: &str) -> TestCluster {
        Self::start_on(Layout::loopback(n), raft_extra)
    }

    /// A cluster placed as `layout` says, with extra keys in every node's `[raft]` section.
    pub fn start_on(layout: Layout, raft_extra: &str) -> TestCluster {
        Self::start_configured(layout, raft_extra, &|_| String::new())
    }

    /// Like [`TestCluster::start_on`], with `node_extra(i)` (top-level keys) in node `i`'s
    /// config.
    pub fn start_configured(
        layout: Layout,
        raft_extra: &str,
        node_extra: &dyn Fn(usize) -> String,
    ) -> TestCluster {
        let n = layout.hosts.len();
        let dir = tempfile::tempdir().expect("tempdir");
        make_genesis(dir.path(), "pcl-cluster-test");
        binaries();
        let node_keys: Vec<String> = (0..n)
            .map(|i| new_node_key(&dir.path().join(format!("node-{}", i + 1))))
            .collect();
        let mut members = String::new();
        for (i, key) in node_keys.iter().enumerate() {
            members.push_str(&format!(
                "\n[[raft.members]]\nid = {}\nraft_address = \"https://{host}:{}\"\npublic_address = \"https://{host}:{}\"\nnode_key = \"{key}\"\n",
                i + 1,
                layout.raft_ports[i],
                layout.public_ports[i],
                host = layout.hosts[i],
            ));
        }
        for i in 0..n {
            let config = format!(
                "node_id = \"node-{id}\"\njurisdiction = \"CN-44\"\nlisten = \"{host}:{port}\"\ndata_dir = \"node-{id}\"\ngenesis = \"genesis.toml\"\ntrust = \"trust.txt\"\n{node_extra}\n\n[raft]\nid = {id}\nlisten = \"{host}:{raft}\"\n{raft_extra}\n{members}",
                node_extra = node_extra(i),
                id = i + 1,
                host = layout.hosts[i],
                port = layout.public_ports[i],
                raft = layout.raft_ports[i],
            );
            std::fs::write(dir.path().join(format!("node-{}.toml", i + 1)), config).unwrap();
        }
        let mut cluster = TestCluster {
            dir,
            ports: layout.public_ports.clone(),
            raft_ports: layout.raft_ports.clone(),
            node_keys,
            children: (0..n).map(|_| None).collect(),
            layout,
        };
        for i in 0..n {
            cluster.spawn(i);
        }
        for i in 0..n {
            cluster.wait_serving(i);
        }
        // The nodes' checkpoint keys, made at their first start, in the trust file every node
        // reads (as `ledger-node dev` writes it).
        let mut trust = String::new();
        for i in 1..=n {
            let key =
                std::fs::read_to_string(cluster.dir.path().join(format!("node-{i}/node.pub")))
                    .expect("node.pub");
            trust.push_str(&format!("CN-44 {}", key));
        }
        std::fs::write(cluster.trust_path(), trust).unwrap();
        cluster
    }

    /// Runs the ledger-client binary with `--node url`, from the layout's client namespace.
    pub fn client(&self, url: &str, args: &[&str]) -> Output {
        command_in(self.layout.client_netns.as_deref(), &binaries().client)
            .arg("--node")
            .arg(url)
            .args(args)
            .output()
            .expect("run ledger-client")
    }

    /// What this ledger's events are signed for.
    pub fn ledger_id(&self) -> ledger_core::envelope::LedgerId {
        ledger_id(self.dir.path())
    }

    /// The trust file of the cluster's node keys.
    pub fn trust_path(&self) -> PathBuf {
        self.dir.path().join("trust.txt")
    }

    pub fn url(&self, i: usize) -> String {
        format!("https://{}:{}", self.layout.hosts[i], self.ports[i])
    }
    pub fn key_path(&self, jurisdiction: &str) -> PathBuf {
        self.dir
            .path()
            .join("keys")
            .join(format!("{jurisdiction}.key"))
    }

    pub fn spawn(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("node-{}.log", i + 1)))
            .unwrap();
        let child = command_in(self.layout.node_netns[i].as_deref(), &binaries().node)
            .arg("run")
            .arg("--config")
            .arg(self.dir.path().join(format!("node-{}.toml", i + 1)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start ledger-node");
        self.children[i] = Some(child);
    }

    /// Waits until node `i` answers `status`; a node that exits meanwhile fails the test at
    /// once, with its log.
    pub fn wait_serving(&mut self, i: usize) {
        let url = self.url(i);
        let log = self.dir.path().join(format!("node-{}.log", i + 1));
        let start = Instant::now();
        loop {
            let out = self.client(&url, &["status", "--json"]);
            if out.status.success() {
                return;
            }
            if let Some(Ok(Some(status))) = self.children[i].as_mut().map(|c| c.try_wait()) {
                panic!(
                    "node {} exited during start-up ({status}); log:\n{}",
                    i + 1,
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < DEADLINE,
                "node {} did not serve within {DEADLINE:?}; last status call: {}\nlog:\n{}",
                i + 1,
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            c.kill().expect("SIGKILL");
            c.wait().expect("reap");
        }
    }

    pub fn status(&self, i: usize) -> Option<serde_json::Value> {
        let out = self.client(&self.url(i), &["status", "--json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).expect("status JSON"))
    }

    /// The index of the node that the node `i` reports as leader, if any.
    pub fn leader_seen_by(&self, i: usize) -> Option<usize> {
        let s = self.status(i)?;
        let id: usize = s["leader"].as_str()?.strip_prefix("raft ")?.parse().ok()?;
        Some(id - 1)
    }

    /// Writes `ledger-data/client.toml` listing every node, as `dev` does; returns the
    /// directory to run ledger-client in.
    pub fn client_config(&self) -> PathBuf {
        let dir = self.dir.path().join("client");
        std::fs::create_dir_all(dir.join("ledger-data")).unwrap();
        let urls: Vec<String> = (0..self.ports.len())
            .map(|i| format!("\"{}\"", self.url(i)))
            .collect();
        let keys: Vec<String> = self.node_keys.iter().map(|k| format!("\"{k}\"")).collect();
        std::fs::write(
            dir.join("ledger-data").join("client.toml"),
            format!(
                "endpoints = [{}]\n\n[tls]\nnode_keys = [{}]\n",
                urls.join(", "),
                keys.join(", ")
            ),
        )
        .unwrap();
        dir
    }

    fn log_size(&self, i: usize) -> Option<u64> {
        self.status(i).and_then(|s| s["log_size"].as_u64())
    }

    fn head(&self, i: usize) -> Option<String> {
        self.status(i)
            .and_then(|s| s["head_hash"].as_str().map(str::to_string))
    }

    /// Waits until every node holds the same log (size and head), then checks that every
    /// acknowledged worker is on every node, read back through the SDK.
    pub fn all_identical_with(&self, agency: &Path, acknowledged: &[String]) {
        let n = self.ports.len();
        wait_for("every node to hold the same log", || {
            let sizes: Vec<Option<u64>> = (0..n).map(|i| self.log_size(i)).collect();
            let heads: Vec<Option<String>> = (0..n).map(|i| self.head(i)).collect();
            sizes.iter().all(|s| s.is_some() && *s == sizes[0])
                && heads.iter().all(|h| h.is_some() && *h == heads[0])
        });
        let key = ledger_client::keys::load(agency).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                for i in 0..n {
                    let mut client = ledger_client::Client::connect(&self.url(i)).await.unwrap();
                    for w in acknowledged {
                        let events = client
                            .worker_events(w, &key)
                            .await
                            .unwrap_or_else(|e| panic!("{w} on node {i}: {e}"));
                        assert_eq!(events.len(), 1, "acknowledged {w} on node {i}");
                    }
                }
            });
    }

    /// Writes `lines` to a fresh JSONL file in the cluster's directory.
    pub fn jsonl_for_test(&self, lines: &[String]) -> PathBuf {
        let file = self
            .dir
            .path()
            .join(format!("lines-{}.jsonl", rand::random::<u64>()));
        std::fs::write(&file, lines.join("\n") + "\n").unwrap();
        file
    }

    /// Submits `lines` through node `i`, signed by `key`.
    pub fn submit(&self, i: usize, key: &Path, lines: &[String]) -> Output {
        let file = self
            .dir
            .path()
            .join(format!("submit-{}.jsonl", rand::random::<u64>()));
        std::fs::write(&file, lines.join("\n") + "\n").unwrap();
        self.client(
            &self.url(i),
            &[
                "--json",
                "submit",
                "--key",
                key.to_str().unwrap(),
                file.to_str().unwrap(),
            ],
        )
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            // Keep the nodes' logs of a failed test for the developer.
            let keep =
                std::env::temp_dir().join(format!("ledger-cluster-{}", rand::random::<u32>()));
            let _ = std::fs::create_dir_all(&keep);
            for i in 1..=self.ports.len() {
                let name = format!("node-{i}.log");
                let _ = std::fs::copy(self.dir.path().join(&name), keep.join(&name));
            }
            eprintln!("node logs kept in {}", keep.display());
        }
    }
}

/// A Raft RPC of `ledger.v1.raft.Raft`.
#[derive(Debug, Clone, Copy)]
pub enum RaftRpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

/// Sends one raw Raft RPC (`json`: the JSON of openraft's request) to the Raft service at
/// `raft_url`, as a member would, over mutual TLS presenting a certificate over the secret key in
/// `member_key` (a node's `node.key`), and returns the JSON reply or the gRPC error. The one
/// place tests open a Raft connection.
pub fn raft_rpc(
    raft_url: &str,
    member_key: &Path,
    rpc: RaftRpc,
    json: &serde_json::Value,
) -> Result<serde_json::Value, tonic::Status> {
    use ledger_proto::raft::{raft_client::RaftClient, RaftPayload};
    let key = ledger_core::envelope::parse_secret_key(
        &std::fs::read_to_string(member_key).expect("member key file"),
    )
    .expect("member key");
    let cert_dir = tempfile::tempdir().expect("tempdir");
    let transport =
        ledger_node::tls::NodeTls::new(&key, &["127.0.0.1".to_string()], cert_dir.path())
            .expect("certificate")
            .outgoing(ledger_client::transport::Pins::dynamic(|_| true));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let channel = ledger_client::transport::channel(raft_url, &transport)
            .await
            .map_err(tonic::Status::unavailable)?;
        let mut client = RaftClient::new(channel).max_encoding_message_size(64 << 20);
        let request = RaftPayload {
            json: serde_json::to_vec(json).expect("JSON"),
        };
        let reply = match rpc {
            RaftRpc::AppendEntries => client.append_entries(request).await?,
            RaftRpc::Vote => client.vote(request).await?,
            RaftRpc::InstallSnapshot => client.install_snapshot(request).await?,
        };
        Ok(serde_json::from_slice(&reply.into_inner().json).expect("a JSON reply"))
    })
}

/// A base port whose `base + o` is free for every offset `o` (a dev cluster uses several ports).
pub fn free_port_block(offsets: &[u16]) -> u16 {
    for _ in 0..200 {
        // Below the ephemeral range (32768..), where other tests' nodes get their ports.
        let base = 20_000 + (rand::random::<u16>() % 12_000);
        let held: Vec<_> = offsets
            .iter()
            .filter_map(|o| TcpListener::bind(("127.0.0.1", base + o)).ok())
            .collect();
        if held.len() == offsets.len() {
            return base;
        }
    }
    panic!("no free block of ports");
}

/// Continuous load: person registrations submitted one by one to one node from a thread, each
/// acknowledged one remembered.
pub struct Load {
    acknowledged: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(c: &TestCluster, node: usize, prefix: &str) -> Load {
        let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (ack, halt, url) = (acknowledged.clone(), stop.clone(), c.url(node));
        let key = ledger_client::keys::load(&c.key_path("CN-44")).unwrap();
        let ledger = c.ledger_id();
        let prefix = prefix.to_string();
        let thread = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let mut client = ledger_client::Client::connect(&url).await.unwrap();
                    // Bounded: at most 2,000 requests, or until told to stop.
                    for i in 0..2000 {
                        if halt.load(Ordering::Relaxed) {
                            return;
                        }
                        let worker = format!("{prefix}-{i}");
                        let (kind, _) = parse_json_event(&person(&worker, "CN-44")).unwrap();
                        let body = EventBody {
                            signed_at: ledger_client::jsonl::now(),
                            kind,
                        };
                        // A failed request (no leader during an election) is simply not
                        // acknowledged; back off a little, as any client would, instead of
                        // spinning through the bound.
                        match client
                            .submit(vec![Envelope::sign(&ledger, &body, &[&key])])
                            .await
                        {
                            Ok(out) if matches!(out[0], SubmitOutcome::Accepted { .. }) => {
                                ack.lock().unwrap().push(worker)
                            }
                            _ => tokio::time::sleep(Duration::from_millis(50)).await,
                        }
                    }
                })
        });
        Load {
            acknowledged,
            stop,
            thread: Some(thread),
        }
    }

    pub fn count(&self) -> usize {
        self.acknowledged.lock().unwrap().len()
    }

    pub fn wait_for(&self, n: usize, what: &str) {
        wait_for(what, || self.count() >= n);
    }

    /// Stops the load; the acknowledged workers.
    pub fn stop(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.acknowledged.lock().unwrap().clone()
    }
}
