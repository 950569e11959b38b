//! A world: a few network namespaces joined by veth pairs, with their own `/etc/netns/<ns>` files,
//! daemons and in-process servers. Everything a `World` makes is removed when it drops, also when
//! the test panics; leftovers of a crashed earlier run are swept before the first world is built.
//!
//! Safety rules this module enforces (the suite must never touch the machine's real network):
//! - namespaces are named `kr-<pid>-<seq>-<role>`, so parallel tests and concurrent runs never
//!   collide, and the sweep can tell a dead run's namespaces from a live one's;
//! - veth pairs are created directly inside their namespaces (`ip link add … netns …`), so no test
//!   interface ever appears in the root namespace;
//! - no namespace gets a default route: links carry only the test subnets `10.253.<n>.0/24` and
//!   `fd00:253:<n>::/64`, so a client can reach nothing outside its world;
//! - every daemon runs under `timeout 120`, every wait is bounded.

use std::fs::{self, File};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::child;
use crate::fixture::Fixture;
use crate::sys;

/// Upper bound on any daemon's life: a run killed without unwinding leaves nothing running long.
pub const DAEMON_LIFETIME_SECS: u64 = 120;
/// How long a daemon may take to say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// Start of every world's temp dir name, followed by the owning pid.
const TEMP_PREFIX: &str = "kube-reach-e2e-";

static SEQ: AtomicUsize = AtomicUsize::new(0);
static SWEEP: Once = Once::new();

/// One network namespace of a world; `role` is a short word (`c`, `s`, `p`, `r`).
#[derive(Clone, Debug)]
pub struct Ns {
    pub name: String,
    pub role: String,
}

/// The two ends of a veth link: side `a` has host number 1, side `b` host number 2.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    pub a4: Ipv4Addr,
    pub b4: Ipv4Addr,
    pub a6: Ipv6Addr,
    pub b6: Ipv6Addr,
}

/// Which address families a link carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
    Dual,
}

