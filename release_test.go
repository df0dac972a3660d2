package main

// Tests of what make release ships: static binaries for every
// architecture Docker names, byte for byte reproducible, checksummed, and
// really running on foreign architectures under qemu-user; and the version
// that a plain go build or go install stamps.

import (
	"archive/zip"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// releaseArches are the architectures of make release, by their Docker
// TARGETARCH (and Go GOARCH) names, with what their ELF headers must say and
// qemu-user's name for them (qemu-NAME-static, binfmt_misc entry qemu-NAME).
var releaseArches = []struct {
	goarch  string
	machine elf.Machine
	class   elf.Class
	data    elf.Data
	qemu    string
}{
	{"amd64", elf.EM_X86_64, elf.ELFCLASS64, elf.ELFDATA2LSB, "x86_64"},
	{"arm64", elf.EM_AARCH64, elf.ELFCLASS64, elf.ELFDATA2LSB, "aarch64"},
	{"arm", elf.EM_ARM, elf.ELFCLASS32, elf.ELFDATA2LSB, "arm"},
	{"386", elf.EM_386, elf.ELFCLASS32, elf.ELFDATA2LSB, "i386"},
	{"ppc64le", elf.EM_PPC64, elf.ELFCLASS64, elf.ELFDATA2LSB, "ppc64le"},
	{"s390x", elf.EM_S390, elf.ELFCLASS64, elf.ELFDATA2MSB, "s390x"},
	{"riscv64", elf.EM_RISCV, elf.ELFCLASS64, elf.ELFDATA2LSB, "riscv64"},
}

// The output of make release, made once per test run and shared.
var (
	releaseOnce    sync.Once
	releaseDist    string // the DIST directory
	releaseVersion string // git describe, as the Makefile stamps it
	releaseErr     error
)

// release runs make release once into a temporary DIST and returns that
// directory and the version its binaries must print.
func release(t *testing.T) (dist, version string) {
	t.Helper()
	requireTool(t, "make", "make release")
	binaries(t) // for binDir, removed when the tests end
	releaseOnce.Do(func() {
		releaseDist = filepath.Join(binDir, "dist")
		releaseVersion = describe(".")
		var out []byte
		if out, releaseErr = exec.Command("make", "release", "DIST="+releaseDist).CombinedOutput(); releaseErr != nil {
			releaseErr = fmt.Errorf("make release: %v\n%s", releaseErr, out)
		}
	})
	if releaseErr != nil {
		t.Fatal(releaseErr)
	}
	return releaseDist, releaseVersion
}

// describe is the version the Makefile gives a build from dir.
func describe(dir string) string {
	out, err := exec.Command("git", "-C", dir, "describe", "--tags", "--always", "--dirty", "--abbrev=12").Output()
	if err != nil {
		return "dev"
	}
	return strings.TrimSpace(string(out))
}

// TestReleaseBinaries proves that every binary make release writes
// is a static ELF executable for its architecture, built as the Makefile
// says, and a second release of the same source, from another directory,
// with an empty build cache, has the same bytes.
func TestReleaseBinaries(t *testing.T) {
	integration(t)
	dist, _ := release(t)
	for _, a := range releaseArches {
		t.Run(a.goarch, func(t *testing.T) {
			path := filepath.Join(dist, "manager-linux-"+a.goarch)
			f, err := elf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Machine != a.machine || f.Class != a.class || f.Data != a.data {
				t.Errorf("%s is %v %v %v, want %v %v %v", path, f.Machine, f.Class, f.Data, a.machine, a.class, a.data)
			}
			if err := staticELF(path); err != nil {
				t.Errorf("%s is not static: %v", path, err)
			}
			info, err := buildinfo.ReadFile(path)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			want := map[string]string{"GOOS": "linux", "GOARCH": a.goarch, "CGO_ENABLED": "0", "-trimpath": "true"}
			if a.goarch == "arm" {
				want["GOARM"] = "6" // ARMv6 code runs on ARMv7 too
			}
			for _, s := range info.Settings {
				if v, ok := want[s.Key]; ok {
					if s.Value != v {
						t.Errorf("%s was built with %s=%s, want %s", path, s.Key, s.Value, v)
					}
					delete(want, s.Key)
				}
			}
			if len(want) > 0 {
				t.Errorf("%s records no build settings %v", path, want)
			}
		})
	}
	t.Run("reproducible", func(t *testing.T) {
		src := sourceCopy(t)
		again := filepath.Join(t.TempDir(), "dist")
		cmd := exec.Command("make", "-C", src, "release", "DIST="+again)
		cmd.Env = append(os.Environ(), "GOCACHE="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make release in a copy of the source: %v\n%s", err, out)
		}
		for _, a := range releaseArches {
			name := "manager-linux-" + a.goarch
			first, err1 := os.ReadFile(filepath.Join(dist, name))
			second, err2 := os.ReadFile(filepath.Join(again, name))
			if err := errors.Join(err1, err2); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(first, second) {
				t.Errorf("%s differs between two releases of the same source (%d and %d bytes)", name, len(first), len(second))
			}
		}
	})
}

// sourceCopy returns a copy of this package's source at another path: a
// clone of its repository at the same commit, with the working tree's
// uncommitted changes copied over, so that git describe, git status and the
// bytes built are those of the working tree.
func sourceCopy(t *testing.T) string {
	t.Helper()
	requireTool(t, "git", "a build from a copy of the source")
	dir := filepath.Join(t.TempDir(), "src")
	if err := exec.Command("git", "rev-parse", "HEAD").Run(); err != nil {
		skipTest(t, "the source is not a git checkout (git rev-parse HEAD: %v): no commit to build from", err)
	}
	head := gitOutput(t, ".", "rev-parse", "HEAD")
	// --shared borrows the objects instead of copying them: any commit of
	// the original, branch or not, can be checked out.
	gitOutput(t, ".", "clone", "--quiet", "--shared", "--no-checkout", ".", dir)
	gitOutput(t, dir, "checkout", "--quiet", "--detach", head)
	for _, name := range strings.Split(gitOutput(t, ".", "ls-files", "-z", "--cached", "--others", "--exclude-standard"), "\x00") {
		if name == "" {
			continue
		}
		dst := filepath.Join(dir, name)
		fi, err := os.Stat(name)
		if errors.Is(err, os.ErrNotExist) { // deleted, not yet committed
			os.Remove(dst)
			continue
		}
		if err == nil {
			err = os.MkdirAll(filepath.Dir(dst), 0o755)
		}
		if err == nil {
			err = copyFile(name, dst, fi.Mode().Perm())
		}
		if err != nil {
			t.Fatalf("copying the source: %v", err)
		}
	}
	return dir
}

// gitOutput runs git in dir and returns its output, trimmed.
func gitOutput(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, stderr)
	}
	return strings.TrimSpace(string(out))
}

