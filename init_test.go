package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary double as the child program of integration
// tests: started with FLUSH_HELPER=1, it runs the helper named by its first
// argument instead of the tests.
func TestMain(m *testing.M) {
	if os.Getenv("FLUSH_HELPER") == "1" {
		os.Exit(runHelper(os.Args[1:]))
	}
	code := m.Run()
	printSkips()
	removeBinaries()
	os.Exit(code)
}

// fakeClock is a Clock whose time moves only when a test says so.
type fakeClock struct {
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c       chan time.Time
	when    time.Time
	stopped bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{c: make(chan time.Time, 1), when: c.now.Add(d)}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	was := !t.stopped
	t.stopped = true
	return was
}

// expire moves the clock to the deadline of t, which must be armed, as the
// select loop would wait for it; the test then calls the method the loop
// would call.
func (c *fakeClock) expire(tb testing.TB, t Timer) {
	tb.Helper()
	ft, ok := t.(*fakeTimer)
	if !ok || ft == nil || ft.stopped {
		tb.Fatalf("expire: timer not armed")
	}
	if ft.when.After(c.now) {
		c.now = ft.when
	}
}

// fakeKernel scripts processes: they are started and killed on request, and
// exit only when the test says so. Every kill is recorded.
type fakeKernel struct {
	nextPid  int
	startErr error
	started  []procSpec
	pgid     map[int]int // live processes and their groups
	queued   []reaped    // exited, not yet reaped
	kills    []sent

	unkillable map[int]bool // processes every signal fails on with EPERM
}

type reaped struct {
	pid int
	ws  syscall.WaitStatus
}

type sent struct {
	pid int
	sig syscall.Signal
}

func newFakeKernel() *fakeKernel { return &fakeKernel{nextPid: 100, pgid: map[int]int{}} }

func (k *fakeKernel) start(spec procSpec) (int, error) {
	if k.startErr != nil {
		return 0, k.startErr
	}
	k.nextPid++
	k.pgid[k.nextPid] = k.nextPid
	k.started = append(k.started, spec)
	return k.nextPid, nil
}

func (k *fakeKernel) kill(pid int, sig syscall.Signal) error {
	if k.unkillable[pid] || k.unkillable[-pid] {
		return syscall.EPERM
	}
	if sig != 0 {
		k.kills = append(k.kills, sent{pid, sig})
	}
	if pid == 0 {
		return nil // manager's own process group, which always exists
	}
	for p, g := range k.pgid {
		if pid == p || pid == -1 || pid == -g {
			return nil
		}
	}
	return syscall.ESRCH
}

func (k *fakeKernel) reap(h func(int, syscall.WaitStatus)) bool {
	q := k.queued
	k.queued = nil
	for _, r := range q {
		h(r.pid, r.ws)
	}
	return len(k.pgid) > 0
}

// spawn adds a process in group pgid, as a child's own child would be.
func (k *fakeKernel) spawn(pgid int) int {
	k.nextPid++
	k.pgid[k.nextPid] = pgid
	return k.nextPid
}

// exit ends pid with status ws, to be reaped.
func (k *fakeKernel) exit(pid int, ws syscall.WaitStatus) {
	delete(k.pgid, pid)
	k.queued = append(k.queued, reaped{pid, ws})
}

// vanish ends pid reaped by some other parent: manager hears nothing.
func (k *fakeKernel) vanish(pid int) { delete(k.pgid, pid) }

// takeKills returns and forgets the kills sent so far.
func (k *fakeKernel) takeKills() []sent {
	out := k.kills
	k.kills = nil
	return out
}

func exited(code int) syscall.WaitStatus             { return syscall.WaitStatus(code << 8) }
func signaled(sig syscall.Signal) syscall.WaitStatus { return syscall.WaitStatus(sig) }

func (s sent) String() string { return fmt.Sprintf("kill(%d, %s)", s.pid, signalName(s.sig)) }

// harness is a supervisor wired to a fake clock and kernel and the real file
// system, with its log kept for assertions. Hashes are computed at once and
// delivered when the test says, as the loop would receive them.
type harness struct {
	t      *testing.T
	s      *supervisor
	clock  *fakeClock
	k      *fakeKernel
	logs   bytes.Buffer
	hashes []hashResult // computed, not yet delivered
}

// newHarness starts a supervisor for the command line args (whose command
// must exist) as manager's begin would.
func newHarness(t *testing.T, pid1 bool, args ...string) *harness {
	t.Helper()
	cfg, err := parseArgs(args)
	if err != nil {
		t.Fatalf("parseArgs(%q): %v", args, err)
	}
	h := &harness{t: t, clock: newFakeClock(), k: newFakeKernel()}
	log := slog.New(slog.NewTextHandler(&h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.s = newSupervisor(cfg, log, h.clock, h.k, osFS{}, pid1)
	h.s.hash = func(job hashJob) { h.hashes = append(h.hashes, hashNow(h.s.fsys, job)) }
	if !h.s.begin(false) {
		t.Fatalf("begin: not started; log:\n%s", h.logs.String())
	}
	h.deliver()
	return h
}

// reap lets the supervisor reap, as the loop does on SIGCHLD.
func (h *harness) reap() {
	h.s.reap()
	h.deliver()
}

// deliver hands the supervisor the hashes it asked for, as the loop would.
func (h *harness) deliver() {
	for len(h.hashes) > 0 {
		r := h.hashes[0]
		h.hashes = h.hashes[1:]
		h.s.onHashed(r)
	}
}

// wantKills checks the signals sent since the last check.
func (h *harness) wantKills(want ...sent) {
	h.t.Helper()
	if got := h.k.takeKills(); !slices.Equal(got, want) {
		h.t.Errorf("kills = %v, want %v", got, want)
	}
}

// wantDone checks that the supervisor finished with code.
func (h *harness) wantDone(code int) {
	h.t.Helper()
	if !h.s.done || h.s.code != code {
		h.t.Fatalf("done, code = %v, %d; want true, %d; log:\n%s", h.s.done, h.s.code, code, h.logs.String())
	}
}

// wantRunning checks that the supervisor runs a child and has not finished.
func (h *harness) wantRunning() {
	h.t.Helper()
	if h.s.done || h.s.phase != running || h.s.pid == 0 {
		h.t.Fatalf("done, phase, pid = %v, %v, %d; want a running child; log:\n%s", h.s.done, h.s.phase, h.s.pid, h.logs.String())
	}
}

// wantLog checks that the log has a line containing each of parts.
func (h *harness) wantLog(parts ...string) {
	h.t.Helper()
	for _, line := range strings.Split(h.logs.String(), "\n") {
		if containsAll(line, parts) {
			return
		}
	}
	h.t.Errorf("no log line with %q in:\n%s", parts, h.logs.String())
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		argv      []string
		configs   []string
		check     []string
		stop      syscall.Signal
		explicit  bool
		reload    syscall.Signal
		grace     time.Duration
		remapped  []int
		logFormat string
	}{
		{name: "defaults", args: nil, argv: []string{defaultCommand}, configs: []string{defaultConfig}, stop: syscall.SIGTERM, grace: 10 * time.Second, logFormat: "text"},
		{name: "positional", args: []string{"/bin/app", "-x", "y"}, argv: []string{"/bin/app", "-x", "y"}},
		{name: "after dashes", args: []string{"--", "/bin/app", "--grace", "1s"}, argv: []string{"/bin/app", "--grace", "1s"}},
		{name: "-command takes every positional", args: []string{"-command", "/bin/app", "a", "-b"}, argv: []string{"/bin/app", "a", "-b"}},
		{name: "-command with dashes", args: []string{"--command=/bin/app", "--", "--a"}, argv: []string{"/bin/app", "--a"}},
		{name: "double-dash flags", args: []string{"--grace", "3s", "--stop-signal", "sigquit", "app"}, argv: []string{"app"}, grace: 3 * time.Second, stop: syscall.SIGQUIT, explicit: true},
		{name: "config replaces default", args: []string{"-config", "/a", "-config", "/b/"}, configs: []string{"/a", "/b/"}},
		{name: "config empty disables", args: []string{"-config", ""}, configs: []string{}},
		{name: "check split on spaces", args: []string{"-check", "  /bin/true  -t\tx "}, check: []string{"/bin/true", "-t", "x"}},
		{name: "reload by number", args: []string{"-reload-signal", "1"}, reload: syscall.SIGHUP},
		{name: "remap repeatable", args: []string{"-remap-exit", "143", "-remap-exit", "0"}, remapped: []int{0, 143}},
		{name: "json", args: []string{"-log-format", "json"}, logFormat: "json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseArgs(tc.args)
			if err != nil {
				t.Fatalf("parseArgs(%q): %v", tc.args, err)
			}
			if tc.argv != nil && !slices.Equal(c.argv, tc.argv) {
				t.Errorf("parseArgs(%q).argv = %q, want %q", tc.args, c.argv, tc.argv)
			}
			if tc.configs != nil && !slices.Equal(c.configs, tc.configs) {
				t.Errorf("parseArgs(%q).configs = %q, want %q", tc.args, c.configs, tc.configs)
			}
			if tc.check != nil && !slices.Equal(c.check, tc.check) {
				t.Errorf("parseArgs(%q).check = %q, want %q", tc.args, c.check, tc.check)
			}
			if tc.stop != 0 && (c.stopSignal != tc.stop || c.stopExplicit != tc.explicit) {
				t.Errorf("parseArgs(%q) stop signal = %v (explicit %v), want %v (explicit %v)", tc.args, c.stopSignal, c.stopExplicit, tc.stop, tc.explicit)
			}
			if c.reloadSignal != tc.reload {
				t.Errorf("parseArgs(%q).reloadSignal = %v, want %v", tc.args, c.reloadSignal, tc.reload)
			}
			if tc.grace != 0 && c.grace != tc.grace {
				t.Errorf("parseArgs(%q).grace = %v, want %v", tc.args, c.grace, tc.grace)
			}
			for _, n := range tc.remapped {
				if !c.remap[n] {
					t.Errorf("parseArgs(%q) does not remap %d", tc.args, n)
				}
			}
			if tc.logFormat != "" && c.logFormat != tc.logFormat {
				t.Errorf("parseArgs(%q).logFormat = %q, want %q", tc.args, c.logFormat, tc.logFormat)
			}
		})
	}
}

