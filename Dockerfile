# The image deploy/daemonset.yaml names. Not built in CI (no container engine there).
#
# Stage 1 builds a static kproxy; stage 2 is a slim Debian with only what the
# data plane needs at run time: iptables (nf_tables and legacy), ipset,
# conntrack and nft (nftables mode, and the removal of its tables when
# another mode starts). kproxy itself talks netlink for conntrack and needs no shell.
#
# Base images are pinned by digest (the tag is only a reminder of what the
# digest is): a rebuild of the same commit gets the same toolchain and the same
# userland. Move a digest on purpose, in its own commit, with
#   docker buildx imagetools inspect <image:tag> --format '{{.Manifest.Digest}}'
# golang:1.26-bookworm at Go 1.26.8, the toolchain the tests run with.
FROM golang:1.26-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/kproxy ./cmd/kproxy

FROM debian:bookworm-slim@sha256:63a496b5d3b99214b39f5ed70eb71a61e590a77979c79cbee4faf991f8c0783e
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables ipset conntrack nftables \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc /usr/share/man
COPY --from=build /out/kproxy /usr/local/bin/kproxy
ENTRYPOINT ["/usr/local/bin/kproxy"]
