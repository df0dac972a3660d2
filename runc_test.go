package main

// The end-to-end test in a real container: manager as the entry point of a
// FROM scratch image, started by runc as Docker and the kubelet start it.
// No image is built: the test assembles the OCI bundle itself, a root
// filesystem holding only two static binaries and a config.json.

import (
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// nonRoot is the uid and gid distroless images run as ("nonroot").
const nonRoot = 65532

// containerWatchFlags make a containerised manager watch /config: quick
// enough for a test, slow enough that a ConfigMap swap is seen as one change.
var containerWatchFlags = []string{"-config", "/config", "-poll", "100ms", "-debounce", "300ms"}

// TestRuncEndToEnd runs manager as PID 1 of runc containers whose root
// filesystem holds nothing but manager and the helper, both static.
func TestRuncEndToEnd(t *testing.T) {
	integration(t)
	rt := requireRunc(t)

	t.Run("1 PID 1 runs the program", func(t *testing.T) {
		t.Parallel()
		c := rt.start(t, ociBundle{args: appArgs(), config: newConfigMap(t, "v1")})
		c.stdout.wait(t, `^start pid=\d+ conf="v1"$`, 10*time.Second)
		c.requirePID1()
		child := c.stderr.wait(t, `msg="child started" pid=(\d+) command=/helper`, time.Second)[1]
		if got := c.stdout.wait(t, `^start pid=(\d+)`, time.Second)[1]; got != child {
			t.Errorf("program printed pid %s, manager started pid %s; want the same process", got, child)
		}
		c.kill("TERM")
		if code := c.wait(10 * time.Second); code != 143 {
			t.Errorf("container exit code %d, want 143", code)
		}
	})

	t.Run("2 ConfigMap update restarts once", func(t *testing.T) {
		t.Parallel()
		conf := newConfigMap(t, "v1")
		c := rt.start(t, ociBundle{args: appArgs(), config: conf})
		c.updateRestartsOnce(conf)
		c.kill("TERM")
		if code := c.wait(10 * time.Second); code != 143 {
			t.Errorf("container exit code %d, want 143", code)
		}
	})

	t.Run("3 runc kill TERM", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name string
			args []string
			want int
		}{
			{"killed by TERM", appArgs(), 143},
			{"own exit code", managed("/helper", "trap-term", "/dev/shm/saved"), 0},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				c := rt.start(t, ociBundle{args: tc.args, config: newConfigMap(t, "v1")})
				c.stdout.wait(t, `^(start|ready) pid=`, 10*time.Second)
				c.stopGracefully(tc.want)
			})
		}
	})

	t.Run("4 non-root read-only", func(t *testing.T) {
		t.Parallel()
		conf := newConfigMap(t, "v1")
		c := rt.start(t, ociBundle{args: appArgs(), config: conf, user: nonRoot, readonly: true, noCaps: true})
		c.stdout.wait(t, `^start pid=\d+ conf="v1"$`, 10*time.Second)
		c.requirePID1()
		c.requireRestricted()
		c.updateRestartsOnce(conf)
		c.requireRestricted() // the restarted child too
		c.stopGracefully(143)
	})

	t.Run("5 TERM ignored: SIGKILL at grace", func(t *testing.T) {
		t.Parallel()
		c := rt.start(t, ociBundle{args: []string{"/manager", "-config=", "-grace", "1s", "--", "/helper", "ignore-term"}})
		c.stdout.wait(t, `^ready pid=`, 10*time.Second)
		sent := time.Now()
		c.kill("TERM")
		code := c.wait(10 * time.Second)
		took := time.Since(sent)
		if code != 137 {
			t.Errorf("container exit code %d, want 137 (SIGKILL)", code)
		}
		// docker stop and the kubelet wait 10s and 30s by default before
		// they kill the container themselves.
		if took < 900*time.Millisecond || took > 5*time.Second {
			t.Errorf("container exited %v after TERM, want about the 1s -grace", took.Round(time.Millisecond))
		}
		c.stderr.wait(t, `msg="grace period over; killing"`, time.Second)
	})

	t.Run("7 single-file mount warns", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "app.conf")
		writeFile(t, file, "v1")
		for _, tc := range []struct {
			name  string
			b     ociBundle
			watch string
			want  int
		}{
			{"file", ociBundle{file: file}, "/app.conf", 1},
			{"directory", ociBundle{config: newConfigMap(t, "v1")}, "/config", 0},
			{"key in a directory", ociBundle{config: newConfigMap(t, "v1")}, "/config/app.conf", 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tc.b.args = []string{"/manager", "-config", tc.watch, "--", "/helper", "signals"}
				c := rt.start(t, tc.b)
				c.stdout.wait(t, `^ready pid=`, 10*time.Second)
				c.kill("TERM")
				if code := c.wait(10 * time.Second); code != 0 {
					t.Fatalf("container exit code %d, want 0", code)
				}
				if got := c.stderr.matching(`level=WARN msg="config is a single-file mount" path=` + tc.watch + ` `); len(got) != tc.want {
					t.Errorf("%d warnings for %s, want %d; log:\n%s", len(got), tc.watch, tc.want, c.stderr)
				}
			})
		}
	})

	t.Run("6 orphans are reaped", func(t *testing.T) {
		t.Parallel()
		const n = 1000
		c := rt.start(t, ociBundle{args: []string{"/manager", "-config=", "--", "/helper", "orphans", strconv.Itoa(n)}})
		c.stdout.wait(t, `released \d+ orphans`, 30*time.Second)
		pid1 := c.initPid()
		eventually(t, 10*time.Second, func() error {
			if procs, zombies := namespaceProcs(pid1); procs != 2 || zombies != 0 {
				return fmt.Errorf("%d processes, %d zombies in the container; want 2 (manager, child), none", procs, zombies)
			}
			return nil
		})
		c.kill("USR1") // forwarded by manager; the helper exits 3 on it
		if code := c.wait(10 * time.Second); code != 3 {
			t.Errorf("container exit code %d, want the program's 3", code)
		}
	})
}

