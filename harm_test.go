package main

// Integration tests of contract §8, "never the cause of harm": a hostile
// environment (a broken or stalled log pipe, a terminal with tostop, a full
// pids cgroup, huge or odd files) must not make manager hurt its program.
// Each reproduces a fault of an earlier manager against the built binary;
// FLUSH_TEST_MANAGER=/path/to/old/manager shows them failing there.

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// brokenPipe returns the write end of a pipe whose reader is gone.
func brokenPipe(t *testing.T) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	t.Cleanup(func() { w.Close() })
	return w
}

// TestBrokenStderr proves that with standard error a pipe without reader,
// manager's log lines raise SIGPIPE, which must neither kill manager nor
// reach the child as if sent to manager.
func TestBrokenStderr(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	for _, pid1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("pid1=%v", pid1), func(t *testing.T) {
			t.Parallel()
			p := startManager(t, runOpts{pid1: pid1, stderr: brokenPipe(t)}, "-config=", "--", helper, "exit", "7")
			if code := p.wait(10 * time.Second); code != 7 {
				t.Fatalf("exit code %d with a broken standard error, want the child's 7", code)
			}
			p = startManager(t, runOpts{pid1: pid1, stderr: brokenPipe(t)}, "-config=", "-log-level", "debug", "--", helper, "signals")
			readyPid(t, p)
			p.signal(syscall.SIGUSR1) // logged at debug: one more broken write
			p.stdout.wait(t, "^got SIGUSR1", 5*time.Second)
			p.signal(syscall.SIGTERM)
			if code := p.wait(10 * time.Second); code != 0 {
				t.Errorf("exit code %d, want 0 (the child exits 0 on TERM)", code)
			}
			if got := p.stdout.matching("^got SIGPIPE"); len(got) > 0 {
				t.Errorf("the child got manager's own SIGPIPE: %q", got)
			}
		})
	}
	t.Run("closed", func(t *testing.T) {
		t.Parallel()
		p := startManager(t, runOpts{shell: "exec 2>&-"}, "-config=", "--", helper, "exit", "7")
		if code := p.wait(10 * time.Second); code != 7 {
			t.Fatalf("exit code %d with standard error closed, want the child's 7", code)
		}
	})
}

