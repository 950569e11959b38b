#!/usr/bin/env bash
# Benchmark (not a test): a healthy run's wall time and its sequential round trips over HTTP/2
# and HTTP/1.1, with the default requirements (15 access reviews) and with one requirement.
#
# On loopback: `kube-reach demo-server` (TCP_NODELAY set; certificates made here with openssl)
# behind a relay that delays every chunk by DELAY_MS in each direction, so one round trip costs
# 2 x DELAY_MS. Round trips = (median time with the delay - median time without) / RTT. The
# relay does not delay TCP's own handshake, so each new connection costs one round trip more on
# a real link than counted here. (`tc qdisc … netem` would be the cleaner delay, but needs the
# sch_netem kernel module, which this machine lacks.)
#
# Usage: scripts/bench-roundtrips.sh [RUNS=5] [DELAY_MS=25]
#   KUBE_REACH_BIN=path/to/kube-reach  measure another client build (e.g. main's, for a
#   before/after); the fake server is always this tree's `demo-server`.
set -euo pipefail
runs=${1:-5}
delay_ms=${2:-25}
cd "$(dirname "$0")/.."
cargo build --quiet --locked
server_bin=$PWD/target/debug/kube-reach
bin=${KUBE_REACH_BIN:-$server_bin}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# --- certificates: a root CA and a leaf for 127.0.0.1 -------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=bench-root" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=bench-api" \
  -keyout "$work/api.key" -out "$work/api.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$work/ext"
openssl x509 -req -in "$work/api.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
  -CAcreateserial -days 2 -extfile "$work/ext" -out "$work/api.pem" 2>/dev/null
: >"$work/resolv.conf"
: >"$work/hosts"

# --- the delaying relay ---------------------------------------------------------------------
cat >"$work/relay.py" <<'EOF'
import asyncio, sys, time
listen, upstream, delay = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000

async def pipe(reader, writer):
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

async def handle(client_r, client_w):
    try:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", upstream)
    except OSError:
        client_w.close()
        return
    for w in (client_w, server_w):
        sock = w.get_extra_info("socket")
        sock.setsockopt(6, 1, 1)  # TCP_NODELAY
    await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w), return_exceptions=True)

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
EOF

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_world PROTOCOL → sets $api_port (direct) and $relay_port (delayed)
start_world() {
  local extra=()
  [[ $1 == h1 ]] && extra=(--http1-only)
  api_port=$(free_port)
  "$server_bin" demo-server --listen "127.0.0.1:$api_port" --cert-chain "$work/api.pem" \
    --key "$work/api.key" --ready-file "$work/ready-$1" --max-lifetime 600 "${extra[@]}" \
    >"$work/server-$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [[ -e $work/ready-$1 ]] && break; sleep 0.05; done
  [[ -e $work/ready-$1 ]] || { echo "demo-server ($1) did not start" >&2; exit 1; }
  relay_port=$(free_port)
  python3 "$work/relay.py" "$relay_port" "$api_port" "$delay_ms" >"$work/relay-$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do grep -q ready "$work/relay-$1.log" 2>/dev/null && break; sleep 0.05; done
}

kubeconfig() {
  local ca
  ca=$(base64 -w0 <"$work/ca.pem")
  cat >"$work/kubeconfig-$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: bench
  cluster: {server: "https://127.0.0.1:$1", certificate-authority-data: $ca}
users:
- name: bench
  user: {token: good-token}
contexts:
- name: bench
  context: {cluster: bench, user: bench, namespace: ci}
current-context: bench
EOF
  echo "$work/kubeconfig-$1"
}

# median_ms PORT [ARGS…]: median wall time of $runs healthy runs, in ms (fails on a non-pass).
median_ms() {
  local port=$1
  shift
  local config times=()
  config=$(kubeconfig "$port")
  for _ in $(seq "$runs"); do
    local start end
    start=$(date +%s%N)
    if ! env -i PATH="$PATH" "$bin" --kubeconfig "$config" --no-in-cluster \
      --resolv-conf "$work/resolv.conf" --hosts-file "$work/hosts" --json "$work/out.json" \
      "$@" >/dev/null 2>&1; then
      echo "a healthy run did not pass (port $port, $*): see $work/out.json" >&2
      times+=(-1)
      continue
    fi
    end=$(date +%s%N)
    times+=($(((end - start) / 1000000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

rtt=$((2 * delay_ms))
printf 'kube-reach: %s\nrelay delay %d ms each way (RTT %d ms), median of %d runs\n\n' \
  "$bin" "$delay_ms" "$rtt" "$runs"
printf '%-36s %12s %12s %16s\n' "case" "no delay ms" "RTT ${rtt} ms" "round trips"
for protocol in h2 h1; do
  start_world "$protocol"
  for reqs in default one; do
    args=()
    [[ $reqs == one ]] && args=(--require "get pods")
    base=$(median_ms "$api_port" "${args[@]}")
    slow=$(median_ms "$relay_port" "${args[@]}")
    label="$([[ $protocol == h2 ]] && echo HTTP/2 || echo HTTP/1.1-only), $([[ $reqs == one ]] && echo one requirement || echo default requirements)"
    printf '%-36s %12s %12s %16s\n' "$label" "$base" "$slow" \
      "$(awk -v s="$slow" -v b="$base" -v r="$rtt" 'BEGIN { printf "%.1f", (s - b) / r }')"
  done
done