/// What a client command printed, how it ended and how long it took.
#[derive(Debug, Clone)]
pub struct Ran {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Ran {
    /// Both streams, for assertions on what a person would read.
    pub fn text(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

struct Daemon {
    name: String,
    child: Child,
}

/// Owner of everything one test builds; see the module doc.
pub struct World {
    id: String,
    dir: tempfile::TempDir,
    namespaces: Vec<String>,
    daemons: Vec<Daemon>,
    fixtures: Vec<Fixture>,
}

/// Debian package that ships each tool, for the failure message of a machine that lacks it.
fn package_of(tool: &str) -> &'static str {
    match tool {
        "ip" => "iproute2",
        "nft" => "nftables",
        "unbound" => "unbound",
        "tinyproxy" => "tinyproxy",
        "squid" => "squid",
        "dig" => "bind9-dnsutils",
        "curl" => "curl",
        "nginx" => "nginx-light",
        "haproxy" => "haproxy",
        "getent" => "libc-bin",
        "timeout" => "coreutils",
        _ => "?",
    }
}

/// What this machine lacks to build a world needing `tools` (besides `ip` and `timeout`, which
/// every world needs): root, then each missing tool with its Debian package.
fn missing(tools: &[&str]) -> Vec<String> {
    let mut missing: Vec<String> = ["ip", "timeout"]
        .iter()
        .chain(tools)
        .filter(|tool| sys::which(tool).is_none())
        .map(|tool| format!("`{tool}` (Debian package {})", package_of(tool)))
        .collect();
    if !sys::is_root() {
        missing.insert(0, "root (network namespaces need CAP_NET_ADMIN)".into());
    } else if !sys::has_netns_capabilities() {
        missing.insert(
            0,
            "CAP_NET_ADMIN and CAP_SYS_ADMIN (root in an unprivileged container)".into(),
        );
    }
    missing
}

/// Fails the test, naming what is missing, when the world cannot be built here: a world that
/// cannot be built must never let its test pass. (Tests first ask [`skip_without_netns`],
/// which checks the whole suite's needs, so this fails only on a tool missing from
/// [`SUITE_TOOLS`].)
pub fn require(tools: &[&str]) {
    let missing = missing(tools);
    assert!(
        missing.is_empty(),
        "cannot build the test world, missing: {}",
        missing.join(", ")
    );
}

/// Every tool some world of this suite starts. A world that needs a new tool adds it here, or
/// its test fails (rather than skips) on a machine without it.
pub const SUITE_TOOLS: &[&str] = &[
    "nft",
    "unbound",
    "tinyproxy",
    "squid",
    "nginx",
    "haproxy",
    "dig",
    "curl",
    "getent",
];

/// Set to `1` (`.ci/run` does) to make a missing tool or privilege fail every test instead of
/// skipping it, so CI cannot pass by running nothing.
pub const REQUIRE_VAR: &str = "KUBE_REACH_REQUIRE_NETNS";

/// Called first by every test that builds a world. On a machine without root or one of
/// [`SUITE_TOOLS`], `cargo test` must still pass (as the kubectl cross-check does without
/// kubectl): prints `netns SKIPPED` naming the test and what is missing, and returns true (the
/// test returns). With [`REQUIRE_VAR`]` = 1` it fails the test instead.
pub fn skip_without_netns() -> bool {
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string();
    let required = std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1");
    match gate(&test, &missing(SUITE_TOOLS), required) {
        Gate::Run => false,
        Gate::Skip(message) => {
            println!("{message}");
            eprintln!("{message}");
            true
        }
        Gate::Fail(message) => panic!("{message}"),
    }
}

/// What a test does on this machine.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    Run,
    Skip(String),
    Fail(String),
}

/// The decision behind [`skip_without_netns`], from what is `missing` and whether the suite is
/// `required` to run.
pub fn gate(test: &str, missing: &[String], required: bool) -> Gate {
    if missing.is_empty() {
        return Gate::Run;
    }
    let what = missing.join(", ");
    if required {
        Gate::Fail(format!(
            "{REQUIRE_VAR}=1 but the network-namespace suite cannot run {test}: missing {what}"
        ))
    } else {
        Gate::Skip(format!(
            "netns SKIPPED {test}: missing {what} (set {REQUIRE_VAR}=1 to make this a failure)"
        ))
    }
}

impl World {
    /// A new, empty world; `tools` are checked with [`require`].
    pub fn new(tools: &[&str]) -> World {
        require(tools);
        SWEEP.call_once(sweep_stale);
        let seq = SEQ.fetch_add(1, Ordering::SeqCst);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{TEMP_PREFIX}{}-", std::process::id()))
            .tempdir()
            .expect("temp dir");
        fs::create_dir(dir.path().join("home")).expect("home dir");
        World {
            id: format!("kr-{}-{seq}", std::process::id()),
            dir,
            namespaces: Vec::new(),
            daemons: Vec::new(),
            fixtures: Vec::new(),
        }
    }

    /// The world's temp dir: certificates, kubeconfigs, daemon configs and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` to `name` in the world's temp dir.
    pub fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir().join(name);
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Creates namespace `kr-…-<role>` with loopback up.
    pub fn ns(&mut self, role: &str) -> Ns {
        let name = format!("{}-{role}", self.id);
        ip(&["netns", "add", &name]);
        self.namespaces.push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Ns {
            name,
            role: role.into(),
        }
    }

    /// Joins `a` and `b` with a veth pair on subnet number `net` (`10.253.<net>.0/24`,
    /// `fd00:253:<net>::/64`); `a` gets host 1, `b` host 2.
    ///
    /// IPv6 is made deterministic: addresses skip duplicate address detection (servers bind them
    /// at once) and each end knows the other's MAC (`nud permanent`), because neighbour discovery
    /// on a veth that just came up loses the first exchange for about a second, long enough to
    /// fail a one-second DNS query. IPv4 keeps ARP: the unowned-address case relies on it.
    pub fn link(&mut self, a: &Ns, b: &Ns, net: u8, family: Family) -> Link {
        let (a_if, b_if) = (format!("to-{}", b.role), format!("to-{}", a.role));
        let (a_mac, b_mac) = (
            format!("02:00:0a:fd:{net:02x}:01"),
            format!("02:00:0a:fd:{net:02x}:02"),
        );
        ip(&[
            "link", "add", "name", &a_if, "address", &a_mac, "netns", &a.name, "type", "veth",
            "peer", "name", &b_if, "address", &b_mac, "netns", &b.name,
        ]);
        let link = Link {
            a4: Ipv4Addr::new(10, 253, net, 1),
            b4: Ipv4Addr::new(10, 253, net, 2),
            a6: Ipv6Addr::new(0xfd00, 0x253, net.into(), 0, 0, 0, 0, 1),
            b6: Ipv6Addr::new(0xfd00, 0x253, net.into(), 0, 0, 0, 0, 2),
        };
        for (ns, ifname, v4, v6) in [(a, &a_if, link.a4, link.a6), (b, &b_if, link.b4, link.b6)] {
            if family != Family::V6 {
                ip(&[
                    "-n",
                    &ns.name,
                    "addr",
                    "add",
                    &format!("{v4}/24"),
                    "dev",
                    ifname,
                ]);
            }
            if family != Family::V4 {
                let v6 = format!("{v6}/64");
                ip(&["-n", &ns.name, "addr", "add", &v6, "dev", ifname, "nodad"]);
            }
            ip(&["-n", &ns.name, "link", "set", ifname, "up"]);
        }
        if family != Family::V4 {
            for (ns, ifname, peer, mac) in
                [(a, &a_if, link.b6, &b_mac), (b, &b_if, link.a6, &a_mac)]
            {
                let peer = peer.to_string();
                ip(&[
                    "-n",
                    &ns.name,
                    "neigh",
                    "add",
                    &peer,
                    "lladdr",
                    mac,
                    "dev",
                    ifname,
                    "nud",
                    "permanent",
                ]);
            }
        }
        link
    }

