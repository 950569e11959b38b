//! The few operating-system facts and calls that std does not wrap: whether we are root, where a
//! tool lives, entering a network namespace from one thread, and signalling a process group.
//!
//! All `unsafe` of the suite is here, in three one-line foreign calls.

use std::ffi::c_int;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

const CLONE_NEWNET: c_int = 0x4000_0000;
pub const SIGTERM: c_int = 15;
pub const SIGKILL: c_int = 9;

unsafe extern "C" {
    fn setns(fd: c_int, nstype: c_int) -> c_int;
    fn kill(pid: c_int, sig: c_int) -> c_int;
    fn geteuid() -> u32;
}

/// Namespaces, veths and nft need CAP_NET_ADMIN and /run/netns, i.e. root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { geteuid() == 0 }
}

/// Whether this process holds CAP_NET_ADMIN and CAP_SYS_ADMIN (`ip netns add` mounts, veths and
/// nft need both): root in an unprivileged container has neither. Read from `CapEff` in
/// `/proc/self/status`; unreadable counts as no.
pub fn has_netns_capabilities() -> bool {
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_SYS_ADMIN: u32 = 21;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    [CAP_NET_ADMIN, CAP_SYS_ADMIN]
        .iter()
        .all(|bit| effective & (1 << bit) != 0)
}

/// The directories searched for tools: `$PATH` plus the sbin directories, which a non-login root
/// shell may lack although `ip`, `nft` and the daemons live there.
pub fn search_path() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{path}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
}

/// Where `tool` is, if anywhere on [`search_path`].
pub fn which(tool: &str) -> Option<PathBuf> {
    search_path()
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| PathBuf::from(dir).join(tool))
        .find(|candidate| candidate.is_file())
}

/// Moves the calling thread (only it: the network namespace is per task) into namespace `name`.
/// Sockets it creates afterwards live in that namespace. Call it on a thread of your own, never on
/// a test-harness thread, which would stay in the namespace for later tests.
pub fn enter_netns(name: &str) -> io::Result<()> {
    let file = File::open(format!("/run/netns/{name}"))?;
    // SAFETY: the descriptor is open for the whole call; setns only changes this thread's namespace.
    if unsafe { setns(file.as_raw_fd(), CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sends `sig` to process `pid` (or to process group `-pid` when `pid` is negative); false when
/// there was nothing to signal.
pub fn signal(pid: i32, sig: c_int) -> bool {
    // SAFETY: kill takes plain integers; a stale pid only yields ESRCH.
    unsafe { kill(pid, sig) == 0 }
}

/// True while `/proc/<pid>` exists: used to tell a crashed earlier run's leftovers from a
/// concurrent run's live worlds.
pub fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Runs `f` on a new thread that first enters namespace `ns`; the thread, not the caller, carries
/// the namespace, so the test thread stays in the root namespace.
pub fn spawn_in<T, F>(ns: &str, f: F) -> std::thread::JoinHandle<io::Result<T>>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        enter_netns(&ns)?;
        f()
    })
}

/// [`spawn_in`] and wait for the result.
pub fn run_in<T, F>(ns: &str, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    spawn_in(ns, f)
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("thread in the namespace panicked")))
}
