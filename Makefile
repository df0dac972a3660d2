# The default goal runs every test, as CI does.
.DEFAULT_GOAL := test

VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: build static test race vet cover demo bench clean

build:
	go build -ldflags "$(LDFLAGS)" -o manager .

# static is the binary for FROM scratch images: no libc, no cgo.
static:
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $(LDFLAGS)" -o manager .
	@file manager | grep -q 'statically linked' || { file manager; echo "manager: not statically linked"; exit 1; }
	@echo "manager: $$(stat -c %s manager) bytes, statically linked"

# test is everything: vet, the unit tests under the race detector, then all
# tests, integration included, against a static build. The race detector
# needs cgo, and the runc test needs a static test binary, hence two passes.
# The package runs in local directory mode (no package argument), so that
# its output, with the line naming each skipped test, is shown; go vet
# compiles the other packages, which have no tests.
test: vet
	go test -race -short -count=1
	CGO_ENABLED=0 go test -count=1 -timeout 8m

race:
	go test -race -count=1 ./...

vet:
	go vet ./...
	@out=$$(gofmt -l .); test -z "$$out" || { echo "gofmt needed: $$out"; exit 1; }

cover:
	CGO_ENABLED=0 go test -count=1 -coverprofile=cover.out .
	go tool cover -func=cover.out

demo: static
	examples/demo.sh

bench: static
	bench/run

clean:
	rm -f manager cover.out