func TestParseArgsErrors(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-frobnicate"}, "flag provided but not defined: -frobnicate (manager -h lists the flags)"},
		{"missing value", []string{"-grace"}, "flag needs an argument: -grace (manager -h lists the flags)"},
		{"empty command", []string{"-command", ""}, `-command "": empty command`},
		{"empty positional", []string{"--", ""}, `command "": empty command`},
		{"poll not a duration", []string{"-poll", "often"}, `-poll "often": invalid duration`},
		{"poll zero", []string{"-poll", "0s"}, `-poll "0s": must be positive`},
		{"debounce negative", []string{"-debounce", "-1s"}, `-debounce "-1s": must be positive`},
		{"grace unitless", []string{"-grace", "10"}, `-grace "10": invalid duration`},
		{"grace not a duration", []string{"-grace", "ten"}, `-grace "ten": invalid duration`},
		{"reload unknown", []string{"-reload-signal", "SIGFOO"}, `-reload-signal "SIGFOO": unknown signal`},
		{"stop out of range", []string{"-stop-signal", "65"}, `-stop-signal "65": no signal number 65 (1 to 64)`},
		{"stop zero", []string{"-stop-signal", "0"}, `-stop-signal "0": no signal number 0 (1 to 64)`},
		{"check empty", []string{"-check", "  "}, `-check "  ": empty command`},
		{"check not found", []string{"-check", "no-such-validator -t"}, `-check "no-such-validator -t": no-such-validator: not found in PATH`},
		{"check not executable", []string{"-check", notExec}, fmt.Sprintf("-check %q: %s: permission denied", notExec, notExec)},
		{"remap not a number", []string{"-remap-exit", "x"}, `-remap-exit "x": not an exit code (0 to 255)`},
		{"remap too big", []string{"-remap-exit", "256"}, `-remap-exit "256": not an exit code (0 to 255)`},
		{"log format", []string{"-log-format", "xml"}, `-log-format "xml": want text or json`},
		{"log level", []string{"-log-level", "trace"}, `-log-level "trace": want debug, info, warn or error`},
		{"log level offset", []string{"-log-level", "info+2"}, `-log-level "info+2": want debug, info, warn or error`},
		{"bool with value", []string{"-group=maybe"}, `invalid boolean value "maybe" for -group: parse error (manager -h lists the flags)`},
		{"check without grace", []string{"-grace", "0s", "-check", "/bin/true"}, `-grace "0s": -check is killed after -grace, so it needs more than 0`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseArgs(tc.args)
			if err == nil || err.Error() != tc.want {
				t.Errorf("parseArgs(%q) error = %v, want %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestParseSignal(t *testing.T) {
	tests := []struct {
		in   string
		want syscall.Signal
	}{
		{"HUP", syscall.SIGHUP}, {"SIGHUP", syscall.SIGHUP}, {"hup", syscall.SIGHUP},
		{"sighup", syscall.SIGHUP}, {"SigHup", syscall.SIGHUP}, {"1", syscall.SIGHUP},
		{"TERM", syscall.SIGTERM}, {"15", syscall.SIGTERM}, {"quit", syscall.SIGQUIT},
		{"USR1", syscall.SIGUSR1}, {"sigusr2", syscall.SIGUSR2}, {"WINCH", syscall.SIGWINCH},
		{"IOT", syscall.SIGABRT}, {"POLL", syscall.SIGIO}, {"KILL", syscall.SIGKILL},
		{"64", syscall.Signal(64)}, {"35", syscall.Signal(35)},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSignal(tc.in)
			if err != nil || got != tc.want {
				t.Errorf("parseSignal(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "SIG", "HUPP", "0", "-1", "65", "RTMIN", " HUP"} {
		if got, err := parseSignal(bad); err == nil {
			t.Errorf("parseSignal(%q) = %v, want an error", bad, got)
		}
	}
	if got := signalName(syscall.SIGTERM); got != "SIGTERM" {
		t.Errorf("signalName(SIGTERM) = %q, want SIGTERM", got)
	}
	if got := signalName(40); got != "signal 40" {
		t.Errorf("signalName(40) = %q, want signal 40", got)
	}
}

func TestForwardedSignals(t *testing.T) {
	got := forwardedSignals()
	for _, never := range []syscall.Signal{syscall.SIGCHLD, syscall.SIGURG, syscall.SIGKILL, syscall.SIGSTOP,
		syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGSYS,
		syscall.SIGABRT, syscall.SIGPROF, syscall.SIGTERM, syscall.SIGINT} {
		if slices.Contains(got, os.Signal(never)) {
			t.Errorf("forwardedSignals() contains %s", signalName(never))
		}
	}
	for _, always := range []syscall.Signal{syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2,
		syscall.SIGWINCH, syscall.SIGPIPE, syscall.SIGALRM, syscall.SIGCONT, syscall.SIGTSTP, 35, 64} {
		if !slices.Contains(got, os.Signal(always)) {
			t.Errorf("forwardedSignals() lacks %s", signalName(always))
		}
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		ws   syscall.WaitStatus
		want int
	}{
		{"exit 0", exited(0), 0},
		{"exit 3", exited(3), 3},
		{"exit 255", exited(255), 255},
		{"SIGKILL", signaled(syscall.SIGKILL), 137},
		{"SIGTERM", signaled(syscall.SIGTERM), 143},
		{"SIGINT", signaled(syscall.SIGINT), 130},
		{"SIGSEGV with core", signaled(syscall.SIGSEGV) | 0x80, 139},
	}
	for _, tc := range tests {
		if got := exitCode(tc.ws); got != tc.want {
			t.Errorf("%s: exitCode(%#x) = %d, want %d", tc.name, uint32(tc.ws), got, tc.want)
		}
	}
}

func TestStartError(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/no/such/interpreter\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		err  error
		code int
		why  string
	}{
		{"missing", "/no/such/app", &os.PathError{Op: "fork/exec", Path: "/no/such/app", Err: syscall.ENOENT}, 127, "no such file or directory"},
		{"missing interpreter", script, &os.PathError{Op: "fork/exec", Path: script, Err: syscall.ENOENT}, 127, "interpreter not found"},
		{"not executable", "/etc/hostname", &os.PathError{Op: "fork/exec", Path: "/etc/hostname", Err: syscall.EACCES}, 126, "permission denied"},
		{"bad format", "/x", &os.PathError{Op: "fork/exec", Path: "/x", Err: syscall.ENOEXEC}, 126, "exec format error"},
	}
	for _, tc := range tests {
		code, why := startError(tc.path, tc.err)
		if code != tc.code || !strings.Contains(why.Error(), tc.why) {
			t.Errorf("%s: startError(%q, %v) = %d, %q; want %d, %q", tc.name, tc.path, tc.err, code, why, tc.code, tc.why)
		}
	}
	if _, err := resolveCommand("no-such-program-anywhere"); err == nil {
		t.Errorf("resolveCommand(no-such-program-anywhere) = nil error")
	} else if code, _ := startError("no-such-program-anywhere", err); code != 127 {
		t.Errorf("startError(resolveCommand(missing)) = %d, want 127", code)
	}
}

func TestChildExitIsManagerExit(t *testing.T) {
	tests := []struct {
		name string
		args []string
		ws   syscall.WaitStatus
		want int
	}{
		{"exit 0", nil, exited(0), 0},
		{"exit 3", nil, exited(3), 3},
		{"exit 255", nil, exited(255), 255},
		{"killed", nil, signaled(syscall.SIGKILL), 137},
		{"terminated", nil, signaled(syscall.SIGTERM), 143},
		{"remapped", []string{"-remap-exit", "143"}, signaled(syscall.SIGTERM), 0},
		{"remap spares others", []string{"-remap-exit", "143"}, exited(1), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, false, append(tc.args, "-config=", "/bin/true")...)
			h.k.exit(h.s.pid, tc.ws)
			h.reap()
			h.wantDone(tc.want)
			h.wantKills() // nothing was left behind to stop
			h.wantLog("msg=exiting", `reason="child exited"`, fmt.Sprintf("code=%d", tc.want))
		})
	}
}

func TestShutdown(t *testing.T) {
	t.Run("TERM is forwarded, child exits within grace", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "/bin/true")
		pid := h.s.pid
		h.s.onSignal(syscall.SIGTERM)
		h.wantKills(sent{pid, syscall.SIGTERM}, sent{pid, syscall.SIGCONT})
		if h.s.grace == nil {
			t.Fatal("no grace timer after SIGTERM")
		}
		h.k.exit(pid, signaled(syscall.SIGTERM))
		h.reap()
		h.wantDone(143)
		h.wantLog("msg=exiting", `reason="shutdown on SIGTERM"`, "code=143")
	})
	t.Run("INT is forwarded as INT", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "/bin/true")
		h.s.onSignal(syscall.SIGINT)
		h.wantKills(sent{h.s.pid, syscall.SIGINT}, sent{h.s.pid, syscall.SIGCONT})
	})
	t.Run("explicit stop signal replaces TERM", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-stop-signal", "QUIT", "/bin/true")
		h.s.onSignal(syscall.SIGTERM)
		h.wantKills(sent{h.s.pid, syscall.SIGQUIT}, sent{h.s.pid, syscall.SIGCONT})
	})
	t.Run("group mode signals the group", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-group", "/bin/true")
		h.s.onSignal(syscall.SIGTERM)
		h.wantKills(sent{-h.s.pgid, syscall.SIGTERM}, sent{-h.s.pgid, syscall.SIGCONT})
	})
	t.Run("second TERM is forwarded, grace not extended", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-grace", "5s", "/bin/true")
		pid := h.s.pid
		h.s.onSignal(syscall.SIGTERM)
		grace := h.s.grace
		h.clock.now = h.clock.now.Add(3 * time.Second)
		h.s.onSignal(syscall.SIGTERM)
		h.wantKills(sent{pid, syscall.SIGTERM}, sent{pid, syscall.SIGCONT}, sent{pid, syscall.SIGTERM})
		if h.s.grace != grace {
			t.Error("second SIGTERM re-armed the grace timer")
		}
	})
	t.Run("grace expiry kills child and group", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-grace", "1s", "/bin/true")
		pid := h.s.pid
		h.s.onSignal(syscall.SIGTERM)
		h.clock.expire(t, h.s.grace)
		h.s.onGrace()
		h.wantKills(sent{pid, syscall.SIGTERM}, sent{pid, syscall.SIGCONT}, sent{pid, syscall.SIGKILL}, sent{-pid, syscall.SIGKILL})
		h.k.exit(pid, signaled(syscall.SIGKILL))
		h.reap()
		h.wantDone(137)
	})
}