// TestReleaseQemu proves that every release binary prints its
// version, natively or under qemu-user; the arm64 and s390x (big-endian)
// ones also run a child of their own architecture, pass on its exit code,
// and turn a SIGTERM into 143.
func TestReleaseQemu(t *testing.T) {
	integration(t)
	dist, version := release(t)
	for _, a := range releaseArches {
		t.Run(a.goarch, func(t *testing.T) {
			t.Parallel()
			manager := filepath.Join(dist, "manager-linux-"+a.goarch)
			argv := append(emulator(t, a.goarch, a.qemu), manager, "-version")
			out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
			if errors.Is(err, syscall.ENOEXEC) && a.goarch == "386" {
				recordSkip(t, "this kernel runs no i386 programs (no IA32 emulation), and Debian 12's qemu-i386 crashes every Go program: the 386 binary is checked by its ELF header only")
			}
			if got, want := strings.TrimSpace(string(out)), "manager "+version; err != nil || got != want {
				t.Fatalf("%s -version: %q, %v; want %q", manager, got, err, want)
			}
			if a.goarch != "arm64" && a.goarch != "s390x" {
				return
			}
			// The kernel itself must run both: manager execs the child.
			requireBinfmt(t, a.goarch, a.qemu)
			child := buildChild(t, a.goarch)
			p := startCmd(t, exec.Command(manager, "-config=", "--", child, "exit", "3"), nil)
			if code := p.wait(30 * time.Second); code != 3 {
				t.Errorf("%s -- child exit 3: exit code %d, want 3; log:\n%s", manager, code, p.stderr)
			}
			p = startCmd(t, exec.Command(manager, "-config=", "--", child, "sleep"), nil)
			t.Cleanup(func() { p.cmd.Process.Kill() })
			p.stdout.wait(t, `^ready pid=\d+$`, 30*time.Second)
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(30 * time.Second); code != 143 {
				t.Errorf("%s -- child sleep, sent SIGTERM: exit code %d, want 143; log:\n%s", manager, code, p.stderr)
			}
		})
	}
}

