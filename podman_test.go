package main

// The release as users take it: the project's Dockerfile built
// from dist/, copied into a FROM scratch image with COPY --from, and run by
// Podman; and the release binary as podman run --init's init.
//
// Podman runs as root with storage of its own in a temporary directory, so
// tests leave nothing behind and touch no images of the machine's. What this
// needs of the machine, found on Debian 12 (podman 4.3) as root in a VM:
//   - no network: images are FROM scratch, built with --pull=never, and
//     containers run with --network none;
//   - private storage (--root, --runroot, --tmpdir) with the vfs driver,
//     which needs nothing of the kernel or the file system and leaves no
//     mounts behind (overlay works here too, as root, but mounts);
//   - explicit --ulimit values: by default podman asks runc for 1048576
//     open files and processes, which root without CAP_SYS_RESOURCE (this
//     machine's) cannot raise its hard limits to ("error setting rlimit type
//     7: operation not permitted"), and podman lowers its own process limit
//     to 32768 before runc inherits it.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Names of the images built for a test run, in its private storage.
const (
	managerImage = "localhost/flush-manager"     // the project's Dockerfile
	appImage     = "localhost/flush-manager-app" // FROM scratch, COPY --from managerImage, the helper
	helperImage  = "localhost/flush-helper"      // FROM scratch, the helper alone
)

// rlimitNproc is RLIMIT_NPROC, which package syscall does not name.
const rlimitNproc = 6

// podmanEnv is what every podman test of a run shares.
type podmanEnv struct {
	podman  string
	global  []string // storage options, before the podman command
	run     []string // podman run options every container gets
	dist    string   // make release's output
	version string   // what its binaries print
}

var (
	podmanOnce   sync.Once
	podmanErr    error // why podman cannot run the tests here; nil if it can
	podmanSkip   bool  // podmanErr is the machine's limit, not a failure
	podmanShared podmanEnv
)

// requirePodman returns the shared podman setup with its images built, or
// skips t, saying why, where podman cannot run them.
func requirePodman(t *testing.T) *podmanEnv {
	t.Helper()
	dist, version := release(t)
	_, helper := binaries(t)
	podmanOnce.Do(func() { podmanSkip, podmanErr = setUpPodman(dist, version, helper) })
	if podmanErr != nil {
		if podmanSkip {
			skipTest(t, "%v", podmanErr)
		}
		t.Fatal(podmanErr)
	}
	return &podmanShared
}

// setUpPodman fills podmanShared and builds the images, or says why it
// cannot (skip reports whether that is a limit of the machine).
func setUpPodman(dist, version, helper string) (skip bool, err error) {
	e := &podmanShared
	e.dist, e.version = dist, version
	if e.podman, err = findRuntime("podman", "the image and podman run tests", helper); err != nil {
		return true, err
	}
	store := filepath.Join(binDir, "podman")
	e.global = []string{"--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"),
		"--tmpdir", filepath.Join(store, "tmp"), "--storage-driver", "vfs"}
	e.run = []string{"--network", "none", "--pull", "never"}
	for _, l := range []struct {
		name     string
		resource int
	}{{"nofile", syscall.RLIMIT_NOFILE}, {"nproc", rlimitNproc}} {
		var r syscall.Rlimit
		if err := syscall.Getrlimit(l.resource, &r); err != nil {
			return false, fmt.Errorf("getrlimit %s: %w", l.name, err)
		}
		n := min(r.Max, 1024) // plenty for a manager and its program
		e.run = append(e.run, "--ulimit", fmt.Sprintf("%s=%d:%d", l.name, n, n))
	}

	// The project's Dockerfile, with dist/ in its context, as after
	// make release; podman build sets TARGETARCH to this machine's.
	dockerfile, err := filepath.Abs("Dockerfile")
	if err != nil {
		return false, err
	}
	if err := e.build(managerImage, dockerfile, filepath.Dir(dist)); err != nil {
		return false, err
	}
	ctx, err := os.MkdirTemp(store, "context-")
	if err != nil {
		return false, err
	}
	if err := copyFile(helper, filepath.Join(ctx, "helper"), 0o755); err != nil {
		return false, err
	}
	entrypoint, _ := json.Marshal(managed())
	cmd, _ := json.Marshal(appArgs()[len(managed()):])
	files := map[string]string{
		"App": fmt.Sprintf("FROM scratch\nCOPY --from=%s /manager /manager\nCOPY helper /helper\nENV FLUSH_HELPER=1\nENTRYPOINT %s\nCMD %s\n",
			managerImage, entrypoint, cmd),
		"Helper": "FROM scratch\nCOPY helper /helper\nENV FLUSH_HELPER=1\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(ctx, name), []byte(content), 0o644); err != nil {
			return false, err
		}
	}
	if err := e.build(appImage, filepath.Join(ctx, "App"), ctx); err != nil {
		return false, err
	}
	return false, e.build(helperImage, filepath.Join(ctx, "Helper"), ctx)
}

