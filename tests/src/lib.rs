//! Harness for the workspace integration tests: real `ledger-node` processes on loopback, driven
//! by the real `ledger-client` binary (and its SDK), exactly as a user would. Nodes are killed
//! with SIGKILL to prove durability. Every wait is a condition polled against a deadline, never a
//! fixed sleep; every node gets its own free port so tests run in parallel.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use ledger_core::envelope::format_secret_key;
use ledger_core::event::PublicKeyBytes;
use ledger_core::genesis::{Genesis, GenesisJurisdiction};

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
        b
    })
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("addr")
        .port()
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
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl TestLedger {
    pub fn start() -> TestLedger {
        let dir = tempfile::tempdir().expect("tempdir");
        make_genesis(dir.path(), "pcl-test");
        let port = free_port();
        std::fs::write(
            dir.path().join("node.toml"),
            format!(
                "node_id = \"node-1\"\njurisdiction = \"CN-44\"\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\ngenesis = \"genesis.toml\"\n"
            ),
        )
        .unwrap();
        let log = dir.path().join("node.log");
        let mut ledger = TestLedger {
            dir,
            port,
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
        format!("http://127.0.0.1:{}", self.port)
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

/// Runs the ledger-client binary with `--node url`.
pub fn client(url: &str, args: &[&str]) -> Output {
    Command::new(&binaries().client)
        .arg("--node")
        .arg(url)
        .args(args)
        .output()
        .expect("run ledger-client")
}

fn toml_genesis(g: &Genesis) -> String {
    let mut s = format!("ledger = \"{}\"\n", g.ledger);
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

/// Agency keys (one per [`JURISDICTIONS`]) in `dir/keys` and the genesis file `dir/genesis.toml`.
pub fn make_genesis(dir: &Path, ledger: &str) {
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
    };
    std::fs::write(dir.join("genesis.toml"), toml_genesis(&genesis)).unwrap();
}

/// A replicated ledger: `n` ledger-node processes with `[raft]` sections, on loopback ports.
pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub ports: Vec<u16>,
    pub children: Vec<Option<Child>>,
}

impl TestCluster {
    pub fn start(n: usize) -> TestCluster {
        Self::start_with(n, "")
    }

    /// Like [`TestCluster::start`], with extra keys in every node's `[raft]` section.
    pub fn start_with(n: usize, raft_extra: &str) -> TestCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        make_genesis(dir.path(), "pcl-cluster-test");
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let raft_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut members = String::new();
        for i in 0..n {
            members.push_str(&format!(
                "\n[[raft.members]]\nid = {}\nraft_address = \"http://127.0.0.1:{}\"\npublic_address = \"http://127.0.0.1:{}\"\n",
                i + 1,
                raft_ports[i],
                ports[i]
            ));
        }
        for i in 0..n {
            let config = format!(
                "node_id = \"node-{id}\"\njurisdiction = \"CN-44\"\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"node-{id}\"\ngenesis = \"genesis.toml\"\ntrust = \"trust.txt\"\n\n[raft]\nid = {id}\nlisten = \"127.0.0.1:{raft}\"\n{raft_extra}\n{members}",
                id = i + 1,
                port = ports[i],
                raft = raft_ports[i],
            );
            std::fs::write(dir.path().join(format!("node-{}.toml", i + 1)), config).unwrap();
        }
        let mut cluster = TestCluster {
            dir,
            ports,
            children: (0..n).map(|_| None).collect(),
        };
        for i in 0..n {
            cluster.spawn(i);
        }
        for i in 0..n {
            let url = cluster.url(i);
            wait_for("a node to serve", || {
                client(&url, &["status", "--json"]).status.success()
            });
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

    /// The trust file of the cluster's node keys.
    pub fn trust_path(&self) -> PathBuf {
        self.dir.path().join("trust.txt")
    }

    pub fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
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
        let child = Command::new(&binaries().node)
            .arg("run")
            .arg("--config")
            .arg(self.dir.path().join(format!("node-{}.toml", i + 1)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start ledger-node");
        self.children[i] = Some(child);
    }

    pub fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            c.kill().expect("SIGKILL");
            c.wait().expect("reap");
        }
    }

    pub fn status(&self, i: usize) -> Option<serde_json::Value> {
        let out = client(&self.url(i), &["status", "--json"]);
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

    /// Submits `lines` through node `i`, signed by `key`.
    pub fn submit(&self, i: usize, key: &Path, lines: &[String]) -> Output {
        let file = self
            .dir
            .path()
            .join(format!("submit-{}.jsonl", rand::random::<u64>()));
        std::fs::write(&file, lines.join("\n") + "\n").unwrap();
        client(
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
