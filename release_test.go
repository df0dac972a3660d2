package main

// Tests of what a release ships (issue 10): the version that a plain go
// build or go install stamps.

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// requireTool skips t, saying why, when the command name is not installed.
func requireTool(t *testing.T, name, purpose string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		skipTest(t, "%s is not installed: cannot test %s", name, purpose)
	}
	return path
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

// TestVersionGoBuild: without -ldflags -X, -version prints what the go
// command stamped: the commit (with -dirty for uncommitted changes) for a
// plain go build in a clone, the tag for a tagged commit, and the module
// version for go install module@version. Plain go build names the binary
// manager.
func TestVersionGoBuild(t *testing.T) {
	integration(t)
	src := sourceCopy(t)
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
