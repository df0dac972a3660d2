package main

// Integration tests of manager as an init: the built binary, really running,
// with the test binary as its child (see runHelper).

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// TestExitCodes proves that manager exits with the child's exit code, and
// with 128+N when signal N killed it.
func TestExitCodes(t *testing.T) {
	integration(t)
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"exit 0", []string{"exit", "0"}, 0},
		{"exit 3", []string{"exit", "3"}, 3},
		{"exit 255", []string{"exit", "255"}, 255},
		{"SIGKILL", []string{"kill-self", "KILL"}, 137},
		{"SIGTERM", []string{"kill-self", "TERM"}, 143},
	}
	_, helper := binaries(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startManager(t, runOpts{}, append([]string{"-config=", "--", helper}, tc.args...)...)
			if got := p.wait(10 * time.Second); got != tc.want {
				t.Fatalf("manager -- helper %s: exit code %d, want %d; log:\n%s", strings.Join(tc.args, " "), got, tc.want, p.stderr)
			}
			p.stderr.wait(t, fmt.Sprintf(`msg=exiting reason="child exited" code=%d`, tc.want), time.Second)
		})
	}
	t.Run("remapped", func(t *testing.T) {
		t.Parallel()
		p := startManager(t, runOpts{}, "-config=", "-remap-exit", "143", "--", helper, "kill-self", "TERM")
		if got := p.wait(10 * time.Second); got != 0 {
			t.Fatalf("with -remap-exit 143, child killed by SIGTERM: exit code %d, want 0", got)
		}
	})
}

// TestStartFailures proves that a command that is missing or cannot be
// executed ends manager with 127 or 126 and one line naming it, and that a
// bad flag is one line and exit 2.
func TestStartFailures(t *testing.T) {
	integration(t)
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, []byte("not a program\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, command string
		want          int
		msg           string
	}{
		{"missing", "/no/such/program", 127, `command=/no/such/program error="no such file or directory" code=127`},
		{"not in PATH", "no-such-program", 127, `command=no-such-program error="not found in PATH" code=127`},
		{"not executable", plain, 126, fmt.Sprintf(`command=%s error="permission denied" code=126`, plain)},
		{"not executable, in PATH", "plain", 126, `command=plain error="permission denied" code=126`},
	}
	path := "PATH=" + filepath.Dir(plain) + ":" + os.Getenv("PATH")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := startManager(t, runOpts{env: []string{path}}, "-config=", "--", tc.command)
			if got := p.wait(10 * time.Second); got != tc.want {
				t.Fatalf("manager -- %s: exit code %d, want %d", tc.command, got, tc.want)
			}
			p.stderr.wait(t, `level=ERROR msg=exiting reason="cannot start child" `+regexp.QuoteMeta(tc.msg), time.Second)
			if n := len(p.stderr.matching(`level=(ERROR|WARN)`)); n != 1 {
				t.Errorf("%d error lines, want one:\n%s", n, p.stderr)
			}
		})
	}
	t.Run("bad flag", func(t *testing.T) {
		p := startManager(t, runOpts{}, "-grace", "ten", "--", "/no/such/program")
		if got := p.wait(10 * time.Second); got != 2 {
			t.Fatalf("manager -grace ten: exit code %d, want 2", got)
		}
		if got := p.stderr.String(); got != `manager: -grace "ten": invalid duration` {
			t.Errorf("manager -grace ten printed %q, want one line naming flag and value", got)
		}
	})
}

// TestSignalsReachChild proves that every signal manager catches reaches
// the child, as PID 1 and not.
func TestSignalsReachChild(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	sigs := []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGTERM}
	for _, group := range []bool{false, true} {
		for _, sig := range sigs {
			name := signalName(sig)
			if group {
				name += " with -group"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				args := []string{"-config=", "--", helper, "signals"}
				want := 1
				if group {
					args = []string{"-config=", "-group", "--", helper, "group"}
					want = 2
				}
				p := startManager(t, runOpts{}, args...)
				readies := p.stdout.waitN(t, want, `^ready pid=\d+`, 10*time.Second)
				p.signal(sig)
				got := p.stdout.waitN(t, want, "^got "+signalName(sig)+" ", 5*time.Second)
				for _, r := range readies {
					pid := strings.TrimPrefix(r, "ready ")
					if !strings.Contains(strings.Join(got, "\n"), pid) {
						t.Errorf("process %s did not get %s; got %q", pid, signalName(sig), got)
					}
				}
				if sig != syscall.SIGTERM && sig != syscall.SIGINT {
					p.signal(syscall.SIGTERM)
				}
				if code := p.wait(10 * time.Second); code != 0 {
					t.Errorf("exit code %d, want 0 (the child exits 0 on TERM)", code)
				}
			})
		}
	}
}