// fullPipe returns a pipe whose buffer is full and whose reader does not
// read: a log collector that stalled.
func fullPipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	const setPipeSize = 1031 // F_SETPIPE_SZ
	syscall.Syscall(syscall.SYS_FCNTL, w.Fd(), setPipeSize, 4096)
	fd := int(w.Fd())
	if err := syscall.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	block := []byte(strings.Repeat("filler\n", 4096/7))
	for {
		if _, err := syscall.Write(fd, block); err == syscall.EAGAIN {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.SetNonblock(fd, false); err != nil {
		t.Fatal(err)
	}
	return r, w
}

// TestStalledStderr proves that with standard error a full pipe whose reader
// stalled, manager still forwards, stops and exits; lines it could not
// write are counted, and the count is reported once the reader is back.
func TestStalledStderr(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	r, w := fullPipe(t)
	// Each reaped orphan is a debug line: a burst of far more lines than
	// manager keeps while its standard error is stalled.
	p := startManager(t, runOpts{stderr: w}, "-config=", "-log-level", "debug", "--", helper, "orphans", "2000")
	p.stdout.wait(t, `released \d+ orphans`, 30*time.Second)
	child := readyPid(t, p)
	eventually(t, 30*time.Second, func() error {
		if kids := childrenOf(p.pid()); len(kids) != 1 {
			return fmt.Errorf("manager has %d children, want only its child %d: orphans are not all reaped", len(kids), child)
		}
		return nil
	})
	log := readLines(r) // the collector is back
	p.signal(syscall.SIGUSR1)
	if code := p.wait(10 * time.Second); code != 3 {
		t.Fatalf("exit code %d, want the child's 3", code)
	}
	log.wait(t, `level=WARN msg="log lines dropped" count=[1-9]\d*`, 10*time.Second)
	log.wait(t, `msg=exiting reason="child exited" code=3`, 5*time.Second)

	t.Run("stalled to the end", func(t *testing.T) {
		_, w := fullPipe(t)
		p := startManager(t, runOpts{stderr: w}, "-config=", "-grace", "2s", "--", helper, "signals")
		readyPid(t, p)
		sent := time.Now()
		p.signal(syscall.SIGTERM)
		p.stdout.wait(t, "^got SIGTERM", 5*time.Second)
		if code := p.wait(10 * time.Second); code != 0 {
			t.Fatalf("exit code %d, want 0", code)
		}
		t.Logf("SIGTERM to exit with standard error stalled: %v", time.Since(sent).Round(time.Millisecond))
	})
}

// TestTostopTerminal proves that with standard error a terminal with "stty
// tostop" and manager in a background job of a shell with job control: every
// log write raises SIGTTOU, which must not make manager spin.
func TestTostopTerminal(t *testing.T) {
	integration(t)
	manager, helper := binaries(t)
	script := `set -m; stty tostop; "$@" </dev/null >/dev/null & wait $!; echo "exit=$?"`
	_, term := bashOnTerminal(t, "-c", script, "bash", manager, "-config=", "--", helper, "exit", "5")
	term.wait(t, `msg="child started"`, 10*time.Second)
	term.wait(t, `^exit=5\r?$`, 10*time.Second)
}

// bashOnTerminal runs bash with args in a session of its own whose
// controlling terminal is a new pseudo-terminal, and returns the terminal's
// master side, to type on, and what is written to it.
func bashOnTerminal(t *testing.T, args ...string) (*os.File, *lines) {
	t.Helper()
	requireTool(t, "bash", "a shell with job control")
	ptm, pts := openPTY(t)
	cmd := exec.Command("bash", args...)
	cmd.Env = append(os.Environ(), "FLUSH_HELPER=1", "PS1=PROMPT> ", "TERM=dumb")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pts.Close()
	t.Cleanup(func() {
		// Jobs have process groups of their own: kill the whole session,
		// lest a job the test left stopped outlive it.
		for _, pid := range sessionProcs(cmd.Process.Pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		cmd.Wait()
	})
	return ptm, readLines(ptm)
}

// sessionProcs lists the processes of session sid.
func sessionProcs(sid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, err := getsid(pid); err == nil && s == sid {
			out = append(out, pid)
		}
	}
	return out
}

// getsid is getsid(2).
func getsid(pid int) (int, error) {
	sid, _, e := syscall.RawSyscall(syscall.SYS_GETSID, uintptr(pid), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(sid), nil
}

// TestEarlySignal proves that a SIGTERM that comes right after exec (docker
// stop right after docker start) is acted on. Manager subscribes before it
// does anything, so nothing it does can keep a SIGTERM from it: proven
// with a standard error that stalls manager's first log line (manager
// 70fa25f blocked there before subscribing, and died of the signal).
func TestEarlySignal(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	t.Run("before the first log line", func(t *testing.T) {
		t.Parallel()
		_, w := fullPipe(t)
		p := startManager(t, runOpts{stderr: w}, "-config=", "--", helper, "signals")
		eventually(t, 10*time.Second, func() error {
			if !writingStderr(p.pid()) {
				return fmt.Errorf("no thread of manager %d is blocked writing its standard error", p.pid())
			}
			return nil
		})
		p.signal(syscall.SIGTERM)
		code := p.wait(10 * time.Second)
		if ws := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ws.Signaled() {
			t.Fatalf("manager died of %v: it had not subscribed to it yet", ws.Signal())
		}
		if code != 0 && code != 143 {
			t.Fatalf("exit code %d, want the child's 0 or 143", code)
		}
	})
	// As PID 1, trials at random moments from exec on. One that lands
	// while the Go runtime starts, before any of manager's code runs, ends
	// manager with exit code 2 and no output: the runtime's handler for a
	// TERM nobody subscribed to, which a PID 1 cannot die of (docs/manual.md,
	// Signals). Anything else must be the child's code.
	early := 0
	t.Cleanup(func() {
		if early > 0 {
			t.Logf("%d of 20 SIGTERMs came while the Go runtime started", early)
		}
	})
	var mu sync.Mutex
	for i := range 20 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			p := startManager(t, runOpts{pid1: true}, "-config=", "--", helper, "signals")
			p.signal(syscall.SIGTERM)
			// Before the Go runtime has installed its handlers, the
			// kernel drops a signal to PID 1 with no handler: lost, but
			// not harmful. Send another until manager ends.
			deadline := time.Now().Add(boundTimeout(t, 20*time.Second))
			for !p.exited() && time.Now().Before(deadline) {
				select {
				case <-p.done:
				case <-time.After(time.Second):
					p.signal(syscall.SIGTERM)
				}
			}
			code := p.wait(10 * time.Second)
			if code == 2 && p.stderr.String() == "" && p.stdout.String() == "" {
				mu.Lock()
				early++
				mu.Unlock()
				return
			}
			if code != 0 && code != 143 {
				t.Fatalf("exit code %d after an early SIGTERM, want the child's 0 or 143; log:\n%s", code, p.stderr)
			}
		})
	}
}

