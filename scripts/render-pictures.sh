#!/usr/bin/env bash
# Regenerates the README's pictures from kube-reach's real output (run by hand, not in CI):
#   docs/job-log.png      the demo's job log as GitLab renders it (sections, colours)
#   docs/test-report.png  the demo's JUnit as GitLab's widget, Tests tab and details show it
# The demo runs as in a GitLab job (GITLAB_CI=true: section markers and colour); the HTML comes
# from scripts/render_pictures.py, which follows GitLab's job-log converter and JUnit parser;
# headless Chromium takes the screenshots. Needs python3 and Debian's chromium-headless-shell
# (apt-get install chromium-headless-shell fonts-dejavu-core).
set -euo pipefail
cd "$(dirname "$0")/.."

browser=$(command -v chromium-headless-shell || command -v chromium || true)
if [[ -z "$browser" ]]; then
    echo "render-pictures: needs headless Chromium: apt-get install chromium-headless-shell fonts-dejavu-core" >&2
    exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --locked --quiet
# What the job log holds: the runner echoes the command, then kube-reach's stdout and stderr.
{
    printf '\033[32;1m$ kube-reach demo --junit kube-reach.junit.xml\033[0;m\n'
    GITLAB_CI=true target/debug/kube-reach demo --color always --junit "$work/junit.xml" 2>&1 || true
} >"$work/job.log"

shoot() { # shoot HTML PNG HEIGHT
    local h=$(( $3 > 2400 ? 2400 : $3 ))  # the top of a long page: the overview and the first sections
    "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --window-size="1200,$h" --screenshot="$2" "file://$1" >/dev/null 2>&1
    echo "wrote $2 (1200x$h)"
}

mkdir -p docs
height=$(python3 scripts/render_pictures.py joblog "$work/job.log" "$work/job-log.html")
shoot "$work/job-log.html" docs/job-log.png "$height"
height=$(python3 scripts/render_pictures.py tests "$work/junit.xml" "$work/test-report.html")
shoot "$work/test-report.html" docs/test-report.png "$height"
