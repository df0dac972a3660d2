package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Clock is the supervisor's source of time. The real one is the time
// package; tests advance a fake one by hand, so no test waits for a timer.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer from a Clock.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// realClock is the Clock of a running manager.
type realClock struct{}

func (realClock) Now() time.Time                 { return time.Now() }
func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

// kernel is what the supervisor asks of the operating system about
// processes. The real one is osKernel; state tests use a scripted fake.
type kernel interface {
	start(spec procSpec) (pid int, err error)
	kill(pid int, sig syscall.Signal) error
	reap(handle func(pid int, status syscall.WaitStatus))
}

// osKernel is the real kernel.
type osKernel struct{}

func (osKernel) start(spec procSpec) (int, error)       { return launch(spec) }
func (osKernel) kill(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }
func (osKernel) reap(h func(int, syscall.WaitStatus))   { reapAll(h) }

// phase is where the supervisor is in the child's life.
type phase int

const (
	running    phase = iota // the child runs; changes are acted on
	restarting              // the child is being stopped; a new one starts once its group is gone
	stopping                // manager exits once the child's group (as PID 1: every process) is gone
)

// Durations that are not the user's to choose.
const (
	// killWait bounds the wait for processes to disappear after SIGKILL.
	// They die at once; what can remain is a zombie whose parent is not
	// manager and does not reap it, which must not hold manager forever.
	killWait = 2 * time.Second
	// recheckEvery re-examines a process group that is emptying. Members
	// reaped by a parent other than manager send it no SIGCHLD.
	recheckEvery = 50 * time.Millisecond
	// gcPercent sets the garbage collector's heap goal (GOGC).
	gcPercent = 20
)

// supervisor owns every piece of mutable state of a running manager. Only the
// loop in supervise touches it, one event method at a time, so nothing is
// locked; tests call the same methods in order with a fake clock and kernel.
type supervisor struct {
	cfg   *config
	log   *slog.Logger
	clock Clock
	sys   kernel
	fsys  fileSystem
	pid1  bool // manager is PID 1: leftovers are every process in the namespace

	child     procSpec
	checkSpec procSpec
	devNull   *os.File // the check's standard input, held open for it

	phase phase
	pid   int    // the running child; 0 once it has been reaped
	pgid  int    // the child's process group, kept after the child is reaped
	code  int    // the exit code to leave with, once the child has exited
	why   string // why manager is exiting; empty until it is
	done  bool   // the loop ends, and manager exits with code

	grace   Timer // armed while processes are being stopped; nil otherwise
	killed  bool  // SIGKILL has been sent; grace now bounds the wait for the dead
	gaveUp  bool  // killWait passed after SIGKILL: remaining zombies are not waited for
	recheck Timer // armed while waiting for a process group to empty

	poll      Timer             // next look at the watched paths; nil when not watching
	watch     debouncer         // change detection state
	running   map[string]digest // content the child was started or last reloaded with
	candidate map[string]digest // content being checked, to become running
	pending   bool              // a change settled while an action was under way
	checkPid  int               // the running -check; 0 when none
	checkEnd  Timer             // kills the -check at -grace
}

// newSupervisor prepares a supervisor for cfg; nothing is started yet.
func newSupervisor(cfg *config, log *slog.Logger, clock Clock, k kernel, fsys fileSystem, pid1 bool) *supervisor {
	return &supervisor{cfg: cfg, log: log, clock: clock, sys: k, fsys: fsys, pid1: pid1,
		watch: debouncer{quiet: cfg.debounce}}
}

