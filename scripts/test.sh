#!/usr/bin/env bash
# The whole test suite, as the README gives it. Needs the tools .ci/run installs; the network
# namespace suite needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

step "one crypto provider (ring): no aws-lc-rs, no OpenSSL"
if cargo tree -i aws-lc-rs --locked >/dev/null 2>&1; then echo "aws-lc-rs crept into the tree" >&2; exit 1; fi
if cargo tree -i openssl-sys --locked >/dev/null 2>&1; then echo "openssl-sys crept into the tree" >&2; exit 1; fi

step "tests: unit, loopback integration, reports, kubectl cross-check, network namespaces"
cargo test --locked -- --test-threads=2

step "static musl binary"
cargo build --release --locked --target x86_64-unknown-linux-musl
bin=target/x86_64-unknown-linux-musl/release/kube-reach
ls -l "$bin"

step "container image (buildah, no daemon)"
scripts/build-image.sh --binary "$bin"

step "CI/CD component and pipeline validation (check-jsonschema, gitlab-ci-local)"
KUBE_REACH_BIN="$bin" scripts/validate-ci.sh
