#!/usr/bin/env bash
# Builds the kube-reach container image without a Docker daemon and without pulling any image.
#
#   scripts/build-image.sh [--binary PATH] [--tag NAME] [--out DIR] [--max-bytes N] [--keep-image] [--no-smoke]
#   scripts/build-image.sh rootfs DIR BINARY     # only assemble the image's root filesystem in DIR
#
# Steps: build the static musl binary with the host's cargo (unless --binary is given), assemble the
# root filesystem (binary, busybox-static for /bin/sh, Debian's CA bundle, /etc/passwd with uid 65534,
# /tmp), build the Dockerfile's `runtime` stage from it with buildah (vfs storage, chroot isolation:
# no daemon, no user namespaces, no privileges beyond root), then check the result:
#   - size at most --max-bytes (default 12000000, i.e. 12 MB),
#   - configured user 65534:65534, no entrypoint, SSL_CERT_FILE set,
#   - /bin/sh exists and `kube-reach --version` runs as uid 65534 inside the image (umoci unpack + chroot),
#   - `kube-reach demo healthy` writes a JUnit report with test cases inside the image (skip: --no-smoke),
# and export it as an OCI archive: DIR/kube-reach.oci.tar (default DIR: dist/).
#
# Needs: buildah, umoci, busybox-static, ca-certificates (Debian packages); to build the binary: cargo, the
# x86_64-unknown-linux-musl rust target and musl-tools. It installs nothing; a missing tool is named.
# Honours CARGO_TARGET_DIR. The image is removed from buildah's local storage at the end unless
# --keep-image is given (the archive is the output).
set -euo pipefail

TARGET_TRIPLE=x86_64-unknown-linux-musl
BUSYBOX=${BUSYBOX:-/bin/busybox}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}

die() { printf 'build-image: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'build-image: %s\n' "$*"; }
need() {
    command -v "$1" >/dev/null 2>&1 || die "missing tool '$1': $2"
}

# Assembles the image's root filesystem in $1 from the static binary $2. Used by this script on the
# host and by the Dockerfile's builder stage, so both images have the same layout.
assemble_rootfs() {
    local dir=$1 bin=$2 applet
    [[ -f $bin ]] || die "binary not found: $bin"
    [[ -x $BUSYBOX ]] || die "missing $BUSYBOX: install Debian's busybox-static (apt-get install -y busybox-static)"
    [[ -f $CA_BUNDLE ]] || die "missing $CA_BUNDLE: install Debian's ca-certificates"
    if command -v readelf >/dev/null 2>&1; then
        # A dynamic binary would fail in the image with a bare "not found" from the shell.
        if readelf -l "$bin" 2>/dev/null | grep -q 'Requesting program interpreter'; then
            die "$bin is dynamically linked; build it for $TARGET_TRIPLE"
        fi
        if readelf -l "$BUSYBOX" 2>/dev/null | grep -q 'Requesting program interpreter'; then
            die "$BUSYBOX is dynamically linked; install busybox-static, not busybox"
        fi
    fi
    mkdir -p "$dir"/bin "$dir"/usr/bin "$dir"/usr/local/bin "$dir"/etc/ssl/certs "$dir"/tmp
    install -m 0755 "$BUSYBOX" "$dir/bin/busybox"
    for applet in $("$BUSYBOX" --list); do
        [[ $applet == busybox ]] && continue
        ln -sf busybox "$dir/bin/$applet"
    done
    [[ -e $dir/bin/sh ]] || die "$BUSYBOX has no 'sh' applet"
    ln -sf ../../bin/busybox "$dir/usr/bin/env"     # for `#!/usr/bin/env sh` scripts
    install -m 0755 "$bin" "$dir/usr/local/bin/kube-reach"
    install -m 0644 "$CA_BUNDLE" "$dir/etc/ssl/certs/ca-certificates.crt"
    printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' \
        > "$dir/etc/passwd"
    printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' > "$dir/etc/group"
    chmod 0644 "$dir/etc/passwd" "$dir/etc/group"
    chmod 1777 "$dir/tmp"
}

if [[ ${1:-} == rootfs ]]; then
    [[ $# -eq 3 ]] || die "usage: $0 rootfs DIR BINARY"
    assemble_rootfs "$2" "$3"
    exit 0
fi

binary="" tag="" out="" max_bytes=12000000 keep_image=0 smoke=1
while [[ $# -gt 0 ]]; do
    case $1 in
        --binary) binary=${2:?--binary needs a path}; shift 2 ;;
        --tag) tag=${2:?--tag needs a name}; shift 2 ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        --max-bytes) max_bytes=${2:?--max-bytes needs a number}; shift 2 ;;
        --keep-image) keep_image=1; shift ;;
        --no-smoke) smoke=0; shift ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=${out:-$root/dist}

