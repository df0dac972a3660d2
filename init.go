package main

import (
	"os"
	"strconv"
	"syscall"
	"time"
)

// Clock is the supervisor's source of time. The real one is the time
// package; tests move a fake one by hand, so no test waits for a timer.
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

// Now and NewTimer are the time package's.
func (realClock) Now() time.Time                 { return time.Now() }
func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

// realTimer is a time.Timer as a Timer.
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
	// procs lists the processes of manager's PID namespace, and reports
	// whether it could.
	procs() ([]procInfo, bool)
	// foreground returns the foreground process group of manager's
	// controlling terminal: 0 when it has none, or none any more.
	foreground() (pgid int, err error)
	// giveTerminal makes pgid the foreground process group of manager's
	// controlling terminal.
	giveTerminal(pgid int) error
}

// osKernel is the real kernel.
type osKernel struct{}

// Each method is one of reap.go's, stop.go's or the system's.
func (osKernel) start(spec procSpec) (int, error)          { return launch(spec) }
func (osKernel) kill(pid int, sig syscall.Signal) error    { return syscall.Kill(pid, sig) }
func (osKernel) reap(h func(int, syscall.WaitStatus)) bool { return reapAll(h) }
func (osKernel) procs() ([]procInfo, bool)                 { return readProcs() }
func (osKernel) foreground() (int, error)                  { return terminalForeground() }
func (osKernel) giveTerminal(pgid int) error               { return giveTerminal(pgid) }

// phase is where the supervisor is in the child's life. Each phase says
// what may happen next; the fields below say only what is needed to do it.
type phase int

const (
	starting   phase = iota // no child has run yet: the first start waits for the first check, or is being retried
	running                 // the child runs; changes are acted on
	draining                // -stop-delay: the child runs on and gets signals; no change is acted on
	restarting              // the old child is being stopped, or the next one waits for its turn
	stopping                // manager exits once the child and its leftovers are gone
	exited                  // the loop ends; manager exits with code
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
	// daemonWindow is how soon an exit 0 leaving processes behind looks
	// like a program that put itself in the background.
	daemonWindow = time.Second
	// crashReset is how long a child must run for the -restart backoff,
	// and the count of restarts in a row, to start over.
	crashReset = 30 * time.Second
)

// backoff is a wait that doubles from first up to max each time it is
// taken, until reset: after what lacked resources (a fork refused by a full
// pids cgroup: 100 ms to 5 s), or between restarts of a crashing child
// (-restart: 1 s to 30 s).
type backoff struct {
	first, max time.Duration
	wait       time.Duration // the last wait taken; zero after a reset
}

// next takes the next wait.
func (b *backoff) next() time.Duration {
	b.wait = min(max(2*b.wait, b.first), b.max)
	return b.wait
}

// reset makes the next wait the first again.
func (b *backoff) reset() { b.wait = 0 }

// newRetry is the backoff of whatever failed for lack of resources.
func newRetry() backoff { return backoff{first: 100 * time.Millisecond, max: 5 * time.Second} }

// childState is the program manager runs: the process now, or the last one.
type childState struct {
	pid     int       // the running child; 0 before the first start and once reaped
	pgid    int       // its process group, kept after it is reaped until the group is seen empty; 0 then
	started time.Time // when it was started; zero before the first start
	gen     int       // counts starts and exits: a hash or check belongs to the child it was asked for
	job     bool      // manager stopped itself because the child was stopped at a terminal
	term    bool      // its group was made the terminal's foreground group, and was last seen to be
	atOnce  int       // a child that exited 0 within daemonWindow, by itself: the reap that saw it asks whether it left children; 0 otherwise
	crashes int       // restarts of exited children in a row (-restart)
	backoff backoff   // the wait before such a restart
}

