# The default goal runs every test, as CI does. `make help` lists the targets.
.DEFAULT_GOAL := test

VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: help build static test race vet cover demo bench clean

help: ## list the targets
	@awk -F ':.*## ' '/^[a-z]+:.*## / { printf "  make %-8s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

build: ## ./manager, for this machine
	go build -ldflags "$(LDFLAGS)" -o manager .

# static is the binary for FROM scratch images: no libc, no cgo. The check
# reads the ELF headers with Go's debug/elf: no file(1) needed.
static: ## ./manager, static and stripped, for FROM scratch images; checks it is static
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $(LDFLAGS)" -o manager .
	@go run ./.ci/elfcheck manager

# test is everything: vet, the unit tests under the race detector, then all
# tests, integration included, against a static build. The race detector
# needs cgo, and the runc test needs a static test binary, hence two passes.
# The package runs in local directory mode (no package argument), so that
# its output, with the line naming each skipped test, is shown; go vet
# compiles the other packages, which have no tests.
test: vet ## vet, unit tests under -race, then every test against static builds (what CI runs)
	go test -race -short -count=1
	CGO_ENABLED=0 go test -count=1 -timeout 8m

race: ## every test under the race detector
	go test -race -count=1 ./...

vet: ## go vet and gofmt
	go vet ./... ./.ci/elfcheck
	@out=$$(gofmt -l .); test -z "$$out" || { echo "gofmt needed: $$out"; exit 1; }

cover: ## coverage profile and per-function summary
	CGO_ENABLED=0 go test -count=1 -coverprofile=cover.out .
	go tool cover -func=cover.out

demo: static ## the real manager runs a demo program: config change, bad config, SIGTERM
	examples/demo.sh

bench: static ## benchmarks against tini, dumb-init and catatonit, into BENCHMARKS.md
	bench/run

clean: ## remove what the targets wrote
	rm -f manager cover.out