    /// Adds a route to a test subnet (never a default route: see the module doc).
    pub fn route(&self, ns: &Ns, dest: &str, via: IpAddr) {
        assert!(
            dest.starts_with("10.253.") || dest.starts_with("fd00:253:"),
            "routes only to test subnets, not {dest}"
        );
        ip(&[
            "-n",
            &ns.name,
            "route",
            "add",
            dest,
            "via",
            &via.to_string(),
        ]);
    }

    /// Sets a sysctl under `/proc/sys/net` inside `ns` (written from a thread in `ns`, because
    /// those files show the namespace of whoever opens them).
    pub fn sysctl(&self, ns: &Ns, key: &str, value: &str) {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let value = value.to_owned();
        sys::run_in(&ns.name, move || fs::write(path, value))
            .unwrap_or_else(|e| panic!("sysctl {key} in {}: {e}", ns.name));
    }

    /// Writes `/etc/netns/<ns>/<file>`, which `ip netns exec` bind-mounts over `/etc/<file>`: the
    /// way a namespace gets its own `resolv.conf` and `hosts` without touching the machine's.
    pub fn etc(&self, ns: &Ns, file: &str, contents: &str) {
        let dir = etc_dir(&ns.name);
        fs::create_dir_all(&dir).expect("create /etc/netns/<ns>");
        fs::write(dir.join(file), contents).expect("write /etc/netns/<ns>/<file>");
    }

