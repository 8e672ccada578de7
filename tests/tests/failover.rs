//! Riding through failover with real processes: the leader of a 3-node cluster is SIGKILLed
//! under load and the CLI, submitting through another node at once, succeeds without the user
//! retrying; a file submitted twice, or cut half-way and submitted again, appends each event
//! once and exits 0; `ledger-node dev` keeps the surviving nodes when one dies.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use ledger_tests::*;

#[test]
fn the_cli_rides_through_a_leader_killed_under_load() {
    let mut c = TestCluster::start(3);
    let agency = c.key_path("CN-44");
    wait_for("a leader", || c.leader_seen_by(0).is_some());
    let leader = c.leader_seen_by(0).unwrap();
    let follower = (leader + 1) % 3;
    let cwd = c.client_config();
    let lines: Vec<String> = (0..30)
        .map(|i| person(&format!("W-cli-{i}"), "CN-44"))
        .collect();
    let file = c.dir.path().join("people.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();

    let load = Load::start(&c, follower, "W-load");
    load.wait_for(20, "load before the kill");
    c.kill9(leader);
    // At once, through a follower whose leader has just died: the user runs submit once.
    let out = client_retrying(
        &cwd,
        &c.url(follower),
        &[
            "--json",
            "submit",
            "--key",
            agency.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "submit must ride through the failover: {}",
        stderr(&out)
    );
    // What the CLI waited for, for whoever reads the test output.
    eprintln!("submit through node {}:\n{}", follower + 1, stderr(&out));
    let receipts = receipts(&out);
    assert_eq!(receipts.len(), 30);
    assert!(
        receipts.iter().all(|r| r["index"].as_u64().is_some()),
        "{receipts:?}"
    );
    let at_submit = load.count();
    load.wait_for(at_submit + 10, "the load to go on under a new leader");
    let mut acknowledged = load.stop();
    acknowledged.extend((0..30).map(|i| format!("W-cli-{i}")));

    // The old leader comes back and catches up: every acknowledged event on every node.
    c.spawn(leader);
    c.all_identical_with(&agency, &acknowledged);
}

fn submit_file(l: &TestLedger, key: &Path, file: &Path) -> std::process::Output {
    l.client(&[
        "--json",
        "submit",
        "--key",
        key.to_str().unwrap(),
        file.to_str().unwrap(),
    ])
}

fn field(receipts: &[serde_json::Value], name: &str) -> Vec<serde_json::Value> {
    receipts.iter().map(|r| r[name].clone()).collect()
}

#[test]
fn a_file_submitted_again_or_after_a_cut_appends_each_event_once() {
    let l = TestLedger::start();
    let (employer, employer_pub) = l.keygen("employer");
    l.register_key("CN-44", "employer", "E-1", &employer_pub);
    let out = l.submit(
        &[&l.key_path("CN-44")],
        &[person("W-1", "CN-44"), person("W-2", "CN-44")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let payroll = |months: std::ops::RangeInclusive<u32>| -> Vec<String> {
        months
            .map(|m| {
                declaration(
                    "E-1",
                    "CN-44",
                    &format!("2024-{m:02}"),
                    &["W-1", "W-2"],
                    "5000.00",
                )
            })
            .collect()
    };

    // The same file twice: each run signs anew (new signed_at, new salts, new ids), both exit
    // 0, the second answers every line with the committed receipt and appends nothing.
    let file = l.jsonl("payroll.jsonl", &payroll(1..=6));
    let first = submit_file(&l, &employer, &file);
    assert!(first.status.success(), "{}", stderr(&first));
    let size = l.log_size();
    let second = submit_file(&l, &employer, &file);
    assert!(second.status.success(), "{}", stderr(&second));
    let (a, b) = (receipts(&first), receipts(&second));
    assert_eq!(b.len(), 6);
    assert!(a.iter().all(|r| r["already_recorded"] == false), "{a:?}");
    assert!(b.iter().all(|r| r["already_recorded"] == true), "{b:?}");
    for name in ["event_id", "index", "appended_at"] {
        assert_eq!(field(&a, name), field(&b, name), "the committed {name}");
    }
    assert_eq!(l.log_size(), size, "nothing appended twice");

    // A file cut half-way (the first half got through), then the whole file: each event once.
    let lines = payroll(7..=12);
    let half = l.jsonl("half.jsonl", &lines[..3]);
    let whole = l.jsonl("whole.jsonl", &lines);
    let cut = submit_file(&l, &employer, &half);
    assert!(cut.status.success(), "{}", stderr(&cut));
    let rerun = submit_file(&l, &employer, &whole);
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    let (c, r) = (receipts(&cut), receipts(&rerun));
    assert_eq!(field(&c, "event_id"), field(&r[..3], "event_id"));
    assert!(r[..3].iter().all(|x| x["already_recorded"] == true));
    assert!(r[3..].iter().all(|x| x["already_recorded"] == false));
    assert_eq!(l.log_size(), size + 6, "six new declarations, each once");

    // The text form says so too.
    let text = l.client(&[
        "submit",
        "--key",
        employer.to_str().unwrap(),
        whole.to_str().unwrap(),
    ]);
    assert!(text.status.success(), "{}", stderr(&text));
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("already recorded as #"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
    assert!(
        stderr(&text).contains("0 appended, 6 already recorded, 0 refused"),
        "{}",
        stderr(&text)
    );

    // A different declaration for a month already declared is still refused, non-zero.
    let other = declaration("E-1", "CN-44", "2024-01", &["W-1", "W-2"], "6000.00");
    let refused = l.submit(&[&employer], &[other]);
    assert!(!refused.status.success());
    assert_eq!(
        receipts(&refused)[0]["refused"]["code"],
        "duplicate_declaration"
    );
    assert_eq!(l.log_size(), size + 6);
}

/// The ledger-node processes `dev` started: (pid, command line).
fn dev_nodes(dev: u32) -> Vec<(u32, String)> {
    let mut nodes = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{dev}/task"))
        .unwrap()
        .flatten()
    {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in children.split_whitespace().filter_map(|p| p.parse().ok()) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            nodes.push((pid, String::from_utf8_lossy(&cmdline).replace('\0', " ")));
        }
    }
    nodes
}

fn leader_of(config: &Path, url: &str) -> Option<usize> {
    let out = client_with_config(config, url, &["--json", "status"]);
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["leader"].as_str()?.strip_prefix("raft ")?.parse().ok()
}

#[test]
fn dev_keeps_the_survivors_when_a_node_dies() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port_block(&[0, 1, 2, 100, 101, 102]);
    let mut dev = Command::new(&binaries().node)
        .args(["dev", "--data-dir", dir.path().to_str().unwrap()])
        .args(["--base-port", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // dev's report, its start-up lines and the nodes' logs: collect them all.
    let said = Arc::new(Mutex::new(String::new()));
    let collect = |pipe: Box<dyn std::io::Read + Send>| {
        let said = said.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = said.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        })
    };
    let reader = collect(Box::new(dev.stderr.take().unwrap()));
    let out_reader = collect(Box::new(dev.stdout.take().unwrap()));
    // dev watches its nodes once it has said it is ready (before that it is still starting them).
    wait_for("dev to be ready", || {
        said.lock().unwrap().contains("press Ctrl-C to stop")
    });
    let url = |n: usize| format!("https://127.0.0.1:{}", port + n as u16 - 1);
    // The client config dev writes: the nodes' keys to trust.
    let cfg = dir.path().join("client.toml");
    wait_for("a leader", || {
        cfg.exists() && leader_of(&cfg, &url(1)).is_some()
    });
    let leader = leader_of(&cfg, &url(1)).unwrap();
    let config = format!("node-{leader}/node.toml");
    let (pid, _) = dev_nodes(dev.id())
        .into_iter()
        .find(|(_, cmd)| cmd.contains(&config))
        .expect("the leader's process");
    assert!(Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success());

    let start = std::time::Instant::now();
    while !{
        let s = said.lock().unwrap();
        s.contains(&format!("node-{leader} (")) && s.contains("killed by signal 9 (SIGKILL)")
    } {
        assert!(
            start.elapsed() < DEADLINE,
            "dev did not report the death of node-{leader} (pid {pid}); it said:\n{}",
            said.lock().unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    wait_for("dev to report the death", || {
        let s = said.lock().unwrap();
        s.contains(&format!("node-{leader} (")) && s.contains("killed by signal 9 (SIGKILL)")
    });
    assert!(
        said.lock().unwrap().contains("still serving: node-"),
        "{}",
        said.lock().unwrap()
    );
    assert!(dev.try_wait().unwrap().is_none(), "dev keeps running");
    let survivor = if leader == 1 { 2 } else { 1 };
    wait_for("the survivors to elect a new leader", || {
        leader_of(&cfg, &url(survivor)).is_some_and(|l| l != leader)
    });
    let agency = dir.path().join("keys").join("CN-44.key");
    let events = dir.path().join("p.jsonl");
    std::fs::write(&events, person("W-SURVIVOR", "CN-44") + "\n").unwrap();
    let out = client_with_config(
        &cfg,
        &url(survivor),
        &[
            "submit",
            "--key",
            agency.to_str().unwrap(),
            events.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // SIGTERM still stops everything.
    assert!(Command::new("kill")
        .args(["-TERM", &dev.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(dev.wait().unwrap().success(), "dev stops cleanly");
    reader.join().unwrap();
    out_reader.join().unwrap();
    assert!(
        !client_with_config(&cfg, &url(survivor), &["--retry-for", "0", "status"])
            .status
            .success(),
        "the survivors were stopped with dev"
    );
}
