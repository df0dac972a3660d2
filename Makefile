# The default goal runs every test, as CI does. `make help` lists the targets.
.DEFAULT_GOAL := test

VERSION := $(shell git describe --tags --always --dirty --abbrev=12 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

# release writes here; tests point it at a temporary directory.
DIST ?= dist
# Docker's TARGETARCH names, which are also Go's GOARCH names.
ARCHES := amd64 arm64 arm 386 ppc64le s390x riscv64

.PHONY: help build static release test race vet cover demo bench clean

help: ## list the targets
	@awk -F ':.*## ' '/^[a-z]+:.*## / { printf "  make %-8s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

build: ## ./manager, for this machine
	go build -ldflags "$(LDFLAGS)" -o manager .

# static is the binary for FROM scratch images: no libc, no cgo. The check
# reads the ELF headers with Go's debug/elf: no file(1) needed.
static: ## ./manager, static and stripped, for FROM scratch images; checks it is static
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $(LDFLAGS)" -o manager .
	@go run ./.ci/elfcheck manager

# release builds the same bytes from the same commit on any machine: no
# paths (-trimpath), no build id, no VCS stamp (a git worktree gets none, a
# clone does), GOFLAGS and the instruction-set levels pinned against the
# builder's environment. GOARM=6 runs on ARMv6 and ARMv7 alike.
release: ## static binaries for every architecture in dist/, with SHA256SUMS
	@mkdir -p $(DIST)
	rm -f $(DIST)/manager-linux-* $(DIST)/SHA256SUMS
	@for arch in $(ARCHES); do \
		echo "go build $(DIST)/manager-linux-$$arch"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch GOFLAGS=-buildvcs=false \
		GOAMD64=v1 GO386=sse2 GOARM=6 GOPPC64=power8 GORISCV64=rva20u64 \
		go build -trimpath -ldflags "-s -w -buildid= $(LDFLAGS)" -o $(DIST)/manager-linux-$$arch . || exit 1; \
	done
	@go run ./.ci/elfcheck $(addprefix $(DIST)/manager-linux-,$(ARCHES))
	cd $(DIST) && sha256sum $(addprefix manager-linux-,$(ARCHES)) >SHA256SUMS

# test is everything: vet, the unit tests under the race detector, then all
# tests, integration included, against a static build. The race detector
# needs cgo, and the container tests need a static test binary, hence two
# passes. This package runs in local directory mode (no package argument),
# so that its output, with the line naming each skipped test, is shown; the
# others (bench/, examples/) run after it.
test: vet ## vet, unit tests under -race, then every test against static builds (what CI runs)
	go test -race -short -count=1
	CGO_ENABLED=0 go test -count=1 -timeout 15m
	go test -race -count=1 $$(go list -f '{{if ne .ImportPath "manager"}}{{.ImportPath}}{{end}}' ./...)

race: ## every test under the race detector
	go test -race -count=1 ./...

vet: ## go vet and gofmt
	go vet ./... ./.ci/elfcheck ./testdata/child
	@out=$$(gofmt -l .); test -z "$$out" || { echo "gofmt needed: $$out"; exit 1; }

cover: ## coverage profile and per-function summary
	CGO_ENABLED=0 go test -count=1 -coverprofile=cover.out .
	go tool cover -func=cover.out

demo: static ## the real manager runs a demo program: config change, bad config, SIGTERM
	examples/demo.sh

bench: static ## benchmarks against tini, dumb-init, catatonit, go-init and a bare Go init, into BENCHMARKS.md (BENCH_BEFORE=OLD-BINARY: before and after)
	bench/run

clean: ## remove what the targets wrote
	rm -rf manager cover.out $(DIST)
