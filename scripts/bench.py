#!/usr/bin/env python3
"""The benchmark's driver (not a test), run by scripts/bench.sh inside a network
namespace of its own (loopback only, no default route).

The world: unbound on 127.0.0.1:5353; two fronts serving TLS, each with an HTTP/2 port (ALPN
offers h2) and an HTTP/1.1-only one: nginx on 7443/7444 in front of `kube-reach demo-server
--plain-http` on 8080, and `demo-server` itself on 7445/7446 (`--http1-only` on 7446), both with
TCP_NODELAY; and one relay process that delays every chunk or datagram by DELAY_MS in each
direction on 127.0.0.1 and relays undelayed on 127.0.0.2:

    127.0.0.1:53 udp -> 5353 (DNS)   127.0.0.1:644N -> 744N   (delayed, N = 3..6)
    127.0.0.2:53 udp -> 5353 (DNS)   127.0.0.2:644N -> 744N   (no delay)

`api.bench.test` is 127.0.0.1 and `fast.bench.test` is 127.0.0.2, so a run with nameserver
127.0.0.1 and the first name pays the delay on every DNS and TCP exchange, and a run with the
second pays the relay's own cost only. Round trips = (delayed - undelayed) / RTT. resolv.conf
cannot name a port, hence the namespace: its loopback's port 53 is ours.

Every child's CPU time (user + sys) comes from wait4(2). Peak RSS twice: the process's own
(its VmHWM in /proc, read every few ms while it runs: children excluded) and its process tree's
(/usr/bin/time's %M when installed, which includes the children it waited for: kube-reach's
`runner.tools` probe runs `kubectl version`; a child forked from Python inherits Python's
high-water mark across exec, so wait4's own ru_maxrss says ~23 MB for anything; time(1) is
small and forks the measured child). Time to first packet is the first datagram or connection
the relay sees after the child started (relay log, monotonic clock).
"""

import asyncio
import base64
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

CHILD_TIMEOUT_S = 120  # no single run of either tool may take longer
READY_TIMEOUT_S = 10
DEFAULT_REQUIREMENTS = [  # src/plan.rs DEFAULT_REQUIREMENTS, one line per verb
    (verb, resource)
    for verbs, resource in [
        ("get,list,watch", "pods"),
        ("create,patch,update", "deployments.apps"),
        ("create,patch,update", "services"),
        ("create,patch,update", "configmaps"),
        ("create,patch,update", "secrets"),
    ]
    for verb in verbs.split(",")
]
ONE_REQUIREMENT = [("get", "pods")]


# --- the relay ------------------------------------------------------------------------------


class Marks:
    """Appends the monotonic time of every new connection or datagram to a file."""

    def __init__(self, path):
        self.file = open(path, "a", buffering=1)

    def mark(self):
        self.file.write(f"{time.monotonic_ns()}\n")


async def pipe(reader, writer, delay):
    # Every chunk is written `delay` after it was read, in order.
    queue = asyncio.Queue()

    async def send():
        while (item := await queue.get()) is not None:
            at, data = item
            await asyncio.sleep(max(0, at - time.monotonic()))
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(send())
    try:
        while data := await reader.read(65536):
            queue.put_nowait((time.monotonic() + delay, data))
    except ConnectionError:
        pass
    queue.put_nowait(None)
    await sender


def tcp_relay(upstream, delay, marks):
    async def handle(client_r, client_w):
        marks.mark()
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", upstream)
        except OSError:
            client_w.close()
            return
        for w in (client_w, server_w):
            w.get_extra_info("socket").setsockopt(6, 1, 1)  # TCP_NODELAY
        await asyncio.gather(
            pipe(client_r, server_w, delay), pipe(server_r, client_w, delay), return_exceptions=True
        )

    return handle