// emulator returns what runs a goarch program here ahead of its path:
// nothing when the kernel runs it, natively or through qemu-user-static's
// binfmt_misc entry, else qemu-NAME-static itself. It skips t, saying why,
// when neither is there.
func emulator(t *testing.T, goarch, qemu string) []string {
	t.Helper()
	// i386 programs run natively on amd64 kernels with IA32 emulation; for
	// the others, Debian registers no binfmt_misc entry, and qemu-i386 7.2
	// crashes Go programs ("bad g in signal handler"): see TestReleaseQemu.
	if goarch == runtime.GOARCH || binfmtEnabled(qemu) || goarch == "386" && runtime.GOARCH == "amd64" {
		return nil
	}
	return []string{requireTool(t, "qemu-"+qemu+"-static", goarch+" binaries (apt-get install qemu-user-static)")}
}

// requireBinfmt skips t, saying why, unless the kernel runs goarch programs
// that a process executes, through qemu-user-static's binfmt_misc entry.
func requireBinfmt(t *testing.T, goarch, qemu string) {
	t.Helper()
	if goarch != runtime.GOARCH && !binfmtEnabled(qemu) {
		skipTest(t, "no binfmt_misc entry qemu-%s: install qemu-user-static and register it, as .ci/run does, to run %s programs", qemu, goarch)
	}
}

// binfmtEnabled reports whether binfmt_misc runs qemu-user's NAME programs.
func binfmtEnabled(qemu string) bool {
	b, err := os.ReadFile("/proc/sys/fs/binfmt_misc/qemu-" + qemu)
	return err == nil && strings.HasPrefix(string(b), "enabled")
}

// buildChild builds testdata/child, static, for goarch, as make release
// builds manager (so the standard library comes from the build cache).
func buildChild(t *testing.T, goarch string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "child")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./testdata/child")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./testdata/child for %s: %v\n%s", goarch, err, b)
	}
	return out
}