// appArgs is the command line of a container running the restartable app,
// which locks a file on /dev/shm (writable even on a read-only root) so that
// two of them running at once would be caught.
func appArgs() []string {
	return managed("/helper", "app", "/dev/shm/lock", "/config/app.conf")
}

// managed is the command line of a container whose manager watches /config
// and runs program.
func managed(program ...string) []string {
	return append(append(append([]string{"/manager"}, containerWatchFlags...), "--"), program...)
}

// newConfigMap makes a host directory laid out as the kubelet lays out a
// ConfigMap volume, with app.conf holding content.
func newConfigMap(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	// t.TempDir is 0700; a non-root container must be able to enter the
	// mounted directory, as it can a ConfigMap volume.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	configMap(map[string]string{"app.conf": content})(t, dir)
	return dir
}

// runcEnv is what every container of a test run shares.
type runcEnv struct {
	runc    string
	manager string
	helper  string
	spec    []byte // config.json as runc spec writes it
}

var (
	runcOnce    sync.Once
	runcErr     error // why containers cannot run here; nil if they can
	runcSkip    bool  // runcErr is the machine's limit, not a failure
	runcShared  runcEnv
	containerNo atomic.Int64
)

// requireRunc checks that this machine can run the test's containers, and
// skips t, saying why, where it cannot: no runc, not root, a test binary
// that needs a libc the empty root filesystem does not have, or a kernel
// that refuses runc what it needs (as inside an unprivileged container).
func requireRunc(t *testing.T) *runcEnv {
	t.Helper()
	manager, helper := binaries(t)
	runcOnce.Do(func() { runcSkip, runcErr = probeRunc(manager, helper) })
	if runcErr != nil {
		if runcSkip {
			skipTest(t, "%v", runcErr)
		}
		t.Fatal(runcErr)
	}
	return &runcShared
}

// probeRunc fills runcShared, or says why it cannot (skip reports whether
// that is a limit of the machine rather than a failure), by running the
// simplest possible container.
func probeRunc(manager, helper string) (skip bool, err error) {
	e := &runcShared
	e.manager, e.helper = manager, helper
	if e.runc, err = findRuntime("runc", "the OCI end-to-end test", helper); err != nil {
		return true, err
	}
	if err := staticELF(e.manager); err != nil {
		return false, fmt.Errorf("manager, built with CGO_ENABLED=0, is not static: %v", err)
	}
	dir, err := os.MkdirTemp("", "flush-runc-probe-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	if out, err := exec.Command(e.runc, "spec", "--bundle", dir).CombinedOutput(); err != nil {
		return false, fmt.Errorf("runc spec: %v: %s", err, out)
	}
	if e.spec, err = os.ReadFile(filepath.Join(dir, "config.json")); err != nil {
		return false, err
	}
	out, err := e.runProbe(dir)
	if err != nil {
		// Only a refusal is the machine's limit; as root, anything else
		// (a bundle runc rejects, a fork that fails) is a failure to see.
		msg := strings.ToLower(string(out))
		refused := strings.Contains(msg, "operation not permitted") || strings.Contains(msg, "permission denied")
		return refused, fmt.Errorf("runc cannot run a container here (%v): %s", err, out)
	}
	return false, nil
}

