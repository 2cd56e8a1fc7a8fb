//! Replicas as hosts: each replica process in a network namespace of its own, joined to the
//! database's by a veth pair and a bridge, so that cutting a replica off is taking its link
//! down (`ip link set … down`); where the kernel refuses namespaces, each replica reaches the
//! database through a TCP proxy of its own that the test holds (nothing passes, nothing is
//! closed) to cut it.
//!
//! `SAGAFLOW_REPLICAS_NET=netns` or `=proxy` picks one; by default namespaces are tried
//! first. Names carry the prefix `sfr`, this process's id and a sequence number; they are
//! removed when the [`Network`] is dropped (a failed assertion unwinds through it), and names
//! left behind by a process that died (SIGKILL, a crash of the test binary) are swept at the
//! start of the next one.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::support::proxy::Proxy;

/// How the replicas are set apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A network namespace per replica, a veth pair to a bridge in the test's namespace.
    Netns,
    /// A TCP proxy per replica, in the test's process.
    Proxy,
}

/// The replicas' hosts and their links to the database.
pub(crate) struct Network {
    mode: Mode,
    /// Namespace mode: the bridge, and each replica's namespace and host-side veth end.
    bridge: String,
    hosts: Vec<(String, String)>,
    /// Namespace mode: the first three octets of the subnet (`10.a.b`).
    subnet: String,
    /// Proxy mode: one proxy per replica, once [`Network::reach`] has started them.
    proxies: Vec<Proxy>,
    port: u16,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn ip_out(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The process id a name of ours carries (`sfr-<pid>-…`, `sfrb<pid>x…`, `sfrh<pid>x…`).
fn pid_of(name: &str) -> Option<u32> {
    let rest = name
        .strip_prefix("sfr-")
        .or_else(|| name.strip_prefix("sfrb"))
        .or_else(|| name.strip_prefix("sfrh"))
        .or_else(|| name.strip_prefix("sfrn"))?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes the namespaces and links that processes now dead left behind.
fn sweep() {
    let me = std::process::id();
    for line in ip_out(&["netns", "list"]).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if let Some(pid) = pid_of(name)
            && pid != me
            && !alive(pid)
        {
            let _ = ip(&["netns", "del", name]);
        }
    }
    for line in ip_out(&["-o", "link", "show"]).lines() {
        // `7: sfrh123x04@if6: <…>`
        let Some(name) = line.split(':').nth(1).map(str::trim) else {
            continue;
        };
        let name = name.split('@').next().unwrap_or(name);
        if let Some(pid) = pid_of(name)
            && pid != me
            && !alive(pid)
        {
            let _ = ip(&["link", "del", name]);
        }
    }
}

/// Whether this machine lets the test make network namespaces.
fn namespaces_work() -> bool {
    let probe = format!("sfr-{}-probe", std::process::id());
    let made = ip(&["netns", "add", &probe]).is_ok();
    if made {
        let _ = ip(&["netns", "del", &probe]);
    }
    made
}

impl Network {
    /// Hosts for `replicas` replicas (at most 9), in the mode the environment asks for or the
    /// kernel allows.
    pub(crate) fn new(replicas: usize) -> Network {
        assert!(replicas <= 9, "one digit names a replica's link");
        sweep();
        let mode = match std::env::var("SAGAFLOW_REPLICAS_NET").as_deref() {
            Ok("proxy") => Mode::Proxy,
            Ok("netns") => Mode::Netns,
            _ if namespaces_work() => Mode::Netns,
            _ => Mode::Proxy,
        };
        let pid = std::process::id();
        let seq = SEQ.fetch_add(1, Ordering::SeqCst);
        assert!(seq < 100, "two digits name a test's network");
        let mut network = Network {
            mode,
            bridge: format!("sfrb{pid}x{seq}"),
            hosts: Vec::new(),
            subnet: String::new(),
            proxies: Vec::new(),
            port: 0,
        };
        if mode == Mode::Netns {
            // 10.a.b.0/24 from the process id and the sequence: distinct between tests of
            // this process and, but for a rare clash, between processes.
            let x = (pid.wrapping_mul(100).wrapping_add(seq)) & 0x3fff;
            network.subnet = format!("10.{}.{}", 100 + (x >> 8), x & 0xff);
            network
                .build(replicas, pid, seq)
                .unwrap_or_else(|e| panic!("cannot make the replicas' network: {e}"));
        }
        network
    }

    fn build(&mut self, replicas: usize, pid: u32, seq: u32) -> Result<(), String> {
        let bridge = self.bridge.clone();
        // Left by a dead process that had this one's id (the sweep spares this id's names).
        let _ = ip(&["link", "del", &bridge]);
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}.1/24", self.subnet),
            "dev",
            &bridge,
        ])?;
        ip(&["link", "set", &bridge, "up"])?;
        for i in 0..replicas {
            let ns = format!("sfr-{pid}-{seq}-{i}");
            let host = format!("sfrh{pid}x{seq:02}{i}");
            let peer = format!("sfrn{pid}x{seq:02}{i}");
            let _ = ip(&["link", "del", &host]);
            let _ = ip(&["netns", "del", &ns]);
            ip(&["netns", "add", &ns])?;
            self.hosts.push((ns.clone(), host.clone()));
            ip(&["link", "add", &host, "type", "veth", "peer", "name", &peer])?;
            ip(&["link", "set", &host, "master", &bridge])?;
            ip(&["link", "set", &host, "up"])?;
            ip(&["link", "set", &peer, "netns", &ns])?;
            let address = format!("{}.{}/24", self.subnet, 10 + i);
            ip(&["-n", &ns, "addr", "add", &address, "dev", &peer])?;
            ip(&["-n", &ns, "link", "set", &peer, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// How the replicas are set apart.
    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }

    /// The server's settings for this network: where it listens, and (namespace mode) a
    /// `pg_hba.conf` line that lets the replicas' subnet in.
    pub(crate) fn listen_addresses(&self) -> String {
        match self.mode {
            Mode::Netns => format!("127.0.0.1,{}.1", self.subnet),
            Mode::Proxy => "127.0.0.1".to_owned(),
        }
    }

    /// The `pg_hba.conf` line that lets the replicas in, if they need one.
    pub(crate) fn hba_line(&self) -> Option<String> {
        (self.mode == Mode::Netns).then(|| format!("host all all {}.0/24 trust\n", self.subnet))
    }

    /// Links the replicas to the server on `port` (proxy mode: starts their proxies).
    pub(crate) async fn reach(&mut self, port: u16, replicas: usize) {
        self.port = port;
        if self.mode == Mode::Proxy {
            for _ in 0..replicas {
                self.proxies
                    .push(Proxy::start(format!("127.0.0.1:{port}")).await);
            }
        }
    }

    /// The database's URL as replica `i` reaches it.
    pub(crate) fn url(&self, i: usize) -> String {
        match self.mode {
            Mode::Netns => format!(
                "postgres://postgres@{}.1:{}/postgres",
                self.subnet, self.port
            ),
            Mode::Proxy => format!(
                "postgres://postgres@127.0.0.1:{}/postgres",
                self.proxies[i].port
            ),
        }
    }

    /// A command that runs `program` on replica `i`'s host.
    pub(crate) fn command(&self, i: usize, program: &std::path::Path) -> Command {
        match self.mode {
            Mode::Netns => {
                // `ip netns exec` enters the namespace and execs the program: the child's pid
                // is the replica's, and a SIGKILL reaches the replica itself.
                let mut command = Command::new("ip");
                command.args(["netns", "exec", &self.hosts[i].0]);
                command.arg(program);
                command
            }
            Mode::Proxy => Command::new(program),
        }
    }

    /// Cuts replica `i` off the database (`true`) or brings its link back.
    pub(crate) fn cut(&self, i: usize, down: bool) {
        match self.mode {
            Mode::Netns => {
                let state = if down { "down" } else { "up" };
                ip(&["link", "set", &self.hosts[i].1, state])
                    .unwrap_or_else(|e| panic!("cannot set replica {i}'s link {state}: {e}"));
            }
            Mode::Proxy => self.proxies[i].hold(down),
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Each replica's veth pair goes with its host end (or with its namespace).
        for (ns, host) in &self.hosts {
            let _ = ip(&["link", "del", host]);
            let _ = ip(&["netns", "del", ns]);
        }
        if self.mode == Mode::Netns {
            let _ = ip(&["link", "del", &self.bridge]);
        }
    }
}