// TestSubscribeFirst proves what no run can: a SIGTERM
// before manager subscribes ends a PID 1 with exit code 2, so subscribing
// must be the first thing main does, before anything that takes time or
// writes (parsing, the descriptor check, the log writer).
func TestSubscribeFirst(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "main.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "main" || fn.Recv != nil {
			continue
		}
		if len(fn.Body.List) > 0 {
			if as, ok := fn.Body.List[0].(*ast.AssignStmt); ok && len(as.Rhs) == 1 {
				if call, ok := as.Rhs[0].(*ast.CallExpr); ok {
					if id, ok := call.Fun.(*ast.Ident); ok && id.Name == "subscribe" {
						return
					}
				}
			}
		}
		t.Fatal("main's first statement is not sigs := subscribe(): a SIGTERM before it ends a PID 1 with exit code 2")
	}
	t.Fatal("no func main in main.go")
}

// writingStderr reports whether a thread of pid is in write(2) on its
// standard error, as /proc shows a thread's system call: its number, then
// its arguments.
func writingStderr(pid int) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/syscall", pid))
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if f := strings.Fields(string(b)); err == nil && len(f) > 1 && f[0] == strconv.Itoa(syscall.SYS_WRITE) && f[1] == "0x2" {
			return true
		}
	}
	return false
}

// TestIgnoredSignalsStayIgnored proves that under nohup (HUP ignored) or as
// a shell's background command (INT ignored), the child starts with the
// same signals ignored, as under tini and catatonit.
func TestIgnoredSignalsStayIgnored(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	requireTool(t, "nohup", "a signal ignored from the start")
	tests := []struct {
		name  string
		shell string
		sig   syscall.Signal
	}{
		{"nohup", `nohup "$@"; exit`, syscall.SIGHUP},
		{"background command", `"$@" & wait $!; exit`, syscall.SIGINT},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startManager(t, runOpts{shell: tc.shell}, "-config=", "--", helper, "env")
			if code := p.wait(10 * time.Second); code != 0 {
				t.Fatalf("exit code %d, want 0; log:\n%s", code, p.stderr)
			}
			got := p.stdout.wait(t, `^sigign=([0-9a-f]+)$`, time.Second)[1]
			mask, _ := strconv.ParseUint(got, 16, 64)
			if mask&(1<<(tc.sig-1)) == 0 {
				t.Errorf("child's ignored signals %#x lack %s, which manager was started with ignored", mask, signalName(tc.sig))
			}
			p.stderr.wait(t, `msg="signal ignored from the start; it stays ignored, also for the child" signal=`+signalName(tc.sig), time.Second)
		})
	}
}