func TestSignalsForwarded(t *testing.T) {
	for _, s := range []syscall.Signal{syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, 40} {
		h := newHarness(t, false, "-config=", "/bin/true")
		h.s.onSignal(s)
		h.wantKills(sent{h.s.pid, s})
		hg := newHarness(t, false, "-config=", "-group", "/bin/true")
		hg.s.onSignal(s)
		hg.wantKills(sent{-hg.s.pgid, s})
		if h.s.phase != running || hg.s.phase != running {
			t.Errorf("%s changed the phase", signalName(s))
		}
	}
}

func TestOrphansAreOnlyReaped(t *testing.T) {
	h := newHarness(t, true, "-config=", "/bin/true")
	for i := 0; i < 3; i++ {
		h.k.exit(h.k.spawn(1), exited(0))
	}
	h.reap()
	h.wantRunning()
	h.wantKills()
	h.wantLog("orphan reaped")
}

func TestLeftovers(t *testing.T) {
	t.Run("not PID 1: the group gets the stop signal, then is waited for", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-stop-signal", "USR2", "/bin/true")
		pid := h.s.pid
		left := h.k.spawn(pid)
		h.k.exit(pid, exited(0))
		h.reap()
		h.wantKills(sent{-pid, syscall.SIGUSR2}, sent{-pid, syscall.SIGCONT})
		if h.s.done {
			t.Fatal("done while a group member is alive")
		}
		h.k.exit(left, exited(0))
		h.reap()
		h.wantDone(0)
	})
	t.Run("PID 1: every process gets the stop signal, then SIGKILL", func(t *testing.T) {
		h := newHarness(t, true, "-config=", "-grace", "2s", "/bin/true")
		pid := h.s.pid
		h.k.spawn(1) // an orphan from another group
		h.k.exit(pid, exited(5))
		h.reap()
		h.wantKills(sent{-1, syscall.SIGTERM}, sent{-1, syscall.SIGCONT})
		h.clock.expire(t, h.s.grace)
		h.s.onGrace()
		h.wantKills(sent{-1, syscall.SIGKILL})
		h.clock.expire(t, h.s.grace) // a zombie nobody reaps: give up after killWait
		h.s.onGrace()
		h.wantDone(5)
	})
	t.Run("a member reaped by another parent is noticed without SIGCHLD", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "/bin/true")
		pid := h.s.pid
		left := h.k.spawn(pid)
		h.k.exit(pid, exited(0))
		h.reap()
		h.k.vanish(left)
		h.clock.expire(t, h.s.recheck)
		h.s.onRecheck()
		h.wantDone(0)
	})
}

