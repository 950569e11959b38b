#!/usr/bin/env bash
# The project's one benchmark (not a test; nothing in `cargo test` or CI runs it). As root:
#
#   scripts/bench.sh [RUNS=5] [DELAY_MS=25] [KUBECTL_RUNS=3]
#     issue 14's table on this machine: kube-reach's healthy run and the kubectl route
#     (`kubectl version`, `kubectl auth whoami`, one `kubectl auth can-i` per requirement)
#     against the same fake API, over HTTP/2 and HTTP/1.1 only, with the default requirements
#     and with one, and 50 contexts on one server vs 1, with and without the delay; wall time,
#     sequential round trips, time to first packet, CPU time, and peak RSS of kube-reach's own
#     process and of its process tree (the `runner.tools` probe runs `kubectl version`).
#     BEFORE_BIN=path/to/kube-reach adds that build's figures beside this tree's, and a
#     before/after summary of the issue's goals.
#   scripts/bench.sh suite [RUNS=3] [TEST_THREADS=8]
#     times the network-namespace test suite and prints, per case, kube-reach's and kubectl's
#     time to verdict (min / median / max over the runs, in ms; the suite asserts no timing).
#
# Method of the table: in a network namespace made here (loopback only, no default route,
# removed on exit), a relay delays every TCP chunk and DNS datagram by DELAY_MS each way in
# front of nginx (HTTP/2 and HTTP/1.1-only listeners) -> `kube-reach demo-server --plain-http`,
# of `demo-server` serving TLS itself, and of unbound (the relay owns the namespace's port 53:
# resolv.conf cannot name a port; kubectl's /etc/resolv.conf is the namespace's, as
# `ip netns exec` bind-mounts /etc/netns/<ns>/). The fake sets TCP_NODELAY. Round trips =
# (time with the delay - time without) / RTT. The relay does not delay TCP's own handshake,
# so each new connection costs one round trip more on a real link than counted here.
# (`tc qdisc … netem` would be the cleaner delay, but needs sch_netem, which this kernel lacks.)
# Details: scripts/bench.py.
#
# Settings (environment):
#   KUBE_REACH_BIN=path  measure another client build instead of this tree's; the fake server
#     is always this tree's `demo-server`.
#   BEFORE_BIN=path      also measure that build (e.g. main's) and print before/after.
#   BENCH_PROFILE=release|debug  which build of this tree (default release: a debug build's CPU
#     time and RSS say little about what a job pays).
#   FRONT=both|nginx|demo  what serves TLS, one table each: nginx in front of `demo-server
#     --plain-http` (when installed) and `demo-server` itself (`--http1-only` for HTTP/1.1).
set -euo pipefail
cd "$(dirname "$0")/.."

# Every argument a whole number in its range ("name=value:low:high").
check_numbers() {
  local arg name value low high
  for arg in "$@"; do
    IFS='=:' read -r name value low high <<<"$arg"
    if ! [[ $value =~ ^[0-9]+$ ]] || ((value < low || value > high)); then
      echo "bench: ${name^^} must be a whole number from $low to $high, not '$value'" >&2
      exit 2
    fi
  done
}

suite() {
  local runs=${1:-3} threads=${2:-8} timings run start status
  check_numbers "runs=$runs:1:100" "test_threads=$threads:1:64"
  timings=$(mktemp)
  trap 'rm -f "$timings"' EXIT
  cargo test --quiet --test netns --no-run
  for run in $(seq "$runs"); do
    start=$(date +%s%N)
    status=ok
    KUBE_REACH_E2E_TIMINGS=$timings cargo test --quiet --test netns -- --test-threads "$threads" \
      >/dev/null 2>&1 || status="some tests FAILED"
    printf 'run %d: suite %d ms (%s)\n' "$run" $((($(date +%s%N) - start) / 1000000)) "$status"
  done
  printf '\n%-52s %22s %22s\n' "case" "kube-reach min/med/max" "kubectl min/med/max"
  # Columns: case, kube-reach ms, kubectl ms ("-" when kubectl is not installed).
  sort -t $'\t' -k1,1 -k2,2n "$timings" | awk -F '\t' '
    function stats(list,   n, a, i, j, t) {
      n = split(list, a, " ")
      if (a[1] == "-") return "-"
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
      return a[1] "/" a[int((n + 1) / 2)] "/" a[n]
    }
    { reach[$1] = reach[$1] " " $2; kubectl[$1] = kubectl[$1] " " $3; if (!($1 in seen)) { seen[$1] = 1; order[++cases] = $1 } }
    END { for (i = 1; i <= cases; i++) printf "%-52s %22s %22s\n", order[i], stats(reach[order[i]]), stats(kubectl[order[i]]) }'
}

table() {
  local runs=${1:-5} delay_ms=${2:-25} kubectl_runs=${3:-3}
  check_numbers "runs=$runs:1:100" "delay_ms=$delay_ms:1:1000" "kubectl_runs=$kubectl_runs:1:20"
  [[ $(id -u) == 0 ]] || { echo "bench: needs root (it makes a network namespace)" >&2; exit 2; }
  local tool
  for tool in ip unbound openssl python3; do
    command -v "$tool" >/dev/null || { echo "bench: needs $tool" >&2; exit 2; }
  done
  local profile=${BENCH_PROFILE:-release} front=${FRONT:-both}
  case $profile in
    release) cargo build --quiet --locked --release ;;
    debug) cargo build --quiet --locked ;;
    *) echo "bench: BENCH_PROFILE must be release or debug, not '$profile'" >&2; exit 2 ;;
  esac
  [[ $front =~ ^(both|nginx|demo)$ ]] || { echo "bench: FRONT must be both, nginx or demo, not '$front'" >&2; exit 2; }
  server_bin=${CARGO_TARGET_DIR:-$PWD/target}/$profile/kube-reach
  local bin before=-
  bin=$(realpath "${KUBE_REACH_BIN:-$server_bin}")
  if [[ -n ${BEFORE_BIN:-} ]]; then
    [[ -x $BEFORE_BIN ]] || { echo "bench: BEFORE_BIN '$BEFORE_BIN' is not an executable" >&2; exit 2; }
    before=$(realpath "$BEFORE_BIN")
  fi
  work=$(mktemp -d)
  # Not `kr-*`: the netns suite sweeps stale namespaces and folders of that prefix.
  ns=krbench-$$
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  mkdir -p "/etc/netns/$ns"
  printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"/etc/netns/$ns/resolv.conf"
  printf '127.0.0.1 localhost\n' >"/etc/netns/$ns/hosts"
  # In the background, so a TERM to this script runs the trap at once.
  ip netns exec "$ns" python3 scripts/bench.py "$work" "$server_bin" "$bin" "$runs" \
    "$kubectl_runs" "$delay_ms" "$front" "$before" &
  wait $!
}

cleanup() {
  local pid
  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "/etc/netns/$ns" "$work"
}

case ${1:-} in
  suite) shift; suite "$@" ;;
  *) table "$@" ;;
esac
