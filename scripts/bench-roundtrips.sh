#!/usr/bin/env bash
# Benchmark (not a test; nothing in `cargo test` or CI runs it): issue 14's table on this
# machine. kube-reach's healthy run and the kubectl route (`kubectl version`, `kubectl auth
# whoami`, one `kubectl auth can-i` per requirement) against the same fake API, over HTTP/2 and
# HTTP/1.1 only, with the default requirements and with one, and 50 contexts on one server vs 1;
# wall time, sequential round trips, time to first packet, CPU time and peak RSS.
#
# Method: a relay delays every TCP chunk and DNS datagram by DELAY_MS each way in front of nginx
# (HTTP/2 and HTTP/1.1-only listeners) -> `kube-reach demo-server --plain-http` (TCP_NODELAY) and
# (and `demo-server` serving TLS itself) in front of unbound, all on the loopback of a network namespace made here (no default route),
# so its port 53 can be the DNS relay (resolv.conf cannot name a port) and kubectl's
# /etc/resolv.conf is the namespace's (`ip netns exec` bind-mounts /etc/netns/<ns>/). Round
# trips = (time with the delay - time without) / RTT. The relay does not delay TCP's own
# handshake, so each new connection costs one round trip more on a real link than counted here.
# (`tc qdisc … netem` would be the cleaner delay, but needs sch_netem, which this kernel lacks.)
# Details: scripts/bench.py.
#
# Usage (as root): scripts/bench-roundtrips.sh [RUNS=5] [DELAY_MS=25] [KUBECTL_RUNS=3]
#   KUBE_REACH_BIN=path/to/kube-reach  measure another client build (e.g. main's, for a
#     before/after); the fake server is always this tree's `demo-server`.
#   BENCH_PROFILE=release|debug  which build of this tree (default release: a debug build's CPU
#     time and RSS say little about what a job pays).
#   FRONT=both|nginx|demo  what serves TLS, one table each: nginx in front of `demo-server
#     --plain-http` (when installed) and `demo-server` itself (`--http1-only` for HTTP/1.1 only).
set -euo pipefail
runs=${1:-5}
delay_ms=${2:-25}
kubectl_runs=${3:-3}
for arg in "runs=$runs:1:100" "delay_ms=$delay_ms:1:1000" "kubectl_runs=$kubectl_runs:1:20"; do
  IFS='=:' read -r name value low high <<<"$arg"
  if ! [[ $value =~ ^[0-9]+$ ]] || ((value < low || value > high)); then
    echo "bench: ${name^^} must be a whole number from $low to $high, not '$value'" >&2
    exit 2
  fi
done
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "bench: needs root (it makes a network namespace)" >&2; exit 2; }
for tool in ip unbound openssl python3; do
  command -v "$tool" >/dev/null || { echo "bench: needs $tool" >&2; exit 2; }
done
profile=${BENCH_PROFILE:-release}
front=${FRONT:-both}
case $profile in
  release) cargo build --quiet --locked --release ;;
  debug) cargo build --quiet --locked ;;
  *) echo "bench: BENCH_PROFILE must be release or debug, not '$profile'" >&2; exit 2 ;;
esac
[[ $front =~ ^(both|nginx|demo)$ ]] || { echo "bench: FRONT must be both, nginx or demo, not '$front'" >&2; exit 2; }
server_bin=$PWD/target/$profile/kube-reach
bin=$(realpath "${KUBE_REACH_BIN:-$server_bin}")
work=$(mktemp -d)
# Not `kr-*`: the netns suite sweeps stale namespaces and folders of that prefix.
ns=krbench-$$
cleanup() {
  local pid
  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "/etc/netns/$ns" "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$ns"
ip -n "$ns" link set lo up
mkdir -p "/etc/netns/$ns"
printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"/etc/netns/$ns/resolv.conf"
printf '127.0.0.1 localhost\n' >"/etc/netns/$ns/hosts"
# In the background, so a TERM to this script runs the trap at once.
ip netns exec "$ns" python3 scripts/bench.py "$work" "$server_bin" "$bin" "$runs" \
  "$kubectl_runs" "$delay_ms" "$front" &
wait $!