need buildah "install Debian's buildah (apt-get install -y buildah)"
need umoci "install Debian's umoci (apt-get install -y umoci)"
need chroot "install coreutils"
[[ -x $BUSYBOX ]] || die "missing $BUSYBOX: install Debian's busybox-static (apt-get install -y busybox-static)"
[[ -f $CA_BUNDLE ]] || die "missing $CA_BUNDLE: install Debian's ca-certificates"

version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
[[ -n $version ]] || die "no version found in Cargo.toml"
tag=${tag:-localhost/kube-reach:$version}
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [[ -n ${SOURCE_DATE_EPOCH:-} ]]; then
    created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
else
    created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
fi
source_url=${CI_PROJECT_URL:-}

# 1. The static binary.
if [[ -z $binary ]]; then
    need cargo "install the Rust toolchain (rustup)"
    need musl-gcc "install Debian's musl-tools (apt-get install -y musl-tools); ring's C code needs it"
    if command -v rustup >/dev/null 2>&1 &&
        ! rustup target list --installed | grep -qx "$TARGET_TRIPLE"; then
        die "rust target $TARGET_TRIPLE is not installed: rustup target add $TARGET_TRIPLE"
    fi
    say "cargo build --release --locked --target $TARGET_TRIPLE"
    cargo build --release --locked --target "$TARGET_TRIPLE"
    binary=${CARGO_TARGET_DIR:-$root/target}/$TARGET_TRIPLE/release/kube-reach
fi
[[ -f $binary ]] || die "binary not found: $binary"