// supervisor owns every piece of mutable state of a running manager. Only
// the loop in supervise touches it, one event method at a time, so nothing
// is locked; tests drive the same loop with a fake clock and kernel.
type supervisor struct {
	cfg   *config
	log   *logger
	clock Clock
	sys   kernel
	fsys  osFS
	pid1  bool          // manager is PID 1: leftovers are every process in the namespace
	pgrp  int           // manager's own process group, the terminal's foreground group when manager is
	tty   ttyState      // what manager knows of its controlling terminal
	hash  func(hashJob) // starts hashing; the result comes back through onHashed
	look  func(pollJob) // starts a look at the watched paths; the result comes back through onPolled
	// relayed hands the end of a check's output to the loop, which takes
	// it in onCheckOutput; the relay's goroutine calls it.
	relayed func(outputEnd)

	spec      procSpec // how the child is started
	checkSpec procSpec // how -check is started
	socks     *sockets // the sockets each child gets; nil for none

	phase phase
	child childState
	code  int    // the exit code to leave with, once the child has exited
	why   string // why manager is exiting; empty until it is

	tear   teardown // stopping processes: stop signal, grace, SIGKILL
	pipe   pipeline // changes on their way from a poll to the child
	warned warnings // what was said once about the watched paths

	drainSig syscall.Signal // the signal that began -stop-delay
	drainEnd time.Time      // when -stop-delay ends; zero unless draining

	startAt time.Time // no child starts before this: a -restart backoff or a start retry
	retry   backoff   // of starting the child, after a start that lacked resources
	pollAt  time.Time // the next look at the watched paths; zero when not watching
	later   time.Time // look again then, at a group emptying or a wait that ends; zero for no need

	timer   Timer     // the one timer, armed for the earliest deadline above; nil when none
	timerAt time.Time // the deadline it is armed for
}

// newSupervisor prepares a supervisor for cfg; nothing is started yet.
func newSupervisor(cfg *config, log *logger, clock Clock, k kernel, fsys osFS, pid1 bool) *supervisor {
	s := &supervisor{cfg: cfg, log: log, clock: clock, sys: k, fsys: fsys, pid1: pid1, retry: newRetry()}
	s.child.backoff = backoff{first: time.Second, max: 30 * time.Second}
	s.pipe = pipeline{retry: newRetry()}
	s.warned = warnings{mounts: map[string]bool{}, unreadable: map[string]bool{}}
	return s
}

// events are the channels the loop waits on, besides its timer.
type events struct {
	chld     <-chan os.Signal // SIGCHLD; one slot, since each wake-up reaps until nothing is left
	shutdown <-chan os.Signal // TERM and INT
	forward  <-chan os.Signal // everything else manager forwards
	hashed   <-chan hashResult
	polled   <-chan pollResult
	relayed  <-chan outputEnd // the end of a check's output
}

// supervise runs manager: it starts the child, with socks if not nil, and
// loops over events until the child and everything it left behind are
// gone, and returns the exit code.
func supervise(cfg *config, log *logger, sigs *signals, socks *sockets) int {
	s := newSupervisor(cfg, log, realClock{}, osKernel{}, osFS{racyWindow}, os.Getpid() == 1)
	s.socks = socks
	hashed := make(chan hashResult, 1) // one hash at a time: a send never waits
	s.hash = func(job hashJob) {
		go func() { hashed <- hashNow(s.fsys, job) }()
	}
	polled := make(chan pollResult, 1) // one look at a time, likewise
	s.look = func(job pollJob) {
		go func() { polled <- pollNow(s.fsys, job) }()
	}
	relayed := make(chan outputEnd, 1)
	s.relayed = func(o outputEnd) { relayed <- o }
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
	s.pgrp = syscall.Getpgrp()
	s.logSockets()
	s.begin()
	ev := &events{chld: sigs.chld, shutdown: sigs.shutdown, forward: sigs.forward, hashed: hashed, polled: polled, relayed: relayed}
	for s.phase != exited {
		s.step(ev)
	}
	return s.code
}

// step waits for one event and hands it to its method: the loop's whole
// dispatch, which tests drive too. The timer is armed first, for whatever
// the last event or begin left to wait for.
func (s *supervisor) step(ev *events) {
	s.arm()
	select {
	case <-ev.chld:
		s.reap()
	case sig := <-ev.shutdown:
		s.onSignal(sig.(syscall.Signal))
	case sig := <-ev.forward:
		s.onSignal(sig.(syscall.Signal))
	case r := <-ev.hashed:
		s.onHashed(r)
	case r := <-ev.polled:
		s.onPolled(r)
	case o := <-ev.relayed:
		s.onCheckOutput(o)
	case <-timerC(s.timer):
		s.timer, s.timerAt = nil, time.Time{}
		s.onTimer()
	}
}