// supervise runs manager: it starts the child and loops over events until
// the child and everything it left behind are gone, and returns the exit code.
func supervise(cfg *config, log *slog.Logger) int {
	s := newSupervisor(cfg, log, realClock{}, osKernel{}, osFS{racyWindow}, os.Getpid() == 1)
	if !s.pid1 {
		if err := becomeSubreaper(); err != nil {
			log.Warn("orphans will not be reaped", "error", err)
		} else {
			log.Info("not PID 1: reaping orphans as a child subreaper", "pid", os.Getpid())
		}
	}

	// Subscribe before the first child exists, so that none of its exits or
	// signals can be missed. SIGCHLD coalesces harmlessly into one slot: each
	// wake-up reaps until nothing is left. TERM and INT get their own channel
	// so that a flood of other signals can never crowd out a shutdown
	// (os/signal drops what a full channel cannot take).
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, syscall.SIGCHLD)
	shutdown := make(chan os.Signal, 8)
	signal.Notify(shutdown, syscall.SIGTERM, syscall.SIGINT)
	forward := make(chan os.Signal, 256)
	signal.Notify(forward, forwardedSignals()...)

	if !s.begin(ownsTerminal()) {
		return s.code
	}
	for !s.done {
		select {
		case <-sigchld:
			s.reap()
		case sig := <-shutdown:
			s.onSignal(sig.(syscall.Signal))
		case sig := <-forward:
			s.onSignal(sig.(syscall.Signal))
		case <-timerC(s.poll):
			tuneRuntime() // here, not in onPoll: tests must keep their runtime
			s.onPoll()
		case <-timerC(s.grace):
			s.onGrace()
		case <-timerC(s.recheck):
			s.onRecheck()
		case <-timerC(s.checkEnd):
			s.onCheckTimeout()
		}
	}
	return s.code
}

// timerC is t's channel, or nil (never ready) for a timer not armed.
func timerC(t Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C()
}

// stopTimer disarms *t if armed.
func stopTimer(t *Timer) {
	if *t != nil {
		(*t).Stop()
		*t = nil
	}
}

// forwardedSignals lists every signal forwarded to the child: all that a Go
// program can catch, except SIGCHLD (manager's own), SIGURG (the Go runtime
// preempts goroutines with it), SIGPROF (the runtime keeps it for
// profiling), the synchronous fault signals, which concern manager itself,
// and 32 to 34, reserved by C libraries and never delivered to os/signal.
func forwardedSignals() []os.Signal {
	var out []os.Signal
	for n := 1; n <= maxSignal; n++ {
		switch sig := syscall.Signal(n); sig {
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD, syscall.SIGURG, syscall.SIGPROF,
			syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL, syscall.SIGTRAP,
			syscall.SIGSYS, syscall.SIGABRT, 32, 33, 34,
			syscall.SIGTERM, syscall.SIGINT: // on the shutdown channel
		default:
			out = append(out, sig)
		}
	}
	return out
}

// begin resolves the command, records what the watched paths hold, and
// starts the first child. It reports false if that failed; s.code then says
// why.
func (s *supervisor) begin(foreground bool) bool {
	path, err := resolveCommand(s.cfg.argv[0])
	env := os.Environ()
	s.child = procSpec{path: path, argv: s.cfg.argv, env: env, files: []uintptr{0, 1, 2}, foreground: foreground}
	if err != nil {
		s.failStart(err)
		return false
	}
	// The check's output goes to standard error: standard output is the
	// child's, and a validator's complaints belong with manager's logs. Its
	// input is /dev/null: standard input may be a terminal the child owns,
	// where a read would stop the check with SIGTTIN.
	stdin := uintptr(0)
	if s.cfg.check != nil {
		if null, err := os.Open(os.DevNull); err == nil {
			s.devNull, stdin = null, null.Fd()
		}
	}
	s.checkSpec = procSpec{path: s.cfg.checkPath, argv: s.cfg.check, env: env, files: []uintptr{stdin, 2, 2}}
	if len(s.cfg.configs) > 0 {
		s.watch.last = snapshot(s.fsys, s.cfg.configs)
		s.running = contents(s.fsys, s.cfg.configs)
		for _, p := range s.cfg.configs {
			if _, ok := s.running[p]; !ok {
				s.log.Debug("config missing; watching for it to appear", "path", p)
			}
		}
		s.poll = s.clock.NewTimer(s.cfg.poll)
	}
	return s.startChild()
}