// TestOrphanStormAsPID1 proves that when 10,000 orphans exit at once
// in manager's PID namespace, and none is left a zombie.
func TestOrphanStormAsPID1(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	const n = 10000
	p := startManager(t, runOpts{pid1: true}, "-config=", "--", helper, "orphans", strconv.Itoa(n))
	p.stdout.wait(t, `released \d+ orphans`, 60*time.Second)
	released := time.Now()
	eventually(t, 30*time.Second, func() error {
		if procs, zombies := namespaceProcs(p.pid()); zombies != 0 || procs != 2 {
			return fmt.Errorf("%d processes, %d zombies in the namespace; want 2 (manager, child), none", procs, zombies)
		}
		return nil
	})
	t.Logf("%d orphans gone %v after their release (includes scanning /proc)", n, time.Since(released).Round(time.Millisecond))
	p.signal(syscall.SIGUSR1)
	if code := p.wait(10 * time.Second); code != 3 {
		t.Fatalf("exit code %d, want the child's 3", code)
	}
}

// TestSubreaperReapsOrphans proves that a manager that is not PID 1 reaps
// the orphans of its child as a child subreaper.
func TestSubreaperReapsOrphans(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	p := startManager(t, runOpts{}, "-config=", "--", helper, "orphans", "200")
	p.stdout.wait(t, `released \d+ orphans`, 30*time.Second)
	p.stderr.wait(t, "child subreaper", time.Second)
	child := p.childPid(1)
	eventually(t, 10*time.Second, func() error {
		if kids := childrenOf(p.pid()); len(kids) != 1 || !alive(child) {
			return fmt.Errorf("manager's children %v (zombies included), want only its child %d", kids, child)
		}
		return nil
	})
	p.signal(syscall.SIGUSR1)
	if code := p.wait(10 * time.Second); code != 3 {
		t.Fatalf("exit code %d, want the child's 3", code)
	}
}

// childrenOf lists the processes, zombies included, whose parent is pid.
func childrenOf(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := procState(n); ok && ppid == pid {
			out = append(out, n)
		}
	}
	return out
}

// TestGraceKillsIgnoringChild proves that a child that ignores SIGTERM is
// killed when -grace ends, and manager exits 137.
func TestGraceKillsIgnoringChild(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	p := startManager(t, runOpts{}, "-config=", "-grace", "1s", "--", helper, "ignore-term")
	p.stdout.wait(t, "^ready", 10*time.Second)
	sent := time.Now()
	p.signal(syscall.SIGTERM)
	code := p.wait(10 * time.Second)
	took := time.Since(sent)
	if code != 137 {
		t.Errorf("exit code %d, want 137 (SIGKILL)", code)
	}
	if took < 900*time.Millisecond || took > 5*time.Second {
		t.Errorf("manager exited %v after SIGTERM, want about the 1s grace", took)
	}
	p.stderr.wait(t, "grace period over; killing", time.Second)
}

// TestWrapperGroupIsWaited proves that when a sh -c wrapper dies on
// TERM; its own child, left in the group, is still waited for and killed.
func TestWrapperGroupIsWaited(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	t.Run("member ignores TERM: killed at grace", func(t *testing.T) {
		t.Parallel()
		p := startManager(t, runOpts{}, "-config=", "-grace", "1s", "--", "/bin/sh", "-c", helper+" ignore-term & wait")
		member := readyPid(t, p)
		sent := time.Now()
		p.signal(syscall.SIGTERM)
		p.stderr.wait(t, `msg="child exited" .*signal=SIGTERM`, 5*time.Second)
		if !alive(member) {
			t.Fatal("group member died with the wrapper; the test proves nothing")
		}
		if p.exited() {
			t.Fatal("manager exited with a member of the child's group alive")
		}
		code := p.wait(10 * time.Second)
		if took := time.Since(sent); took < 900*time.Millisecond {
			t.Errorf("manager exited %v after SIGTERM, before the 1s grace", took)
		}
		if code != 143 {
			t.Errorf("exit code %d, want the wrapper's 143", code)
		}
		if alive(member) {
			t.Errorf("group member %d outlived manager", member)
		}
	})
	t.Run("member obeys TERM: no waiting for grace", func(t *testing.T) {
		t.Parallel()
		p := startManager(t, runOpts{}, "-config=", "-grace", "60s", "--", "/bin/sh", "-c", helper+" sleep & wait")
		member := readyPid(t, p)
		sent := time.Now()
		p.signal(syscall.SIGTERM)
		code := p.wait(30 * time.Second)
		if took := time.Since(sent); took > 10*time.Second {
			t.Errorf("manager took %v to exit once the group was empty", took)
		}
		if code != 143 || alive(member) {
			t.Errorf("exit code %d, member alive %v; want 143, false", code, alive(member))
		}
	})
}