// findRuntime returns the path of the container runtime name, or says why
// the tests cannot run containers with it here, which is always the
// machine's limit: name is not installed, the tests do not run as root
// (they set up no rootless containers), or the test binary, helper in the
// containers, is not static and cannot run in an empty root filesystem.
func findRuntime(name, purpose, helper string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is not installed (apt-get install %s): cannot run %s", name, name, purpose)
	}
	if os.Getuid() != 0 {
		return "", fmt.Errorf("%s runs containers as root in these tests, which run as uid %d: cannot run %s", name, os.Getuid(), purpose)
	}
	if err := staticELF(helper); err != nil {
		return "", fmt.Errorf("the test binary is not static (%v), so it cannot run in an empty root filesystem; run the test with CGO_ENABLED=0 and without -race, as make test's second pass does", err)
	}
	return path, nil
}

// runProbe runs "/helper exit 0" in a bundle in dir and returns its output.
func (e *runcEnv) runProbe(dir string) ([]byte, error) {
	b := ociBundle{args: []string{"/helper", "exit", "0"}}
	if err := b.write(e, dir); err != nil {
		return nil, err
	}
	root := filepath.Join(dir, "state")
	id := fmt.Sprintf("flush-probe-%d", os.Getpid())
	defer exec.Command(e.runc, "--root", root, "delete", "-f", id).Run()
	cmd := exec.Command(e.runc, "--root", root, "run", "--bundle", dir, id)
	done := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer done.Stop()
	out, err := cmd.CombinedOutput()
	if err == nil && !strings.Contains(string(out), "ready pid=1") {
		err = errors.New("the probe did not print its ready line")
	}
	return out, err
}

// staticELF says why the executable at path cannot run without a dynamic
// loader and libraries, or returns nil if it can.
func staticELF(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("it asks for a dynamic loader (PT_INTERP)")
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return err
	}
	if len(libs) > 0 {
		return fmt.Errorf("it needs %s", strings.Join(libs, ", "))
	}
	return nil
}

// ociBundle describes a container's config.json. Its root filesystem always
// holds /manager and /helper only: no shell, no libc, no /etc.
type ociBundle struct {
	args     []string // process.args
	config   string   // host directory mounted read-only at /config, as a ConfigMap volume is; "" for none
	user     int      // process.user uid and gid
	readonly bool     // a read-only root filesystem
	noCaps   bool     // no capabilities at all, as Kubernetes' restricted pods
	file     string   // host file bind-mounted at /app.conf, as docker run -v file:file; "" for none
}

// write lays the bundle out in dir: config.json and rootfs.
func (b ociBundle) write(e *runcEnv, dir string) error {
	var spec map[string]any
	if err := json.Unmarshal(e.spec, &spec); err != nil {
		return fmt.Errorf("runc spec's config.json: %w", err)
	}
	proc, ok := spec["process"].(map[string]any)
	if !ok {
		return errors.New("runc spec's config.json has no process object")
	}
	env, _ := proc["env"].([]any)
	// With no terminal, the container's standard streams are runc's own:
	// pipes to the test, as under Docker and the kubelet they are pipes to
	// the log collector.
	proc["terminal"] = false
	proc["args"] = b.args
	proc["env"] = append(env, "FLUSH_HELPER=1")
	proc["user"] = map[string]any{"uid": b.user, "gid": b.user}
	if b.noCaps {
		proc["capabilities"] = map[string]any{}
	}
	spec["root"] = map[string]any{"path": "rootfs", "readonly": b.readonly}
	if b.config != "" {
		mounts, _ := spec["mounts"].([]any)
		spec["mounts"] = append(mounts, map[string]any{
			"destination": "/config",
			"type":        "bind",
			"source":      b.config,
			"options":     []string{"rbind", "ro"},
		})
	}
	if b.file != "" {
		mounts, _ := spec["mounts"].([]any)
		spec["mounts"] = append(mounts, map[string]any{
			"destination": "/app.conf",
			"type":        "bind",
			"source":      b.file,
			"options":     []string{"bind", "ro"},
		})
	}
	js, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), js, 0o644); err != nil {
		return err
	}
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return err
	}
	if err := copyFile(e.manager, filepath.Join(rootfs, "manager"), 0o755); err != nil {
		return err
	}
	return copyFile(e.helper, filepath.Join(rootfs, "helper"), 0o755)
}

