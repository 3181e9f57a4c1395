# The image deploy/daemonset.yaml names. Not built in CI (no container engine there).
#
# Stage 1 builds a static kproxy; stage 2 is a slim Debian with only what the
# data plane needs at run time: iptables (nf_tables and legacy), ipset and
# conntrack. kproxy itself talks netlink for conntrack and needs no shell.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/kproxy ./cmd/kproxy

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables ipset conntrack \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc /usr/share/man
COPY --from=build /out/kproxy /usr/local/bin/kproxy
ENTRYPOINT ["/usr/local/bin/kproxy"]