func TestShutdownDuringRestartAsPID1(t *testing.T) {
	// The old child is reaped, a member of its group lingers, and SIGTERM
	// comes: as PID 1 every process must now get the stop signal, not only
	// that group.
	h, conf := watchHarness(t)
	h.s.pid1 = true
	old := h.s.pid
	writeFile(t, conf, "b")
	h.polls(10)
	h.k.spawn(old)
	h.k.exit(old, exited(0))
	h.reap()
	h.wantKills(sent{old, syscall.SIGTERM}, sent{old, syscall.SIGCONT}, sent{-old, syscall.SIGTERM}, sent{-old, syscall.SIGCONT})
	h.s.onSignal(syscall.SIGTERM)
	h.wantKills(sent{-1, syscall.SIGTERM}, sent{-1, syscall.SIGCONT})
	if h.s.grace == nil {
		t.Fatal("no grace period for the leftovers")
	}
}

// TestNeverKillAllUnlessPID1 drives every path that signals leftovers and
// checks that kill(-1) is used as PID 1 only: elsewhere it would signal every
// process of the user, or of the machine for root.
func TestNeverKillAllUnlessPID1(t *testing.T) {
	scenarios := map[string]func(h *harness){
		"child exits, group lingers, grace expires": func(h *harness) {
			h.k.spawn(h.s.pid)
			h.k.exit(h.s.pid, exited(0))
			h.reap()
			h.clock.expire(t, h.s.grace)
			h.s.onGrace()
		},
		"shutdown, child ignores TERM": func(h *harness) {
			h.s.onSignal(syscall.SIGTERM)
			h.clock.expire(t, h.s.grace)
			h.s.onGrace()
			h.k.exit(h.s.pid, signaled(syscall.SIGKILL))
			h.reap()
		},
	}
	for name, run := range scenarios {
		for _, pid1 := range []bool{false, true} {
			h := newHarness(t, pid1, "-config=", "/bin/true")
			h.k.spawn(1) // a process outside the child's group
			run(h)
			usedAll := slices.ContainsFunc(h.k.takeKills(), func(s sent) bool { return s.pid == -1 })
			if usedAll != pid1 {
				t.Errorf("%s, PID 1 = %v: kill(-1) used = %v, want %v", name, pid1, usedAll, pid1)
			}
		}
	}
}

// polls lets n poll intervals pass, calling onPoll as the loop would.
func (h *harness) polls(n int) {
	h.t.Helper()
	for i := 0; i < n; i++ {
		h.clock.expire(h.t, h.s.poll)
		h.s.onPoll()
		h.deliver()
	}
}

// starts reports how many children the supervisor has started.
func (h *harness) starts() int {
	n := 0
	for _, spec := range h.k.started {
		if spec.path == h.s.child.path {
			n++
		}
	}
	return n
}

// writeFile writes content to path, failing the test on error.
func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// watchHarness runs /bin/true watching one file that holds "a".
func watchHarness(t *testing.T, args ...string) (*harness, string) {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "app.conf")
	writeFile(t, conf, "a")
	args = append([]string{"-config", conf, "-poll", "100ms", "-debounce", "500ms"}, args...)
	return newHarness(t, false, append(args, "/bin/true")...), conf
}

func TestRestartOnChange(t *testing.T) {
	h, conf := watchHarness(t)
	old := h.s.pid
	h.polls(3)
	h.wantKills()
	writeFile(t, conf, "b")
	h.polls(5) // the change is seen, then must stay unchanged for 500ms
	h.wantKills()
	h.polls(1)
	h.wantKills(sent{old, syscall.SIGTERM}, sent{old, syscall.SIGCONT})
	if h.s.phase != restarting {
		t.Fatalf("phase = %v after a settled change, want restarting", h.s.phase)
	}
	h.k.exit(old, signaled(syscall.SIGTERM))
	h.reap()
	h.wantRunning()
	if h.starts() != 2 || h.s.pid == old {
		t.Fatalf("starts = %d, pid = %d; want a second child", h.starts(), h.s.pid)
	}
	h.wantLog("config changed", conf)
	h.polls(20)
	if h.starts() != 2 {
		t.Errorf("starts = %d after the change was applied, want 2", h.starts())
	}
}

func TestSameBytesDoNotRestart(t *testing.T) {
	h, conf := watchHarness(t)
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(conf, future, future); err != nil { // touch
		t.Fatal(err)
	}
	h.polls(10)
	writeFile(t, conf, "b")
	h.polls(2)
	writeFile(t, conf, "a") // restored before it settled
	h.polls(10)
	h.wantKills()
	if h.starts() != 1 {
		t.Errorf("starts = %d, want 1", h.starts())
	}
	h.wantLog("config unchanged")
}

func TestReloadSignal(t *testing.T) {
	h, conf := watchHarness(t, "-reload-signal", "HUP")
	pid := h.s.pid
	writeFile(t, conf, "b")
	h.polls(10)
	h.wantKills(sent{pid, syscall.SIGHUP})
	h.wantRunning()
	if h.s.pid != pid || h.starts() != 1 {
		t.Errorf("pid %d → %d, starts %d; want the same child", pid, h.s.pid, h.starts())
	}
	writeFile(t, conf, "c")
	h.polls(10)
	h.wantKills(sent{pid, syscall.SIGHUP})
}

func TestCheck(t *testing.T) {
	h, conf := watchHarness(t, "-check", "/bin/sh -n")
	pid := h.s.pid
	writeFile(t, conf, "bad")
	h.polls(10)
	check := h.s.checkPid
	if check == 0 || !slices.Equal(h.k.started[len(h.k.started)-1].argv, []string{"/bin/sh", "-n"}) {
		t.Fatalf("no check started after a change; started %v", h.k.started)
	}
	h.k.exit(check, exited(1))
	h.reap()
	h.wantLog("check failed", `command="/bin/sh -n"`, "code=1")
	h.wantKills(sent{-check, syscall.SIGKILL}) // what the check left behind, and nothing else
	h.wantRunning()

	writeFile(t, conf, "good")
	h.polls(10)
	check = h.s.checkPid
	h.k.exit(check, exited(0))
	h.reap()
	h.wantLog("check passed")
	h.wantKills(sent{-check, syscall.SIGKILL}, sent{pid, syscall.SIGTERM}, sent{pid, syscall.SIGCONT})

	t.Run("timeout", func(t *testing.T) {
		h, conf := watchHarness(t, "-check", "/bin/sh", "-grace", "3s")
		writeFile(t, conf, "b")
		h.polls(10)
		check := h.s.checkPid
		h.clock.expire(t, h.s.checkEnd)
		h.s.onCheckTimeout()
		h.wantKills(sent{-check, syscall.SIGKILL})
		h.k.exit(check, signaled(syscall.SIGKILL))
		h.reap()
		h.wantLog("check failed", "signal=SIGKILL")
		h.wantRunning()
	})
}

func TestChangeDuringRestart(t *testing.T) {
	h, conf := watchHarness(t)
	old := h.s.pid
	writeFile(t, conf, "b")
	h.polls(10)
	h.wantKills(sent{old, syscall.SIGTERM}, sent{old, syscall.SIGCONT})
	writeFile(t, conf, "c") // while the old child takes its time to stop
	h.polls(10)
	if h.starts() != 1 {
		t.Fatalf("a child started while the old one was stopping")
	}
	h.k.exit(old, exited(0))
	h.reap()
	second := h.s.pid
	h.wantKills(sent{second, syscall.SIGTERM}, sent{second, syscall.SIGCONT}) // the one more action
	h.k.exit(second, exited(0))
	h.reap()
	h.polls(20)
	if h.starts() != 3 {
		t.Errorf("starts = %d, want 3: one for each settled change, no more", h.starts())
	}
	h.wantRunning()
}

