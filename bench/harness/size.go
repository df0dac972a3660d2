package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// sizeLimit is the earlier target for the static binary, in bytes (2.0
// MB), and newSizeLimit targetSize's (2.2 MB).
const (
	sizeLimit    = 2_000_000
	newSizeLimit = 2_200_000
)

// floorPrograms are the smallest programs that link what manager must link,
// built as manager is, to show what the size and memory targets leave for
// manager's own code. Each uses its packages just enough to keep them. The
// last one, all that the contract requires, waits for SIGTERM, so that the
// idle benchmark can read its memory.
var floorPrograms = []struct{ name, source string }{
	{"empty `func main() {}`", `package main

func main() {}
`},
	{"log/slog only (mandated for logs)", `package main

import "log/slog"

func main() { slog.Info("started") }
`},
	{"slog + flag + crypto/sha256 + os/signal (all mandated)", `package main

import (
	"crypto/sha256"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	poll := flag.Duration("poll", 0, "")
	flag.Parse()
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	sum := sha256.Sum256([]byte(os.Args[0]))
	slog.Info("started", "poll", *poll, "sum", sum[0])
	<-c
}
`},
}

// floorBinaries builds floorPrograms, once, and returns their paths in
// order. They are built like manager: CGO_ENABLED=0 -trimpath -ldflags "-s -w".
func (b *bench) floorBinaries() ([]string, error) {
	if b.floors != nil {
		return b.floors, nil
	}
	var paths []string
	for i, p := range floorPrograms {
		dir := filepath.Join(b.work, fmt.Sprintf("size%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module sizefloor\n\ngo 1.26\n"), 0o644); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(p.source), 0o644); err != nil {
			return nil, err
		}
		progress("building the Go floor: %s", p.name)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", "floor", ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build %s: %v\n%s", p.name, err, out)
		}
		paths = append(paths, filepath.Join(dir, "floor"))
	}
	b.floors = paths
	return paths, nil
}

// size reports the static manager's size beside the floor programs, the
// peers' and, with -before, the older manager's.
func (b *bench) size() (section, error) {
	floors, err := b.floorBinaries()
	if err != nil {
		return section{}, err
	}
	var md strings.Builder
	fmt.Fprintf(&md, "The Go programs are built like `make static`: `CGO_ENABLED=0 go build -trimpath -ldflags \"-s -w\"`.\n")
	fmt.Fprintf(&md, "The floor programs link only packages the contract requires (slog for logs, flag for flags,\n")
	fmt.Fprintf(&md, "SHA-256 for the content gate, os/signal for `signal.Notify`): no Go program that meets the contract is smaller.\n\n")
	fmt.Fprintf(&md, "| binary | bytes |\n|---|---|\n")

	var mandated int64
	for i, p := range floorPrograms {
		n, err := fileSize(floors[i])
		if err != nil {
			return section{}, err
		}
		mandated = n // the last is all the contract requires
		fmt.Fprintf(&md, "| Go floor: %s | %s |\n", p.name, commas(n))
	}
	var fwd int64
	for _, f := range []struct{ name, path string }{
		{"Go floor: bench/floor (fork-exec + wait4)", b.floor},
		{"Go floor: bench/forward (bench/floor + os/signal)", b.forward},
	} {
		n, err := fileSize(f.path)
		if err != nil {
			return section{}, err
		}
		fwd = n // the last is bench/forward
		fmt.Fprintf(&md, "| %s | %s |\n", f.name, commas(n))
	}
	peer := b.noGo
	if b.goInit != "" {
		n, err := fileSize(b.goInit)
		if err != nil {
			return section{}, err
		}
		peer = fmt.Sprintf("go-init %s bytes", commas(n))
		fmt.Fprintf(&md, "| go-init (pablo-ruth/go-init, built the same way) | %s |\n", commas(n))
	} else {
		fmt.Fprintf(&md, "| go-init | %s |\n", b.noGo)
	}
	peer += fmt.Sprintf("; bench/forward %s bytes", commas(fwd))
	m, err := fileSize(b.manager)
	if err != nil {
		return section{}, err
	}
	fmt.Fprintf(&md, "| **manager** (`make static`) | **%s** |\n", commas(m))
	measured := commas(m) + " bytes"
	if b.before != "" {
		n, err := fileSize(b.before)
		if err != nil {
			return section{}, err
		}
		fmt.Fprintf(&md, "| %s | %s |\n", b.beforeName(""), commas(n))
		measured += fmt.Sprintf("; before: %s bytes", commas(n))
	}
	for _, peer := range []string{"tini", "tini-static", "dumb-init", "catatonit"} {
		path, err := exec.LookPath(peer)
		if err != nil {
			continue
		}
		n, err := fileSize(path)
		if err != nil {
			return section{}, err
		}
		fmt.Fprintf(&md, "| %s (Debian, C) | %s |\n", path, commas(n))
	}
	progress("manager: %s bytes", commas(m))
	return section{md.String(), []verdict{
		{"static binary ≤ 2.0 MB", commas(m) + " bytes", commas(mandated) + " bytes (mandated packages only)", m <= sizeLimit},
		{targetSize, measured, peer, m <= newSizeLimit},
	}}, nil
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// commas formats n with thousands separators.
func commas(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
