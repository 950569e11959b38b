#!/usr/bin/env bash
# Times the network-namespace suite and prints, per case, kube-reach's and kubectl's time to
# verdict (min / median / max over the runs, in ms), then the suite's wall time per run. The
# suite asserts only generous bounds; this is where the real figures are read.
#
# Usage (as root, from anywhere): tests/netns/bench.sh [RUNS=3] [TEST_THREADS=8]
set -euo pipefail
runs=${1:-3}
threads=${2:-8}
cd "$(dirname "$0")/../.."
timings=$(mktemp)
trap 'rm -f "$timings"' EXIT

cargo test --quiet --test netns --no-run
for run in $(seq "$runs"); do
  start=$(date +%s%N)
  status=ok
  KUBE_REACH_E2E_TIMINGS=$timings cargo test --quiet --test netns -- --test-threads "$threads" \
    >/dev/null 2>&1 || status="some tests FAILED"
  printf 'run %d: suite %d ms (%s)\n' "$run" $(( ($(date +%s%N) - start) / 1000000 )) "$status"
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