class UdpRelay(asyncio.DatagramProtocol):
    """Datagrams to `upstream` and the answers back, each `delay` late; one upstream socket
    per client address, so answers find their way back."""

    def __init__(self, upstream, delay, marks):
        self.upstream, self.delay, self.marks = upstream, delay, marks
        self.peers = {}

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, client):
        self.marks.mark()
        loop = asyncio.get_running_loop()
        loop.call_later(self.delay, lambda: asyncio.ensure_future(self.forward(data, client)))

    async def forward(self, data, client):
        if client not in self.peers:
            loop = asyncio.get_running_loop()
            back = lambda: Answers(self, client)  # noqa: E731
            self.peers[client], _ = await loop.create_datagram_endpoint(
                back, remote_addr=("127.0.0.1", self.upstream)
            )
        self.peers[client].sendto(data)

    def answer(self, data, client):
        asyncio.get_running_loop().call_later(self.delay, self.transport.sendto, data, client)


class Answers(asyncio.DatagramProtocol):
    def __init__(self, relay, client):
        self.relay, self.client = relay, client

    def datagram_received(self, data, _addr):
        self.relay.answer(data, self.client)


async def relay_main(delay_ms, marks_path, ready_path):
    marks = Marks(marks_path)
    loop = asyncio.get_running_loop()
    servers = []
    for host, delay in (("127.0.0.1", delay_ms / 1000), ("127.0.0.2", 0)):
        await loop.create_datagram_endpoint(
            lambda d=delay: UdpRelay(5353, d, marks), local_addr=(host, 53)
        )
        for listen, upstream in ((6443, 7443), (6444, 7444), (6445, 7445), (6446, 7446)):
            servers.append(await asyncio.start_server(tcp_relay(upstream, delay, marks), host, listen))
    Path(ready_path).touch()
    await asyncio.gather(*(s.serve_forever() for s in servers))


# --- the world ------------------------------------------------------------------------------


def demo_server(server_bin):
    return [server_bin, "demo-server", "--max-lifetime", "3600"]


class Front:
    # What serves TLS to both tools: a name and the relay ports of its HTTP/2 and HTTP/1.1-only
    # listeners.
    def __init__(self, name, h2_port, h1_port):
        self.name, self.h2_port, self.h1_port = name, h2_port, h1_port