// runcContainer is a running "runc run": its standard streams are the
// container's, and its exit code is the container's.
type runcContainer struct {
	*watchedCmd // stdout: the program's output; stderr: manager's log and runc's complaints
	e           *runcEnv
	id          string
	root        string // runc's state directory, private to the test
}

// start runs b in a new container, deleted (runc delete -f) when t ends,
// whatever the outcome.
func (e *runcEnv) start(t *testing.T, b ociBundle) *runcContainer {
	t.Helper()
	dir := t.TempDir()
	if err := b.write(e, dir); err != nil {
		t.Fatalf("writing the bundle: %v", err)
	}
	c := &runcContainer{e: e, id: containerName(t), root: filepath.Join(dir, "state")}
	c.watchedCmd = startCmd(t, exec.Command(e.runc, "--root", c.root, "run", "--bundle", dir, c.id), nil)
	t.Cleanup(c.delete)
	return c
}

// containerName is a name for a container of t, unique on this machine: runc
// and podman allow letters, digits, '_', '-' and '.' in it.
func containerName(t *testing.T) string {
	name := regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(t.Name(), "-")
	return fmt.Sprintf("flush-%d-%d-%s", os.Getpid(), containerNo.Add(1), name)
}

// delete removes the container, killing what is left of it, and waits for
// runc run to return.
func (c *runcContainer) delete() {
	out, err := exec.Command(c.e.runc, "--root", c.root, "delete", "-f", c.id).CombinedOutput()
	if err != nil {
		c.t.Errorf("runc delete -f %s: %v: %s", c.id, err, out)
	}
	c.awaitRemoved(c.id, "runc delete -f")
}

// awaitRemoved waits for a container runtime's attached run command to
// return once the container called name was removed (by the command
// removal), and shows the container's output if the test failed.
func (c *watchedCmd) awaitRemoved(name, removal string) {
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.t.Errorf("container %s still running 10s after %s; killing its runtime", name, removal)
		c.cmd.Process.Kill()
		<-c.done
	}
	if c.t.Failed() {
		c.t.Logf("container %s, exit code %d; log:\n%s\noutput:\n%s", name, c.code, c.stderr, c.stdout)
	}
}

// kill sends sig to the container's init, as docker stop and the kubelet do.
func (c *runcContainer) kill(sig string) {
	c.t.Helper()
	if out, err := exec.Command(c.e.runc, "--root", c.root, "kill", c.id, sig).CombinedOutput(); err != nil {
		c.t.Fatalf("runc kill %s %s: %v: %s", c.id, sig, err, out)
	}
}

// initPid is the host pid of the container's init, which runc state gives.
func (c *runcContainer) initPid() int {
	c.t.Helper()
	out, err := exec.Command(c.e.runc, "--root", c.root, "state", c.id).Output()
	if err != nil {
		c.t.Fatalf("runc state %s: %v", c.id, err)
	}
	var st struct{ Pid int }
	if err := json.Unmarshal(out, &st); err != nil || st.Pid == 0 {
		c.t.Fatalf("runc state %s: no pid in %s (%v)", c.id, out, err)
	}
	return st.Pid
}

// requirePID1 checks that the container's init is manager, as PID 1 of the
// container's PID namespace.
func (c *runcContainer) requirePID1() {
	c.t.Helper()
	requirePID1(c.t, c.initPid(), "/manager", c.stderr)
}

// requirePID1 checks that pid, a container's init as the host sees it, runs
// argv0 (manager's path in the container) as PID 1 of the container's PID
// namespace, and that manager's log knows it.
func requirePID1(t *testing.T, pid int, argv0 string, log *lines) {
	t.Helper()
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := strings.Cut(string(cmdline), "\x00"); got != argv0 {
		t.Errorf("container init runs %q, want %s", got, argv0)
	}
	nspid := procStatusField(t, pid, "NSpid")
	if f := strings.Fields(nspid); len(f) != 2 || f[1] != "1" {
		t.Errorf("manager's NSpid %q, want host pid and 1 in the container", nspid)
	}
	// Manager logs that it is not PID 1 before it starts the child.
	log.wait(t, `msg="child started"`, 5*time.Second)
	if got := log.matching("child subreaper"); len(got) > 0 {
		t.Errorf("manager thinks it is not PID 1: %q", got)
	}
}