// build runs podman build, offline, of file with context dir as image.
func (e *podmanEnv) build(image, file, dir string) error {
	args := append(append([]string{}, e.global...), "build", "--network", "none", "--pull=never", "-f", file, "-t", image, dir)
	cmd := exec.Command(e.podman, args...)
	done := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	defer done.Stop()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("podman build -f %s: %v\n%s", file, err, out)
	}
	return nil
}

// command returns the podman command line of args, with the storage options.
func (e *podmanEnv) command(args ...string) *exec.Cmd {
	return exec.Command(e.podman, append(append([]string{}, e.global...), args...)...)
}

// podmanContainer is a running "podman run", attached: its standard
// streams and exit code are the container's.
type podmanContainer struct {
	*watchedCmd // stdout: the program's output; stderr: manager's log and podman's complaints
	e           *podmanEnv
	name        string
}

// start runs podman run with opts (before the image) and args (the image
// and what follows it), and removes the container when t ends. stdin, if
// not nil, is a terminal that becomes podman's controlling terminal.
func (e *podmanEnv) start(t *testing.T, stdin *os.File, opts []string, args ...string) *podmanContainer {
	t.Helper()
	c := &podmanContainer{e: e, name: containerName(t)}
	argv := append(append(append([]string{"run", "--rm", "--name", c.name}, e.run...), opts...), args...)
	cmd := e.command(argv...)
	if stdin != nil {
		cmd.Stdin = stdin
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	}
	c.watchedCmd = startCmd(t, cmd, nil)
	t.Cleanup(c.remove)
	return c
}

// remove removes the container, killing what is left of it, and waits for
// podman run to return.
func (c *podmanContainer) remove() {
	if out, err := c.e.command("rm", "--force", "--time", "0", c.name).CombinedOutput(); err != nil &&
		!strings.Contains(string(out), "no such container") {
		c.t.Errorf("podman rm -f %s: %v: %s", c.name, err, out)
	}
	c.awaitRemoved(c.name, "podman rm -f")
}

// podman runs a podman command on the container, such as stop or kill.
func (c *podmanContainer) podman(args ...string) string {
	c.t.Helper()
	out, err := c.e.command(append(args, c.name)...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("podman %s %s: %v: %s", strings.Join(args, " "), c.name, err, out)
	}
	return strings.TrimSpace(string(out))
}

// initPid is the host pid of the container's init.
func (c *podmanContainer) initPid() int {
	c.t.Helper()
	out := c.podman("inspect", "--format", "{{.State.Pid}}")
	pid, err := strconv.Atoi(out)
	if err != nil || pid == 0 {
		c.t.Fatalf("podman inspect %s: no pid in %q", c.name, out)
	}
	return pid
}

