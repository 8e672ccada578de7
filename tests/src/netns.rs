//! Test hosts in network namespaces: one namespace per node and one for the clients, joined by a
//! full mesh of veth pairs (one point-to-point link per pair of hosts, no forwarding), so that a
//! test can cut exactly the link between two hosts, isolate one host, or flap links, and heal them.
//! Each host has one address (10.231.0.N/32 on its loopback) and a route to every other host
//! over their direct link; with a link down, the two hosts cannot reach each other at all.
//!
//! Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and `ip` from iproute2. [`Mesh::create`] says
//! why when namespaces cannot be made, so a test can report that it did not run.

use std::process::Command;

/// The first three octets of every host address (the hosts live only inside the namespaces that
/// the test makes; nothing outside this machine is ever addressed).
const SUBNET: &str = "10.231.0";

/// A host of the mesh: a node (0-based) or the clients' namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    Node(usize),
    Client,
}

pub struct Mesh {
    prefix: String,
    nodes: usize,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running `ip`: {e} (is iproute2 installed?)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Mesh {
    /// Makes `nodes` node namespaces and a client namespace, fully meshed. Err says why not.
    pub fn create(nodes: usize) -> Result<Mesh, String> {
        let prefix = format!("pcl{}", std::process::id() % 100_000);
        let mesh = Mesh { prefix, nodes };
        mesh.build().inspect_err(|_| mesh.remove())?;
        Ok(mesh)
    }

    fn hosts(&self) -> Vec<Host> {
        let mut h: Vec<Host> = (0..self.nodes).map(Host::Node).collect();
        h.push(Host::Client);
        h
    }

    /// The namespace of a host.
    pub fn netns(&self, h: Host) -> String {
        match h {
            Host::Node(i) => format!("{}n{}", self.prefix, i + 1),
            Host::Client => format!("{}c", self.prefix),
        }
    }

    /// The address of a host.
    pub fn address(&self, h: Host) -> String {
        match h {
            Host::Node(i) => format!("{SUBNET}.{}", i + 1),
            Host::Client => format!("{SUBNET}.254"),
        }
    }

    fn tag(h: Host) -> String {
        match h {
            Host::Node(i) => format!("n{}", i + 1),
            Host::Client => "c".into(),
        }
    }

    /// The name, in its host's namespace, of the link to `b` (unique there: one link per peer).
    fn link(b: Host) -> String {
        format!("to{}", Self::tag(b))
    }

    fn build(&self) -> Result<(), String> {
        for h in self.hosts() {
            let ns = self.netns(h);
            ip(&["netns", "add", &ns])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            let addr = format!("{}/32", self.address(h));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "lo"])?;
        }
        let hosts = self.hosts();
        for (k, &a) in hosts.iter().enumerate() {
            for &b in &hosts[k + 1..] {
                self.join(a, b)?;
            }
        }
        Ok(())
    }

    /// One veth pair between `a` and `b`, each end in its host's namespace, with a route to the
    /// other host's address over it.
    fn join(&self, a: Host, b: Host) -> Result<(), String> {
        let (na, nb) = (self.netns(a), self.netns(b));
        let (la, lb) = (Self::link(b), Self::link(a));
        ip(&[
            "link", "add", "name", &la, "netns", &na, "type", "veth", "peer", "name", &lb, "netns",
            &nb,
        ])?;
        for (ns, link, own, other) in [(&na, &la, a, b), (&nb, &lb, b, a)] {
            ip(&["-n", ns, "link", "set", link, "up"])?;
            let to = format!("{}/32", self.address(other));
            let src = self.address(own);
            ip(&["-n", ns, "route", "add", &to, "dev", link, "src", &src])?;
        }
        Ok(())
    }

    fn set_link(&self, a: Host, b: Host, up: bool) {
        let state = if up { "up" } else { "down" };
        for (x, y) in [(a, b), (b, a)] {
            ip(&["-n", &self.netns(x), "link", "set", &Self::link(y), state])
                .expect("changing a test link");
        }
        if up {
            // A link brought back up has lost its route; put it back.
            for (x, y) in [(a, b), (b, a)] {
                let to = format!("{}/32", self.address(y));
                let src = self.address(x);
                let _ = ip(&[
                    "-n",
                    &self.netns(x),
                    "route",
                    "replace",
                    &to,
                    "dev",
                    &Self::link(y),
                    "src",
                    &src,
                ]);
            }
        }
    }

    /// Cuts the one link between `a` and `b`: they no longer reach each other, everyone else does.
    pub fn cut(&self, a: Host, b: Host) {
        self.set_link(a, b, false);
    }

    /// Restores the link between `a` and `b`.
    pub fn heal(&self, a: Host, b: Host) {
        self.set_link(a, b, true);
    }

    /// Cuts node `i` from every other node (the clients still reach it).
    pub fn isolate(&self, i: usize) {
        for j in (0..self.nodes).filter(|j| *j != i) {
            self.cut(Host::Node(i), Host::Node(j));
        }
    }

    /// Every link up again.
    pub fn heal_all(&self) {
        let hosts = self.hosts();
        for (k, &a) in hosts.iter().enumerate() {
            for &b in &hosts[k + 1..] {
                self.heal(a, b);
            }
        }
    }

    /// Moves the calling thread into the clients' namespace: sockets it opens from now on reach
    /// the nodes' addresses. Use it on a thread of its own.
    pub fn enter_client_namespace(&self) {
        let path = format!("/var/run/netns/{}", self.netns(Host::Client));
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        use std::os::fd::AsRawFd;
        // SAFETY: setns on a valid namespace fd only changes this thread's network namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }

    fn remove(&self) {
        for h in self.hosts() {
            let _ = ip(&["netns", "delete", &self.netns(h)]);
        }
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth ends, and with them the pairs.
        self.remove();
    }
}