// TestHugeFileDoesNotStallLoop proves that hashing a 2 GiB file (sparse, so
// only the hashing costs) runs beside the loop: the child starts at once,
// a signal is forwarded and SIGTERM obeyed while it is hashed.
func TestHugeFileDoesNotStallLoop(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "app.conf"), "v1")
	sparseFile(t, filepath.Join(dir, "huge.bin"), 2<<30)
	waitNotRacy(t, filepath.Join(dir, "app.conf"))
	p := startManager(t, runOpts{}, "-config", dir, "-poll", "50ms", "-debounce", "0s", "-log-level", "debug", "--", helper, "signals")
	readyPid(t, p)
	sent := time.Now()
	p.signal(syscall.SIGUSR1)
	p.stdout.wait(t, "^got SIGUSR1", 5*time.Second)
	forwarded := time.Since(sent)
	if got := p.stderr.matching(`msg="config hashed"`); len(got) > 0 {
		t.Fatalf("the first hash ended before the child got its signal; this test proves nothing here: %q", got)
	}
	took := p.stderr.wait(t, `msg="config hashed" purpose=baseline took=(\S+)`, 60*time.Second)[1]
	t.Logf("SIGUSR1 forwarded in %v while 2 GiB were hashed (the hash took %s)", forwarded.Round(time.Microsecond), took)

	writeFile(t, filepath.Join(dir, "app.conf"), "v2") // a change: all of it hashed again
	p.stderr.wait(t, `msg="hashing config" purpose=change`, 10*time.Second)
	sent = time.Now()
	p.signal(syscall.SIGTERM)
	code := p.wait(10 * time.Second)
	stopped := time.Since(sent)
	if code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	if got := p.stderr.matching(`msg="config hashed" purpose=change`); len(got) > 0 {
		t.Errorf("manager waited for the hash before it exited: %q", got)
	}
	t.Logf("SIGTERM to exit %v while the change was hashed", stopped.Round(time.Microsecond))
}

// TestPollableFile proves that a watched pollable regular file, /proc/kmsg,
// keeps nothing from starting: read without O_NONBLOCK it waits for kernel
// messages, and through os.File the runtime's netpoller turns its EAGAIN
// into a wait without end.
func TestPollableFile(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	fd, err := syscall.Open("/proc/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		skipTest(t, "cannot open /proc/kmsg here (%v): needs root and CAP_SYSLOG", err)
	}
	syscall.Close(fd)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "app.conf"), "v1")
	for _, watch := range []string{"/proc/kmsg", dir} {
		t.Run(watch, func(t *testing.T) {
			p := startManager(t, runOpts{}, "-config", watch, "-config", "/proc/kmsg", "-poll", "50ms", "--", helper, "signals")
			readyPid(t, p)
			p.signal(syscall.SIGTERM)
			if code := p.wait(10 * time.Second); code != 0 {
				t.Fatalf("exit code %d, want 0; log:\n%s", code, p.stderr)
			}
		})
	}
}

// TestCoarseTimestamps proves that on a file system with one-second times
// (ext4 with 128-byte inodes), a same-size rewrite in the same second as
// the change manager just acted on leaves every stat field as it was; it
// must still be acted on.
func TestCoarseTimestamps(t *testing.T) {
	integration(t)
	dir := coarseFileSystem(t)
	conf := filepath.Join(dir, "app.conf")
	writeFile(t, conf, "a0")
	waitNotRacy(t, conf)
	p := appUnderManager(t, conf, conf, "", "-poll", "50ms", "-debounce", "0s")
	want := []string{"a0"}
	wantStarts(t, p, want...)
	for attempt := 1; ; attempt++ {
		// Start at the beginning of a second, so that manager can act
		// on the first write within that second.
		eventually(t, 2*time.Second, func() error {
			if ns := time.Now().Nanosecond(); ns > 100e6 {
				return fmt.Errorf("%d ns into the second", ns)
			}
			return nil
		})
		first, second := fmt.Sprintf("b%d", attempt), fmt.Sprintf("c%d", attempt)
		writeFile(t, conf, first)
		before := statOf(t, conf)
		want = append(want, first)
		wantStarts(t, p, want...)
		writeFile(t, conf, second)
		if after := statOf(t, conf); after != before {
			if attempt == 5 {
				t.Fatalf("never rewrote within the same second in 5 attempts; the machine is too slow for this test")
			}
			want = append(want, second) // not the fault: a plain change
			wantStarts(t, p, want...)
			continue
		}
		// Every stat field is as manager saw it after the first write.
		want = append(want, second)
		wantStarts(t, p, want...)
		break
	}
	stop(t, p)
}

// statOf is what stat says of path that a watcher could compare.
func statOf(t *testing.T, path string) [5]int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return [5]int64{int64(st.Ino), st.Size, st.Mtim.Nano(), st.Ctim.Nano(), int64(st.Dev)}
}

