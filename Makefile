# dfs — build, test and run. `make help` lists the targets.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)
GO ?= go
PREFIX ?= /usr/local
BIN := bin
# Unit and integration tests share the machine's two cores; keep package
# parallelism low so that timing-sensitive integration tests are not starved.
TESTFLAGS ?= -p 2
PROTOC_GEN_GO := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.0

.PHONY: help deps build test test-unit test-integration lint proto install run clean

help:
	@echo "make run      start an all-in-one local cluster (dfs dev)"
	@echo "make test     run every test: lint, unit tests with -race, integration tests"
	@echo "make build    build bin/dfs"
	@echo "make install  install dfs to $(PREFIX)/bin"
	@echo "make proto    regenerate the committed gRPC code"

# deps installs what building and testing need on a Debian machine.
deps:
	@scripts/deps.sh

build: deps
	$(GO) build -o $(BIN)/dfs ./cmd/dfs

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go') | grep -v '\.pb\.go$$' || true); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on: $$unformatted"; exit 1; fi
	$(GO) vet ./...

test-unit: deps
	$(GO) test $(TESTFLAGS) -race -count=1 $$($(GO) list ./... | grep -v /integration)

# The integration tests include a short TestChaos run (60 s of faults);
# make chaos runs a long one.
test-integration: build
	$(GO) test $(TESTFLAGS) -count=1 -timeout 25m ./integration/... -dfs-binary=$(CURDIR)/$(BIN)/dfs

test: lint test-unit test-integration

# fsx runs the long randomized differential exerciser of the FUSE mount
# (fuse/fsx_test.go); e.g. make fsx FSXFLAGS='-fsx.seed=N -fsx.ops=M'.
.PHONY: fsx
fsx:
	$(GO) test -count=1 -timeout 0 -v -run 'TestFsx$$' ./fuse/ -fsx.long $(FSXFLAGS)

proto:
	@command -v protoc >/dev/null || (apt-get update -qq && apt-get install -y -qq protobuf-compiler)
	@command -v protoc-gen-go >/dev/null || $(GO) install $(PROTOC_GEN_GO)
	@command -v protoc-gen-go-grpc >/dev/null || $(GO) install $(PROTOC_GEN_GO_GRPC)
	protoc -I proto --go_out=proto/dfspb --go_opt=paths=source_relative \
		--go-grpc_out=proto/dfspb --go-grpc_opt=paths=source_relative proto/*.proto

install: build
	install -D -m 0755 $(BIN)/dfs $(DESTDIR)$(PREFIX)/bin/dfs
	install -d $(DESTDIR)/sbin
	ln -sf $(PREFIX)/bin/dfs $(DESTDIR)/sbin/mount.dfs

run: build
	$(BIN)/dfs dev

clean:
	rm -rf $(BIN)

# Targets kept beside their code: make bench / bench-deps (bench/bench.mk),
# make chaos (integration/chaos.mk).
-include bench/bench.mk integration/chaos.mk
