package main

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
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
	// reap hands every changed child to handle, and reports whether
	// children remain.
	reap(handle func(pid int, status syscall.WaitStatus)) (remain bool)
}

// osKernel is the real kernel.
type osKernel struct{}

func (osKernel) start(spec procSpec) (int, error)          { return launch(spec) }
func (osKernel) kill(pid int, sig syscall.Signal) error    { return syscall.Kill(pid, sig) }
func (osKernel) reap(h func(int, syscall.WaitStatus)) bool { return reapAll(h) }

// phase is where the supervisor is in the child's life.
type phase int

const (
	running    phase = iota // the child runs; changes are acted on
	restarting              // the child is being stopped or started; a new one starts once its group is gone
	stopping                // manager exits once the child's group (as PID 1: every process) is gone
)

// Durations that are not the user's to choose.
const (
	// killWait bounds the wait for processes to disappear after SIGKILL.
	// They die at once; what can remain is a zombie whose parent is not
	// manager and does not reap it, or a process manager may not signal,
	// neither of which may hold manager forever.
	killWait = 2 * time.Second
	// recheckEvery re-examines a process group that is emptying. Members
	// reaped by a parent other than manager send it no SIGCHLD.
	recheckEvery = 50 * time.Millisecond
	// gcPercent sets the garbage collector's heap goal (GOGC).
	gcPercent = 20
	// retryFirst and retryMax bound the backoff of whatever failed for
	// lack of resources: a fork refused by a full pids or memory cgroup, a
	// file that could not be opened for want of descriptors.
	retryFirst = 100 * time.Millisecond
	retryMax   = 5 * time.Second
	// daemonWindow is how soon an exit 0 leaving processes behind looks
	// like a program that put itself in the background.
	daemonWindow = time.Second
	// crashFirst and crashMax bound the backoff between restarts of a
	// child that exited by itself (-restart); a child that ran for
	// crashReset resets it, and the count of restarts in a row.
	crashFirst = time.Second
	crashMax   = 30 * time.Second
	crashReset = 30 * time.Second
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
	pid1  bool          // manager is PID 1: leftovers are every process in the namespace
	hash  func(hashJob) // starts hashing; the result comes back through onHashed

	child     procSpec
	checkSpec procSpec

	phase   phase
	pid     int       // the running child; 0 once it has been reaped
	pgid    int       // the child's process group, kept after the child is reaped
	started time.Time // when the child was started
	code    int       // the exit code to leave with, once the child has exited
	why     string    // why manager is exiting; empty until it is
	done    bool      // the loop ends, and manager exits with code

	stoppedJob   bool // manager stopped itself because its child was stopped at a terminal
	exitedAtOnce bool // the child exited 0 within daemonWindow: the reap ends by asking whether it left children

	delay    Timer          // armed during -stop-delay; nil otherwise
	delaySig syscall.Signal // the signal that began the stop delay

	forceRestart bool          // -restart-signal asked for a restart: act even on unchanged content
	backoff      Timer         // armed while an exited child waits to be restarted (-restart)
	crashes      int           // restarts of exited children in a row
	crashWait    time.Duration // the last backoff before such a restart
	mountWarned  map[string]bool

	grace   Timer // armed while processes are being stopped; nil otherwise
	killed  bool  // SIGKILL has been sent; grace now bounds the wait for the dead
	gaveUp  bool  // killWait passed after SIGKILL: remaining processes are not waited for
	recheck Timer // armed while waiting for a process group to empty

	startRetry retry // starting the child again, after a start that lacked resources
	workRetry  retry // hashing or checking a change again, after that lacked resources

	poll        Timer           // next look at the watched paths; nil when not watching
	watch       debouncer       // change detection state
	running     content         // what the child was started or last reloaded with; nil until hashed
	candidate   content         // content being checked, to become running
	pending     bool            // a change settled that is not acted on yet
	hashing     bool            // a hash is under way; its result comes to onHashed
	hashStarted time.Time       // when the hash under way started
	gen         int             // counts the children started: a hash belongs to the child it was asked for
	startSnap   []stamp         // the watched paths as the child about to be hashed for started with them
	unreadable  map[string]bool // watched files reported unreadable, until they are readable
	checkPid    int             // the running -check; 0 when none
	checkEnd    Timer           // kills the -check at -grace
}

// newSupervisor prepares a supervisor for cfg; nothing is started yet.
func newSupervisor(cfg *config, log *slog.Logger, clock Clock, k kernel, fsys fileSystem, pid1 bool) *supervisor {
	return &supervisor{cfg: cfg, log: log, clock: clock, sys: k, fsys: fsys, pid1: pid1,
		unreadable: map[string]bool{}, mountWarned: map[string]bool{}}
}