// TestPodman proves that the project's Dockerfile, built offline
// from dist/, gives an image whose /manager other images copy, and manager
// does its job as PID 1 under podman run.
func TestPodman(t *testing.T) {
	integration(t)
	e := requirePodman(t)

	t.Run("Dockerfile", func(t *testing.T) {
		t.Parallel()
		c := e.start(t, nil, nil, managerImage, "/manager", "-version")
		if code := c.wait(30 * time.Second); code != 0 {
			t.Fatalf("podman run %s /manager -version: exit code %d", managerImage, code)
		}
		if got, want := c.stdout.String(), "manager "+e.version; got != want {
			t.Errorf("/manager -version in %s printed %q, want %q: the release binary for %s", managerImage, got, want, runtime.GOARCH)
		}
	})

	t.Run("PID 1", func(t *testing.T) {
		t.Parallel()
		c := e.start(t, nil, nil, appImage)
		c.stdout.wait(t, `^start pid=\d+ conf=""$`, 30*time.Second) // no /config mounted
		requirePID1(t, c.initPid(), "/manager", c.stderr)
		c.requireGracefulStop(func() { c.podman("stop", "-t", "5") }, 143)
	})

	t.Run("podman stop", func(t *testing.T) {
		t.Parallel()
		c := e.start(t, nil, nil, appImage, "/helper", "trap-term", "/dev/shm/saved")
		c.stdout.wait(t, `^ready pid=`, 30*time.Second)
		// Exit code 0 is the program's own: 143 would be its death by
		// TERM, 137 podman's SIGKILL at -t 5.
		c.requireGracefulStop(func() { c.podman("stop", "-t", "5") }, 0)
	})

	t.Run("podman kill HUP", func(t *testing.T) {
		t.Parallel()
		c := e.start(t, nil, nil, appImage, "/helper", "signals")
		pid := c.stdout.wait(t, `^ready pid=(\d+)$`, 30*time.Second)[1]
		c.podman("kill", "-s", "HUP")
		c.stdout.wait(t, `^got SIGHUP pid=`+pid+`$`, 10*time.Second)
		c.requireGracefulStop(func() { c.podman("stop", "-t", "5") }, 0)
	})

	t.Run("ConfigMap volume", func(t *testing.T) {
		t.Parallel()
		conf := newConfigMap(t, "v1")
		c := e.start(t, nil, []string{"--volume", conf + ":/config:ro"}, appImage)
		c.updateRestartsOnce(conf)
		c.requireGracefulStop(func() { c.podman("stop", "-t", "5") }, 143)
	})

	t.Run("terminal", func(t *testing.T) {
		t.Parallel()
		ptm, pts := openPTY(t)
		// -i passes what is typed to the container's terminal, -t makes
		// one; podman puts its own terminal in raw mode, so Ctrl-C arrives
		// there as a byte and the container's terminal turns it into
		// SIGINT for its foreground process group.
		c := e.start(t, pts, []string{"--interactive", "--tty"}, appImage, "/helper", "readline")
		pts.Close()
		term := readLines(ptm)
		c.stdout.wait(t, `ready pid=`, 30*time.Second)
		if _, err := ptm.Write([]byte("hello\n")); err != nil {
			t.Fatal(err)
		}
		// A program in the background would be stopped by SIGTTIN here.
		c.stdout.wait(t, `read: "hello" <nil>`, 10*time.Second)
		if _, err := ptm.Write([]byte{3}); err != nil { // Ctrl-C
			t.Fatal(err)
		}
		if code := c.wait(10 * time.Second); code != 130 {
			t.Fatalf("exit code %d after Ctrl-C, want 130; output:\n%s\nterminal:\n%s", code, c.stdout, term)
		}
		// Manager, not in the foreground, never got the SIGINT itself.
		c.stdout.wait(t, `msg="child exited" pid=\d+ signal=SIGINT code=130`, time.Second)
		if got := c.stdout.matching(`shutting down`); len(got) > 0 {
			t.Errorf("the terminal's SIGINT reached manager, not only the program: %q", got)
		}
	})
}

// TestPodmanInitPath proves that podman run --init --init-path
// with the release binary runs a FROM scratch image's command under manager
// as PID 1, configured only by MANAGER_CONFIG, and an update of the mounted
// directory restarts the command once.
func TestPodmanInitPath(t *testing.T) {
	integration(t)
	e := requirePodman(t)
	initPath := filepath.Join(e.dist, "manager-linux-"+runtime.GOARCH)
	conf := newConfigMap(t, "v1")
	opts := []string{"--init", "--init-path", initPath, "--env", "MANAGER_CONFIG=/config", "--volume", conf + ":/config:ro"}
	c := e.start(t, nil, opts, append([]string{helperImage}, appArgs()[len(managed()):]...)...)
	c.stdout.wait(t, `^start pid=\d+ conf="v1"$`, 30*time.Second)
	// podman mounts the init at /run/podman-init and runs it with "--"
	// before the image's command.
	requirePID1(t, c.initPid(), "/run/podman-init", c.stderr)
	c.updateRestartsOnce(conf)
	c.requireGracefulStop(func() { c.podman("stop", "-t", "5") }, 143)
}