// readyPid waits for the child's ready line and returns the pid it gives.
func readyPid(t *testing.T, p *proc) int {
	t.Helper()
	pid, _ := strconv.Atoi(p.stdout.wait(t, `^ready pid=(\d+)`, 10*time.Second)[1])
	return pid
}

// TestLeftoverSavesBeforeExit proves that a process the child
// left behind gets TERM, and what it writes then is written before manager
// exits.
func TestLeftoverSavesBeforeExit(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	for _, pid1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("pid1=%v", pid1), func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(t.TempDir(), "saved")
			p := startManager(t, runOpts{pid1: pid1}, "-config=", "--", helper, "leave", "trap-term", file)
			if code := p.wait(10 * time.Second); code != 0 {
				t.Fatalf("exit code %d, want 0; log:\n%s", code, p.stderr)
			}
			b, err := os.ReadFile(file)
			if err != nil || !strings.HasPrefix(string(b), "saved by") {
				t.Fatalf("leftover did not save before manager exited: %q, %v; log:\n%s", b, err, p.stderr)
			}
			p.stderr.wait(t, `msg="stopping leftover processes" .*signal=SIGTERM`, time.Second)
		})
	}
}

// TestSubreaperSignalsOnlyItsGroup proves that, not PID 1,
// manager's stop signals and SIGKILLs never reach a process outside the
// child's group, even one of the same user (kill(-1) would).
func TestSubreaperSignalsOnlyItsGroup(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	bystander := startManager(t, runOpts{}, "-config=", "--", helper, "signals")
	bystander.stdout.wait(t, "^ready", 10*time.Second)
	// Leftovers that ignore TERM make manager go all the way to SIGKILL.
	p := startManager(t, runOpts{}, "-config=", "-grace", "500ms", "--", helper, "leave", "ignore-term")
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	p.stderr.wait(t, "grace period over; killing", time.Second)
	// A marker signal, sent last, is received after anything manager may
	// have sent: once it arrives, every earlier signal would show too.
	bystander.signal(syscall.SIGUSR2)
	bystander.stdout.wait(t, "^got SIGUSR2", 5*time.Second)
	if got := bystander.stdout.matching("^got "); len(got) != 1 || bystander.exited() {
		t.Fatalf("a process outside the child's group was signalled: %q (exited %v)", got, bystander.exited())
	}
}

// TestManagerKilledChildDies proves that the child dies with manager, even
// killed by SIGKILL (the parent-death signal), also a child started late in
// manager's life, by a restart.
func TestManagerKilledChildDies(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	conf := filepath.Join(t.TempDir(), "app.conf")
	writeFile(t, conf, "v1")
	waitNotRacy(t, conf)
	p := startManager(t, runOpts{}, "-config", conf, "-poll", "50ms", "-debounce", "0s", "--", helper, "sleep")
	readyPid(t, p)
	writeFile(t, conf, "v2")
	p.stdout.waitN(t, 2, `^ready pid=`, 10*time.Second)
	child, _ := strconv.Atoi(p.stdout.matching(`^ready pid=`)[1][len("ready pid="):])
	wantDiesWithManager(t, p, child)
}

// wantDiesWithManager kills manager with SIGKILL, which it cannot handle,
// and waits for child to die of the parent-death signal.
func wantDiesWithManager(t *testing.T, p *proc, child int) {
	t.Helper()
	p.signal(syscall.SIGKILL)
	p.wait(5 * time.Second)
	eventually(t, 5*time.Second, func() error {
		if alive(child) {
			return fmt.Errorf("program %d outlives manager killed by SIGKILL", child)
		}
		return nil
	})
}