# 2. Build context: the root filesystem only (the Dockerfile's rootfs-from-context stage copies it).
work=$(mktemp -d "${TMPDIR:-/tmp}/kube-reach-image.XXXXXX")
b() { buildah --storage-driver "$STORAGE_DRIVER" "$@"; }
cleanup() {
    local rc=$?
    if [[ $keep_image -eq 0 ]]; then b rmi "$tag" >/dev/null 2>&1 || true; fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
assemble_rootfs "$work/rootfs" "$binary"

# 3. Build the runtime stage. --pull-never: nothing may come from a registry (FROM scratch only).
say "buildah bud --target runtime -t $tag (ROOTFS=rootfs-from-context)"
b bud --isolation chroot --pull-never --target runtime \
    --build-arg ROOTFS=rootfs-from-context \
    --build-arg VERSION="$version" --build-arg REVISION="$revision" \
    --build-arg CREATED="$created" --build-arg SOURCE="$source_url" \
    -f "$root/Dockerfile" -t "$tag" "$work" >"$work/bud.log" 2>&1 ||
    { cat "$work/bud.log" >&2; die "buildah bud failed"; }

# 4. Checks.
fail=0 passed=0 failed=0
check() {
    if eval "$2"; then say "ok   $1"; passed=$((passed + 1)); else say "FAIL $1"; fail=1; failed=$((failed + 1)); fi
}

# Size = the uncompressed layer tars (what `docker images` and the registry's unpacked size count).
# buildah only prints a rounded human figure, so export the layers uncompressed and add them up.
b push --quiet --disable-compression "$tag" "dir:$work/uncompressed" >/dev/null
size=$(b inspect --type image --format '{{range .OCIv1.RootFS.DiffIDs}}{{println .}}{{end}}' "$tag" |
    sed -n 's/^sha256:\(.*\)$/\1/p' | while read -r digest; do stat -c %s "$work/uncompressed/$digest"; done |
    awk '{s+=$1} END{print s+0}')
[[ $size -gt 0 ]] || die "could not measure the image's layers"
say "image $tag: $size bytes ($(awk -v s="$size" 'BEGIN{printf "%.2f MB", s/1000000}'))"
check "size $size <= $max_bytes bytes" '[[ $size -le $max_bytes ]]'

user=$(b inspect --type image --format '{{.OCIv1.Config.User}}' "$tag")
entrypoint=$(b inspect --type image --format '{{.OCIv1.Config.Entrypoint}}' "$tag")
envs=$(b inspect --type image --format '{{.OCIv1.Config.Env}}' "$tag")
labels=$(b inspect --type image --format '{{.OCIv1.Config.Labels}}' "$tag")
check "user is 65534:65534 (got '$user')" '[[ $user == 65534:65534 ]]'
check "no entrypoint (got '$entrypoint')" '[[ $entrypoint == "[]" ]]'
check "SSL_CERT_FILE is set" '[[ $envs == *SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt* ]]'
check "OCI labels title/version/revision" \
    '[[ $labels == *org.opencontainers.image.title:kube-reach* && $labels == *org.opencontainers.image.version:$version* && $labels == *org.opencontainers.image.revision:$revision* ]]'

# Run checks in the unpacked image: umoci unpack + chroot as the image's user, with the image's
# environment. Unlike `buildah run`, this needs no mount privileges (chroot needs only CAP_SYS_CHROOT,
# which an ordinary container has), so it works inside a CI job container too. Like a container
# runtime, give it the host's /etc/hosts and /etc/resolv.conf, and, where this process may create
# namespaces (root on a host; not in an unprivileged container), a private /proc and the host's /dev
# in a throwaway mount namespace, which vanishes with the process.
b push --quiet "$tag" "oci:$work/oci:image" >/dev/null
umoci unpack --image "$work/oci:image" "$work/bundle" >/dev/null
rootfs=$work/bundle/rootfs
for f in /etc/hosts /etc/resolv.conf; do [[ -f $f ]] && cp "$f" "$rootfs$f"; done
mkdir -p "$rootfs/proc" "$rootfs/dev"
mapfile -t image_env < <(b inspect --type image --format '{{range .OCIv1.Config.Env}}{{println .}}{{end}}' "$tag" | sed '/^$/d')
chroot_bin=$(command -v chroot)
namespaces=0
if command -v unshare >/dev/null 2>&1 && command -v mount >/dev/null 2>&1 &&
    unshare --mount --pid --fork --mount-proc="$rootfs/proc" true 2>/dev/null; then
    namespaces=1
    unshare_bin=$(command -v unshare) mount_bin=$(command -v mount)
    say "running the image with chroot + a private mount/pid namespace (/proc, /dev)"
else
    say "running the image with plain chroot (no /proc, no /dev: namespaces not permitted here)"
fi
run() {
    if [[ $namespaces -eq 1 ]]; then
        env -i "${image_env[@]}" "$unshare_bin" --mount --pid --fork --mount-proc="$rootfs/proc" \
            /bin/sh -c 'r=$1 m=$2 c=$3 u=$4; shift 4; "$m" --rbind /dev "$r/dev" && exec "$c" --userspec="$u" "$r" "$@"' \
            sh "$rootfs" "$mount_bin" "$chroot_bin" "$user" "$@"
    else
        env -i "${image_env[@]}" "$chroot_bin" --userspec="$user" "$rootfs" "$@"
    fi
}
check "/bin/sh exists and runs" 'run /bin/sh -c "test -x /bin/sh && echo sh-ok" 2>/dev/null | grep -qx sh-ok'
uid=$(run /bin/sh -c 'id -u' 2>/dev/null || true)
check "runs as uid 65534 (got '$uid')" '[[ $uid == 65534 ]]'
version_out=$(run kube-reach --version 2>&1) && version_rc=0 || version_rc=$?
say "kube-reach --version (as uid $uid): rc=$version_rc: $version_out"
check "kube-reach --version runs as non-root" '[[ $version_rc -eq 0 && $version_out == *kube-reach* ]]'
if [[ $smoke -eq 1 ]]; then
    # The embedded loopback cluster; /tmp in the image is writable by uid 65534.
    demo_rc=0
    run kube-reach demo healthy --junit /tmp/demo.junit.xml --json /tmp/demo.json --color never \
        >"$work/demo.log" 2>&1 || demo_rc=$?
    cases=$(grep -o '<testcase ' "$rootfs/tmp/demo.junit.xml" 2>/dev/null | wc -l || true)
    check "kube-reach demo healthy exits 0 and writes JUnit test cases (rc=$demo_rc, ${cases:-0} test cases)" \
        '[[ $demo_rc -eq 0 && ${cases:-0} -gt 0 ]]'
    [[ $demo_rc -eq 0 ]] || sed 's/^/  demo| /' "$work/demo.log"
fi
say "$passed passed, $failed failed"
[[ $fail -eq 0 ]] || die "image checks failed"

# 5. Export.
mkdir -p "$out"
rm -f "$out/kube-reach.oci.tar"
b push --quiet "$tag" "oci-archive:$out/kube-reach.oci.tar:kube-reach:$version" >/dev/null
say "exported $out/kube-reach.oci.tar ($(stat -c %s "$out/kube-reach.oci.tar") bytes, compressed layers)"
say "image size: $size bytes"
