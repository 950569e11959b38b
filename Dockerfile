# kube-reach container image: a static musl binary, busybox for /bin/sh, a CA bundle. No daemon, no
# package manager, no ENTRYPOINT.
#
# Why a shell: GitLab's Docker and Kubernetes executors run the job script with a shell found in the
# job image, so a pure FROM scratch image cannot be a job's `image:`. busybox-static gives /bin/sh and
# the usual coreutils in about 2 MB.
#
# Why no ENTRYPOINT: the runner starts the image with its own shell command; an entrypoint would
# swallow it and break every job script. `docker run IMAGE kube-reach demo` works as it is.
#
# Two ways to get the root filesystem, chosen with the ROOTFS build argument; the runtime stage at the
# end of this file is the same for both:
#
#   ROOTFS=rootfs-from-source (default): compile in the rust:* builder stage. Use this wherever a
#     registry is reachable, e.g. GitLab CI with buildah/kaniko/BuildKit:
#       buildah bud -t kube-reach .
#
#   ROOTFS=rootfs-from-context: take a rootfs/ directory from the build context, prepared on the host
#     by scripts/build-image.sh (static binary from the host's cargo, busybox-static and the CA bundle
#     from Debian). Nothing is pulled, so it works on a machine that reaches no image registry:
#       scripts/build-image.sh
#
# Builders that skip unused stages (BuildKit; buildah's --skip-unused-stages, on by default) never
# touch the rust image in the second case. Both paths assemble the filesystem with the same function
# (`scripts/build-image.sh rootfs DIR BINARY`), so they cannot drift apart.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG ROOTFS=rootfs-from-source

# ---------------------------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder
# Versions are not pinned: Debian security updates replace the exact versions, and the pinned build
# would break; the rust image tag pins the Debian release (bookworm).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools busybox-static ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add x86_64-unknown-linux-musl
WORKDIR /src
# Only what `cargo build` reads, so a local target/ or dist/ never enters the build context copy.
# Add a line here if the crate gains a build.rs or another source directory.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY scripts/build-image.sh ./scripts/build-image.sh
RUN cargo build --release --locked --target x86_64-unknown-linux-musl \
 && bash scripts/build-image.sh rootfs /rootfs target/x86_64-unknown-linux-musl/release/kube-reach

# ---------------------------------------------------------------------------------------------------
FROM scratch AS rootfs-from-source
COPY --from=builder /rootfs/ /

# ---------------------------------------------------------------------------------------------------
FROM scratch AS rootfs-from-context
COPY rootfs/ /

# ---------------------------------------------------------------------------------------------------
# The runtime image. ${ROOTFS} names one of the two stages above (a stage, not a registry image).
FROM ${ROOTFS} AS runtime

ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=""

LABEL org.opencontainers.image.title="kube-reach" \
      org.opencontainers.image.description="Diagnoses, layer by layer, why a GitLab CI job cannot reach its Kubernetes API server; writes JUnit and JSON reports" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"

# SSL_CERT_FILE: where rustls-native-certs (and most other tools) look for the trust store.
ENV PATH=/usr/local/bin:/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt

# Not root: uid/gid 65534 (`nobody` in the image's /etc/passwd). GitLab runners create the project
# directory world-writable for exactly this case, so reports can be written to $CI_PROJECT_DIR.
USER 65534:65534

CMD ["kube-reach", "--help"]