// startChild starts the command. On failure the supervisor is done, with the
// shell's exit code for it.
func (s *supervisor) startChild() bool {
	pid, err := s.sys.start(s.child)
	if err != nil {
		s.failStart(err)
		return false
	}
	s.pid, s.pgid, s.phase = pid, pid, running
	s.killed, s.gaveUp = false, false
	s.log.Info("child started", "pid", pid, "command", s.child.path)
	return true
}

// failStart ends the supervisor after the command could not be started.
func (s *supervisor) failStart(err error) {
	code, why := startError(s.child.path, err)
	s.code, s.done = code, true
	s.log.Error("exiting", "reason", "cannot start child", "command", s.cfg.argv[0], "error", why.Error(), "code", code)
}

// reap collects every exited process and gives each status to its owner:
// the child's to the exit logic, the check's to the check logic, an orphan's
// to nobody.
func (s *supervisor) reap() {
	s.sys.reap(func(pid int, ws syscall.WaitStatus) {
		switch pid {
		case s.pid:
			s.onChildExit(ws)
		case s.checkPid:
			s.onCheckExit(ws)
		default:
			// Guarded: building the attributes is most of manager's own
			// work in a storm of orphans (perf), for a line rarely shown.
			if s.log.Enabled(context.Background(), slog.LevelDebug) {
				s.log.Debug("orphan reaped", append([]any{"pid", pid}, describeStatus(ws)...)...)
			}
		}
	})
	s.settle()
}

// onSignal handles a signal sent to manager: TERM and INT begin a shutdown,
// every other one is forwarded.
func (s *supervisor) onSignal(sig syscall.Signal) {
	if (sig == syscall.SIGTERM || sig == syscall.SIGINT) && s.phase != stopping {
		s.shutdown(sig)
		return
	}
	s.forward(sig)
}

// forward sends sig to the child, or to its process group with -group.
func (s *supervisor) forward(sig syscall.Signal) {
	target := s.pid
	if s.cfg.group {
		target = -s.pgid
	}
	if target == 0 {
		s.log.Debug("signal not forwarded: no child", "signal", signalName(sig))
		return
	}
	if err := s.sys.kill(target, sig); err != nil {
		s.log.Debug("signal not forwarded", "signal", signalName(sig), "pid", target, "error", err)
		return
	}
	s.log.Debug("signal forwarded", "signal", signalName(sig), "pid", target)
}

// shutdown begins manager's exit: the child gets sig (or -stop-signal if it
// was given), then -grace before its group is killed. No restart happens
// after this, and a -check in progress is abandoned.
func (s *supervisor) shutdown(sig syscall.Signal) {
	s.log.Info("shutting down", "signal", signalName(sig), "grace", s.cfg.grace)
	s.why = "shutdown on " + signalName(sig)
	if s.cfg.stopExplicit {
		sig = s.cfg.stopSignal
	}
	s.beginExit()
	if s.pid != 0 {
		s.forward(sig)
		s.armGrace()
		return
	}
	// The child is already gone: a restart was waiting for its group. As
	// PID 1 the leftovers are now every process, not just that group: they
	// get the stop signal and a grace period of their own.
	if s.pid1 {
		stopTimer(&s.grace)
		s.killed, s.gaveUp = false, false
	}
	if s.signalLeftovers(sig) {
		s.armGrace()
	}
	s.settle()
}

// beginExit makes the supervisor's goal manager's exit: no change is acted
// on any more, and a -check in progress is abandoned.
func (s *supervisor) beginExit() {
	s.phase = stopping
	s.pending = false
	stopTimer(&s.poll)
	s.cancelCheck()
}