    /// Starts a daemon in `ns` under `timeout`, its stdout and stderr in `<dir>/<name>.log`.
    pub fn spawn(&mut self, ns: &Ns, name: &str, argv: &[&str]) {
        let log = File::create(self.log_path(name)).expect("daemon log");
        let lifetime = DAEMON_LIFETIME_SECS.to_string();
        let child = ip_command()
            .args(["netns", "exec", &ns.name, "timeout", "-k", "2", &lifetime])
            .args(argv)
            .current_dir(self.dir())
            .env_clear()
            .env("PATH", sys::search_path())
            .env("HOME", self.dir().join("home"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        self.daemons.push(Daemon {
            name: name.into(),
            child,
        });
    }

    /// Waits until `ready()` holds, failing with the daemon's log when it exits or stays silent.
    pub fn wait_ready(&mut self, name: &str, mut ready: impl FnMut(&World) -> bool) {
        let start = Instant::now();
        while start.elapsed() < READY_WITHIN {
            if ready(self) {
                return;
            }
            let daemon = self.daemons.iter_mut().find(|d| d.name == name);
            let exited = daemon.and_then(|d| d.child.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!(
                    "{name} exited ({status}) before it was ready:\n{}",
                    self.log(name)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{name} not ready after {READY_WITHIN:?}:\n{}",
            self.log(name)
        );
    }

    /// Waits until the daemon's log contains `needle`.
    pub fn wait_log(&mut self, name: &str, needle: &str) {
        self.wait_ready(name, |w| w.log(name).contains(needle));
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir().join(format!("{name}.log"))
    }

    /// A daemon's log so far.
    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.log_path(name)).unwrap_or_default()
    }

    /// Keeps an in-process server alive until the world drops.
    pub fn keep(&mut self, fixture: Fixture) {
        self.fixtures.push(fixture);
    }

    /// Runs a client command inside `ns` with a clean environment (no proxy or CI variables of the
    /// machine leak in) plus `env`, killed after `limit`.
    pub fn run(&self, ns: &Ns, argv: &[&str], env: &[(&str, &str)], limit: Duration) -> Ran {
        let start = Instant::now();
        let mut cmd = ip_command();
        cmd.args(["netns", "exec", &ns.name, "timeout", "-k", "2"])
            .arg(limit.as_secs().max(1).to_string())
            .args(argv)
            .current_dir(self.dir())
            .env_clear()
            .env("PATH", sys::search_path())
            .env("HOME", self.dir().join("home"))
            .env("LC_ALL", "C")
            .envs(env.iter().copied());
        // `timeout` inside the namespace ends the command; the runner's own limit is the
        // backstop should `ip` or `timeout` themselves hang.
        let (status, stdout, stderr) = child::run_bounded(cmd, limit + Duration::from_secs(10));
        Ran {
            status,
            stdout,
            stderr,
            elapsed: start.elapsed(),
        }
    }

    /// Prints the daemons' logs; called when a test fails, so the failure explains itself.
    fn dump_logs(&self) {
        for daemon in &self.daemons {
            let log = self.log(&daemon.name);
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- {} log (last {} lines) ---", daemon.name, tail.len());
            tail.iter().rev().for_each(|line| eprintln!("{line}"));
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        self.fixtures.clear();
        for daemon in &mut self.daemons {
            stop(&mut daemon.child);
        }
        for ns in self.namespaces.iter().rev() {
            remove_namespace(ns);
        }
    }
}

/// Stops a daemon: SIGTERM to `timeout`, which forwards it to its process group; after 3 s,
/// SIGKILL to the whole group.
fn stop(child: &mut Child) {
    let pid = child.id() as i32;
    if child.try_wait().ok().flatten().is_none() {
        sys::signal(pid, sys::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    sys::signal(-pid, sys::SIGKILL);
    sys::signal(pid, sys::SIGKILL);
    let _ = child.wait();
}

fn etc_dir(ns: &str) -> PathBuf {
    Path::new("/etc/netns").join(ns)
}

/// Kills whatever still runs in `ns`, deletes it (its veths and nft tables go with it) and its
/// `/etc/netns` folder. Never panics: it runs during unwinding.
fn remove_namespace(ns: &str) {
    let me = std::process::id() as i32;
    let pids = admin(&["netns", "pids", ns]).map(|(_, stdout, _)| stdout);
    for pid in pids.unwrap_or_default().split_whitespace() {
        match pid.parse::<i32>() {
            Ok(pid) if pid != me => {
                sys::signal(pid, sys::SIGKILL);
            }
            _ => {}
        }
    }
    let deleted = admin(&["netns", "del", ns]);
    if !deleted.is_ok_and(|(code, _, _)| code == Some(0)) {
        eprintln!("warning: could not delete namespace {ns}");
    }
    let _ = fs::remove_dir_all(etc_dir(ns));
}

/// Whether `name` is `<prefix><pid>-…` of a run that is no longer alive.
fn stale(name: &str, prefix: &str) -> bool {
    let Some(rest) = name.strip_prefix(prefix) else {
        return false;
    };
    let pid = rest.split('-').next().and_then(|pid| pid.parse().ok());
    !pid.is_some_and(sys::alive)
}

/// Removes `kr-*` namespaces, `/etc/netns/kr-*` folders and world temp dirs whose run is dead (a
/// crash, or a kill without unwinding); a concurrent run's live worlds are left alone.
fn sweep_stale() {
    let stale_ns = |name: &str| stale(name, "kr-");
    let listed = admin(&["netns", "list"]).map(|(_, stdout, _)| stdout);
    for line in listed.unwrap_or_default().lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if stale_ns(name) {
            eprintln!("removing stale namespace {name} from an earlier run");
            remove_namespace(name);
        }
    }
    let dirs = [
        (Path::new("/etc/netns").to_owned(), "kr-"),
        (std::env::temp_dir(), TEMP_PREFIX),
    ];
    for (dir, prefix) in dirs {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            if stale(&entry.file_name().to_string_lossy(), prefix) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// `ip` by absolute path: the test's own `$PATH` may lack the sbin directories.
fn ip_command() -> Command {
    Command::new(sys::which("ip").unwrap_or_else(|| "ip".into()))
}

/// How long one `ip` administration command may take.
const IP_LIMIT: Duration = Duration::from_secs(30);

/// `ip args…`, bounded, never panicking (cleanup runs while a test unwinds).
fn admin(args: &[&str]) -> Result<child::Finished, String> {
    let mut cmd = ip_command();
    cmd.args(args);
    child::try_run_bounded(cmd, IP_LIMIT)
}

/// Runs `ip` with `args`, failing the test with its error output.
pub fn ip(args: &[&str]) {
    let mut cmd = ip_command();
    cmd.args(args);
    let (code, _, stderr) = child::run_bounded(cmd, IP_LIMIT);
    assert_eq!(code, Some(0), "ip {}: {stderr}", args.join(" "));
}

/// A machine that cannot build a world must fail the test, naming what is missing.
mod self_test {
    use std::time::Duration;

    use super::{Gate, REQUIRE_VAR, gate};

    #[test]
    fn gate_runs_skips_or_fails() {
        assert_eq!(gate("t", &[], false), Gate::Run);
        assert_eq!(gate("t", &[], true), Gate::Run);
        let missing = ["root (network namespaces need CAP_NET_ADMIN)".to_string()];
        match gate("cases::dns::x", &missing, false) {
            Gate::Skip(m) => assert!(
                m.starts_with("netns SKIPPED cases::dns::x: missing root")
                    && m.contains(REQUIRE_VAR),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        match gate("cases::dns::x", &missing, true) {
            Gate::Fail(m) => assert!(m.contains("missing root"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    /// The suite's own binary, run as an unprivileged user (`setpriv`, when we are root) on one
    /// world-building test: `cargo test` passes there, saying the test was skipped and why;
    /// with `KUBE_REACH_REQUIRE_NETNS=1` it fails.
    #[test]
    fn without_root_a_world_test_skips_unless_required() {
        let exe = std::env::current_exe().expect("test binary path");
        let run = |required: bool| {
            let mut cmd = if super::sys::is_root() {
                let setpriv = super::sys::which("setpriv")?;
                let mut cmd = std::process::Command::new(setpriv);
                cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                    .arg(&exe);
                cmd
            } else {
                std::process::Command::new(&exe)
            };
            cmd.args([
                "--exact",
                "cases::dns::dns_resolve_aaaa_only",
                "--nocapture",
            ])
            .env_remove(REQUIRE_VAR);
            if required {
                cmd.env(REQUIRE_VAR, "1");
            }
            Some(crate::child::run_bounded(cmd, Duration::from_secs(90)))
        };
        let Some((code, out, err)) = run(false) else {
            println!("self-test SKIPPED: running as root without `setpriv` (util-linux)");
            return;
        };
        if code != Some(0) && err.contains("Permission denied") && out.is_empty() {
            // A checkout below a directory the unprivileged user cannot enter.
            println!(
                "self-test SKIPPED: uid 65534 cannot execute {}",
                exe.display()
            );
            return;
        }
        assert_eq!(code, Some(0), "must pass by skipping:\n{out}{err}");
        assert!(
            out.contains("netns SKIPPED cases::dns::dns_resolve_aaaa_only: missing root"),
            "{out}"
        );
        assert!(out.contains("1 passed"), "{out}");
        let (code, out, _) = run(true).expect("ran before");
        assert_ne!(code, Some(0), "{REQUIRE_VAR}=1 must fail:\n{out}");
    }

    #[test]
    #[should_panic(expected = "`no-such-tool` (Debian package ?)")]
    fn missing_tool_fails_and_is_named() {
        super::require(&["no-such-tool"]);
    }

    #[test]
    fn stale_means_owner_dead() {
        let me = format!("kr-{}-0-c", std::process::id());
        assert!(
            !super::stale(&me, "kr-"),
            "a live run's namespace is not stale"
        );
        assert!(
            super::stale("kr-4194305-0-c", "kr-"),
            "pid above pid_max is dead"
        );
        assert!(
            super::stale("kr-old-c", "kr-"),
            "a name without a pid is stale"
        );
        assert!(
            !super::stale("other-1-c", "kr-"),
            "only our prefix is swept"
        );
    }
}
