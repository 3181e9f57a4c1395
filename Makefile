GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# The release image deploy/ references (deploy/daemonset.yaml, deploy/kustomization.yaml).
IMAGE ?= ghcr.io/kproxy/kproxy
IMAGE_TAG := v0.7.0

.PHONY: build test unit demo bench bench-ipvs bench-nft image clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/kproxy ./cmd/kproxy

# The whole suite (root): unit tests and kernel tests in network namespaces.
test:
	scripts/test.sh

# Unit tests only: no root, hermetic.
unit:
	$(GO) test ./...

# Builds, creates an isolated namespace world, proxies it with the example manifests, cleans up.
demo: build
	scripts/setup.sh
	$(GO) run ./test/cmd/kpx-demo -kproxy bin/kproxy -manifests deploy/examples/demo

# Go micro-benchmarks, then kpx-bench (root, own network namespaces) for 1000 services × 10 endpoints
# (about 40 s). BENCH_SCALE=10000 adds a 10k run (about 2.5 min); its restart scenario is skipped by
# default because iptables-save of a 110k-chain table takes minutes with iptables 1.8.9 (nf_tables).
BENCH_SCALE ?=
BENCH_SCALE_FLAGS ?= -rounds 3 -skip restart -timeout 10m
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./iptables/ ./proxier/
	$(GO) build -o bin/kpx-bench ./test/bench/cmd/kpx-bench
	bin/kpx-bench -services 1000 -endpoints 10 -rounds 5 -quiet
	@if [ -n "$(BENCH_SCALE)" ]; then \
		echo bin/kpx-bench -services $(BENCH_SCALE) -endpoints 10 $(BENCH_SCALE_FLAGS) -quiet; \
		bin/kpx-bench -services $(BENCH_SCALE) -endpoints 10 $(BENCH_SCALE_FLAGS) -quiet; \
	fi
	@echo "IPVS mode needs a kernel with IPVS: make bench-ipvs compares it with iptables mode in the qemu guest."

# IPVS vs iptables sync time in the qemu guest (this kernel has no IPVS): one guest boot per scale,
# every round syncs both modes in the guest's own namespaces; prints medians, the ipvs/iptables ratio
# and Handle calls per partial sync (root; software emulation: 1000:5 took 7.5 min and 10000:1 9 min on a loaded 2-core host).
BENCH_IPVS_SCALES ?= 1000:5,10000:1
BENCH_IPVS_FLAGS ?=
bench-ipvs:
	$(GO) build -o bin/kpx-vm-bench ./test/vm/cmd/kpx-vm-bench
	bin/kpx-vm-bench -scales $(BENCH_IPVS_SCALES) -v=false $(BENCH_IPVS_FLAGS)

# nftables mode: upstream kube-proxy v1.37.2 and kproxy as whole processes against one real kube-apiserver
# (test/cluster), each round in fresh network namespaces, same objects, same run; medians and kproxy ÷
# upstream per mode. The iptables-mode peers add the first-packet comparison (connect to the first and the
# last service). 1000 services × 3 rounds: about 2 min; BENCH_NFT_SCALE=10000 first creates 20k API
# objects (about 2.5 min).
BENCH_NFT_SCALE ?= 1000
BENCH_NFT_PEERS ?= upstream,kproxy,upstream-iptables,kproxy-iptables
BENCH_NFT_FLAGS ?= -rounds 3 -changes 20 -first-packet
bench-nft: build
	scripts/setup.sh
	$(GO) build -o bin/kpx-nft-bench ./test/bench/cmd/kpx-nft-bench
	bin/kpx-nft-bench -services $(BENCH_NFT_SCALE) -endpoints 10 -peers $(BENCH_NFT_PEERS) -kproxy bin/kproxy $(BENCH_NFT_FLAGS)

# The container image (needs a container engine; not part of the tests). Prints
# the pushed digest to pin in deploy/kustomization.yaml.
image:
	docker buildx build --build-arg VERSION=$(IMAGE_TAG) -t $(IMAGE):$(IMAGE_TAG) --push .
	docker buildx imagetools inspect $(IMAGE):$(IMAGE_TAG) --format '{{.Manifest.Digest}}'

clean:
	rm -rf bin