// coarseFileSystem mounts a small ext4 file system with 128-byte inodes,
// whose times have a resolution of one second, and returns its root.
func coarseFileSystem(t *testing.T) string {
	t.Helper()
	if os.Getuid() != 0 {
		skipTest(t, "mounting a file system needs root; this test runs as uid %d", os.Getuid())
	}
	mkfs := requireTool(t, "mkfs.ext4", "a file system with whole-second timestamps")
	img := filepath.Join(t.TempDir(), "coarse.img")
	sparseFile(t, img, 16<<20)
	if out, err := exec.Command(mkfs, "-q", "-I", "128", "-F", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop", img, dir).CombinedOutput(); err != nil {
		skipTest(t, "cannot loop-mount a file system here: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// sparseFile creates a file of size bytes that takes no disk space: reading
// it costs the kernel's zeroed pages, and hashing it all its bytes.
func sparseFile(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

// pidsCgroup is a pids cgroup of the test's own, v2 or v1.
type pidsCgroup struct{ dir string }

// newPidsCgroup creates a pids cgroup, or skips t saying why it cannot.
func newPidsCgroup(t *testing.T) *pidsCgroup {
	t.Helper()
	if os.Getuid() != 0 {
		skipTest(t, "creating a cgroup needs root; this test runs as uid %d", os.Getuid())
	}
	var parent string
	for _, cand := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if b, err := os.ReadFile(filepath.Join(cand, "cgroup.subtree_control")); err == nil && strings.Contains(string(b), "pids") {
			parent = cand
			break
		}
	}
	if parent == "" {
		if _, err := os.Stat("/sys/fs/cgroup/pids/pids.max"); err == nil || fileExists("/sys/fs/cgroup/pids/cgroup.procs") {
			parent = "/sys/fs/cgroup/pids"
		}
	}
	if parent == "" {
		skipTest(t, "no pids cgroup controller here: neither cgroup v2 with pids enabled nor v1 /sys/fs/cgroup/pids")
	}
	dir := filepath.Join(parent, fmt.Sprintf("flush-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		skipTest(t, "cannot create a cgroup in %s: %v", parent, err)
	}
	cg := &pidsCgroup{dir}
	t.Cleanup(func() {
		cg.setMax(t, "max")
		eventually(t, 10*time.Second, func() error {
			b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			for _, f := range strings.Fields(string(b)) {
				pid, _ := strconv.Atoi(f)
				syscall.Kill(pid, syscall.SIGKILL)
			}
			return os.Remove(dir)
		})
	})
	return cg
}

func fileExists(path string) bool { _, err := os.Stat(path); return err == nil }

// enter is the runOpts.shell snippet that puts manager in the cgroup.
func (cg *pidsCgroup) enter() string { return fmt.Sprintf("echo $$ > %s/cgroup.procs", cg.dir) }

// current returns pids.current: the tasks (threads) in the cgroup now.
func (cg *pidsCgroup) current(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cg.dir, "pids.current"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// setMax sets pids.max: a number, or "max".
func (cg *pidsCgroup) setMax(t *testing.T, v string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(cg.dir, "pids.max"), []byte(v), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestForkRetried proves that a fork refused for lack of pids (EAGAIN) is
// retried with backoff, for the check and for the restarted child, and the
// change is applied once it succeeds; never exit code 126.
func TestForkRetried(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	for _, withCheck := range []bool{true, false} {
		t.Run(fmt.Sprintf("check=%v", withCheck), func(t *testing.T) {
			t.Parallel()
			cg := newPidsCgroup(t)
			conf := filepath.Join(t.TempDir(), "app.conf")
			writeFile(t, conf, "v1")
			waitNotRacy(t, conf)
			args := []string{"-config", conf, "-poll", "50ms", "-debounce", "0s"}
			what := "child"
			if withCheck {
				args = append(args, "-check", helper+" check-config "+conf)
				what = "check"
			}
			args = append(args, "--", helper, "app", filepath.Join(t.TempDir(), "lock"), conf)
			p := startManager(t, runOpts{shell: cg.enter()}, args...)
			wantStarts(t, p, "v1")
			cg.setMax(t, "1") // nothing more may start: the cgroup is full
			writeFile(t, conf, "v2")
			p.stderr.waitN(t, 2, `level=WARN msg="cannot start `+what+`; retrying" error="resource temporarily unavailable"`, 10*time.Second)
			cg.setMax(t, "max")
			wantStarts(t, p, "v1", "v2")
			stop(t, p)
		})
	}
}

// TestCheckLeavesNothing proves that what a check leaves in its process
// group is killed when the check exits, not only when it times out.
func TestCheckLeavesNothing(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	p, _, conf := watchedApp(t, "", "-check", helper+" leave sleep")
	wantStarts(t, p, "v1")
	writeFile(t, conf, "v2")
	// The second check's: the first ran before the first start.
	lefts := p.stderr.waitN(t, 2, `grandchild ready pid=(\d+)`, 10*time.Second)
	left, _ := strconv.Atoi(regexp.MustCompile(`grandchild ready pid=(\d+)`).FindStringSubmatch(lefts[1])[1])
	p.stderr.wait(t, `msg="check passed"`, 10*time.Second)
	wantStarts(t, p, "v1", "v2")
	eventually(t, 5*time.Second, func() error {
		if alive(left) {
			return fmt.Errorf("process %d, left by the check, is alive", left)
		}
		return nil
	})
	stop(t, p)
}

// TestStoppedChildStopsGracefully proves that a child stopped by SIGSTOP
// when manager must stop it gets SIGCONT after the stop signal, so that its
// handler runs.
func TestStoppedChildStopsGracefully(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	file := filepath.Join(t.TempDir(), "saved")
	p := startManager(t, runOpts{}, "-config=", "-grace", "10s", "--", helper, "trap-term", file)
	child := readyPid(t, p)
	syscall.Kill(child, syscall.SIGSTOP)
	eventually(t, 5*time.Second, func() error {
		if state, _, _ := procState(child); state != 'T' {
			return fmt.Errorf("child %d in state %c, want T (stopped)", child, state)
		}
		return nil
	})
	sent := time.Now()
	p.signal(syscall.SIGTERM)
	if code := p.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0: the stopped child's TERM handler did not run", code)
	}
	if took := time.Since(sent); took > 5*time.Second {
		t.Errorf("manager took %v, as long as the grace period: the child was not continued", took)
	}
	if b, err := os.ReadFile(file); err != nil || !strings.HasPrefix(string(b), "saved by") {
		t.Errorf("the child did not save on TERM: %q, %v", b, err)
	}
}

// TestTinyNofile proves that under a tiny RLIMIT_NOFILE manager works or
// exits 2 with one line saying why; never a Go runtime crash.
func TestTinyNofile(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	for _, n := range []int{4, 5, 6, 7, 8, 10} {
		for _, withCheck := range []bool{false, true} {
			t.Run(fmt.Sprintf("nofile=%d,check=%v", n, withCheck), func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				writeFile(t, filepath.Join(dir, "app.conf"), "v1")
				waitNotRacy(t, filepath.Join(dir, "app.conf"))
				args := []string{"-config", dir, "-poll", "50ms", "-debounce", "0s"}
				if withCheck {
					args = append(args, "-check", helper+" exit 0")
				}
				p := startManager(t, runOpts{shell: fmt.Sprintf("ulimit -n %d", n)}, append(args, "--", helper, "signals")...)
				waitOrEnd(t, p.stdout, `^ready pid=`, 30*time.Second)
				if len(p.stdout.matching(`^ready pid=`)) == 0 { // manager ended first
					code := p.wait(10 * time.Second)
					out := p.stderr.String()
					if code != 2 || strings.Count(out, "\n") != 0 || !strings.Contains(out, "RLIMIT_NOFILE") {
						t.Fatalf("exit code %d, standard error:\n%s\nwant it to work, or exit 2 with one line naming RLIMIT_NOFILE", code, out)
					}
					if n >= 7 && !withCheck {
						t.Fatalf("refused to run at nofile=%d, which leaves the 4 descriptors it needs: %s", n, out)
					}
					return
				}
				writeFile(t, filepath.Join(dir, "app.conf"), "v2")
				p.stdout.waitN(t, 2, `^ready pid=`, 20*time.Second) // restarted: hashed, checked, forked
				p.signal(syscall.SIGTERM)
				if code := p.wait(10 * time.Second); code != 0 {
					t.Fatalf("exit code %d, want 0; log:\n%s", code, p.stderr)
				}
				if strings.Contains(p.stderr.String(), "goroutine ") {
					t.Fatalf("Go runtime crash:\n%s", p.stderr)
				}
			})
		}
	}
}

// waitOrEnd waits until a line matching re has been read or l has ended,
// and fails t if neither happens within timeout.
func waitOrEnd(t *testing.T, l *lines, re string, timeout time.Duration) {
	t.Helper()
	c := make(chan struct{})
	go func() {
		defer close(c)
		for {
			_, changed, eof := l.snapshot()
			if len(l.matching(re)) > 0 || eof {
				return
			}
			<-changed
		}
	}()
	select {
	case <-c:
	case <-time.After(timeout):
		t.Fatalf("no line matching %q and no end within %v; so far:\n%s", re, timeout, l)
	}
}

// TestFullPidsCgroup proves that in a pids cgroup with no room left, the Go
// runtime cannot create a thread; manager must never need one, under a
// flood of signals, log lines and configuration changes, and its thread
// count never grows.
func TestFullPidsCgroup(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	cg := newPidsCgroup(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "app.conf"), "0")
	waitNotRacy(t, filepath.Join(dir, "app.conf"))
	p := startManager(t, runOpts{shell: cg.enter()}, "-config", dir, "-poll", "10ms", "-debounce", "0s",
		"-reload-signal", "HUP", "-log-level", "debug", "--", helper, "steady-signals")
	readyPid(t, p)
	before := procUsage(t, p.pid())
	cg.setMax(t, "1")
	for i := 1; i <= 30; i++ {
		writeFile(t, filepath.Join(dir, "app.conf"), strconv.Itoa(i))
		for range 100 {
			p.signal(syscall.SIGUSR1)
		}
		p.stdout.waitN(t, i, "^got SIGHUP", 10*time.Second)
	}
	after := procUsage(t, p.pid())
	if p.exited() {
		t.Fatalf("manager died in a full pids cgroup; log:\n%s", p.stderr)
	}
	if after.threads > before.threads {
		t.Errorf("manager grew from %d to %d threads in a full pids cgroup", before.threads, after.threads)
	}
	t.Logf("threads: %d before the cgroup filled, %d after 30 reloads and 3,000 signals", before.threads, after.threads)
	cg.setMax(t, "max")
	p.signal(syscall.SIGTERM)
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0; log:\n%s", code, p.stderr)
	}
}

// TestBusyEntry proves that a file in a watched directory rewritten every
// 200 ms no longer holds back a real change beside it once it has been
// busy for 10 s; it is named once at WARN.
func TestBusyEntry(t *testing.T) {
	integration(t)
	t.Parallel()
	dir := t.TempDir()
	conf := filepath.Join(dir, "app.conf")
	writeFile(t, conf, "v1")
	p := appUnderManager(t, conf, dir, "")
	wantStarts(t, p, "v1")
	stopWriter := make(chan struct{})
	writerDone := make(chan struct{})
	writes := make(chan int, 1000)
	go func() {
		defer close(writerDone)
		for i := 0; ; i++ {
			select {
			case <-stopWriter:
				return
			case <-time.After(200 * time.Millisecond): // the program's pace, not a wait for manager
			}
			os.WriteFile(filepath.Join(dir, "state"), []byte(strconv.Itoa(i)), 0o644)
			writes <- i
		}
	}()
	defer func() { close(stopWriter); <-writerDone }()
	for i := range writes {
		if i == 5 { // a real change, beside a file that keeps changing
			break
		}
	}
	writeFile(t, conf, "v2")
	p.stderr.wait(t, `level=WARN msg="config busy: .*path=`+regexp.QuoteMeta(filepath.Join(dir, "state")), 30*time.Second)
	wantStarts(t, p, "v1", "v2")
	if got := p.stderr.matching(`msg="config busy`); len(got) != 1 {
		t.Errorf("busy reported %d times, want once: %q", len(got), got)
	}
	stop(t, p)
}

// TestUnkillableChild proves that a child manager may not signal (it made
// itself root) and that ignores TERM does not hold manager forever: after
// the grace period and SIGKILL's wait, manager gives up and exits 137.
func TestUnkillableChild(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	if os.Getuid() != 0 {
		skipTest(t, "making a set-user-ID root program needs root; this test runs as uid %d", os.Getuid())
	}
	setuid := filepath.Join(filepath.Dir(helper), "setuid-helper")
	if err := copyFile(helper, setuid, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(setuid, os.ModeSetuid|0o755); err != nil {
		t.Fatal(err)
	}
	p := startManager(t, runOpts{uid: nonRoot}, "-config=", "-grace", "1s", "--", setuid, "setuid-ignore-term")
	m := p.stdout.wait(t, `^ready pid=(\d+) uid=(\d+)`, 10*time.Second)
	if m[2] != "0" {
		skipTest(t, "the set-user-ID bit is not honoured here (nosuid mount?): the child runs as uid %s", m[2])
	}
	child, _ := strconv.Atoi(m[1])
	t.Cleanup(func() { syscall.Kill(child, syscall.SIGKILL) })
	sent := time.Now()
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(boundTimeout(t, 20*time.Second)):
		t.Fatalf("manager still waits for a child it cannot kill 20s after SIGTERM; log:\n%s", p.stderr)
	}
	gaveUp := time.Since(sent)
	syscall.Kill(child, syscall.SIGKILL) // it holds manager's output open
	if code := p.wait(10 * time.Second); code != 137 {
		t.Fatalf("exit code %d, want 137; log:\n%s", code, p.stderr)
	}
	p.stderr.wait(t, `level=WARN msg="signal not sent" signal=SIGTERM .*error="operation not permitted"`, time.Second)
	p.stderr.wait(t, `level=ERROR msg="child cannot be killed; not waiting for it"`, time.Second)
	t.Logf("gave up on the unkillable child %v after SIGTERM", gaveUp.Round(time.Millisecond))
}

// TestJobControl proves that at an interactive shell, Ctrl-Z stops the
// program and gives the prompt back, fg continues it with the terminal, and
// Ctrl-C then ends it, as without manager.
func TestJobControl(t *testing.T) {
	integration(t)
	manager, helper := binaries(t)
	ptm, term := bashOnTerminal(t, "--norc", "--noprofile", "-i")
	type_ := func(s string) {
		t.Helper()
		if _, err := ptm.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	type_(fmt.Sprintf("%s -config= -- %s readline\n", manager, helper))
	term.wait(t, `^ready pid=\d+`, 10*time.Second)
	type_("\x1a") // Ctrl-Z
	term.wait(t, `Stopped`, 10*time.Second)
	type_("fg\n")
	term.wait(t, `msg="continuing child"`, 10*time.Second)
	type_("hello\n")
	term.wait(t, `read: "hello" <nil>`, 10*time.Second)
	interruptEnds(t, type_, term)
}

// TestNprocLimitAtStart proves that when the user's process
// limit leaves manager its own threads but no room for the child, the start
// is retried, the Go runtime never needs one more thread (and crashes), and
// SIGTERM ends manager, never signalling a process group that is not the
// child's (before a child exists, kill(0) would be manager's own).
func TestNprocLimitAtStart(t *testing.T) {
	integration(t)
	requireTool(t, "prlimit", "RLIMIT_NPROC at start")
	const uid = 54321 // a user of this test alone: RLIMIT_NPROC counts all of a user's threads
	if os.Getuid() != 0 {
		skipTest(t, "running as uid %d needs root; this test runs as uid %d", uid, os.Getuid())
	}
	// How many threads manager makes for itself, here.
	p := startManager(t, runOpts{uid: uid}, "-config=", "--", "/bin/sleep", "60")
	p.childPid(1)
	threads := procUsage(t, p.pid()).threads
	p.signal(syscall.SIGTERM)
	p.wait(10 * time.Second)

	for range 5 { // the race it once lost, lost most of the time
		p := startManager(t, runOpts{uid: uid, shell: fmt.Sprintf("prlimit --pid $$ --nproc=%d:%d", threads, threads)},
			"-config=", "-grace", "1s", "--", "/bin/sleep", "60")
		p.stderr.waitN(t, 2, `level=WARN msg="cannot start child; retrying" error="resource temporarily unavailable"`, 10*time.Second)
		p.signal(syscall.SIGTERM)
		if code := p.wait(10 * time.Second); code != 143 {
			t.Fatalf("exit code %d, want 143 (SIGTERM before any child ran); log:\n%s", code, p.stderr)
		}
		if got := p.stderr.matching(`fatal error|pid=0 `); len(got) > 0 {
			t.Fatalf("%q; log:\n%s", got, p.stderr)
		}
	}
	t.Logf("manager makes %d threads; under RLIMIT_NPROC %d it retries the child's start and never crashes", threads, threads)
}