// armGrace starts the grace period unless one is running already: a second
// signal or a leftover does not extend it.
func (s *supervisor) armGrace() {
	if s.grace == nil {
		s.grace = s.clock.NewTimer(s.cfg.grace)
	}
}

// onChildExit handles the child's exit status. Unless manager asked for it
// to restart, the child's exit is manager's exit.
func (s *supervisor) onChildExit(ws syscall.WaitStatus) {
	attrs := append([]any{"pid", s.pid}, describeStatus(ws)...)
	s.pid = 0
	s.code = exitCode(ws)
	if s.cfg.remap[s.code] {
		s.code = 0
	}
	switch s.phase {
	case restarting:
		s.log.Info("child stopped for restart", attrs...)
	case running:
		s.log.Info("child exited", attrs...)
		s.why = "child exited"
		s.beginExit()
	default: // stopping: the shutdown said why
		s.log.Info("child exited", attrs...)
	}
	// What the child left behind gets the stop signal and whatever remains
	// of the grace period.
	if s.signalLeftovers(s.cfg.stopSignal) {
		s.armGrace()
	}
}

// leftoverTarget is the kill(2) pid that reaches what the child may leave
// behind: its process group, or as PID 1 at exit every process there is.
// kill(-1) from a manager that is not PID 1 would reach the whole machine.
func (s *supervisor) leftoverTarget() int {
	if s.pid1 && s.phase == stopping {
		return -1
	}
	return -s.pgid
}

// leftoversRemain reports whether any leftover exists. Only ESRCH means
// none: EPERM means some exist that manager may not signal (a setuid
// helper), and they are waited for, up to the grace period and killWait.
func (s *supervisor) leftoversRemain() bool {
	return !s.gaveUp && s.sys.kill(s.leftoverTarget(), 0) != syscall.ESRCH
}

// signalLeftovers sends sig to the leftovers, unless they were already sent
// SIGKILL, and reports whether any exist.
func (s *supervisor) signalLeftovers(sig syscall.Signal) bool {
	if !s.leftoversRemain() {
		return false
	}
	if !s.killed {
		target := s.leftoverTarget()
		s.log.Info("stopping leftover processes", "pid", target, "signal", signalName(sig))
		s.sys.kill(target, sig)
	}
	return true
}

// settle moves on once the child and its leftovers are gone: to a new child
// when restarting, or to the exit. Until then it keeps re-examining.
func (s *supervisor) settle() {
	if s.phase == running || s.pid != 0 || s.done {
		return
	}
	if s.leftoversRemain() {
		if s.recheck == nil {
			s.recheck = s.clock.NewTimer(recheckEvery)
		}
		return
	}
	stopTimer(&s.grace)
	stopTimer(&s.recheck)
	if s.phase == restarting {
		if s.startChild() {
			s.idle()
		}
		return
	}
	s.done = true
	s.log.Info("exiting", "reason", s.why, "code", s.code)
}

// onRecheck looks again at a process group that is emptying.
func (s *supervisor) onRecheck() {
	s.recheck = nil
	s.settle()
}

// onGrace handles the end of the grace period: everything still there is
// killed, and manager waits a little longer for the kills to be reaped.
func (s *supervisor) onGrace() {
	s.grace = nil
	if s.killed {
		s.log.Warn("processes remain after SIGKILL; not waiting for them", "pid", s.leftoverTarget())
		s.gaveUp = true
		s.settle()
		return
	}
	s.log.Warn("grace period over; killing", "pid", s.leftoverTarget(), "grace", s.cfg.grace)
	s.killed = true
	if s.pid != 0 {
		s.sys.kill(s.pid, syscall.SIGKILL) // it may have left its group
	}
	s.sys.kill(s.leftoverTarget(), syscall.SIGKILL)
	s.grace = s.clock.NewTimer(killWait)
}

