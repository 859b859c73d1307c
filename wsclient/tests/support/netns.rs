//! A throw-away network namespace joined to the test's (root) namespace by
//! a veth pair, for network-fault tests: a real peer server runs inside it
//! (`ip netns exec`), the client stays outside and reaches it over the
//! veth, and faults are put on the link with `tc` (netem when the kernel
//! has it, else tbf) and nftables (random loss, blackholes).
//!
//! Everything needs root and `ip`; [`NetNs::create`] returns the reason to
//! skip instead of failing when they are missing. Names (namespace,
//! interfaces, a /30 in 198.18.0.0/15) are unique per process and call;
//! [`Drop`] kills the peer and deletes the namespace and the veth pair,
//! also when the test panics. Only `std` is used.
#![allow(dead_code)]

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Runs a command, returning its stdout or a message with its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs `program` with `input` on stdin.
pub fn run_with_input(program: &str, args: &[&str], input: &str) -> Result<String, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())
        .map_err(|e| format!("writing to `{program}`: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for `{program}`: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}\ninput:\n{input}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("CARGO_MANIFEST_DIR has a parent")
        .to_path_buf()
}

/// Whether `nft` is installed (nftables userspace).
pub fn has_nft() -> bool {
    run("nft", &["--version"]).is_ok()
}

/// A /30 in the benchmarking range 198.18.0.0/15 (32,768 of them) that no
/// interface of this namespace uses yet, starting from a slot derived from
/// the pid and the call number (so that concurrent test processes, in other
/// checkouts too, pick different ones).
fn free_subnet(pid: u32, n: u32) -> Result<Ipv4Addr, String> {
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    let start = pid.wrapping_mul(64).wrapping_add(n);
    for attempt in 0..64u32 {
        let slot = start.wrapping_add(attempt.wrapping_mul(7919)) % 32_768;
        let net = Ipv4Addr::from(base + slot * 4);
        let used = run(
            "ip",
            &["-o", "-4", "addr", "show", "to", &format!("{net}/30")],
        )?;
        if used.trim().is_empty() {
            return Ok(net);
        }
    }
    Err("no free /30 in 198.18.0.0/15".into())
}

/// A namespace `name` holding `ns_if` (`ns_ip`), joined to `host_if`
/// (`host_ip`) in the test's namespace.
pub struct NetNs {
    pub name: String,
    pub host_if: String,
    pub ns_if: String,
    pub host_ip: Ipv4Addr,
    pub ns_ip: Ipv4Addr,
    peer: Option<Child>,
}

impl NetNs {
    /// Creates the namespace and the veth pair, addresses up. `Err` is the
    /// reason to skip (not root, no `ip`, namespaces refused...).
    pub fn create() -> Result<NetNs, String> {
        static N: AtomicU32 = AtomicU32::new(0);
        if !is_root() {
            return Err("not running as root (network namespaces need root)".into());
        }
        run("ip", &["-V"]).map_err(|e| format!("no usable `ip` (iproute2): {e}"))?;
        let pid = std::process::id();
        let n = N.fetch_add(1, Ordering::Relaxed);
        let net = free_subnet(pid, n)?;
        let ns = NetNs {
            name: format!("wsclient-{pid}-{n}"),
            host_if: format!("wsc{pid}x{n}h"),
            ns_if: format!("wsc{pid}x{n}n"),
            host_ip: Ipv4Addr::from(u32::from(net) + 1),
            ns_ip: Ipv4Addr::from(u32::from(net) + 2),
            peer: None,
        };
        if ns.host_if.len() > 15 {
            return Err(format!("interface name {} too long", ns.host_if));
        }
        run("ip", &["netns", "add", &ns.name])
            .map_err(|e| format!("cannot create a network namespace: {e}"))?;
        // From here on, Drop cleans up.
        let host_addr = format!("{}/30", ns.host_ip);
        let ns_addr = format!("{}/30", ns.ns_ip);
        let steps: [&[&str]; 7] = [
            &[
                "link",
                "add",
                &ns.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &ns.ns_if,
            ],
            &["link", "set", &ns.ns_if, "netns", &ns.name],
            &["addr", "add", &host_addr, "dev", &ns.host_if],
            &["link", "set", &ns.host_if, "up"],
            &["-n", &ns.name, "addr", "add", &ns_addr, "dev", &ns.ns_if],
            &["-n", &ns.name, "link", "set", &ns.ns_if, "up"],
            &["-n", &ns.name, "link", "set", "lo", "up"],
        ];
        for args in steps {
            run("ip", args).map_err(|e| format!("cannot set up the veth pair: {e}"))?;
        }
        Ok(ns)
    }

    /// Runs `program args` inside the namespace.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["netns", "exec", &self.name, program];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Whether the kernel has the netem qdisc (tried on the host end and
    /// removed again).
    pub fn has_netem(&self) -> bool {
        let ok = run(
            "tc",
            &[
                "qdisc",
                "add",
                "dev",
                &self.host_if,
                "root",
                "netem",
                "delay",
                "1ms",
            ],
        )
        .is_ok();
        if ok {
            let _ = run("tc", &["qdisc", "del", "dev", &self.host_if, "root"]);
        }
        ok
    }

    /// Puts `qdisc` (e.g. `["tbf", "rate", "8mbit", ...]`) as the root qdisc
    /// of BOTH ends of the link, so both directions are shaped.
    pub fn qdisc_both(&self, qdisc: &[&str]) -> Result<(), String> {
        let mut host = vec!["qdisc", "add", "dev", &self.host_if, "root"];
        host.extend_from_slice(qdisc);
        run("tc", &host)?;
        let mut inner = vec!["qdisc", "add", "dev", &self.ns_if, "root"];
        inner.extend_from_slice(qdisc);
        self.exec("tc", &inner)?;
        Ok(())
    }

    /// `tc -s qdisc` of both ends, for the test's log.
    pub fn qdisc_stats(&self) -> String {
        let host = run("tc", &["-s", "qdisc", "show", "dev", &self.host_if]).unwrap_or_default();
        let inner = self
            .exec("tc", &["-s", "qdisc", "show", "dev", &self.ns_if])
            .unwrap_or_default();
        format!("host end:\n{host}namespace end:\n{inner}")
    }

    /// Loads an nftables script into the namespace's own ruleset.
    pub fn nft(&self, script: &str) -> Result<(), String> {
        run_with_input(
            "ip",
            &["netns", "exec", &self.name, "nft", "-f", "-"],
            script,
        )
        .map(|_| ())
    }

    /// `nft list table inet NAME` in the namespace.
    pub fn nft_list(&self, table: &str) -> Result<String, String> {
        self.exec("nft", &["list", "table", "inet", table])
    }

    /// Sets the namespace end of the link down or up.
    pub fn ns_link(&self, up: bool) -> Result<(), String> {
        run(
            "ip",
            &[
                "-n",
                &self.name,
                "link",
                "set",
                &self.ns_if,
                if up { "up" } else { "down" },
            ],
        )
        .map(|_| ())
    }

    /// Starts `peers/py_server.py` (Python `websockets`) inside the
    /// namespace on `ns_ip`, and returns its port. `Err` when the peer is
    /// not installed or does not start.
    pub fn start_python_peer(&mut self, extra_args: &[&str]) -> Result<u16, String> {
        let root = workspace_root();
        let python = root.join(".venv-peers/bin/python");
        if !python.exists() {
            return Err(format!(
                "{} does not exist; run `scripts/install-peers.sh`",
                python.display()
            ));
        }
        let host = self.ns_ip.to_string();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(&python)
            .arg(root.join("peers/py_server.py"))
            .args(["--port", "0", "--host", &host])
            .args(extra_args)
            .current_dir(&root)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the peer in the namespace: {e}"))?;
        let result = crate::support::peers::wait_for_port(&mut child, "netns");
        self.peer = Some(child);
        result
    }

    /// `ws://NS_IP:PORT{path}`.
    pub fn url(&self, port: u16, path: &str) -> String {
        format!("ws://{}:{port}{path}", self.ns_ip)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Some(mut child) = self.peer.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Deleting the namespace deletes its veth end, which deletes the
        // pair; the host end is removed explicitly in case it was never
        // moved.
        let _ = run("ip", &["netns", "del", &self.name]);
        let _ = run("ip", &["link", "del", &self.host_if]);
    }
}