// TestTerminal proves that under a terminal, the child is its
// foreground process group, so it can read and Ctrl-C reaches it; through
// the shim -listen starts programs with too.
func TestTerminal(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	for _, extra := range [][]string{nil, {"-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t))}} {
		t.Run(fmt.Sprint(extra), func(t *testing.T) {
			ptm, pts := openPTY(t)
			p := startManager(t, runOpts{stdin: pts, attr: func(a *syscall.SysProcAttr) {
				a.Setpgid = false
				a.Setsid, a.Setctty, a.Ctty = true, true, 0
			}}, append(append([]string{"-config="}, extra...), "--", helper, "readline")...)
			pts.Close()
			term := readLines(ptm)
			p.stdout.wait(t, "^ready", 10*time.Second)
			if _, err := ptm.Write([]byte("hello\n")); err != nil {
				t.Fatal(err)
			}
			p.stdout.wait(t, `^read: "hello" <nil>`, 5*time.Second)
			if _, err := ptm.Write([]byte{3}); err != nil { // Ctrl-C
				t.Fatal(err)
			}
			if code := p.wait(5 * time.Second); code != 130 {
				t.Fatalf("exit code %d after Ctrl-C, want 130; terminal:\n%s", code, term)
			}
		})
	}
}

// openPTY opens a pseudo-terminal pair with the standard library only.
func openPTY(t *testing.T) (ptm, pts *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		skipTest(t, "no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptm.Close() })
	var unlock int32
	if err := ioctl(ptm, syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	var n uint32
	if err := ioctl(ptm, syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	pts, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ptm, pts
}

// ioctl is ioctl(2) on f, through its raw connection: f.Fd would make
// f's reads blocking, and a read blocked on a terminal's master side keeps
// Close from closing it, and so from hanging the terminal up.
func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	c, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var e syscall.Errno
	if err := c.Control(func(fd uintptr) { _, _, e = syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(arg)) }); err != nil {
		return err
	}
	if e != 0 {
		return e
	}
	return nil
}

// TestSignalFlood proves that 10,000 signals at once neither kill nor stall
// manager: it still forwards them and stops at once on SIGTERM.
func TestSignalFlood(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	p := startManager(t, runOpts{}, "-config=", "--", helper, "signals")
	p.stdout.wait(t, "^ready", 10*time.Second)
	for i := 0; i < 10000; i++ {
		if err := syscall.Kill(p.pid(), syscall.SIGUSR1); err != nil {
			t.Fatalf("signal %d: %v", i, err)
		}
	}
	p.stdout.wait(t, "^got SIGUSR1", 5*time.Second)
	if p.exited() {
		t.Fatalf("manager died under the flood; log:\n%s", p.stderr)
	}
	sent := time.Now()
	p.signal(syscall.SIGTERM)
	code := p.wait(2 * time.Second)
	if took := time.Since(sent); code != 0 || took > 2*time.Second {
		t.Fatalf("exit code %d after %v, want 0 within 2s", code, took)
	}
}

// TestChildEnvironment: the child gets manager's environment and working
// directory, and default signal dispositions: nothing ignored (signal.Notify,
// never signal.Ignore, whose SIG_IGN would survive exec), nothing blocked.
func TestChildEnvironment(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	dir := t.TempDir()
	p := startManager(t, runOpts{env: []string{"FLUSH_TEST_VAR=from the test"}, dir: dir}, "-config=", "--", helper, "env")
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	for _, want := range []string{"FLUSH_TEST_VAR=from the test", "cwd=" + dir, "sigblk=0000000000000000"} {
		if got := p.stdout.matching("^" + regexp.QuoteMeta(want) + "$"); len(got) != 1 {
			t.Errorf("child printed no %q; got:\n%s", want, p.stdout)
		}
	}
	// Manager may pass on what it was itself started with ignored (make,
	// for one, ignores 32 and 33, which Go cannot take over), but must add
	// nothing: the child's ignored signals are a subset of the test's.
	got := p.stdout.wait(t, `^sigign=([0-9a-f]+)$`, time.Second)[1]
	child, _ := strconv.ParseUint(got, 16, 64)
	ours := ignoredSignals(t)
	if extra := child &^ ours; extra != 0 {
		t.Errorf("child starts with signals ignored that the test does not ignore: mask %#x (child %#x, test %#x)", extra, child, ours)
	}
}

// ignoredSignals reads this process's SigIgn mask from /proc.
func ignoredSignals(t *testing.T) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(statusField("self", "SigIgn"), 16, 64)
	if err != nil {
		t.Fatalf("SigIgn of /proc/self/status: %v", err)
	}
	return n
}

// TestCommandLine runs the binary's early exits and its JSON log format.
func TestCommandLine(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	p := startManager(t, runOpts{}, "-version")
	if code := p.wait(10 * time.Second); code != 0 || !strings.HasPrefix(p.stdout.String(), "manager ") {
		t.Errorf("manager -version: exit %d, printed %q; want 0, \"manager VERSION\"", code, p.stdout)
	}
	p = startManager(t, runOpts{}, "-h")
	if code := p.wait(10 * time.Second); code != 0 || p.stdout.String()+"\n" != usage {
		t.Errorf("manager -h: exit %d, printed on stdout:\n%s\nwant 0 and the usage", code, p.stdout)
	}
	p = startManager(t, runOpts{}, "-config=", "-log-format", "json", "-log-level", "warn", "--", helper, "exit", "0")
	p.wait(10 * time.Second)
	if got := p.stderr.String(); got != "" {
		t.Errorf("-log-level warn printed info lines: %q", got)
	}
	p = startManager(t, runOpts{}, "-config=", "-log-format", "json", "--", helper, "exit", "4")
	p.wait(10 * time.Second)
	last := p.stderr.waitN(t, 1, `"msg":"exiting"`, time.Second)[0]
	var rec struct {
		Level, Msg, Reason string
		Code               int
	}
	if err := json.Unmarshal([]byte(last), &rec); err != nil || rec.Level != "INFO" || rec.Reason != "child exited" || rec.Code != 4 {
		t.Errorf("JSON exit line %s: %+v, %v; want level INFO, reason child exited, code 4", last, rec, err)
	}
}

// TestUnprivileged proves that manager works as uid 65532, the distroless
// "nonroot" user, and so does its child.
func TestUnprivileged(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	for _, pid1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("pid1=%v", pid1), func(t *testing.T) {
			p := startManager(t, runOpts{uid: 65532, pid1: pid1}, "-config=", "--", helper, "id")
			p.stdout.wait(t, `uid=65532 gid=65532`, 10*time.Second)
			if code := p.wait(10 * time.Second); code != 0 {
				t.Fatalf("exit code %d, want 0; log:\n%s", code, p.stderr)
			}
		})
	}
}