func TestShutdownDuringRestart(t *testing.T) {
	h, conf := watchHarness(t)
	old := h.s.pid
	writeFile(t, conf, "b")
	h.polls(10)
	h.s.onSignal(syscall.SIGTERM)
	h.wantKills(sent{old, syscall.SIGTERM}, sent{old, syscall.SIGCONT}, sent{old, syscall.SIGTERM}, sent{old, syscall.SIGCONT})
	h.clock.expire(t, h.s.grace)
	h.s.onGrace()
	h.k.exit(old, signaled(syscall.SIGKILL))
	h.reap()
	h.wantDone(137)
	if h.starts() != 1 {
		t.Errorf("starts = %d, want no new child after SIGTERM", h.starts())
	}
}

func TestChildExitWhileChangePending(t *testing.T) {
	h, conf := watchHarness(t, "-check", "/bin/sh")
	writeFile(t, conf, "b")
	h.polls(10)
	check := h.s.checkPid
	h.k.exit(h.s.pid, exited(4))
	h.reap()
	h.wantKills(sent{-check, syscall.SIGKILL})
	h.wantDone(4)
	h.k.exit(check, signaled(syscall.SIGKILL))
	h.reap()
	if h.starts() != 1 {
		t.Errorf("starts = %d, want 1", h.starts())
	}
}

func TestRestartCannotStart(t *testing.T) {
	h, conf := watchHarness(t)
	writeFile(t, conf, "b")
	h.polls(10)
	h.k.startErr = &os.PathError{Op: "fork/exec", Path: "/bin/true", Err: syscall.ENOENT}
	h.k.exit(h.s.pid, signaled(syscall.SIGTERM))
	h.reap()
	h.wantDone(127)
	h.wantLog("cannot start child")
}

func TestConfigMissingThenCreated(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "app.conf")
	h := newHarness(t, false, "-config", conf, "-poll", "100ms", "-debounce", "500ms", "/bin/true")
	h.polls(10)
	writeFile(t, conf, "a")
	h.polls(10)
	if h.s.phase != restarting {
		t.Fatal("creating the missing config did not restart")
	}
	h.k.exit(h.s.pid, exited(0))
	h.reap()
	if err := os.Remove(conf); err != nil {
		t.Fatal(err)
	}
	h.polls(10)
	h.wantLog("level=WARN", "config missing", conf)
	if h.s.phase != running || h.starts() != 2 {
		t.Fatal("deleting the config acted on it")
	}
	writeFile(t, conf, "a")
	h.polls(10)
	if h.s.phase != running {
		t.Fatal("reappearing with the same bytes restarted")
	}
	writeFile(t, conf, "new")
	h.polls(10)
	if h.s.phase != restarting {
		t.Fatal("reappearing with new bytes did not restart")
	}
}

// fsOp changes the files of a test directory.
type fsOp func(tb testing.TB, dir string)

func write(name, content string) fsOp {
	return func(tb testing.TB, dir string) { writeFile(tb, filepath.Join(dir, name), content) }
}

func remove(name string) fsOp {
	return func(tb testing.TB, dir string) {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			tb.Fatal(err)
		}
	}
}

// renameInto writes content to a hidden temporary file and renames it over
// name, as editors and atomic writers do.
func renameInto(name, content string) fsOp {
	return func(tb testing.TB, dir string) {
		tmp := filepath.Join(dir, "."+name+".tmp")
		writeFile(tb, tmp, content)
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			tb.Fatal(err)
		}
	}
}