class World:
    def __init__(self, work, server_bin):
        self.work, self.server_bin = Path(work), server_bin
        self.children = []

    def spawn(self, name, argv, ready):
        log = open(self.work / f"{name}.log", "w")
        self.children.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready():
            if time.monotonic() > deadline or self.children[-1].poll() is not None:
                sys.exit(f"bench: {name} did not start: see {self.work / (name + '.log')}")
            time.sleep(0.05)

    def stop(self):
        for child in self.children:
            child.kill()
            child.wait()

    def certificates(self):
        w = self.work
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "check": True}
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        subprocess.run(["openssl", "req", "-x509", *ec, "-days", "2", "-subj", "/CN=bench-root",
                        "-keyout", w / "ca.key", "-out", w / "ca.pem"], **quiet)
        subprocess.run(["openssl", "req", *ec, "-subj", "/CN=bench-api",
                        "-keyout", w / "api.key", "-out", w / "api.csr"], **quiet)
        (w / "ext").write_text("subjectAltName=DNS:api.bench.test,DNS:fast.bench.test\n"
                               "extendedKeyUsage=serverAuth\n")
        subprocess.run(["openssl", "x509", "-req", "-in", w / "api.csr", "-CA", w / "ca.pem",
                        "-CAkey", w / "ca.key", "-CAcreateserial", "-days", "2",
                        "-extfile", w / "ext", "-out", w / "api.pem"], **quiet)

    def dns(self):
        conf = self.work / "unbound.conf"
        conf.write_text(f"""server:
  interface: 127.0.0.1
  port: 5353
  directory: "{self.work}"
  do-daemonize: no
  chroot: ""
  username: ""
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 1
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  local-zone: "." static
  local-data: "api.bench.test. 60 IN A 127.0.0.1"
  local-data: "fast.bench.test. 60 IN A 127.0.0.2"
remote-control:
  control-enable: no
""")
        log = self.work / "unbound.log"
        self.spawn("unbound", ["unbound", "-d", "-c", conf],
                   lambda: "start of service" in log.read_text())

    def demo_front(self):
        """`demo-server` serving TLS itself: HTTP/2 on 7445, HTTP/1.1 only on 7446."""
        w = self.work
        tls = ["--cert-chain", w / "api.pem", "--key", w / "api.key"]
        for port, extra in ((7445, []), (7446, ["--http1-only"])):
            ready = w / f"ready-{port}"
            self.spawn(f"demo-server-{port}", [*demo_server(self.server_bin), *tls, *extra,
                       "--listen", f"127.0.0.1:{port}", "--ready-file", ready], ready.exists)
        return Front("demo-server (TLS itself)", 6445, 6446)

    def nginx_front(self):
        """nginx (`listen … ssl http2` on 7443, `listen … ssl` on 7444) in front of
        `demo-server --plain-http`, as tests/netns/nginx.rs sets it up."""
        w = self.work
        ready = w / "ready-8080"
        self.spawn("demo-server", [*demo_server(self.server_bin), "--plain-http", "--listen",
                                   "127.0.0.1:8080", "--ready-file", ready], ready.exists)
        d = w / "nginx"
        for sub in ("", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (w / "nginx.conf").write_text(f"""daemon off; master_process off; worker_processes 1;
pid {d}/nginx.pid; error_log {d}/error.log info; events {{ worker_connections 1024; }}
http {{
  access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  upstream api {{ server 127.0.0.1:8080; keepalive 64; }}
  server {{
    listen 127.0.0.1:7443 ssl http2; listen 127.0.0.1:7444 ssl;
    ssl_certificate {w}/api.pem; ssl_certificate_key {w}/api.key;
    location / {{ proxy_pass http://api; proxy_http_version 1.1;
                 proxy_set_header Connection ""; proxy_buffering off; }}
  }}
}}
""")
        pid = d / "nginx.pid"
        self.spawn("nginx", ["nginx", "-c", w / "nginx.conf", "-p", f"{d}/", "-e",
                             d / "error.log"], pid.exists)
        return Front("nginx -> demo-server --plain-http", 6443, 6444)

    def relay(self, delay_ms):
        ready = self.work / "relay.ready"
        self.marks = self.work / "relay.marks"
        self.spawn("relay", [sys.executable, __file__, "relay", str(delay_ms), self.marks, ready],
                   ready.exists)

    def kubeconfig(self, name, port, contexts):
        ca = base64.b64encode((self.work / "ca.pem").read_bytes()).decode()
        ctx = "\n".join(f"- name: c{i}\n  context: {{cluster: bench, user: bench, namespace: ci}}"
                        for i in range(contexts))
        current = "current-context: c0\n" if contexts == 1 else ""  # none: every context
        path = self.work / f"kubeconfig-{name}-{port}-{contexts}"
        path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: bench
  cluster: {{server: "https://{name}.bench.test:{port}", certificate-authority-data: {ca}}}
users:
- name: bench
  user: {{token: good-token}}
contexts:
{ctx}
{current}""")
        return path


# --- measuring ------------------------------------------------------------------------------


class Run:
    """One child's wall time, CPU time (user + sys), peak RSS of its own process and of its
    process tree (kube-reach's `runner.tools` probe runs `kubectl version`), and time to first
    packet."""

    def __init__(self, wall, cpu, rss_kb, tree_rss_kb, first_packet):
        self.wall, self.cpu, self.first_packet = wall, cpu, first_packet
        self.rss_kb, self.tree_rss_kb = rss_kb, tree_rss_kb


FIELDS = ("wall", "cpu", "rss_kb", "tree_rss_kb", "first_packet")
TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
SAMPLE_S = 0.003  # how often the measured process's own high-water mark is read


def status_kb(pid, field):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def measured_pid(pid, done):
    """The measured process: the child itself, or time(1)'s child when wrapped (bounded wait;
    never reaps: the main thread's wait4 does)."""
    if not TIME:
        return pid
    for _ in range(1000):
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                pids = f.read().split()
            if pids:
                return int(pids[0])
        except OSError:
            return None
        if done.is_set():
            return None
        time.sleep(0.001)
    return None


def sample_own_rss(pid, done, peak):
    """Reads the measured process's VmHWM (its own peak RSS, children excluded) until it is
    gone; the last reading is at most SAMPLE_S before its exit."""
    pid = measured_pid(pid, done)
    while pid is not None and not done.is_set():
        kb = status_kb(pid, "VmHWM")
        if kb is None:
            break
        peak[0] = max(peak[0], kb)
        time.sleep(SAMPLE_S)


def run(argv, env, marks):
    rss_file = Path(marks).with_name("rss")
    wrapped = [TIME, "-f", "%M", "-o", rss_file, *argv] if TIME else argv
    start = time.monotonic_ns()
    child = subprocess.Popen(wrapped, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    timer = threading.Timer(CHILD_TIMEOUT_S, child.kill)
    timer.daemon = True
    timer.start()
    own, done = [0], threading.Event()
    sampler = threading.Thread(target=sample_own_rss, args=(child.pid, done, own), daemon=True)
    sampler.start()
    try:
        _, status, usage = os.wait4(child.pid, 0)
    except BaseException:  # terminated meanwhile: take the measured child along
        child.kill()
        raise
    finally:
        timer.cancel()
        done.set()
    wall = (time.monotonic_ns() - start) / 1e9
    child.returncode = os.waitstatus_to_exitcode(status)
    sampler.join(1)
    if child.returncode != 0:
        sys.exit(f"bench: {argv[0]} exited {child.returncode}: {' '.join(map(str, argv))}")
    later = [int(t) for t in Path(marks).read_text().split() if int(t) >= start]
    first = (min(later) - start) / 1e9 if later else float("nan")
    tree_kb = int(rss_file.read_text().split()[-1]) if TIME else usage.ru_maxrss
    return Run(wall, usage.ru_utime + usage.ru_stime, own[0] or float("nan"), tree_kb, first)


def median_run(runs):
    return Run(*(statistics.median(getattr(r, f) for r in runs) for f in FIELDS))


class Bench:
    def __init__(self, world, runs, kubectl_runs):
        self.world = world
        self.runs, self.kubectl_runs = runs, kubectl_runs
        self.home = 0

    def env(self, nameserver):
        resolv = self.world.work / f"resolv-{nameserver}.conf"
        resolv.write_text(f"nameserver {nameserver}\noptions timeout:1 attempts:1\n")
        return resolv

    def reach(self, reach_bin, delayed, port, requirements, contexts=1):
        name, ns = ("api", "127.0.0.1") if delayed else ("fast", "127.0.0.2")
        hosts = self.world.work / "hosts"
        hosts.write_text("")
        argv = [reach_bin, "--kubeconfig", self.world.kubeconfig(name, port, contexts),
                "--no-in-cluster", "--resolv-conf", self.env(ns), "--hosts-file", hosts,
                "--json", self.world.work / "out.json"]
        if requirements is ONE_REQUIREMENT:
            argv += ["--require", "get pods"]
        env = {"PATH": os.environ["PATH"]}
        return median_run([run(argv, env, self.world.marks) for _ in range(self.runs)])

    def kubectl_route(self, port, requirements):
        """`kubectl version`, `kubectl auth whoami`, one `kubectl auth can-i` per requirement,
        in a row as a job script runs them, with a fresh HOME (no discovery cache) per route;
        /etc/resolv.conf here is the namespace's, naming the delayed DNS relay."""
        config = self.world.kubeconfig("api", port, 1)
        routes = []
        for _ in range(self.kubectl_runs):
            self.home += 1
            home = self.world.work / f"kubectl-home-{self.home}"
            home.mkdir()
            env = {"PATH": os.environ["PATH"], "HOME": str(home)}
            base = ["kubectl", "--kubeconfig", config]
            steps = [base + ["version"], base + ["auth", "whoami"]]
            steps += [base + ["auth", "can-i", v, r, "-n", "ci"] for v, r in requirements]
            each = [run(step, env, self.world.marks) for step in steps]
            routes.append(Run(sum(r.wall for r in each), sum(r.cpu for r in each),
                              max(r.rss_kb for r in each), max(r.tree_rss_kb for r in each),
                              each[0].first_packet))
        return median_run(routes)


CASES = [  # (protocol, port attribute of the front, requirements, label)
    (proto, port, reqs, f"{proto}, {label}")
    for proto, port in (("HTTP/2", "h2_port"), ("HTTP/1.1 only", "h1_port"))
    for reqs, label in ((DEFAULT_REQUIREMENTS, "default requirements (15 reviews)"),
                        (ONE_REQUIREMENT, "one requirement"))
]
FLEET = 50


def measure(bench, front, builds, have_kubectl):
    """Every case of one front for every build: {(build, label): (delayed, undelayed)}, the
    kubectl route per label (or None), and {(build, protocol): (delayed, undelayed)} of the
    50-context fleet."""
    cases, kubectl, fleets = {}, {}, {}
    for proto, port_attr, reqs, label in CASES:
        port = getattr(front, port_attr)
        for build, path in builds:
            cases[build, label] = (bench.reach(path, True, port, reqs),
                                   bench.reach(path, False, port, reqs))
        kubectl[label] = bench.kubectl_route(port, reqs) if have_kubectl else None
        if reqs is DEFAULT_REQUIREMENTS:
            for build, path in builds:
                fleets[build, proto] = (
                    bench.reach(path, True, port, reqs, contexts=FLEET),
                    bench.reach(path, False, port, reqs, contexts=FLEET))
    return cases, kubectl, fleets


def mb(kb):
    return f"{kb / 1024:.1f} MB"


def print_table(build, front, rtt, measured):
    """The issue's table for one build and front, as Markdown."""
    cases, kubectl, fleets = measured
    print(f"\n{build} ({front.name}):\n")
    print(f"| case (RTT {rtt * 1000:.0f} ms) | kube-reach | sequential round trips | kubectl route "
          "| ratio | no delay | 1st packet | CPU | peak RSS own | peak RSS tree |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for _, _, _, label in CASES:
        slow, fast = cases[build, label]
        k = kubectl[label]
        route, ratio = ("-", "-") if k is None else (f"{k.wall:.2f} s", f"{k.wall / slow.wall:.1f}×")
        print(f"| {label} | {slow.wall:.2f} s | {(slow.wall - fast.wall) / rtt:.1f} | {route} | "
              f"{ratio} | {fast.wall:.3f} s | {slow.first_packet * 1000:.1f} ms | "
              f"{slow.cpu * 1000:.0f} ms | {mb(slow.rss_kb)} | {mb(slow.tree_rss_kb)} |")
    for proto in ("HTTP/2", "HTTP/1.1 only"):
        one_slow, one_fast = cases[build, f"{proto}, default requirements (15 reviews)"]
        slow, fast = fleets[build, proto]
        print(f"| {FLEET} contexts vs 1, {proto} | {slow.wall:.2f} s vs {one_slow.wall:.2f} s: "
              f"{slow.wall / one_slow.wall:.2f}× | | | | {fast.wall:.3f} s vs {one_fast.wall:.3f}"
              f" s: {fast.wall / one_fast.wall:.1f}× ({(fast.wall - one_fast.wall) / (FLEET - 1) * 1000:.1f}"
              f" ms per context) | | {slow.cpu * 1000:.0f} ms | {mb(slow.rss_kb)} | "
              f"{mb(slow.tree_rss_kb)} |")
    kubectl_rss = [k.tree_rss_kb for k in kubectl.values() if k is not None]
    if kubectl_rss:
        print(f"\n(kubectl route: peak RSS {mb(max(kubectl_rss))})")


def goals(build, rtt, measured):
    """Issue 14's "Done when" figures of one build."""
    cases, kubectl, fleets = measured
    h2 = cases[build, "HTTP/2, default requirements (15 reviews)"][0]
    h1 = cases[build, "HTTP/1.1 only, default requirements (15 reviews)"][0]
    k = kubectl["HTTP/1.1 only, default requirements (15 reviews)"]
    ratio = "-" if k is None else f"{k.wall / h1.wall:.0f}×"
    fleet = [fleets[build, p][0].wall / cases[build, f"{p}, default requirements (15 reviews)"][0].wall
             for p in ("HTTP/2", "HTTP/1.1 only")]
    rss = max(fleets[build, p][0].rss_kb for p in ("HTTP/2", "HTTP/1.1 only"))
    tree = max(fleets[build, p][0].tree_rss_kb for p in ("HTTP/2", "HTTP/1.1 only"))
    return [f"{(h1.wall - h2.wall) / rtt:.1f} RT", ratio, f"{fleet[0]:.2f}× / {fleet[1]:.2f}×",
            f"{mb(rss)} ({mb(tree)} with children)"]


def print_goals(builds, front, rtt, measured):
    print(f"\nissue 14's goals ({front.name}):\n")
    print("| build | HTTP/1.1 behind HTTP/2, default requirements (goal ≤ 1 RT) | kubectl route ÷ "
          "HTTP/1.1 (goal ≥ 40×) | 50 contexts ÷ 1, HTTP/2 / HTTP/1.1 (goal ≤ 1.2×) | peak RSS, "
          "50 targets (goal < 20 MB) |")
    print("|---|---|---|---|---|")
    for build, _ in builds:
        print(f"| {build} | " + " | ".join(goals(build, rtt, measured)) + " |")


def report(bench, delay_ms, have_kubectl, fronts, builds):
    rtt = 2 * delay_ms / 1000
    rss = "/usr/bin/time" if TIME else "wait4 (inflated: no /usr/bin/time)"
    print(f"relay delay {delay_ms} ms each way (RTT {2 * delay_ms} ms) on DNS and TCP; medians "
          f"of {bench.runs} runs (kubectl route: {bench.kubectl_runs}); peak RSS own: the "
          f"process's VmHWM read every {SAMPLE_S * 1000:.0f} ms; tree: {rss}")
    for build, path in builds:
        print(f"{build}: {path}")
    for front in fronts:
        measured = measure(bench, front, builds, have_kubectl)
        for build, _ in builds:
            print_table(build, front, rtt, measured)
        print_goals(builds, front, rtt, measured)
        sys.stdout.flush()


def main():
    if sys.argv[1:2] == ["relay"]:
        delay_ms, marks, ready = int(sys.argv[2]), sys.argv[3], sys.argv[4]
        asyncio.run(relay_main(delay_ms, marks, ready))
        return
    work, server_bin, reach_bin, runs, kubectl_runs, delay_ms, front, before = sys.argv[1:9]
    builds = [("after", reach_bin)] if before == "-" else [("before", before), ("after", reach_bin)]
    world = World(work, server_bin)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench: terminated"))
    try:
        world.certificates()
        world.dns()
        fronts = []
        if front in ("nginx", "both"):
            if shutil.which("nginx"):
                fronts.append(world.nginx_front())
            else:
                print("bench: nginx is not installed: demo-server front only", file=sys.stderr)
        if front in ("demo", "both") or not fronts:
            fronts.append(world.demo_front())
        world.relay(int(delay_ms))
        bench = Bench(world, int(runs), int(kubectl_runs))
        report(bench, int(delay_ms), shutil.which("kubectl") is not None, fronts, builds)
    finally:
        world.stop()


if __name__ == "__main__":
    main()