// TestNoCommandHints proves that manager run with no arguments
// tries its historical default and, missing, says how to give a command.
func TestNoCommandHints(t *testing.T) {
	integration(t)
	if _, err := os.Stat(defaultCommand); err == nil {
		skipTest(t, "%s exists on this machine: manager would run it", defaultCommand)
	}
	p := startManager(t, runOpts{})
	if code := p.wait(10 * time.Second); code != 127 {
		t.Fatalf("exit code %d, want 127", code)
	}
	p.stderr.wait(t, `level=ERROR msg=exiting reason="cannot start child" command=/usr/local/bin/redis-exporter .* hint="no command given, .*usage: manager \[flags\] \[--\] COMMAND`, time.Second)
	if got := p.stderr.matching(`level=(WARN|ERROR)`); len(got) != 1 {
		t.Errorf("want the one error line, got %q", got)
	}
}

// TestDaemonizingChildWarned proves that a child that exits 0 at
// once leaving processes behind (nginx without "daemon off;") is named.
func TestDaemonizingChildWarned(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	p := startManager(t, runOpts{}, "-config=", "--", helper, "leave", "sleep")
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	p.stderr.wait(t, `level=WARN msg="child exited 0 at once, leaving processes behind: it may have put itself in the background; `, time.Second)
	p = startManager(t, runOpts{}, "-config=", "--", helper, "exit", "0")
	p.wait(10 * time.Second)
	if got := p.stderr.matching(`level=WARN`); len(got) > 0 {
		t.Errorf("a child that left nothing behind was warned about: %q", got)
	}
	// Under -restart the hint says why the program is restarted over and over.
	p = startManager(t, runOpts{}, "-config=", "-restart", "always", "--", helper, "leave", "sleep")
	p.stderr.wait(t, `level=WARN msg="child exited 0 at once, leaving processes behind: it may have put itself in the background; `, 10*time.Second)
	p.signal(syscall.SIGTERM)
	p.wait(10 * time.Second)
}