// fifo makes a named pipe: opening it to read would block without a writer.
func fifo(name string) fsOp {
	return func(tb testing.TB, dir string) {
		if err := syscall.Mkfifo(filepath.Join(dir, name), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// touch sets the modification time of name one hour ahead.
func touch(name string) fsOp {
	return func(tb testing.TB, dir string) {
		t := time.Now().Add(time.Hour)
		if err := os.Chtimes(filepath.Join(dir, name), t, t); err != nil {
			tb.Fatal(err)
		}
	}
}

// chmod changes only the inode's ctime (and mode bits nobody hashes).
func chmod(name string) fsOp {
	return func(tb testing.TB, dir string) {
		if err := os.Chmod(filepath.Join(dir, name), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
}

// configMap lays out a directory the way the kubelet's atomic writer does:
// a timestamped directory with the data, a "..data" symlink to it, and each
// key a symlink through "..data". Each call is one update: a new timestamped
// directory, "..data_tmp" renamed over "..data" (rename(2), atomic), then the
// old directory removed.
func configMap(files map[string]string) fsOp {
	return func(tb testing.TB, dir string) {
		tb.Helper()
		stamp := fmt.Sprintf("..%s.%d", time.Now().UTC().Format("2006_01_02_15_04_05"), time.Now().UnixNano())
		if err := os.Mkdir(filepath.Join(dir, stamp), 0o755); err != nil {
			tb.Fatal(err)
		}
		for name, content := range files {
			writeFile(tb, filepath.Join(dir, stamp, name), content)
		}
		old, _ := os.Readlink(filepath.Join(dir, "..data"))
		if err := os.Symlink(stamp, filepath.Join(dir, "..data_tmp")); err != nil {
			tb.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			tb.Fatal(err)
		}
		for name := range files {
			link := filepath.Join(dir, name)
			if _, err := os.Lstat(link); err != nil {
				if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
					tb.Fatal(err)
				}
			}
		}
		if old != "" {
			if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

func TestChangeDetection(t *testing.T) {
	tests := []struct {
		name      string
		watch     string // relative to the test directory; "" is the directory
		setup     []fsOp
		change    []fsOp
		candidate bool // the stat fingerprints differ
		changed   bool // the content hashes differ
		vanished  bool
	}{
		{name: "none", watch: "app.conf", setup: []fsOp{write("app.conf", "a")}},
		{name: "mtime only", watch: "app.conf", setup: []fsOp{write("app.conf", "a")}, change: []fsOp{touch("app.conf")}, candidate: true},
		{name: "ctime only", watch: "app.conf", setup: []fsOp{write("app.conf", "a")}, change: []fsOp{chmod("app.conf")}, candidate: true},
		{name: "size", watch: "app.conf", setup: []fsOp{write("app.conf", "a")}, change: []fsOp{write("app.conf", "ab")}, candidate: true, changed: true},
		{name: "same size, new bytes", watch: "app.conf", setup: []fsOp{write("app.conf", "a")}, change: []fsOp{write("app.conf", "b"), touch("app.conf")}, candidate: true, changed: true},
		{name: "inode swap, same bytes", watch: "app.conf", setup: []fsOp{write("app.conf", "a")}, change: []fsOp{renameInto("app.conf", "a")}, candidate: true},
		{name: "inode swap, new bytes", watch: "app.conf", setup: []fsOp{write("app.conf", "a")}, change: []fsOp{renameInto("app.conf", "b")}, candidate: true, changed: true},
		{name: "appear", watch: "app.conf", change: []fsOp{write("app.conf", "a")}, candidate: true, changed: true},
		{name: "vanish", watch: "app.conf", setup: []fsOp{write("app.conf", "a")}, change: []fsOp{remove("app.conf")}, candidate: true, vanished: true},
		{name: "vanish and reappear, same bytes", watch: "app.conf", setup: []fsOp{write("app.conf", "a")}, change: []fsOp{remove("app.conf"), write("app.conf", "a")}, candidate: true},
		{name: "vanish and reappear, new bytes", watch: "app.conf", setup: []fsOp{write("app.conf", "a")}, change: []fsOp{remove("app.conf"), write("app.conf", "b")}, candidate: true, changed: true},
		{name: "dir: entry added", setup: []fsOp{write("a.conf", "a")}, change: []fsOp{write("b.conf", "b")}, candidate: true, changed: true},
		{name: "dir: entry removed", setup: []fsOp{write("a.conf", "a"), write("b.conf", "b")}, change: []fsOp{remove("b.conf")}, candidate: true, changed: true},
		{name: "dir: entry changed", setup: []fsOp{write("a.conf", "a")}, change: []fsOp{write("a.conf", "b")}, candidate: true, changed: true},
		{name: "dir: entry touched", setup: []fsOp{write("a.conf", "a")}, change: []fsOp{touch("a.conf")}, candidate: true},
		{name: "dir: FIFO added, never opened to block", setup: []fsOp{write("a.conf", "a")}, change: []fsOp{fifo("pipe")}, candidate: true, changed: true},
		{name: "dir: swap file ignored", setup: []fsOp{write("a.conf", "a")}, change: []fsOp{write(".a.conf.swp", "x")}},
		{name: "configmap file: new bytes", watch: "app.conf", setup: []fsOp{configMap(map[string]string{"app.conf": "a"})}, change: []fsOp{configMap(map[string]string{"app.conf": "b"})}, candidate: true, changed: true},
		{name: "configmap file: same bytes", watch: "app.conf", setup: []fsOp{configMap(map[string]string{"app.conf": "a"})}, change: []fsOp{configMap(map[string]string{"app.conf": "a"})}, candidate: true},
		{name: "configmap dir: new bytes", setup: []fsOp{configMap(map[string]string{"app.conf": "a"})}, change: []fsOp{configMap(map[string]string{"app.conf": "b"})}, candidate: true, changed: true},
		{name: "configmap dir: same bytes", setup: []fsOp{configMap(map[string]string{"app.conf": "a"})}, change: []fsOp{configMap(map[string]string{"app.conf": "a"})}, candidate: true},
		{name: "configmap dir: key added", setup: []fsOp{configMap(map[string]string{"app.conf": "a"})}, change: []fsOp{configMap(map[string]string{"app.conf": "a", "b.conf": "b"})}, candidate: true, changed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			paths := []string{filepath.Join(dir, tc.watch)}
			if tc.watch == "" {
				paths = []string{dir}
			}
			for _, op := range tc.setup {
				op(t, dir)
			}
			// A change must land in a later tick of the kernel's coarse
			// clock than the setup, or "ctime only" sees no difference on
			// kernels without fine-grained timestamps.
			for _, p := range paths {
				waitNotRacy(t, p)
			}
			content := mustContents(t, paths)
			before := snapshot(osFS{}, paths)
			for _, op := range tc.change {
				op(t, dir)
			}
			after := snapshot(osFS{}, paths)
			if got := !slices.Equal(before, after); got != tc.candidate {
				t.Errorf("fingerprints differ = %v, want %v\nbefore %v\nafter  %v", got, tc.candidate, before, after)
			}
			changed, _ := changedPaths(paths, content, mustContents(t, paths))
			if got := len(changed) > 0; got != tc.changed {
				t.Errorf("content changed = %v (%q), want %v", got, changed, tc.changed)
			}
			if got := len(vanished(paths, before, after)) > 0; got != tc.vanished {
				t.Errorf("vanished = %v, want %v", got, tc.vanished)
			}
		})
	}
}

func TestRacyFingerprint(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "app.conf")
	writeFile(t, conf, "a")
	fsys := osFS{racyWindow: time.Hour}
	if fp, err := fsys.stat(conf); err != nil || !fp.racy {
		t.Errorf("stat of a file written just now = %+v, %v; want racy", fp, err)
	}
	// A negative window ends before now: nothing can be that recent.
	if fp, err := (osFS{racyWindow: -time.Second}).stat(conf); err != nil || fp.racy {
		t.Errorf("stat with a window in the past = %+v, %v; want not racy", fp, err)
	}
	if fp, err := (osFS{}).stat(conf); err != nil || fp.racy {
		t.Errorf("stat with no window = %+v, %v; want not racy", fp, err)
	}
}

// timedOp is an fsOp at a moment of a debounce sequence.
type timedOp struct {
	at time.Duration
	op fsOp
}

// every repeats op n times, gap apart, from start.
func every(start, gap time.Duration, n int, op func(i int) fsOp) []timedOp {
	var out []timedOp
	for i := 0; i < n; i++ {
		out = append(out, timedOp{start + time.Duration(i)*gap, op(i)})
	}
	return out
}

func TestDebounce(t *testing.T) {
	const poll, quiet = 100 * time.Millisecond, 500 * time.Millisecond
	tests := []struct {
		name  string
		watch string
		setup []fsOp
		ops   []timedOp
		want  int // settled changes
	}{
		{name: "quiet", watch: "app.conf", setup: []fsOp{write("app.conf", "a")}},
		{name: "one write", watch: "app.conf", setup: []fsOp{write("app.conf", "a")},
			ops: []timedOp{{1 * time.Second, write("app.conf", "b")}}, want: 1},
		{name: "burst: 50 writes in 2s", watch: "app.conf", setup: []fsOp{write("app.conf", "a")},
			ops: every(time.Second, 40*time.Millisecond, 50, func(i int) fsOp { return write("app.conf", strings.Repeat("x", i+1)) }), want: 1},
		{name: "slow writer: every 300ms for 3s", watch: "app.conf", setup: []fsOp{write("app.conf", "")},
			ops: every(time.Second, 300*time.Millisecond, 10, func(i int) fsOp { return write("app.conf", strings.Repeat("line\n", i+1)) }), want: 1},
		{name: "rename into place", watch: "app.conf", setup: []fsOp{write("app.conf", "a")},
			ops: []timedOp{{time.Second, renameInto("app.conf", "b")}}, want: 1},
		{name: "configmap swap, file", watch: "app.conf", setup: []fsOp{configMap(map[string]string{"app.conf": "a"})},
			ops: []timedOp{{time.Second, configMap(map[string]string{"app.conf": "b"})}}, want: 1},
		{name: "configmap swap, dir", setup: []fsOp{configMap(map[string]string{"app.conf": "a", "b.conf": "b"})},
			ops: []timedOp{{time.Second, configMap(map[string]string{"app.conf": "b", "b.conf": "c"})}}, want: 1},
		{name: "vanish then reappear", watch: "app.conf", setup: []fsOp{write("app.conf", "a")},
			ops: []timedOp{{time.Second, remove("app.conf")}, {1300 * time.Millisecond, write("app.conf", "b")}}, want: 1},
		{name: "two changes far apart", watch: "app.conf", setup: []fsOp{write("app.conf", "a")},
			ops: []timedOp{{time.Second, write("app.conf", "b")}, {3 * time.Second, write("app.conf", "cc")}}, want: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			paths := []string{filepath.Join(dir, tc.watch)}
			if tc.watch == "" {
				paths = []string{dir}
			}
			for _, op := range tc.setup {
				op(t, dir)
			}
			clock := newFakeClock()
			start := clock.now
			d := newDebouncer(quiet, snapshot(osFS{}, paths))
			var settled []time.Duration
			ops := tc.ops
			for at := poll; at <= 6*time.Second; at += poll {
				clock.now = start.Add(at)
				for len(ops) > 0 && ops[0].at <= at {
					ops[0].op(t, dir)
					ops = ops[1:]
				}
				if d.observe(clock.now, snapshot(osFS{}, paths)).settled {
					settled = append(settled, at)
				}
			}
			if len(settled) != tc.want {
				t.Fatalf("settled at %v, want %d times", settled, tc.want)
			}
			if tc.want > 0 {
				last := tc.ops[len(tc.ops)-1].at
				if got := settled[len(settled)-1]; got < last+quiet {
					t.Errorf("settled at %v, before the last write at %v plus the quiet %v", got, last, quiet)
				}
			}
		})
	}
}

// mustContents hashes paths, failing the test if that lacks resources.
func mustContents(t *testing.T, paths []string) content {
	t.Helper()
	c, _, err := contents(osFS{}, paths)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestChangedPaths(t *testing.T) {
	a, b := digest{1}, digest{2}
	tests := []struct {
		name    string
		running content
		now     content
		changed []string
		next    content
	}{
		{"same bytes", content{"/x": a}, content{"/x": a}, nil, content{"/x": a}},
		{"new bytes", content{"/x": a}, content{"/x": b}, []string{"/x"}, content{"/x": b}},
		{"vanished keeps old", content{"/x": a}, content{}, nil, content{"/x": a}},
		{"appeared", content{}, content{"/x": a}, []string{"/x"}, content{"/x": a}},
		{"still missing", content{}, content{}, nil, content{}},
	}
	for _, tc := range tests {
		changed, next := changedPaths([]string{"/x"}, tc.running, tc.now)
		if !slices.Equal(changed, tc.changed) || fmt.Sprint(next) != fmt.Sprint(tc.next) {
			t.Errorf("%s: changedPaths = %q, %v; want %q, %v", tc.name, changed, next, tc.changed, tc.next)
		}
	}
}

// TestReadmeShowsUsage keeps the README's copy of -h in step with the code.
func TestReadmeShowsUsage(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```\n"+usage+"```\n") {
		t.Errorf("README.md does not show manager -h verbatim; paste:\n%s", usage)
	}
}

func TestStopDelay(t *testing.T) {
	t.Run("child keeps running and getting signals, then is stopped", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-stop-delay", "5s", "/bin/true")
		pid := h.s.pid
		h.s.onSignal(syscall.SIGTERM)
		h.wantKills()
		h.wantLog("stop delayed", "signal=SIGTERM", "delay=5s")
		h.s.onSignal(syscall.SIGUSR1)
		h.wantKills(sent{pid, syscall.SIGUSR1})
		h.clock.expire(t, h.s.delay)
		h.s.onDelayEnd()
		h.wantKills(sent{pid, syscall.SIGTERM}, sent{pid, syscall.SIGCONT})
		h.k.exit(pid, signaled(syscall.SIGTERM))
		h.reap()
		h.wantDone(143)
	})
	t.Run("a second TERM ends the delay at once", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-stop-delay", "5s", "/bin/true")
		pid := h.s.pid
		h.s.onSignal(syscall.SIGTERM)
		h.s.onSignal(syscall.SIGINT)
		h.wantKills(sent{pid, syscall.SIGINT}, sent{pid, syscall.SIGCONT})
		if h.s.delay != nil {
			t.Error("the delay is still armed after the second signal")
		}
	})
	t.Run("the child exiting during the delay ends manager with its code", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-stop-delay", "5s", "-restart", "always", "/bin/true")
		h.s.onSignal(syscall.SIGTERM)
		h.k.exit(h.s.pid, exited(4))
		h.reap()
		h.wantDone(4)
	})
	t.Run("no change is acted on during the delay", func(t *testing.T) {
		h, conf := watchHarness(t, "-stop-delay", "5s")
		h.s.onSignal(syscall.SIGTERM)
		writeFile(t, conf, "b")
		h.polls(20)
		h.wantKills()
		if h.s.phase != running {
			t.Errorf("phase = %v during the delay, want running", h.s.phase)
		}
	})
}

func TestRestartSignal(t *testing.T) {
	t.Run("restarts with unchanged files, not forwarded", func(t *testing.T) {
		h, _ := watchHarness(t, "-restart-signal", "USR2", "-reload-signal", "HUP")
		old := h.s.pid
		h.s.onSignal(syscall.SIGUSR2)
		h.deliver()
		h.wantLog("restart requested", "signal=SIGUSR2")
		h.wantKills(sent{old, syscall.SIGTERM}, sent{old, syscall.SIGCONT})
		h.k.exit(old, signaled(syscall.SIGTERM))
		h.reap()
		h.wantRunning()
		if h.starts() != 2 {
			t.Errorf("starts = %d, want 2", h.starts())
		}
	})
	t.Run("without watching", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-restart-signal", "USR2", "/bin/true")
		old := h.s.pid
		h.s.onSignal(syscall.SIGUSR2)
		h.deliver()
		h.wantKills(sent{old, syscall.SIGTERM}, sent{old, syscall.SIGCONT})
	})
	t.Run("through a failing check", func(t *testing.T) {
		h, _ := watchHarness(t, "-restart-signal", "USR2", "-check", "/bin/sh -n")
		h.s.onSignal(syscall.SIGUSR2)
		h.deliver()
		check := h.s.checkPid
		if check == 0 {
			t.Fatal("no check started for a requested restart")
		}
		h.k.exit(check, exited(1))
		h.reap()
		h.wantLog("check failed")
		h.wantKills(sent{-check, syscall.SIGKILL})
		h.wantRunning()
		h.polls(20)
		h.wantKills()
	})
}