// TestReleaseChecksums proves that make release writes a
// SHA256SUMS that sha256sum -c accepts, naming every binary.
func TestReleaseChecksums(t *testing.T) {
	integration(t)
	sha256sum := requireTool(t, "sha256sum", "SHA256SUMS as users check it")
	dist, _ := release(t)
	cmd := exec.Command(sha256sum, "-c", "SHA256SUMS")
	cmd.Dir = dist
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cd dist && sha256sum -c SHA256SUMS: %v\n%s", err, out)
	}
	var want []string
	for _, a := range releaseArches {
		want = append(want, "manager-linux-"+a.goarch+": OK")
	}
	if got := strings.TrimSpace(string(out)); got != strings.Join(want, "\n") {
		t.Errorf("sha256sum -c SHA256SUMS printed:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

// TestVersionGoBuild: without -ldflags -X, -version prints what the go
// command stamped: the commit (with -dirty for uncommitted changes) for a
// plain go build in a clone, the tag for a tagged commit, and the module
// version for go install module@version. Plain go build names the binary
// manager.
func TestVersionGoBuild(t *testing.T) {
	integration(t)
	src := sourceCopy(t)
	// The copy has the checkout's tags, and go build stamps a tag on HEAD
	// over the commit: without them, a tagged release commit tests too.
	for _, tag := range strings.Fields(gitOutput(t, src, "tag", "--list")) {
		gitOutput(t, src, "tag", "--delete", tag)
	}
	dirty := ""
	if gitOutput(t, src, "status", "--porcelain") != "" {
		dirty = "-dirty"
	}
	// GOFLAGS=-buildvcs=auto undoes a -buildvcs=false in the user's go env;
	// a git worktree (its .git a file) would get no stamp at all.
	env := append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=auto")
	build := func(t *testing.T) string {
		t.Helper()
		os.Remove(filepath.Join(src, "manager"))
		cmd := exec.Command("go", "build")
		cmd.Dir, cmd.Env = src, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		return filepath.Join(src, "manager") // the name users expect
	}
	t.Run("commit", func(t *testing.T) {
		want := "manager " + gitOutput(t, src, "rev-parse", "HEAD")[:12] + dirty
		requireVersion(t, build(t), want)
	})
	t.Run("tag", func(t *testing.T) {
		// A v2 or later tag would need a module path ending in /v2.
		gitOutput(t, src, "tag", "v1.9.8")
		requireVersion(t, build(t), "manager v1.9.8"+dirty)
	})
	t.Run("go install", func(t *testing.T) {
		requireVersion(t, goInstall(t, src, "v1.2.3", env), "manager v1.2.3")
	})
}

// requireVersion checks what manager -version prints.
func requireVersion(t *testing.T, manager, want string) {
	t.Helper()
	out, err := exec.Command(manager, "-version").CombinedOutput()
	if got := strings.TrimSpace(string(out)); err != nil || got != want {
		t.Errorf("%s -version: %q, %v; want %q", manager, got, err, want)
	}
}

// goInstall serves the source in src as module example.com/manager at
// version from a file:// module proxy, runs go install
// example.com/manager@version, and returns the installed binary. The module
// path needs a dot to be fetched; the binary is named after its last
// element.
func goInstall(t *testing.T, src, version string, env []string) string {
	t.Helper()
	const module = "example.com/manager"
	proxy, bin := t.TempDir(), t.TempDir()
	dir := filepath.Join(proxy, module, "@v")
	goMod, err := os.ReadFile(filepath.Join(src, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goMod = bytes.Replace(goMod, []byte("module manager\n"), []byte("module "+module+"\n"), 1)
	var z bytes.Buffer
	zw := zip.NewWriter(&z)
	add := func(name string, b []byte) error {
		w, err := zw.Create(module + "@" + version + "/" + name)
		if err == nil {
			_, err = w.Write(b)
		}
		return err
	}
	err = add("go.mod", goMod)
	files, _ := filepath.Glob(filepath.Join(src, "*.go"))
	for _, f := range files {
		if !strings.HasSuffix(f, "_test.go") {
			b, rerr := os.ReadFile(f)
			err = errors.Join(err, rerr, add(filepath.Base(f), b))
		}
	}
	err = errors.Join(err, zw.Close(), os.MkdirAll(dir, 0o755))
	for name, b := range map[string][]byte{
		"list":            []byte(version + "\n"),
		version + ".info": fmt.Appendf(nil, `{"Version":%q}`, version),
		version + ".mod":  goMod,
		version + ".zip":  z.Bytes(),
	} {
		err = errors.Join(err, os.WriteFile(filepath.Join(dir, name), b, 0o644))
	}
	if err != nil {
		t.Fatalf("writing the module proxy: %v", err)
	}
	cmd := exec.Command("go", "install", module+"@"+version)
	// A private module cache keeps the made-up module out of the user's;
	// -modcacherw lets t.TempDir remove it.
	cmd.Dir, cmd.Env = t.TempDir(), append(env, "GOPROXY=file://"+proxy, "GOSUMDB=off", "GOBIN="+bin,
		"GOMODCACHE="+t.TempDir(), "GOFLAGS=-modcacherw", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install %s@%s: %v\n%s", module, version, err, out)
	}
	return filepath.Join(bin, "manager")
}
