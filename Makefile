GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: build test unit demo bench clean

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

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./iptables/ ./proxier/

clean:
	rm -rf bin
