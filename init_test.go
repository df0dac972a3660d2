package main

// Tests of the supervisor: its loop driven event by event, with a fake
// clock whose time moves only when a test says so and a fake kernel whose
// processes exit only when a test says so, and real files.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeClock is a Clock whose time moves only when a test says so.
type fakeClock struct {
	now    time.Time
	timers []*fakeTimer
}

// fakeTimer is a fakeClock's timer: it fires when advance passes when.
type fakeTimer struct {
	c       chan time.Time
	when    time.Time
	stopped bool // stopped, or fired
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

// next returns the armed timer that fires first, if it fires by end.
func (c *fakeClock) next(end time.Time) *fakeTimer {
	var first *fakeTimer
	for _, t := range c.timers {
		if !t.stopped && !t.when.After(end) && (first == nil || t.when.Before(first.when)) {
			first = t
		}
	}
	c.timers = slices.DeleteFunc(c.timers, func(t *fakeTimer) bool { return t.stopped })
	return first
}

// fakeKernel scripts processes: they are started and killed on request, and
// exit only when the test says so. Every kill is recorded.
type fakeKernel struct {
	nextPid   int
	startErr  error
	startErrs map[string]error // by procSpec.path, after startErr
	started   []procSpec
	attempts  int         // starts asked for, failed ones too
	pgid      map[int]int // live processes and their groups
	queued    []reaped    // exited, not yet reaped
	kills     []sent

	unkillable map[int]bool   // processes every signal fails on with EPERM
	ppid       map[int]int    // parents of live processes; a parent gone is PID 1, manager
	names      map[int]string // command names of live processes
	noProc     bool           // procs cannot list: /proc is not the namespace's own

	// A process started with a relay (a check) has its output end when it
	// exits, unless holdOutput keeps it open (a process it left holds it),
	// or endOutput ended it before. Its relay's tail is said[pid].
	specs      map[int]procSpec
	said       map[int][]string
	ended      map[int]bool
	holdOutput bool

	fg         int   // the terminal's foreground group; 0: no terminal
	handoffErr error // what a start that takes the terminal fails with
	gave       []int // the groups given the terminal by giveTerminal
}

type reaped struct {
	pid int
	ws  syscall.WaitStatus
}

type sent struct {
	pid int
	sig syscall.Signal
}

func newFakeKernel() *fakeKernel {
	return &fakeKernel{nextPid: 100, pgid: map[int]int{}, ppid: map[int]int{}, names: map[int]string{},
		specs: map[int]procSpec{}, said: map[int][]string{}, ended: map[int]bool{}}
}

func (k *fakeKernel) start(spec procSpec) (int, error) {
	k.attempts++
	if k.startErr != nil {
		return 0, k.startErr
	}
	if err := k.startErrs[spec.path]; err != nil {
		return 0, err
	}
	if spec.foreground && k.handoffErr != nil {
		return 0, k.handoffErr
	}
	k.nextPid++
	k.pgid[k.nextPid] = k.nextPid
	k.ppid[k.nextPid] = 1
	k.names[k.nextPid] = filepath.Base(spec.path)
	k.started = append(k.started, spec)
	k.specs[k.nextPid] = spec
	if spec.foreground {
		k.fg = k.nextPid
	}
	return k.nextPid, nil
}

func (k *fakeKernel) foreground() (int, error) { return k.fg, nil }

func (k *fakeKernel) giveTerminal(pgid int) error {
	if k.fg == 0 {
		return errNoTerminal
	}
	k.fg = pgid
	k.gave = append(k.gave, pgid)
	return nil
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

// procs lists the live processes, as /proc of manager's namespace would
// (manager being PID 1): a process whose parent is gone is re-parented to 1.
func (k *fakeKernel) procs() ([]procInfo, bool) {
	if k.noProc {
		return nil, false
	}
	var ps []procInfo
	for pid, g := range k.pgid {
		ppid := k.ppid[pid]
		if _, ok := k.pgid[ppid]; !ok && ppid > 1 {
			ppid = 1
		}
		ps = append(ps, procInfo{pid: pid, ppid: ppid, pgid: g, name: k.names[pid]})
	}
	slices.SortFunc(ps, func(a, b procInfo) int { return a.pid - b.pid }) // as /proc lists them
	return ps, true
}

// spawn adds a process in group pgid, as a child's own child would be: its
// parent is the group's leader.
func (k *fakeKernel) spawn(pgid int) int {
	k.nextPid++
	k.pgid[k.nextPid] = pgid
	k.ppid[k.nextPid] = pgid
	k.names[k.nextPid] = "spawned"
	return k.nextPid
}

// enter adds a process that entered manager's namespace from outside
// (docker exec): its parent, outside, shows as 0. It leads a group.
func (k *fakeKernel) enter(name string) int {
	k.nextPid++
	k.pgid[k.nextPid] = k.nextPid
	k.ppid[k.nextPid] = 0
	k.names[k.nextPid] = name
	return k.nextPid
}

// exit ends pid with status ws, to be reaped, and its relayed output
// unless holdOutput.
func (k *fakeKernel) exit(pid int, ws syscall.WaitStatus) {
	delete(k.pgid, pid)
	k.queued = append(k.queued, reaped{pid, ws})
	if !k.holdOutput {
		k.endOutput(pid)
	}
}

// endOutput ends the relayed output of pid, if it has one not ended yet,
// as its relay would: the supervisor gets it at the next deliver.
func (k *fakeKernel) endOutput(pid int) {
	if spec := k.specs[pid]; spec.relayEnd != nil && !k.ended[pid] {
		k.ended[pid] = true
		spec.relayEnd(outputEnd{pid: pid, tail: k.said[pid]})
	}
}

// vanish ends pid reaped by some other parent: manager hears nothing.
func (k *fakeKernel) vanish(pid int) { delete(k.pgid, pid) }

// takeKills returns and forgets the kills sent so far.
func (k *fakeKernel) takeKills() []sent {
	out := k.kills
	k.kills = nil
	return out
}

func exitedWith(code int) syscall.WaitStatus         { return syscall.WaitStatus(code << 8) }
func signaled(sig syscall.Signal) syscall.WaitStatus { return syscall.WaitStatus(sig) }
func stoppedBy(sig syscall.Signal) syscall.WaitStatus {
	return syscall.WaitStatus(int(sig)<<8 | 0x7f)
}

func (s sent) String() string { return fmt.Sprintf("kill(%d, %s)", s.pid, signalName(s.sig)) }

// harness is a supervisor wired to a fake clock and kernel and the real file
// system, with its log kept for assertions. Every event reaches it through
// the loop's own dispatch, step: signals and SIGCHLD on its channels, timers
// as the fake clock fires them, and hashes, computed at once, and the ends
// of checks' output when the test delivers them.
type harness struct {
	t       *testing.T
	s       *supervisor
	clock   *fakeClock
	k       *fakeKernel
	logs    bytes.Buffer
	ev      *events
	chld    chan os.Signal
	sigs    chan os.Signal
	hashed  chan hashResult
	polled  chan pollResult
	relayed chan outputEnd
	hashes  []any // hashResults, pollResults and outputEnds, not yet delivered
	held    bool  // hashes and outputs wait for deliver, not delivered after each event
}

// newHarness starts a supervisor for the command line args (whose command
// must exist) as manager's begin would, passes the check of the first
// start if there is one, and delivers the hashes it asks for.
func newHarness(t *testing.T, pid1 bool, args ...string) *harness {
	t.Helper()
	h := unstartedHarness(t, pid1, args...)
	h.s.begin()
	if check := h.s.pipe.checkPid; check != 0 {
		h.k.exit(check, exitedWith(0))
		h.reap()
		h.k.takeKills()
	}
	if h.s.phase == exited {
		t.Fatalf("begin: not started; log:\n%s", h.logs.String())
	}
	h.deliver()
	return h
}

// unstartedHarness prepares a supervisor for args without starting it.
func unstartedHarness(t *testing.T, pid1 bool, args ...string) *harness {
	t.Helper()
	cfg, err := parseArgs(args)
	if err != nil {
		t.Fatalf("parseArgs(%q): %v", args, err)
	}
	h := &harness{t: t, clock: newFakeClock(), k: newFakeKernel(), chld: make(chan os.Signal, 1),
		sigs: make(chan os.Signal, 1), hashed: make(chan hashResult, 1), polled: make(chan pollResult, 1), relayed: make(chan outputEnd, 1)}
	h.ev = &events{chld: h.chld, shutdown: h.sigs, forward: h.sigs, hashed: h.hashed, polled: h.polled, relayed: h.relayed}
	cfg.logLevel = levelDebug
	h.s = newSupervisor(cfg, newLogger(&h.logs, cfg), h.clock, h.k, osFS{}, pid1)
	h.s.hash = func(job hashJob) { h.hashes = append(h.hashes, hashNow(h.s.fsys, job)) }
	h.s.look = func(job pollJob) { h.hashes = append(h.hashes, pollNow(h.s.fsys, job)) }
	h.s.relayed = func(o outputEnd) { h.hashes = append(h.hashes, o) }
	return h
}

// step lets the loop take one event, which must be ready, then delivers
// the hashes it asked for.
func (h *harness) step() {
	h.t.Helper()
	if h.s.phase == exited {
		h.t.Fatalf("an event after manager exited; log:\n%s", h.logs.String())
	}
	h.s.step(h.ev)
	h.deliverWhile(func(r any) bool {
		_, look := r.(pollResult)
		return look || !h.held
	})
}

// signal sends sig to manager.
func (h *harness) signal(sig syscall.Signal) {
	h.t.Helper()
	h.sigs <- sig
	h.step()
}

// reap lets the supervisor reap, as SIGCHLD makes it.
func (h *harness) reap() {
	h.t.Helper()
	h.chld <- syscall.SIGCHLD
	h.step()
}

// deliver hands the supervisor the hashes and looks it asked for, in
// order, as the goroutines beside the loop would, and the ends of checks'
// output, as their relays would.
func (h *harness) deliver() {
	h.t.Helper()
	h.deliverWhile(func(any) bool { return true })
}

// deliverWhile delivers results in order for as long as ok says so of the
// next; held hashes and outputs stay, looks are still delivered after them.
func (h *harness) deliverWhile(ok func(any) bool) {
	h.t.Helper()
	var kept []any
	for len(h.hashes) > 0 && h.s.phase != exited {
		r := h.hashes[0]
		h.hashes = h.hashes[1:]
		if !ok(r) {
			kept = append(kept, r)
			continue
		}
		switch r := r.(type) {
		case hashResult:
			h.hashed <- r
		case pollResult:
			h.polled <- r
		case outputEnd:
			h.relayed <- r
		}
		h.s.step(h.ev)
	}
	h.hashes = append(kept, h.hashes...)
}

// hashCount says how many hashes are computed and not yet delivered.
func (h *harness) hashCount() int {
	n := 0
	for _, r := range h.hashes {
		if _, ok := r.(hashResult); ok {
			n++
		}
	}
	return n
}

// advance lets d pass, firing each timer the supervisor arms on the way
// when its time comes, through the loop.
func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	end := h.clock.now.Add(d)
	for h.s.phase != exited {
		h.s.arm()
		t := h.clock.next(end)
		if t == nil {
			break
		}
		h.clock.now = t.when
		t.stopped = true
		t.c <- t.when
		h.step()
	}
	if h.clock.now.Before(end) {
		h.clock.now = end
	}
}

// untilTimer returns how long until the supervisor's next deadline; the
// test fails if it waits for none.
func (h *harness) untilTimer() time.Duration {
	h.t.Helper()
	h.s.arm()
	if h.s.timer == nil {
		h.t.Fatalf("the supervisor waits for no deadline; log:\n%s", h.logs.String())
	}
	return h.s.timer.(*fakeTimer).when.Sub(h.clock.now)
}

// Process groups of terminal tests: manager's own, and a shell's.
const (
	managerGroup = 42
	shellGroup   = 7
)

// terminalHarness is an unstarted harness for args whose manager's group
// is managerGroup, at a terminal whose foreground group is fg (0: none);
// begin starts it.
func terminalHarness(t *testing.T, fg int, args ...string) *harness {
	t.Helper()
	h := unstartedHarness(t, false, append([]string{"-config="}, append(args, "/bin/true")...)...)
	h.s.pgrp, h.k.fg = managerGroup, fg
	return h
}

// begin starts the harness's supervisor.
func (h *harness) begin() {
	h.t.Helper()
	h.s.begin()
	if h.s.phase == exited {
		h.t.Fatalf("begin: not started; log:\n%s", h.logs.String())
	}
}

// wantTerminal checks the foreground given to each start so far, in order.
func (h *harness) wantTerminal(want ...bool) {
	h.t.Helper()
	var got []bool
	for _, spec := range h.k.started {
		got = append(got, spec.foreground)
	}
	if !slices.Equal(got, want) {
		h.t.Errorf("starts given the terminal = %v, want %v", got, want)
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
	if h.s.phase != exited || h.s.code != code {
		h.t.Fatalf("phase, code = %v, %d; want exited, %d; log:\n%s", h.s.phase, h.s.code, code, h.logs.String())
	}
}

// wantRunning checks that the supervisor runs a child and has not finished.
func (h *harness) wantRunning() {
	h.t.Helper()
	if h.s.phase != running || h.s.child.pid == 0 {
		h.t.Fatalf("phase, pid = %v, %d; want a running child; log:\n%s", h.s.phase, h.s.child.pid, h.logs.String())
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

// logCount counts the log lines containing each of parts.
func (h *harness) logCount(parts ...string) int {
	n := 0
	for _, line := range strings.Split(h.logs.String(), "\n") {
		if containsAll(line, parts) {
			n++
		}
	}
	return n
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// polls lets n poll intervals pass.
func (h *harness) polls(n int) {
	h.t.Helper()
	h.advance(time.Duration(n) * h.s.cfg.poll)
}

// starts reports how many children the supervisor has started.
func (h *harness) starts() int {
	n := 0
	for _, spec := range h.k.started {
		if spec.path == h.s.spec.path {
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

// TestLoopWaitsForTheEarliestDeadline proves the loop's one timer: armed
// for the earliest of its deadlines, re-armed as they change, and every
// deadline that passed handled when it fires.
func TestLoopWaitsForTheEarliestDeadline(t *testing.T) {
	h, _ := watchHarness(t, "-grace", "250ms")
	if d := h.untilTimer(); d != 100*time.Millisecond {
		t.Errorf("first deadline in %v, want the first poll in 100ms", d)
	}
	h.signal(syscall.SIGTERM)
	if d := h.untilTimer(); d != 250*time.Millisecond {
		t.Errorf("deadline after SIGTERM in %v, want the grace period's end in 250ms (no more polls)", d)
	}
	pid := h.s.child.pid
	h.k.takeKills()
	h.advance(250 * time.Millisecond)
	h.wantKills(sent{pid, syscall.SIGKILL}, sent{-pid, syscall.SIGKILL})
	h.k.exit(pid, signaled(syscall.SIGKILL))
	h.reap()
	h.wantDone(137)
}

// TestChildExitIsManagerExit proves that manager exits with its child's
// code: the code it exited with, or 128 plus the signal that killed it,
// turned into 0 when -remap-exit names it and only then; the exit is logged
// with its reason and code, and nothing is signalled.
func TestChildExitIsManagerExit(t *testing.T) {
	tests := []struct {
		name string
		args []string
		ws   syscall.WaitStatus
		want int
	}{
		{"exit 0", nil, exitedWith(0), 0},
		{"exit 3", nil, exitedWith(3), 3},
		{"exit 255", nil, exitedWith(255), 255},
		{"killed", nil, signaled(syscall.SIGKILL), 137},
		{"terminated", nil, signaled(syscall.SIGTERM), 143},
		{"remapped", []string{"-remap-exit", "143"}, signaled(syscall.SIGTERM), 0},
		{"remap spares others", []string{"-remap-exit", "143"}, exitedWith(1), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, false, append(tc.args, "-config=", "/bin/true")...)
			h.k.exit(h.s.child.pid, tc.ws)
			h.reap()
			h.wantDone(tc.want)
			h.wantKills() // nothing was left behind to stop
			h.wantLog("msg=exiting", `reason="child exited"`, fmt.Sprintf("code=%d", tc.want))
		})
	}
}

// TestOrphansAreOnlyReaped proves that, as PID 1, orphans that exit are
// reaped and logged and nothing more: no signal is sent and the child keeps
// running.
func TestOrphansAreOnlyReaped(t *testing.T) {
	h := newHarness(t, true, "-config=", "/bin/true")
	for i := 0; i < 3; i++ {
		h.k.exit(h.k.spawn(1), exitedWith(0))
	}
	h.reap()
	h.wantRunning()
	h.wantKills()
	h.wantLog("orphan reaped")
}

// TestRestartPolicy proves -restart: waits from 1s doubling to 30s, back to
// 1s after 30s of running; on-failure ends on success or after N restarts,
// with the last code; always restarts after exit 0; SIGTERM in a wait exits
// with the last code; the old group is stopped and gone first.
func TestRestartPolicy(t *testing.T) {
	// crash lets the child exit with code and returns the backoff armed.
	crash := func(h *harness, code int) time.Duration {
		h.t.Helper()
		starts := h.starts()
		h.k.exit(h.s.child.pid, exitedWith(code))
		h.reap()
		if h.s.phase != restarting {
			h.t.Fatalf("no restart scheduled after exit %d; log:\n%s", code, h.logs.String())
		}
		d := h.untilTimer()
		h.advance(d - time.Millisecond)
		if h.starts() != starts {
			h.t.Fatalf("a child started %v into a backoff of %v", d-time.Millisecond, d)
		}
		h.advance(time.Millisecond)
		h.wantRunning()
		return d
	}
	t.Run("backoff doubles to 30s and resets after 30s of running", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-restart", "on-failure", "/bin/true")
		var got []time.Duration
		for range 7 {
			got = append(got, crash(h, 3))
		}
		h.advance(30 * time.Second) // a child that ran for 30s
		got = append(got, crash(h, 3))
		want := []time.Duration{1, 2, 4, 8, 16, 30, 30, 1}
		for i := range want {
			want[i] *= time.Second
		}
		if !slices.Equal(got, want) {
			t.Errorf("backoffs = %v, want %v", got, want)
		}
		h.wantLog("child exited; restarting", "code=3", "delay=1s")
		h.k.exit(h.s.child.pid, exitedWith(0)) // on-failure: success ends it
		h.reap()
		h.wantDone(0)
	})
	t.Run("on-failure:2 gives up with the last code", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-restart", "on-failure:2", "/bin/true")
		crash(h, 3)
		crash(h, 3)
		h.k.exit(h.s.child.pid, exitedWith(5))
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
		h.k.exit(h.s.child.pid, exitedWith(3))
		h.reap()
		h.signal(syscall.SIGTERM)
		h.wantDone(3)
		if h.starts() != 1 {
			t.Errorf("starts = %d, want no new child after SIGTERM", h.starts())
		}
	})
	t.Run("the exited child's group is gone first", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-restart", "always", "/bin/true")
		pid := h.s.child.pid
		left := h.k.spawn(pid)
		h.k.exit(pid, exitedWith(1))
		h.reap()
		h.wantKills(sent{-pid, syscall.SIGTERM}, sent{-pid, syscall.SIGCONT})
		h.advance(5 * time.Second) // past the backoff
		if h.starts() != 1 {
			t.Fatal("a new child started while the old group lingers")
		}
		h.k.exit(left, exitedWith(0))
		h.reap()
		h.wantRunning()
	})
}

// TestStartRetried proves that a restart the kernel refuses for want of
// resources (EAGAIN, a full pids cgroup) is retried with a warning, after
// 100ms doubling up to 5s and not sooner, until the child starts, and that
// the next restart's retries begin again at 100ms.
func TestStartRetried(t *testing.T) {
	h, conf := watchHarness(t)
	old := h.s.child.pid
	writeFile(t, conf, "b")
	h.polls(10)
	h.k.startErr = syscall.EAGAIN // a full pids cgroup
	h.k.exit(old, signaled(syscall.SIGTERM))
	h.reap()
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 5 * time.Second, 5 * time.Second}
	h.wantRetries(want...)
	h.wantLog("level=WARN", "cannot start child; retrying", "resource temporarily unavailable")
	h.k.startErr = nil
	h.advance(5 * time.Second)
	h.wantRunning()
	writeFile(t, conf, "c")
	h.polls(10)
	h.k.startErr = syscall.EAGAIN // the next restart's first retry starts over at 100ms
	h.k.exit(h.s.child.pid, signaled(syscall.SIGTERM))
	h.reap()
	h.wantRetries(100 * time.Millisecond)
}

// wantRetries checks that each start attempt after the last comes after
// the wait given, not a millisecond sooner.
func (h *harness) wantRetries(waits ...time.Duration) {
	h.t.Helper()
	for i, w := range waits {
		n := h.k.attempts
		h.advance(w - time.Millisecond)
		if h.k.attempts != n {
			h.t.Fatalf("retry %d came before %v; log:\n%s", i+1, w, h.logs.String())
		}
		h.advance(time.Millisecond)
		if h.k.attempts != n+1 {
			h.t.Fatalf("retry %d: %d attempts after %v, want 1; log:\n%s", i+1, h.k.attempts-n, w, h.logs.String())
		}
	}
}

// TestFirstStartRetried proves that a first start refused with EAGAIN is
// retried until the child runs, signalling nothing meanwhile, and that a
// SIGTERM before any child ran ends manager with 143, whatever -stop-signal
// says, signalling nothing.
func TestFirstStartRetried(t *testing.T) {
	h := unstartedHarness(t, false, "-config=", "-grace", "2s", "/bin/true")
	h.k.startErr = syscall.EAGAIN
	h.s.begin()
	if h.s.phase != starting {
		t.Fatalf("phase %v after a first start refused with EAGAIN, want starting; log:\n%s", h.s.phase, h.logs.String())
	}
	h.advance(100 * time.Millisecond) // still refused
	h.k.startErr = nil
	h.advance(200 * time.Millisecond)
	h.wantRunning()
	h.wantKills() // never kill(0, …): no child had a group yet

	// A shutdown before any child ran ends manager with 128 + the signal
	// it got, whatever -stop-signal says: no child got the stop signal.
	for _, args := range [][]string{nil, {"-stop-signal", "QUIT"}} {
		t.Run(fmt.Sprint("TERM before any child started ", args), func(t *testing.T) {
			h := unstartedHarness(t, false, append(args, "-config=", "-grace", "2s", "/bin/true")...)
			h.k.startErr = syscall.EAGAIN
			h.s.begin()
			h.signal(syscall.SIGTERM)
			h.wantDone(143)
			h.wantKills()
		})
	}
}

// TestHashBelongsToItsChild proves that a new child is left alone by what
// began for the one before: its baseline hash landing late, its check
// (whose group is killed and whose late pass is ignored), a restart asked
// for during the backoff.
func TestHashBelongsToItsChild(t *testing.T) {
	t.Run("a baseline that lands after its child exited", func(t *testing.T) {
		h, conf := watchHarness(t, "-restart", "always")
		h.k.exit(h.s.child.pid, exitedWith(1))
		h.reap()
		h.held = true
		h.advance(time.Second) // child 2: what it runs with is being hashed
		if h.hashCount() != 1 {
			t.Fatalf("%d hashes under way, want 1", h.hashCount())
		}
		h.k.exit(h.s.child.pid, exitedWith(1)) // child 2 exits before the hash lands
		h.reap()
		h.held = false
		h.deliver()
		writeFile(t, conf, "b")    // changed during the backoff
		h.advance(2 * time.Second) // child 3 starts with b
		third := h.s.child.pid
		h.polls(20)
		h.wantKills()
		if h.s.child.pid != third {
			t.Errorf("child 3, started with b, was restarted for b")
		}
	})
	t.Run("a check begun for an exited child", func(t *testing.T) {
		h, conf := watchHarness(t, "-restart", "always", "-restart-signal", "USR2", "-check", "/bin/sh")
		h.signal(syscall.SIGUSR2)
		check := h.s.pipe.checkPid
		h.k.exit(h.s.child.pid, exitedWith(1)) // the child exits while its check runs
		h.reap()
		h.wantKills(sent{-check, syscall.SIGKILL})
		h.advance(time.Second)
		fresh := h.s.child.pid
		h.k.exit(check, exitedWith(0)) // the check passes, too late
		h.reap()
		future := time.Now().Add(time.Hour)
		os.Chtimes(conf, future, future) // a touch: the same bytes
		h.polls(20)
		if h.s.phase != running || h.s.child.pid != fresh || h.s.pipe.checkPid != 0 {
			t.Errorf("the fresh child %d was acted on (pid %d, phase %v, check %d) for its predecessor's restart request",
				fresh, h.s.child.pid, h.s.phase, h.s.pipe.checkPid)
		}
	})
	t.Run("a restart requested while one is on its way", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-restart", "always", "-restart-signal", "USR2", "/bin/true")
		h.k.exit(h.s.child.pid, exitedWith(1))
		h.reap()
		h.signal(syscall.SIGUSR2)
		h.advance(time.Second)
		h.wantKills()
		h.wantRunning()
	})
}

// TestRetriesAreSeparate proves that a config hash retried for want of
// descriptors, with a warning, does not hold back the restart of a child
// that exited under -restart always.
func TestRetriesAreSeparate(t *testing.T) {
	// A hash retry (no descriptors) must not hold back a child's start.
	h, conf := watchHarness(t, "-restart", "always")
	h.s.hash = func(job hashJob) {
		r := hashNow(h.s.fsys, job)
		r.err = syscall.EMFILE
		h.hashes = append(h.hashes, r)
	}
	writeFile(t, conf, "b")
	h.polls(10)
	h.wantLog("level=WARN", "cannot read config; retrying", "too many open files")
	h.k.exit(h.s.child.pid, exitedWith(1))
	h.reap()
	h.advance(time.Second)
	h.wantRunning()
	if h.starts() != 2 {
		t.Errorf("starts = %d, want the restart despite the hash retry", h.starts())
	}
}

// TestTerminalDecidedAtEachStart proves that a child gets the terminal only
// if manager has it when it starts, and manager takes it back between
// children; a hung-up terminal or failed hand-off is said gone once, the
// child starting without it; a failed exec is no lost terminal.
func TestTerminalDecidedAtEachStart(t *testing.T) {
	t.Run("a foreground manager gives each child the terminal", func(t *testing.T) {
		h := terminalHarness(t, managerGroup, "-restart", "always")
		h.begin()
		first := h.s.child.pid
		if h.k.fg != first {
			t.Errorf("foreground group %d after the start, want the child's %d", h.k.fg, first)
		}
		h.k.exit(first, exitedWith(1))
		h.reap()
		if h.k.fg != managerGroup {
			t.Errorf("foreground group %d during the backoff, want manager's %d", h.k.fg, managerGroup)
		}
		h.advance(time.Second)
		h.wantRunning()
		h.wantTerminal(true, true)
	})
	t.Run("a background manager starts its child without the terminal", func(t *testing.T) {
		h := terminalHarness(t, managerGroup, "-restart", "always")
		h.begin()
		h.k.fg = shellGroup // Ctrl-Z, bg: the shell took the terminal back
		h.k.exit(h.s.child.pid, exitedWith(1))
		h.reap()
		h.advance(time.Second)
		h.wantRunning()
		h.wantTerminal(true, false)
		if h.k.fg != shellGroup || len(h.k.gave) != 0 {
			t.Errorf("foreground group %d, given to %v; want the shell's %d, never given", h.k.fg, h.k.gave, shellGroup)
		}
	})
	t.Run("a terminal that hung up is said gone once", func(t *testing.T) {
		h := terminalHarness(t, managerGroup, "-restart", "always")
		h.begin()
		for range 2 {
			h.k.fg = 0
			h.k.exit(h.s.child.pid, exitedWith(1))
			h.reap()
			h.advance(10 * time.Second)
			h.wantRunning()
		}
		h.wantTerminal(true, false, false)
		if n := strings.Count(h.logs.String(), `msg="terminal gone; the child runs without it"`); n != 1 {
			t.Errorf("terminal gone said %d times, want once; log:\n%s", n, h.logs.String())
		}
	})
	t.Run("a hand-off that fails is the same start without the terminal", func(t *testing.T) {
		h := terminalHarness(t, managerGroup)
		h.k.handoffErr = syscall.ENOTTY
		h.begin()
		h.wantRunning()
		h.wantTerminal(false)
		h.wantLog("level=WARN", `msg="terminal gone; the child runs without it"`, `error="inappropriate ioctl for device"`)
	})
	t.Run("an exec that fails leaves the terminal be", func(t *testing.T) {
		h := terminalHarness(t, managerGroup)
		h.k.handoffErr = syscall.ETXTBSY // the command's own failure, with the terminal there
		h.s.begin()
		h.wantDone(126)
		if strings.Contains(h.logs.String(), "terminal gone") {
			t.Errorf("a failed exec declared the terminal gone:\n%s", h.logs.String())
		}
	})
	t.Run("no terminal", func(t *testing.T) {
		h := terminalHarness(t, 0)
		h.begin()
		h.wantTerminal(false)
		if strings.Contains(h.logs.String(), "terminal") {
			t.Errorf("a manager without a terminal speaks of one:\n%s", h.logs.String())
		}
	})
}

// TestInterruptedChildNotRestarted proves that, even with -restart always,
// a child killed by SIGINT or SIGQUIT while manager holds the terminal
// (Ctrl-C, Ctrl-\) is not restarted and manager exits with its code, while
// one killed by SIGTERM, or by SIGINT without the terminal, is restarted.
func TestInterruptedChildNotRestarted(t *testing.T) {
	tests := []struct {
		name    string
		fg      int
		ws      syscall.WaitStatus
		restart bool
	}{
		{"Ctrl-C", managerGroup, signaled(syscall.SIGINT), false},
		{`Ctrl-\`, managerGroup, signaled(syscall.SIGQUIT), false},
		{"SIGTERM at a terminal", managerGroup, signaled(syscall.SIGTERM), true},
		{"SIGINT without the terminal", shellGroup, signaled(syscall.SIGINT), true},
		{"SIGINT without a terminal", 0, signaled(syscall.SIGINT), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := terminalHarness(t, tc.fg, "-restart", "always")
			h.begin()
			h.k.exit(h.s.child.pid, tc.ws)
			h.reap()
			if tc.restart {
				h.advance(time.Second)
				h.wantRunning()
				return
			}
			h.wantDone(exitCode(tc.ws))
			h.wantLog("child interrupted at the terminal; not restarting it", "signal="+signalName(tc.ws.Signal()))
		})
	}
}

// TestTerminalBetweenChildren proves that between two children the terminal
// is manager's: a Ctrl-C during the backoff ends manager with the last
// child's code, and one while the old group's leftovers are stopped is
// passed to that group.
func TestTerminalBetweenChildren(t *testing.T) {
	t.Run("backoff", func(t *testing.T) {
		h := terminalHarness(t, managerGroup, "-restart", "always")
		h.begin()
		h.k.exit(h.s.child.pid, exitedWith(3))
		h.reap()
		if !slices.Equal(h.k.gave, []int{managerGroup}) {
			t.Fatalf("terminal given to %v during the backoff, want manager's group %d", h.k.gave, managerGroup)
		}
		h.signal(syscall.SIGINT) // Ctrl-C, now manager's
		h.wantDone(3)
	})
	t.Run("the old group being stopped", func(t *testing.T) {
		h := terminalHarness(t, managerGroup, "-restart", "always", "-grace", "60s")
		h.begin()
		pid := h.s.child.pid
		left := h.k.spawn(pid)
		h.k.exit(pid, exitedWith(0))
		h.reap()
		if h.k.fg != managerGroup {
			t.Fatalf("foreground group %d while leftovers are stopped, want manager's %d", h.k.fg, managerGroup)
		}
		h.k.takeKills()
		h.signal(syscall.SIGINT)
		h.wantKills(sent{-pid, syscall.SIGINT}, sent{-pid, syscall.SIGCONT})
		h.k.exit(left, signaled(syscall.SIGINT))
		h.reap()
		h.wantDone(0)
	})
}