// requireRestricted checks that manager and its child run as the non-root
// user, on a read-only root file system, with no capabilities: that the
// bundle asked for it, and that it did not keep manager from working.
func (c *runcContainer) requireRestricted() {
	c.t.Helper()
	pid1 := c.initPid()
	kids := childrenOf(pid1)
	if len(kids) != 1 {
		c.t.Fatalf("manager has children %v, want its one program", kids)
	}
	for _, pid := range []int{pid1, kids[0]} {
		for _, key := range []string{"Uid", "Gid"} {
			ids := procStatusField(c.t, pid, key) // real, effective, saved, file system
			if strings.Trim(strings.ReplaceAll(ids, strconv.Itoa(nonRoot), ""), " \t") != "" {
				c.t.Errorf("pid %d: %s %s, want %d for all four", pid, key, strings.Join(strings.Fields(ids), " "), nonRoot)
			}
		}
		if got := procStatusField(c.t, pid, "CapEff"); strings.Trim(got, "0") != "" {
			c.t.Errorf("pid %d: CapEff %s, want none", pid, got)
		}
	}
	if opts := rootMountOptions(c.t, pid1); !strings.HasPrefix(opts, "ro,") && opts != "ro" {
		c.t.Errorf("the container's / is mounted %q, want read-only", opts)
	}
}

// updateRestartsOnce updates the ConfigMap in dir from v1 to v2, as the
// kubelet does, and checks that manager, running the app in a container,
// restarts it once, and that the old and new app never overlap. A second
// update to v3 is the sentinel: a spurious restart after v2 would show as a
// start before v3's.
func (c *watchedCmd) updateRestartsOnce(dir string) {
	c.t.Helper()
	c.stdout.wait(c.t, `^start pid=\d+ conf="v1"$`, 10*time.Second)
	configMap(map[string]string{"app.conf": "v2"})(c.t, dir)
	c.stdout.wait(c.t, `^start pid=\d+ conf="v2"$`, 10*time.Second)
	configMap(map[string]string{"app.conf": "v3"})(c.t, dir)
	c.stdout.wait(c.t, `^start pid=\d+ conf="v3"$`, 10*time.Second)
	var confs []string
	for _, s := range c.stdout.matching(`^start pid=`) {
		confs = append(confs, s[strings.Index(s, "conf="):])
	}
	if got := strings.Join(confs, " "); got != `conf="v1" conf="v2" conf="v3"` {
		c.t.Errorf("programs started with %s; want v1, v2, v3: one restart per update", got)
	}
	if got := c.stdout.matching(`^overlap`); len(got) > 0 {
		c.t.Errorf("two programs ran at once: %q", got)
	}
}

// stopGracefully sends TERM as docker stop does, and checks that the
// container exits with the program's exit code want, well within -grace.
func (c *runcContainer) stopGracefully(want int) {
	c.t.Helper()
	c.requireGracefulStop(func() { c.kill("TERM") }, want)
}

// requireGracefulStop stops a container running manager with stop, which
// sends it SIGTERM, and checks that it exits with the program's exit code
// want at once, not at the end of a grace period.
func (c *watchedCmd) requireGracefulStop(stop func(), want int) {
	c.t.Helper()
	sent := time.Now()
	stop()
	code := c.wait(10 * time.Second)
	if took := time.Since(sent); took > 5*time.Second {
		c.t.Errorf("container exited %v after TERM, want at once", took.Round(time.Millisecond))
	}
	if code != want {
		c.t.Errorf("container exit code %d, want %d", code, want)
	}
	c.stderr.wait(c.t, fmt.Sprintf(`msg=exiting reason="shutdown on SIGTERM" code=%d$`, want), time.Second)
	if got := c.stderr.matching(`grace period over`); len(got) > 0 {
		c.t.Errorf("the program was killed, not stopped: %q", got)
	}
}

// procStatusField returns the value of key in /proc/PID/status.
func procStatusField(t *testing.T, pid int, key string) string {
	t.Helper()
	v := statusField(strconv.Itoa(pid), key)
	if v == "" {
		t.Fatalf("/proc/%d/status has no %s", pid, key)
	}
	return v
}

// rootMountOptions returns the mount options of / as process pid sees it
// (proc(5), /proc/pid/mountinfo: the sixth field of the last mount on /).
func rootMountOptions(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	opts := ""
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 5 && f[4] == "/" {
			opts = f[5]
		}
	}
	return opts
}