func TestRestartPolicy(t *testing.T) {
	// crash lets the child exit with code and returns the backoff armed.
	crash := func(h *harness, code int) time.Duration {
		h.t.Helper()
		h.k.exit(h.s.pid, exited(code))
		h.reap()
		if h.s.backoff == nil {
			h.t.Fatalf("no restart scheduled after exit %d; log:\n%s", code, h.logs.String())
		}
		d := h.s.backoff.(*fakeTimer).when.Sub(h.clock.now)
		h.clock.expire(h.t, h.s.backoff)
		h.s.onBackoff()
		h.wantRunning()
		return d
	}
	t.Run("backoff doubles to 30s and resets after 30s of running", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-restart", "on-failure", "/bin/true")
		var got []time.Duration
		for range 7 {
			got = append(got, crash(h, 3))
		}
		h.clock.now = h.clock.now.Add(30 * time.Second) // a child that ran for 30s
		got = append(got, crash(h, 3))
		want := []time.Duration{1, 2, 4, 8, 16, 30, 30, 1}
		for i := range want {
			want[i] *= time.Second
		}
		if !slices.Equal(got, want) {
			t.Errorf("backoffs = %v, want %v", got, want)
		}
		h.wantLog("child exited; restarting", "code=3", "delay=1s")
		h.k.exit(h.s.pid, exited(0)) // on-failure: success ends it
		h.reap()
		h.wantDone(0)
	})
	t.Run("on-failure:2 gives up with the last code", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-restart", "on-failure:2", "/bin/true")
		crash(h, 3)
		crash(h, 3)
		h.k.exit(h.s.pid, exited(5))
		h.reap()
		h.wantDone(5)
		h.wantLog("not restarting it again", "restarts=2")
	})
	t.Run("always restarts after exit 0", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-restart", "always", "/bin/true")
		crash(h, 0)
		if h.starts() != 2 {
			t.Errorf("starts = %d, want 2", h.starts())
		}
	})
	t.Run("TERM during the backoff exits at once with the last code", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-restart", "always", "/bin/true")
		h.k.exit(h.s.pid, exited(3))
		h.reap()
		h.s.onSignal(syscall.SIGTERM)
		h.wantDone(3)
		if h.starts() != 1 {
			t.Errorf("starts = %d, want no new child after SIGTERM", h.starts())
		}
	})
	t.Run("the exited child's group is gone first", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-restart", "always", "/bin/true")
		pid := h.s.pid
		left := h.k.spawn(pid)
		h.k.exit(pid, exited(1))
		h.reap()
		h.wantKills(sent{-pid, syscall.SIGTERM}, sent{-pid, syscall.SIGCONT})
		h.clock.expire(t, h.s.backoff)
		h.s.onBackoff()
		if h.starts() != 1 {
			t.Fatal("a new child started while the old group lingers")
		}
		h.k.exit(left, exited(0))
		h.reap()
		h.wantRunning()
	})
}