// tuneRuntime fits the Go runtime to a manager that lives long and polls.
// One P: the loop is a single goroutine, and with more Ps every wake-up of a
// timer also wakes idle threads that spin for work and find none (measured
// at -poll 100ms: 15 to 20% less CPU with one). A low GC goal: manager holds
// little live data, and its only garbage comes from polls and the restarts
// they cause; Go's default 4 MB minimum heap goal would let that garbage
// grow its footprint by as much before the first collection. Both calls
// stop the world (0.5 and 0.7 ms, measured), so they are made at the first
// poll rather than at start, where a manager that watches nothing, and
// makes no garbage to speak of, would pay them for nothing.
var tuneRuntime = sync.OnceFunc(func() {
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(gcPercent)
})

// onPoll looks at the watched paths and acts once a change has settled.
func (s *supervisor) onPoll() {
	s.poll = s.clock.NewTimer(s.cfg.poll)
	before := s.watch.last
	settled := s.watch.observe(s.clock.Now(), snapshot(s.fsys, s.cfg.configs))
	for _, p := range vanished(s.cfg.configs, before, s.watch.last) {
		s.log.Warn("config missing", "path", p)
	}
	if settled {
		s.pending = true
		s.idle()
	}
}

// idle acts on a pending change if nothing else is under way: changes that
// settle during a check or a restart cause one more action after it.
func (s *supervisor) idle() {
	if !s.pending || s.phase != running || s.checkPid != 0 {
		return
	}
	s.pending = false
	now := contents(s.fsys, s.cfg.configs)
	changed, next := changedPaths(s.cfg.configs, s.running, now)
	if len(changed) == 0 {
		s.log.Debug("config unchanged")
		return
	}
	s.log.Info("config changed", "path", strings.Join(changed, ","))
	s.candidate = next
	if s.cfg.check == nil {
		s.apply()
		return
	}
	pid, err := s.sys.start(s.checkSpec)
	if err != nil {
		s.log.Warn("check failed", "command", s.cfg.check[0], "error", err)
		s.candidate = nil
		return
	}
	s.checkPid = pid
	s.checkEnd = s.clock.NewTimer(s.cfg.grace)
	s.log.Debug("check started", "pid", pid)
}

// onCheckExit applies the checked change if the check passed.
func (s *supervisor) onCheckExit(ws syscall.WaitStatus) {
	s.checkPid = 0
	stopTimer(&s.checkEnd)
	if s.phase != running {
		return // abandoned: the child is going away
	}
	if ws.Exited() && ws.ExitStatus() == 0 {
		s.log.Info("check passed")
		s.apply()
	} else {
		s.log.Warn("check failed; keeping the running child", append([]any{"command", s.cfg.check[0]}, describeStatus(ws)...)...)
		s.candidate = nil
	}
	s.idle()
}

// onCheckTimeout kills a -check that outlived -grace; its status then comes
// through the reaper as a failure.
func (s *supervisor) onCheckTimeout() {
	s.checkEnd = nil
	s.log.Warn("check timed out; killing it", "pid", s.checkPid, "grace", s.cfg.grace)
	s.sys.kill(-s.checkPid, syscall.SIGKILL)
}

// cancelCheck kills a -check in progress, whose verdict no longer matters.
func (s *supervisor) cancelCheck() {
	stopTimer(&s.checkEnd)
	if s.checkPid != 0 {
		s.sys.kill(-s.checkPid, syscall.SIGKILL)
	}
	s.candidate = nil
}

// apply makes the candidate content the running one: by the reload signal,
// or by stopping the child so that settle starts a new one.
func (s *supervisor) apply() {
	s.running, s.candidate = s.candidate, nil
	if s.cfg.reloadSignal != 0 {
		s.log.Info("reloading", "signal", signalName(s.cfg.reloadSignal), "pid", s.pid)
		s.forward(s.cfg.reloadSignal)
		return
	}
	s.log.Info("restarting", "pid", s.pid, "signal", signalName(s.cfg.stopSignal))
	s.phase = restarting
	s.forward(s.cfg.stopSignal)
	s.armGrace()
}