// signals are the channels manager's signals arrive on, subscribed to before
// anything else happens.
type signals struct {
	chld     chan os.Signal // SIGCHLD; one slot, since each wake-up reaps until nothing is left
	shutdown chan os.Signal // TERM and INT
	forward  chan os.Signal // everything else manager forwards
	ignored  []syscall.Signal
}

// subscribe asks for every signal manager handles. It runs first thing in
// main: until it returns, a SIGTERM takes the Go runtime's default path,
// which for PID 1 (which the kernel will not kill) ends in exit code 2.
//
// TERM and INT get their own channel so that a flood of other signals can
// never crowd out a shutdown (os/signal drops what a full channel cannot
// take). A signal manager was started with ignored (nohup's HUP, the INT of
// a shell's "cmd &") is not subscribed to, so that it stays ignored, also
// for the child, which inherits ignored dispositions through exec, as under
// tini and catatonit. Only what the Go runtime leaves as it found it can be
// seen that way: it respects an inherited SIG_IGN for HUP and INT, and
// leaves TSTP, TTIN, TTOU and CONT alone until subscribed, but installs its
// handler over every other signal before main runs.
func subscribe() *signals {
	s := &signals{chld: make(chan os.Signal, 1), shutdown: make(chan os.Signal, 8), forward: make(chan os.Signal, 256)}
	// Each signal.Notify is a handshake with the runtime's signal thread
	// (tens of µs): TERM and INT, which end PID 1 with code 2 until then,
	// come first.
	s.notify(s.shutdown, syscall.SIGTERM, syscall.SIGINT)
	signal.Notify(s.chld, syscall.SIGCHLD)
	var forward []syscall.Signal
	for _, sig := range forwardedSignals() {
		forward = append(forward, sig.(syscall.Signal))
	}
	s.notify(s.forward, forward...)
	return s
}

// notify subscribes c to sigs, except those ignored at start.
func (s *signals) notify(c chan os.Signal, sigs ...syscall.Signal) {
	var want []os.Signal
	for _, sig := range sigs {
		if ignoredAtStart(sig) {
			s.ignored = append(s.ignored, sig)
		} else {
			want = append(want, sig)
		}
	}
	signal.Notify(c, want...)
}

// ignoredAtStart reports whether sig's disposition is SIG_IGN now, before
// manager subscribes to it.
func ignoredAtStart(sig syscall.Signal) bool {
	var old [8]uintptr // struct sigaction; its handler comes first on every architecture manager is built for
	_, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&old[0])), 8, 0, 0)
	const sigIgn = 1
	return e == 0 && old[0] == sigIgn
}