func TestStartRetried(t *testing.T) {
	h, conf := watchHarness(t)
	old := h.s.pid
	writeFile(t, conf, "b")
	h.polls(10)
	h.k.startErr = syscall.EAGAIN // a full pids cgroup
	h.k.exit(old, signaled(syscall.SIGTERM))
	h.reap()
	var waits []time.Duration
	for range 8 {
		if h.s.startRetry.timer == nil {
			t.Fatalf("no retry armed; log:\n%s", h.logs.String())
		}
		waits = append(waits, h.s.startRetry.timer.(*fakeTimer).when.Sub(h.clock.now))
		h.clock.expire(t, h.s.startRetry.timer)
		h.s.onStartRetry()
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 5 * time.Second, 5 * time.Second}
	if !slices.Equal(waits, want) {
		t.Errorf("retries after %v, want %v", waits, want)
	}
	h.wantLog("level=WARN", "cannot start child; retrying", "resource temporarily unavailable")
	h.k.startErr = nil
	h.clock.expire(t, h.s.startRetry.timer)
	h.s.onStartRetry()
	h.wantRunning()
	if h.s.startRetry.wait != 0 {
		t.Errorf("backoff %v after a success, want it reset", h.s.startRetry.wait)
	}
}

func TestUnkillableChildIsGivenUp(t *testing.T) {
	h := newHarness(t, false, "-config=", "-grace", "1s", "/bin/true")
	pid := h.s.pid
	h.k.unkillable = map[int]bool{pid: true}
	h.s.onSignal(syscall.SIGTERM)
	h.clock.expire(t, h.s.grace)
	h.s.onGrace()
	h.clock.expire(t, h.s.grace)
	h.s.onGrace()
	h.wantDone(137)
	h.wantLog("level=WARN", "signal not sent", "operation not permitted")
	h.wantLog("level=ERROR", "child cannot be killed")
}

func TestFirstStartRetried(t *testing.T) {
	cfg, err := parseArgs([]string{"-config=", "-grace", "2s", "/bin/true"})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, clock: newFakeClock(), k: newFakeKernel()}
	log := slog.New(slog.NewTextHandler(&h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.s = newSupervisor(cfg, log, h.clock, h.k, osFS{}, false)
	h.k.startErr = syscall.EAGAIN
	if !h.s.begin(false) {
		t.Fatalf("begin gave up on EAGAIN; log:\n%s", h.logs.String())
	}
	h.clock.expire(t, h.s.startRetry.timer)
	h.s.onStartRetry() // still refused
	h.k.startErr = nil
	h.clock.expire(t, h.s.startRetry.timer)
	h.s.onStartRetry()
	h.wantRunning()
	h.wantKills() // never kill(0, …): no child had a group yet

	t.Run("TERM before any child started", func(t *testing.T) {
		h := &harness{t: t, clock: newFakeClock(), k: newFakeKernel()}
		h.s = newSupervisor(cfg, slog.New(slog.NewTextHandler(&h.logs, nil)), h.clock, h.k, osFS{}, false)
		h.k.startErr = syscall.EAGAIN
		h.s.begin(false)
		h.s.onSignal(syscall.SIGTERM)
		h.wantDone(143)
		h.wantKills()
	})
}

func TestNoChangeDuringStopDelay(t *testing.T) {
	// A change whose hash is under way when the stop delay begins.
	h, conf := watchHarness(t, "-stop-delay", "30s")
	pid := h.s.pid
	writeFile(t, conf, "b")
	for len(h.hashes) == 0 {
		h.clock.expire(t, h.s.poll)
		h.s.onPoll()
	}
	h.s.onSignal(syscall.SIGTERM)
	h.deliver()
	h.wantKills()
	if h.s.phase != running || h.s.pid != pid {
		t.Errorf("phase %v, pid %d → %d: the change was acted on during the stop delay", h.s.phase, pid, h.s.pid)
	}
}

func TestBusyEntryNeverStarves(t *testing.T) {
	// A state file rewritten every 300 ms, also while a real change beside
	// it is hashed: the hash must not be thrown away for it.
	dir := t.TempDir()
	conf, state := filepath.Join(dir, "a.conf"), filepath.Join(dir, "state")
	writeFile(t, conf, "a")
	writeFile(t, state, "0")
	h := newHarness(t, false, "-config", dir, "-poll", "100ms", "-debounce", "500ms", "/bin/true")
	n := 0
	bump := func() { n++; writeFile(t, state, strconv.Itoa(n)) }
	hash := h.s.hash
	h.s.hash = func(job hashJob) {
		bump() // rewritten while the hash reads
		hash(job)
	}
	for i := range 150 { // 15 s: busy after 10
		if i%3 == 0 {
			bump()
		}
		h.polls(1)
	}
	h.wantLog("config busy", state)
	h.k.takeKills()
	writeFile(t, conf, "b")
	for i := range 30 {
		if i%3 == 0 {
			bump()
		}
		h.polls(1)
	}
	h.wantKills(sent{h.s.pid, syscall.SIGTERM}, sent{h.s.pid, syscall.SIGCONT})
}

func TestHashBelongsToItsChild(t *testing.T) {
	t.Run("a baseline that lands after its child exited", func(t *testing.T) {
		h, conf := watchHarness(t, "-restart", "always")
		h.k.exit(h.s.pid, exited(1))
		h.reap()
		h.clock.expire(t, h.s.backoff)
		h.s.onBackoff() // child 2: what it runs with is being hashed
		if len(h.hashes) != 1 {
			t.Fatalf("%d hashes under way, want 1", len(h.hashes))
		}
		h.k.exit(h.s.pid, exited(1)) // child 2 exits before the hash lands
		h.s.reap()
		h.deliver()
		writeFile(t, conf, "b") // changed during the backoff
		h.clock.expire(t, h.s.backoff)
		h.s.onBackoff() // child 3 starts with b
		third := h.s.pid
		h.deliver()
		h.polls(20)
		h.wantKills()
		if h.s.pid != third {
			t.Errorf("child 3, started with b, was restarted for b")
		}
	})
	t.Run("a check begun for an exited child", func(t *testing.T) {
		h, conf := watchHarness(t, "-restart", "always", "-restart-signal", "USR2", "-check", "/bin/sh")
		h.s.onSignal(syscall.SIGUSR2)
		h.deliver()
		check := h.s.checkPid
		h.k.exit(h.s.pid, exited(1)) // the child exits while its check runs
		h.reap()
		h.wantKills(sent{-check, syscall.SIGKILL})
		h.clock.expire(t, h.s.backoff)
		h.s.onBackoff()
		h.deliver()
		fresh := h.s.pid
		h.k.exit(check, exited(0)) // the check passes, too late
		h.reap()
		future := time.Now().Add(time.Hour)
		os.Chtimes(conf, future, future) // a touch: the same bytes
		h.polls(20)
		if h.s.phase != running || h.s.pid != fresh || h.s.checkPid != 0 {
			t.Errorf("the fresh child %d was acted on (pid %d, phase %v, check %d) for its predecessor's restart request",
				fresh, h.s.pid, h.s.phase, h.s.checkPid)
		}
	})
	t.Run("a restart requested while one is on its way", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-restart", "always", "-restart-signal", "USR2", "/bin/true")
		h.k.exit(h.s.pid, exited(1))
		h.reap()
		h.s.onSignal(syscall.SIGUSR2)
		h.clock.expire(t, h.s.backoff)
		h.s.onBackoff()
		h.deliver()
		h.wantKills()
		h.wantRunning()
	})
}

func TestRetriesAreSeparate(t *testing.T) {
	// A hash retry (no descriptors) must not hold back a child's start.
	h, conf := watchHarness(t, "-restart", "always")
	hash := h.s.hash
	h.s.hash = func(job hashJob) {
		hash(job)
		h.hashes[len(h.hashes)-1].err = syscall.EMFILE
	}
	writeFile(t, conf, "b")
	h.polls(10)
	if h.s.workRetry.timer == nil {
		t.Fatalf("no retry after a hash without descriptors; log:\n%s", h.logs.String())
	}
	h.k.exit(h.s.pid, exited(1))
	h.reap()
	h.clock.expire(t, h.s.backoff)
	h.s.onBackoff()
	h.wantRunning()
	if h.starts() != 2 {
		t.Errorf("starts = %d, want the restart despite the hash retry", h.starts())
	}
}