// timerC is t's channel, or nil (never ready) for no timer.
func timerC(t Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C()
}

// deadlines lists every deadline the supervisor may wait for, zero or not.
func (s *supervisor) deadlines() [6]time.Time {
	return [...]time.Time{s.tear.deadline, s.drainEnd, s.pipe.checkEnd, s.later, s.pollAt, s.pipe.refused.remindAt}
}

// arm points the one timer at the earliest deadline, if it is not already.
func (s *supervisor) arm() {
	var next time.Time
	for _, d := range s.deadlines() {
		if !d.IsZero() && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	if next.Equal(s.timerAt) && (s.timer != nil) == !next.IsZero() {
		return
	}
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.timerAt = next
	if !next.IsZero() {
		s.timer = s.clock.NewTimer(max(next.Sub(s.clock.Now()), 0))
	}
}

// onTimer handles every deadline that has passed, each cleared first: the
// end of a grace period, of -stop-delay, of a -check's time, a look again,
// a poll, a reminder of a refused change. An earlier handler may clear a
// later deadline.
func (s *supervisor) onTimer() {
	now := s.clock.Now()
	due := func(t *time.Time) bool {
		if t.IsZero() || t.After(now) {
			return false
		}
		*t = time.Time{}
		return true
	}
	if due(&s.tear.deadline) {
		s.onGrace()
	}
	if due(&s.drainEnd) {
		s.shutdown(s.drainSig)
	}
	if due(&s.pipe.checkEnd) {
		s.onCheckTimeout()
	}
	if due(&s.later) {
		s.settle()
		s.idle()
	}
	if due(&s.pollAt) {
		tuneRuntime()
		s.onPoll()
	}
	if due(&s.pipe.refused.remindAt) {
		s.remindRefused()
	}
}

// lookAgainAt makes the loop call settle and idle again at t, or earlier
// if it was to already.
func (s *supervisor) lookAgainAt(t time.Time) {
	if s.later.IsZero() || t.Before(s.later) {
		s.later = t
	}
}

// begin resolves the command, records what the watched paths hold, and
// starts the first child, after -check if there is one. If that fails, the
// supervisor has exited with the code that says why.
func (s *supervisor) begin() {
	path, err := resolveCommand(s.cfg.argv[0])
	env := os.Environ()
	s.spec = procSpec{path: path, argv: s.cfg.argv, env: env, files: []int{0, 1, 2}}
	if s.socks != nil {
		env = s.socks.prepare(&s.spec, env) // the check gets no socket, no LISTEN_ variable
	}
	if err != nil {
		s.failStart(err)
		return
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
		relay: logCheckOutput(s.log), relayEnd: s.relayed, relayFor: s.cfg.grace + killWait}
	var snap []stamp
	if len(s.cfg.configs) == 0 {
		s.pipe.applied = content{} // nothing to compare: a requested restart needs no hash
	} else {
		// One look before the child starts, on the loop since nothing
		// else is under way yet: what the debouncer compares the next
		// poll with, and what the child's files must still look like
		// when they are hashed after it started.
		first := pollNow(s.fsys, pollJob{paths: s.cfg.configs, mounts: true})
		s.watchFrom(first)
		snap = first.snap
		s.pollAt = s.clock.Now().Add(s.cfg.poll)
	}
	// The first start is checked too: a configuration that the check
	// refuses is then named before the program reads it.
	if s.cfg.check != nil && s.checkFirst() {
		return // the child starts at its verdict
	}
	s.startChild(snap)
	s.idle()
}

// startChild starts the command. A start refused for lack of resources (a
// full pids cgroup: EAGAIN) is retried; any other failure ends manager with
// the shell's exit code for it. snap, if not nil, is a snapshot of the
// watched paths taken just now; otherwise the last poll's stands for it.
func (s *supervisor) startChild(snap []stamp) {
	if s.pipe.applied == nil {
		// What the child will read is hashed once it runs: the files
		// must still look as they did at the last look, or the hash
		// says what the child read is unknown.
		if snap == nil {
			snap = s.pipe.watch.last
		}
		s.pipe.startSnap = snap
	}
	s.refreshSockets()
	pid, err := s.launchChild()
	if err != nil {
		if !startLacksResources(err) {
			s.failStart(err)
			return
		}
		if s.child.started.IsZero() {
			s.phase = starting
		} else {
			s.phase = restarting
		}
		wait := s.retry.next()
		s.log.Warn("cannot start child; retrying", "error", err, "delay", wait)
		s.startAt = s.clock.Now().Add(wait)
		s.lookAgainAt(s.startAt)
		return
	}
	s.retry.reset()
	s.startAt = time.Time{}
	s.child.gen++
	s.child.pid, s.child.pgid, s.child.started = pid, pid, s.clock.Now()
	s.child.term = s.spec.foreground
	s.phase = running
	s.tear = teardown{}
	s.log.Info("child started", "pid", pid, "command", s.spec.path)
}

// launchChild starts the child, its group made the terminal's foreground
// group if manager's holds it now: asked before each start, since a shell's
// foreground job may have become a background one (Ctrl-Z, bg), which must
// leave the terminal to the shell. A terminal that was there when asked
// but hung up before the child took it fails the start, which is made
// again at once without it; any other failure is the command's own.
func (s *supervisor) launchChild() (int, error) {
	s.spec.foreground = s.holdsTerminal()
	pid, err := s.sys.start(s.spec)
	if err == nil || !s.spec.foreground || !terminalFailed(err) {
		return pid, err
	}
	s.spec.foreground = false
	pid, again := s.sys.start(s.spec)
	if again == nil {
		s.loseTerminal(err)
	}
	return pid, again
}

// failStart ends the supervisor after the command could not be started.
func (s *supervisor) failStart(err error) {
	code, why := startError(s.spec.path, err)
	s.code, s.phase = code, exited
	attrs := []any{"reason", "cannot start child", "command", s.cfg.argv[0], "error", why.Error(), "code", code}
	if len(s.cfg.argv) == 1 && s.cfg.argv[0] == defaultCommand {
		attrs = append(attrs, "hint", "no command given, so manager ran its historical default; usage: manager [flags] [--] COMMAND [ARG...] (manager -h)")
	}
	s.log.Error("exiting", attrs...)
}

// reap collects every process that exited or stopped, and gives each status
// to its owner: the child's to the exit logic, the check's to the check
// logic, an orphan's to nobody.
func (s *supervisor) reap() {
	remain := s.sys.reap(func(pid int, ws syscall.WaitStatus) {
		switch {
		case ws.Stopped():
			if pid == s.child.pid {
				s.onChildStopped(ws.StopSignal())
			}
		case pid == s.child.pid:
			s.onChildExit(ws)
		case pid == s.pipe.checkPid:
			s.onCheckExit(ws)
		case s.log.enabled(levelDebug):
			// Guarded: building the attributes is most of manager's own
			// work in a storm of orphans (perf), for a line rarely shown.
			s.log.Debug("orphan reaped", append([]any{"pid", pid}, describeStatus(ws)...)...)
		}
	})
	if s.child.atOnce != 0 {
		s.warnDaemon(s.child.atOnce, remain)
		s.child.atOnce = 0
	}
	s.settle()
}

// onChildExit handles the child's exit status. Unless manager asked for it
// to restart, the child's exit is manager's exit.
func (s *supervisor) onChildExit(ws syscall.WaitStatus) {
	pid := s.child.pid
	attrs := append([]any{"pid", pid}, describeStatus(ws)...)
	s.child.pid = 0
	s.child.gen++ // a hash under way was for this child
	s.child.job = false
	s.code = exitCode(ws)
	if s.cfg.remap[s.code] {
		s.code = 0
	}
	switch s.phase {
	case restarting:
		s.log.Info("child stopped for restart", attrs...)
	case running:
		if ws.Exited() && ws.ExitStatus() == 0 && s.clock.Now().Sub(s.child.started) < daemonWindow {
			s.child.atOnce = pid
		}
		if s.restartAfterExit(ws, attrs) {
			break
		}
		s.log.Info("child exited", attrs...)
		s.why = "child exited"
		s.beginExit()
	default: // draining or stopping: the signal that began it says why
		if s.phase == draining {
			s.why = "child exited"
			s.beginExit()
		}
		s.log.Info("child exited", attrs...)
	}
	if s.phase == restarting {
		s.reclaimTerminal()
	}
	// What the child left behind gets the stop signal and whatever remains
	// of the grace period.
	if s.signalLeftovers(s.cfg.stopSignal) {
		s.armGrace()
	}
}

// restartAfterExit schedules a restart of a child that exited by itself,
// if -restart asks for one and it was not interrupted at the terminal, and
// reports whether it did. The backoff is 1 s,
// doubling up to 30 s, and so is the count of restarts in a row that
// -restart's :N limits: both start again once a child has run for 30 s.
// The exited child's group is stopped meanwhile, as at any restart.
func (s *supervisor) restartAfterExit(ws syscall.WaitStatus, attrs []any) bool {
	clean := ws.Exited() && ws.ExitStatus() == 0
	if s.cfg.restartMode == restartNo || clean && s.cfg.restartMode == restartOnFailure {
		return false
	}
	if s.interrupted(ws) {
		s.log.Info("child interrupted at the terminal; not restarting it", attrs...)
		return false
	}
	c := &s.child
	if s.clock.Now().Sub(c.started) >= crashReset {
		c.crashes = 0
		c.backoff.reset()
	}
	if s.cfg.restartMax > 0 && c.crashes >= s.cfg.restartMax {
		s.log.Warn("child exited; not restarting it again", append(attrs, "restarts", c.crashes, "limit", s.cfg.restartMode.String()+":"+strconv.Itoa(s.cfg.restartMax))...)
		return false
	}
	c.crashes++
	wait := c.backoff.next()
	s.log.Info("child exited; restarting", append(attrs, "delay", wait, "restart", c.crashes)...)
	s.phase = restarting
	s.dropChange()
	if len(s.cfg.configs) > 0 {
		s.pipe.applied = nil // the next child reads the files as they are then
	}
	s.startAt = s.clock.Now().Add(wait)
	s.lookAgainAt(s.startAt)
	return true
}

// warnDaemon warns about child pid, which exited 0 at once, if it left
// children of manager behind (re-parented to it): most likely a server that
// forked itself into the background, out of manager's reach (nginx without
// "daemon off;"). Under -restart that is why it is restarted over and over.
func (s *supervisor) warnDaemon(pid int, leftChildren bool) {
	if leftChildren {
		s.log.Warn("child exited 0 at once, leaving processes behind: it may have put itself in the background; run it in the foreground (nginx: -g 'daemon off;')",
			"pid", pid, "command", s.spec.path)
	}
}

// settle moves on once the child and its leftovers are gone: to a new child
// when restarting, or to the exit. Until then it looks again every
// recheckEvery, since members of the group that other parents reap send
// manager no SIGCHLD.
func (s *supervisor) settle() {
	switch s.phase {
	case running, draining, exited:
		return
	}
	if s.child.pid != 0 {
		if s.tear.stage != gaveUp {
			return
		}
		// SIGKILL did not end the child: manager may not signal it (it
		// made itself root). Waiting longer would wait forever.
		s.log.Error("child cannot be killed; not waiting for it", "pid", s.child.pid)
		s.child.pid, s.code = 0, 128+int(syscall.SIGKILL)
		if s.phase == restarting {
			s.why = "child cannot be stopped for a restart"
			s.beginExit()
		}
	}
	if s.leftoversRemain() {
		s.lookAgainAt(s.clock.Now().Add(recheckEvery))
		return
	}
	// The group is gone: its number is free for an unrelated process to
	// lead a group of its own, and is never signalled or waited on again.
	s.child.pgid = 0
	s.tear.deadline = time.Time{}
	if s.phase == stopping {
		s.phase = exited
		s.log.Info("exiting", "reason", s.why, "code", s.code)
		return
	}
	if now := s.clock.Now(); now.Before(s.startAt) {
		s.lookAgainAt(s.startAt)
		return
	}
	s.startChild(nil)
	if s.phase == running {
		s.idle()
	}
}