// supervise runs manager: it starts the child and loops over events until
// the child and everything it left behind are gone, and returns the exit code.
func supervise(cfg *config, log *slog.Logger, sigs *signals) int {
	s := newSupervisor(cfg, log, realClock{}, osKernel{}, osFS{racyWindow}, os.Getpid() == 1)
	hashed := make(chan hashResult, 1) // one hash at a time: a send never waits
	s.hash = func(job hashJob) {
		go func() { hashed <- hashNow(s.fsys, job) }()
	}
	if !s.pid1 {
		if err := becomeSubreaper(); err != nil {
			log.Warn("orphans will not be reaped", "error", err)
		} else {
			log.Info("not PID 1: reaping orphans as a child subreaper", "pid", os.Getpid())
		}
	}
	for _, sig := range sigs.ignored {
		log.Info("signal ignored from the start; it stays ignored, also for the child", "signal", signalName(sig))
	}
	if !s.begin(ownsTerminal()) {
		return s.code
	}
	for !s.done {
		select {
		case <-sigs.chld:
			s.reap()
		case sig := <-sigs.shutdown:
			s.onSignal(sig.(syscall.Signal))
		case sig := <-sigs.forward:
			s.onSignal(sig.(syscall.Signal))
		case r := <-hashed:
			s.onHashed(r)
		case <-timerC(s.poll):
			tuneRuntime() // here, not in onPoll: tests must keep their runtime
			s.onPoll()
		case <-timerC(s.grace):
			s.onGrace()
		case <-timerC(s.recheck):
			s.onRecheck()
		case <-timerC(s.checkEnd):
			s.onCheckTimeout()
		case <-timerC(s.startRetry.timer):
			s.onStartRetry()
		case <-timerC(s.workRetry.timer):
			s.onWorkRetry()
		case <-timerC(s.delay):
			s.onDelayEnd()
		case <-timerC(s.backoff):
			s.onBackoff()
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
	s.child = procSpec{path: path, argv: s.cfg.argv, env: env, files: []int{0, 1, 2}, foreground: foreground}
	if err != nil {
		s.failStart(err)
		return false
	}
	// The check's output is relayed into manager's log, line by line: it
	// is a validator's verdict, and standard output is the child's. Its
	// input is /dev/null: standard input may be a terminal the child owns,
	// where a read would stop the check with SIGTTIN.
	stdin := -1
	if s.cfg.check != nil {
		if fd, err := syscall.Open(os.DevNull, syscall.O_RDONLY|syscall.O_CLOEXEC, 0); err == nil {
			stdin = fd
		}
	}
	s.checkSpec = procSpec{path: s.cfg.checkPath, argv: s.cfg.check, env: env, files: []int{stdin, -1, -1},
		relay: s.relayCheckOutput, relayFor: s.cfg.grace + killWait}
	if len(s.cfg.configs) == 0 {
		s.running = content{} // nothing to compare: a requested restart needs no hash
		return s.startChild()
	}
	// The snapshot comes before the child, so that a change between the
	// two shows as one; the hash of what the child started with after it,
	// so that a huge file does not delay its start.
	s.startSnap = snapshot(s.fsys, s.cfg.configs)
	s.watch = newDebouncer(s.cfg.debounce, s.startSnap)
	s.warnMissing()
	s.warnMounts(s.cfg.configs)
	s.poll = s.clock.NewTimer(s.cfg.poll)
	if !s.startChild() {
		return false
	}
	s.idle()
	return true
}

// warnMissing names the watched paths that cannot be seen at start: missing,
// unless they are the historical default, which most uses of manager never
// create, or on a way manager may not search.
func (s *supervisor) warnMissing() {
	for _, p := range s.cfg.configs {
		_, err := s.fsys.stat(p)
		switch {
		case err == nil:
		case !errors.Is(err, fs.ErrNotExist):
			s.log.Warn("config cannot be looked at; watching for it to become visible", "path", p, "error", err)
		case p == defaultConfig:
			s.log.Debug("config missing; watching for it to appear", "path", p)
		default:
			s.log.Warn("config missing; watching for it to appear", "path", p)
		}
	}
}

// warnMounts warns once about each of paths that is a single-file mount
// (docker run -v file:file, a Kubernetes subPath): it is pinned to the file
// that was there when the container started, so a replacement of its source
// (an editor's rename, every ConfigMap update) never shows through.
func (s *supervisor) warnMounts(paths []string) {
	for _, p := range paths {
		if s.mountWarned[p] || !has(s.watch.last, p) || !isFileMount(p) {
			continue
		}
		s.mountWarned[p] = true
		s.log.Warn("config is a single-file mount", "path", p,
			"hint", "an update that replaces the file (a ConfigMap update, an editor's save) never shows through it: mount the directory instead and watch that")
	}
}

// startChild starts the command. It reports false if it cannot be started,
// the supervisor then being done with the shell's exit code for it. A start
// refused for lack of resources (a full pids cgroup: EAGAIN) is retried.
func (s *supervisor) startChild() bool {
	if s.running == nil && len(s.cfg.configs) > 0 {
		// What the child will read is hashed once it runs: the files
		// must still look as they do now, before it starts.
		s.startSnap = snapshot(s.fsys, s.cfg.configs)
	}
	pid, err := s.sys.start(s.child)
	if err != nil {
		if startLacksResources(err) {
			s.phase, s.pid = restarting, 0
			s.retryLater(&s.startRetry, "cannot start child", err)
			return true
		}
		s.failStart(err)
		return false
	}
	s.startRetry.wait = 0
	s.gen++
	s.pid, s.pgid, s.phase, s.started = pid, pid, running, s.clock.Now()
	s.killed, s.gaveUp = false, false
	s.log.Info("child started", "pid", pid, "command", s.child.path)
	return true
}

// failStart ends the supervisor after the command could not be started.
func (s *supervisor) failStart(err error) {
	code, why := startError(s.child.path, err)
	s.code, s.done = code, true
	attrs := []any{"reason", "cannot start child", "command", s.cfg.argv[0], "error", why.Error(), "code", code}
	if len(s.cfg.argv) == 1 && s.cfg.argv[0] == defaultCommand {
		attrs = append(attrs, "hint", "no command given, so manager ran its historical default; usage: manager [flags] [--] COMMAND [ARG...] (manager -h)")
	}
	s.log.Error("exiting", attrs...)
}

// retry is the timer of something to try again after it lacked resources,
// with its backoff: 100 ms, doubling up to 5 s, reset by a success.
type retry struct {
	timer Timer         // armed while waiting; nil otherwise
	wait  time.Duration // the last backoff; zero after a success
}

// retryLater arms r with its next backoff.
func (s *supervisor) retryLater(r *retry, what string, err error) {
	r.wait = min(max(2*r.wait, retryFirst), retryMax)
	s.log.Warn(what+"; retrying", "error", err, "delay", r.wait)
	stopTimer(&r.timer)
	r.timer = s.clock.NewTimer(r.wait)
}

// onStartRetry tries again to start the child.
func (s *supervisor) onStartRetry() {
	s.startRetry.timer = nil
	s.settle()
}

// onWorkRetry tries again to act on a change: to hash it, or to check it.
func (s *supervisor) onWorkRetry() {
	s.workRetry.timer = nil
	s.idle()
}

// reap collects every process that exited, stopped or continued, and gives
// each status to its owner: the child's to the exit logic, the check's to the
// check logic, an orphan's to nobody.
func (s *supervisor) reap() {
	remain := s.sys.reap(func(pid int, ws syscall.WaitStatus) {
		switch {
		case ws.Stopped():
			if pid == s.pid {
				s.onChildStopped(ws.StopSignal())
			}
		case ws.Continued():
		case pid == s.pid:
			s.onChildExit(ws)
		case pid == s.checkPid:
			s.onCheckExit(ws)
		default:
			// Guarded: building the attributes is most of manager's own
			// work in a storm of orphans (perf), for a line rarely shown.
			if s.log.Enabled(context.Background(), slog.LevelDebug) {
				s.log.Debug("orphan reaped", append([]any{"pid", pid}, describeStatus(ws)...)...)
			}
		}
	})
	if s.exitedAtOnce {
		s.exitedAtOnce = false
		s.warnDaemon(remain)
	}
	s.settle()
}

// onSignal handles a signal sent to manager: TERM and INT begin a shutdown,
// every other one is forwarded.
func (s *supervisor) onSignal(sig syscall.Signal) {
	switch {
	case sig == s.cfg.restartSignal:
		s.onRestartSignal(sig)
	case (sig == syscall.SIGTERM || sig == syscall.SIGINT) && s.phase != stopping:
		s.onStopSignal(sig)
	case sig == syscall.SIGCONT && s.stoppedJob:
		s.resumeJob()
	default:
		s.forward(sig)
	}
}

// onStopSignal handles the first SIGTERM or SIGINT, which stops the child,
// after -stop-delay if there is one: the child keeps running (and getting
// every other signal) while a load balancer stops sending it requests. A
// second one during the delay ends it at once.
func (s *supervisor) onStopSignal(sig syscall.Signal) {
	if s.delay != nil {
		stopTimer(&s.delay)
		s.shutdown(sig)
		return
	}
	if s.cfg.stopDelay <= 0 || s.phase != running || s.pid == 0 {
		s.shutdown(sig)
		return
	}
	s.log.Info("stop delayed", "signal", signalName(sig), "delay", s.cfg.stopDelay)
	s.delay, s.delaySig = s.clock.NewTimer(s.cfg.stopDelay), sig
	s.pending, s.forceRestart = false, false // no change is acted on any more
	s.cancelCheck()
}

// onDelayEnd stops the child once -stop-delay has passed.
func (s *supervisor) onDelayEnd() {
	s.delay = nil
	s.shutdown(s.delaySig)
}

// onRestartSignal restarts the child as a change does (through -check, the
// stop signal, -grace, its whole group gone, then a new one), whether or
// not the files changed, and also with -reload-signal: on demand means a
// fresh process.
func (s *supervisor) onRestartSignal(sig syscall.Signal) {
	switch {
	case s.phase == stopping || s.delay != nil:
		s.log.Info("restart requested; ignored while stopping", "signal", signalName(sig))
		return
	case s.phase == restarting:
		s.log.Info("restart requested; a new child is on its way already", "signal", signalName(sig))
		return
	}
	s.log.Info("restart requested", "signal", signalName(sig))
	s.forceRestart, s.pending = true, true
	s.idle()
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
	if s.signal(target, sig) {
		s.log.Debug("signal forwarded", "signal", signalName(sig), "pid", target)
	}
}

// signal sends sig to target and reports whether it was delivered. Only a
// target that is gone is unremarkable; one manager may not signal (a child
// that made itself root) is worth a warning: it cannot be stopped.
func (s *supervisor) signal(target int, sig syscall.Signal) bool {
	err := s.sys.kill(target, sig)
	switch err {
	case nil:
		return true
	case syscall.ESRCH:
		s.log.Debug("signal not sent", "signal", signalName(sig), "pid", target, "error", err)
	default:
		s.log.Warn("signal not sent", "signal", signalName(sig), "pid", target, "error", err)
	}
	return false
}

// stop sends sig, a stop signal, to target, then SIGCONT, as systemd does: a
// process stopped by SIGSTOP or Ctrl-Z would otherwise sit on the stop
// signal until SIGKILL, its handler never run. SIGCONT is harmless to one
// that runs.
func (s *supervisor) stop(target int, sig syscall.Signal) {
	s.signal(target, sig)
	if sig != syscall.SIGKILL && sig != syscall.SIGCONT {
		s.sys.kill(target, syscall.SIGCONT)
	}
}

// stopChild sends sig, a stop signal, the way forward sends any signal.
func (s *supervisor) stopChild(sig syscall.Signal) {
	target := s.pid
	if s.cfg.group {
		target = -s.pgid
	}
	s.stop(target, sig)
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
	if s.pid == 0 && s.started.IsZero() {
		s.code = 128 + int(sig) // no child ever ran: manager ends as the signal would end one
	}
	s.beginExit()
	if s.pid != 0 {
		s.stopChild(sig)
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
// on any more, nothing is retried, and a -check in progress is abandoned.
func (s *supervisor) beginExit() {
	s.phase = stopping
	s.pending = false
	s.forceRestart = false
	stopTimer(&s.poll)
	stopTimer(&s.startRetry.timer)
	stopTimer(&s.workRetry.timer)
	stopTimer(&s.delay)
	stopTimer(&s.backoff)
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
	s.gen++ // a hash under way was for this child
	s.stoppedJob = false
	s.code = exitCode(ws)
	if s.cfg.remap[s.code] {
		s.code = 0
	}
	switch s.phase {
	case restarting:
		s.log.Info("child stopped for restart", attrs...)
	case running:
		if s.restartAfterExit(ws, attrs) {
			break
		}
		s.log.Info("child exited", attrs...)
		s.why = "child exited"
		s.exitedAtOnce = ws.Exited() && ws.ExitStatus() == 0 && s.clock.Now().Sub(s.started) < daemonWindow
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

// restartAfterExit schedules a restart of a child that exited by itself,
// if -restart asks for one, and reports whether it did. The backoff is 1 s,
// doubling up to 30 s, and so is the count of restarts in a row that
// -restart's :N limits: both start again once a child has run for 30 s.
// The exited child's group is stopped meanwhile, as at any restart.
func (s *supervisor) restartAfterExit(ws syscall.WaitStatus, attrs []any) bool {
	clean := ws.Exited() && ws.ExitStatus() == 0
	if s.cfg.restartMode == restartNo || s.delay != nil || clean && s.cfg.restartMode == restartOnFailure {
		return false
	}
	if s.clock.Now().Sub(s.started) >= crashReset {
		s.crashes, s.crashWait = 0, 0
	}
	if s.cfg.restartMax > 0 && s.crashes >= s.cfg.restartMax {
		s.log.Warn("child exited; not restarting it again", append(attrs, "restarts", s.crashes, "limit", s.cfg.restartMode.String()+":"+strconv.Itoa(s.cfg.restartMax))...)
		return false
	}
	s.crashes++
	s.crashWait = min(max(2*s.crashWait, crashFirst), crashMax)
	s.log.Info("child exited; restarting", append(attrs, "delay", s.crashWait, "restart", s.crashes)...)
	s.phase = restarting
	s.pending, s.forceRestart = false, false // the next child reads the files as they are then
	s.cancelCheck()
	if len(s.cfg.configs) > 0 {
		s.running = nil
	}
	s.backoff = s.clock.NewTimer(s.crashWait)
	return true
}

// onBackoff starts the child again once the backoff after its exit is over
// and its group is gone.
func (s *supervisor) onBackoff() {
	s.backoff = nil
	s.settle()
}

// warnDaemon warns about a child that exited 0 at once, if it left children
// of manager behind (re-parented to it): most likely a server that forked
// itself into the background, out of manager's reach (nginx without
// "daemon off;").
func (s *supervisor) warnDaemon(leftChildren bool) {
	if leftChildren {
		s.log.Warn("child exited 0 at once, leaving processes behind: it may have put itself in the background; run it in the foreground (nginx: -g 'daemon off;')",
			"pid", s.pgid, "command", s.child.path)
	}
}

// onChildStopped handles the child being stopped. At a terminal (a shell's
// job, Ctrl-Z), the shell waits for manager, not for the child: manager
// stops itself too, so that the shell sees its job stopped and gives the
// prompt back, as dumb-init does. As PID 1 there is no such shell, and the
// kernel would not stop PID 1 anyway.
func (s *supervisor) onChildStopped(sig syscall.Signal) {
	s.log.Info("child stopped", "pid", s.pid, "signal", signalName(sig))
	if !s.child.foreground || s.pid1 || s.phase != running {
		return
	}
	s.stoppedJob = true
	s.log.Info("stopping manager too, as the shell's job", "pid", os.Getpid())
	syscall.Kill(os.Getpid(), syscall.SIGSTOP)
}

// resumeJob continues a child manager stopped with: the shell's fg or bg
// continued manager. After fg, manager's group holds the terminal again, and
// hands it back to the child's group, which the terminal stopped as a whole.
func (s *supervisor) resumeJob() {
	s.stoppedJob = false
	if ownsTerminal() {
		if err := giveTerminal(s.pgid); err != nil {
			s.log.Warn("cannot give the terminal back to the child", "pid", -s.pgid, "error", err)
		}
	}
	s.log.Info("continuing child", "pid", -s.pgid)
	s.signal(-s.pgid, syscall.SIGCONT)
}

// leftoverTarget is the kill(2) pid that reaches what the child may leave
// behind: its process group, or as PID 1 at exit every process there is.
// kill(-1) from a manager that is not PID 1 would reach the whole machine.
func (s *supervisor) leftoverTarget() int {
	if s.pid1 && s.phase == stopping {
		return -1
	}
	return -s.pgid // 0 when no child ever started: no target, never kill(0), manager's own group
}

// leftoversRemain reports whether any leftover exists. Only ESRCH means
// none: EPERM means some exist that manager may not signal (a setuid
// helper), and they are waited for, up to the grace period and killWait.
func (s *supervisor) leftoversRemain() bool {
	target := s.leftoverTarget()
	return target != 0 && !s.gaveUp && s.sys.kill(target, 0) != syscall.ESRCH
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
		s.stop(target, sig)
	}
	return true
}

// settle moves on once the child and its leftovers are gone: to a new child
// when restarting, or to the exit. Until then it keeps re-examining.
func (s *supervisor) settle() {
	if s.phase == running || s.done || s.phase == restarting && s.pid == 0 && (s.startRetry.timer != nil || s.backoff != nil) {
		return
	}
	if s.pid != 0 {
		if !s.gaveUp {
			return
		}
		// SIGKILL did not end the child: manager may not signal it (it
		// made itself root). Waiting longer would wait forever.
		s.log.Error("child cannot be killed; not waiting for it", "pid", s.pid)
		s.pid, s.code = 0, 128+int(syscall.SIGKILL)
		if s.phase == restarting {
			s.why = "child cannot be stopped for a restart"
			s.beginExit()
		}
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
		if s.startChild() && s.pid != 0 {
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
		s.signal(s.pid, syscall.SIGKILL) // it may have left its group
	}
	s.signal(s.leftoverTarget(), syscall.SIGKILL)
	s.grace = s.clock.NewTimer(killWait)
}

// tuneRuntime lowers the garbage collector's goal once manager polls: it
// holds little live data, and its only garbage comes from polls and the
// restarts they cause; Go's default 4 MB minimum heap goal would let that
// garbage grow its footprint by as much before the first collection. The
// call stops the world (0.7 ms, measured), so it is made at the first poll
// rather than at start, where a manager that watches nothing would pay it
// for nothing.
var tuneRuntime = sync.OnceFunc(func() { debug.SetGCPercent(gcPercent) })

// threadReserve is how many OS threads manager makes, idle, before it
// starts a child. The Go runtime creates threads as it needs them, and
// crashes when it cannot ("newosproc"), which a child that fills the
// container's pids limit would cause: as PID 1, killing every process at
// once. With a thread in reserve for everything that can block at the same
// time (the loop in a system call, the hasher in a read, the netpoller, the
// thread that holds the one P, a spare), the runtime never needs one more;
// it keeps idle threads for good. The threads with fixed jobs (sysmon, the
// signal threads, the launcher, the log writer) exist by then.
const threadReserve = 6

// prepareRuntime fits the Go runtime to manager before anything starts:
// one P, since the loop is a single goroutine, and with more Ps every
// wake-up of a timer also wakes idle threads that spin for work and find
// none (measured at -poll 100ms: 15 to 20% less CPU with one); and every
// thread it will ever need.
func prepareRuntime() {
	runtime.GOMAXPROCS(1)
	startLauncher()
	reserveThreads(threadReserve)
}

// reserveThreads makes the runtime create n threads: n goroutines lock
// themselves to a thread each and wait until all have, which the runtime
// can only serve with n threads, then return them to its idle pool. It
// returns once they are all back: a thread the runtime needed right after
// would otherwise find none idle yet, and make one more.
func reserveThreads(n int) {
	var locked, unlocked sync.WaitGroup
	release := make(chan struct{})
	locked.Add(n)
	unlocked.Add(n)
	for range n {
		go func() {
			runtime.LockOSThread()
			locked.Done()
			<-release
			runtime.UnlockOSThread()
			unlocked.Done()
		}()
	}
	locked.Wait()
	close(release)
	unlocked.Wait()
}

// onPoll looks at the watched paths and acts once a change has settled.
func (s *supervisor) onPoll() {
	s.poll = s.clock.NewTimer(s.cfg.poll)
	before := s.watch.last
	o := s.watch.observe(s.clock.Now(), snapshot(s.fsys, s.cfg.configs))
	for _, p := range vanished(s.cfg.configs, before, s.watch.last) {
		s.log.Warn("config missing", "path", p)
	}
	s.warnMounts(vanished(s.cfg.configs, s.watch.last, before)) // those that appeared
	for _, p := range o.busy {
		s.log.Warn("config busy: changing for too long; changes beside it no longer wait for it (move it out of the watched directory)",
			"path", p, "after", s.watch.busyAfter)
	}
	for _, p := range o.quiet {
		s.log.Info("config quiet again", "path", p)
	}
	if o.settled {
		s.pending = true
		s.idle()
	}
}

// idle acts on a pending change if nothing else is under way: changes that
// settle during a hash, a check or a restart cause one more action after it.
func (s *supervisor) idle() {
	if s.phase != running || s.checkPid != 0 || s.hashing || s.workRetry.timer != nil || s.delay != nil {
		return
	}
	if s.running == nil {
		// What the child started with is not known yet (its hash failed,
		// or it was restarted after an exit): changes wait for it.
		s.requestHash(baseline)
		return
	}
	if s.pending {
		s.pending = false
		s.requestHash(change)
	}
}

// hashPurpose says what a hash is for.
type hashPurpose int

func (p hashPurpose) String() string {
	if p == baseline {
		return "baseline"
	}
	return "change"
}

const (
	baseline hashPurpose = iota // what the child started with
	change                      // what the paths hold after a change settled
)

// hashJob asks for the contents of paths.
type hashJob struct {
	paths   []string
	purpose hashPurpose
	before  []stamp         // the snapshot the loop acts on: what the contents must match
	busy    map[string]bool // entries that may change meanwhile without making the hash unstable
	gen     int             // the child it was asked for
}

// hashResult is a hashJob's answer.
type hashResult struct {
	job    hashJob
	sums   content
	bad    unreadable
	stable bool  // no stat of the paths changed while they were hashed
	err    error // manager lacked resources: try again
}

// requestHash starts hashing the watched paths, off the loop: a huge file
// or a slow read must never delay forwarding, reaping or a timer.
func (s *supervisor) requestHash(p hashPurpose) {
	s.hashing, s.hashStarted = true, s.clock.Now()
	s.log.Debug("hashing config", "purpose", p)
	before := s.watch.last
	if p == baseline {
		before = s.startSnap
	}
	s.hash(hashJob{paths: s.cfg.configs, purpose: p, before: before, busy: s.watch.busyNow(), gen: s.gen})
}

// hashNow does a hashJob. The paths are stat'ed again after hashing: if
// they differ from the snapshot the loop took (when it started the child,
// or saw the change settle), the content read may be newer than that, or
// half old, half new. Busy entries do not count: they change all the time,
// and waiting for them to hold still is what busy means not to do.
func hashNow(fsys fileSystem, job hashJob) hashResult {
	sums, bad, err := contents(fsys, job.paths)
	return hashResult{job: job, sums: sums, bad: bad, err: err, stable: sameFiles(job.before, snapshot(fsys, job.paths), job.busy)}
}

// onHashed takes a hash's result: the content the child runs with, or a
// change to act on.
func (s *supervisor) onHashed(r hashResult) {
	s.hashing = false
	s.log.Debug("config hashed", "purpose", r.job.purpose, "took", s.clock.Now().Sub(s.hashStarted).Round(time.Millisecond))
	switch {
	case s.phase == stopping:
		return
	case r.job.gen != s.gen:
		// Asked for a child that has since been replaced: what the new
		// one runs with is hashed anew, then the change if any.
		s.pending = s.pending || r.job.purpose == change
		s.idle()
		return
	}
	if r.err != nil {
		s.pending = true
		s.retryLater(&s.workRetry, "cannot read config", r.err)
		return
	}
	s.workRetry.wait = 0
	s.noteUnreadable(r.bad)
	if r.job.purpose == baseline {
		s.running = r.sums
		if !r.stable {
			// The files changed while they were read: what the child
			// read is unknown, so the next change that settles counts.
			s.running = content{}
		}
		s.idle()
		return
	}
	if s.phase != running || s.delay != nil {
		s.pending = s.phase == restarting // a restart is under way: one more action after it
		return
	}
	if !r.stable {
		return // they changed while hashed: the debouncer has seen it, and will settle again
	}
	changed, next := changedPaths(s.cfg.configs, s.running, r.sums)
	if len(changed) == 0 && !s.forceRestart {
		s.log.Debug("config unchanged")
		s.idle()
		return
	}
	var names []string
	for _, p := range changed {
		names = append(names, changedEntries(p, s.running, r.sums)...)
	}
	if len(names) > 0 {
		s.log.Info("config changed", "path", strings.Join(names, ","))
	}
	s.candidate = next
	if s.cfg.check == nil {
		s.apply()
		return
	}
	s.startCheck()
}

// noteUnreadable warns once about each watched file that exists but cannot
// be read: its changes are seen only as changes of its error.
func (s *supervisor) noteUnreadable(bad unreadable) {
	for p, err := range bad {
		if !s.unreadable[p] {
			s.log.Warn("config unreadable; only its presence is watched", "path", p, "error", err)
			s.unreadable[p] = true
		}
	}
	for p := range s.unreadable {
		if _, still := bad[p]; !still {
			s.log.Info("config readable again", "path", p)
			delete(s.unreadable, p)
		}
	}
}

// startCheck runs -check on the candidate content.
func (s *supervisor) startCheck() {
	pid, err := s.sys.start(s.checkSpec)
	switch {
	case err != nil && startLacksResources(err):
		s.candidate = nil
		s.pending = true
		s.retryLater(&s.workRetry, "cannot start check", err)
		return
	case err != nil:
		s.log.Warn("check failed; keeping the running child", "command", strings.Join(s.cfg.check, " "), "error", err)
		s.candidate, s.forceRestart = nil, false
		return
	}
	s.workRetry.wait = 0
	s.checkPid = pid
	s.checkEnd = s.clock.NewTimer(s.cfg.grace)
	s.log.Debug("check started", "pid", pid)
}

// relayCheckOutput is the check's procSpec.relay: each line the check writes
// becomes a log line.
func (s *supervisor) relayCheckOutput(line string) {
	s.log.Info("check output", "line", line)
}

// onCheckExit applies the checked change if the check passed. Whatever the
// check left in its process group is killed: a check leaves nothing behind.
func (s *supervisor) onCheckExit(ws syscall.WaitStatus) {
	s.sys.kill(-s.checkPid, syscall.SIGKILL)
	s.checkPid = 0
	stopTimer(&s.checkEnd)
	if s.phase != running || s.candidate == nil {
		s.idle() // abandoned: it was for a child that is going away, or gone
		return
	}
	if ws.Exited() && ws.ExitStatus() == 0 {
		s.log.Info("check passed")
		s.apply()
	} else {
		s.log.Warn("check failed; keeping the running child", append([]any{"command", strings.Join(s.cfg.check, " ")}, describeStatus(ws)...)...)
		s.candidate, s.forceRestart = nil, false
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
	forced := s.forceRestart
	s.forceRestart = false
	if s.cfg.reloadSignal != 0 && !forced {
		s.log.Info("reloading", "signal", signalName(s.cfg.reloadSignal), "pid", s.pid)
		s.forward(s.cfg.reloadSignal)
		return
	}
	s.log.Info("restarting", "pid", s.pid, "signal", signalName(s.cfg.stopSignal))
	s.phase = restarting
	s.stopChild(s.cfg.stopSignal)
	s.armGrace()
}
