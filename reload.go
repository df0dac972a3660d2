package main

import (
	"errors"
	"io/fs"
	"maps"
	"strings"
	"syscall"
	"time"
)

// step is where a change is in the pipeline.
type step int

const (
	idle     step = iota // nothing under way
	hashing              // a hash is under way; its result comes to onHashed
	checking             // -check runs on candidate
)

// pipeline is the way of a change from a settled poll to the child: its
// content hashed, compared with what the child runs with, checked by
// -check, then applied by the reload signal or a restart. One change at a
// time: changes that settle meanwhile are one more action after it.
type pipeline struct {
	watch     debouncer // what the polls saw
	step      step
	since     time.Time // when the step under way began
	applied   content   // what the child was started or last reloaded with; nil until hashed
	candidate content   // what -check is checking, to become applied
	pending   bool      // a change settled that is not acted on yet
	force     bool      // -restart-signal asked for a restart: act even on unchanged content
	startSnap []stamp   // the watched paths as the child about to be hashed for started with them
	looks     []dirLook // what the last look at the watched directories left for the next
	retry     backoff   // of hashing or checking again, after that lacked resources
	retryAt   time.Time // no hash or check starts before this

	checkPid    int                 // the running -check; 0 when none
	checkEnd    time.Time           // the -check is killed then; zero when none runs or it exited
	checkStatus *syscall.WaitStatus // its exit status; nil until it exited
	checkOutput *outputEnd          // the end of its output; nil until it ended
	firstCheck  bool                // it runs before the first start, which waits for its verdict

	refused refusal // a change the check refused, which is on disk but not what the child runs with

	firstSeen   time.Time // when the change not settled yet was first seen; zero when there is none
	pendingSeen time.Time // when the pending change was first seen
	actingSeen  time.Time // when the change in flight was first seen
	names       []string  // the entries of the change in flight
	selfMade    int       // restarts in a row for changes first seen while the child was starting
}

// selfMadeWindow is how soon after a start a change looks like one the
// program made itself (a pid file in its watched directory), and
// selfMadeWarn how many restarts in a row for such changes are warned
// about: each restart makes the next change.
const (
	selfMadeWindow = 5 * time.Second
	selfMadeWarn   = 3
)

// refusal is a change the check refused, left on disk while the child runs
// on with what it had: the next start of the program (the container's, or
// -restart's after an exit) will read it, and fail with what the check
// saw. It is said at WARN when refused, every remindEvery while it lasts,
// and at manager's exit.
type refusal struct {
	paths    string    // the entries that differ from what the child runs with; "" when nothing is refused
	sums     content   // what was refused
	at       time.Time // when
	remindAt time.Time // the next reminder; zero when nothing is refused
}

// remindEvery is how often a refused change on disk is brought up again.
const remindEvery = time.Minute

// warnings remembers what was said once about the watched paths.
type warnings struct {
	mounts     map[string]bool // single-file mounts warned about
	unreadable map[string]bool // files reported unreadable, until they are readable
}

// watchFrom starts change detection from snap, the paths as the first
// child starts with them, and names what the user may not expect.
func (s *supervisor) watchFrom(first pollResult) {
	s.pipe.watch = newDebouncer(s.cfg.debounce, first.snap)
	s.pipe.looks = first.dirs
	s.warnMissing(first.snap)
	s.warnMounts(first.mounts)
}

// onPoll starts a look at the watched paths, beside the loop: a large
// directory must never delay forwarding, reaping or a timer. The next poll
// is armed when its result is in, so that looks never pile up.
func (s *supervisor) onPoll() {
	s.look(pollJob{paths: s.cfg.configs, prev: s.pipe.watch.last, dirs: s.pipe.looks, mounts: true})
}

// onPolled takes a look's result, and acts once a change has settled.
func (s *supervisor) onPolled(r pollResult) {
	if s.phase == stopping || s.phase == exited {
		return
	}
	s.pollAt = s.clock.Now().Add(s.cfg.poll)
	s.pipe.looks = r.dirs
	w := &s.pipe.watch
	before := w.last
	o := w.observe(s.clock.Now(), r.snap, r.changed)
	for _, p := range vanished(s.cfg.configs, before, w.last) {
		s.log.Warn("config missing", "path", p)
	}
	s.warnMounts(r.mounts)
	for _, p := range o.busy {
		s.log.Warn("config busy: changing for too long; changes beside it no longer wait for it (move it out of the watched directory)",
			"path", p, "after", w.busyAfter)
	}
	for _, p := range o.quiet {
		s.log.Info("config quiet again", "path", p)
	}
	if o.fresh && s.pipe.firstSeen.IsZero() {
		s.pipe.firstSeen = s.clock.Now()
	}
	if o.settled {
		s.pipe.pending = true
		s.pipe.pendingSeen, s.pipe.firstSeen = s.pipe.firstSeen, time.Time{}
		s.idle()
	}
}

// idle moves the pipeline on if nothing else is under way: changes that
// settle during a hash, a check or a restart cause one more action after
// it.
func (s *supervisor) idle() {
	p := &s.pipe
	if s.phase != running || p.step != idle {
		return
	}
	if now := s.clock.Now(); now.Before(p.retryAt) {
		s.lookAgainAt(p.retryAt)
		return
	}
	switch {
	case p.applied == nil:
		// What the child started with is not known yet (its hash failed,
		// or it was restarted after an exit): changes wait for it.
		s.requestHash(baseline)
	case p.pending:
		p.pending = false
		p.actingSeen = p.pendingSeen
		s.requestHash(change)
	}
}

// requestHash starts hashing the watched paths, off the loop.
func (s *supervisor) requestHash(purpose hashPurpose) {
	p := &s.pipe
	p.step, p.since = hashing, s.clock.Now()
	s.log.Debug("hashing config", "purpose", purpose)
	before := p.watch.last
	if purpose == baseline {
		before = p.startSnap
	}
	s.hash(hashJob{paths: s.cfg.configs, purpose: purpose, before: before, busy: p.watch.busyNow(), gen: s.child.gen})
}

// onHashed takes a hash's result: the content the child runs with, or a
// change to act on.
func (s *supervisor) onHashed(r hashResult) {
	p := &s.pipe
	p.step = idle
	s.log.Debug("config hashed", "purpose", r.job.purpose, "took", s.clock.Now().Sub(p.since).Round(time.Millisecond))
	switch {
	case s.phase == stopping || s.phase == exited:
		return
	case r.job.gen != s.child.gen:
		// Asked for a child that has since been replaced: what the new
		// one runs with is hashed anew, then the change if any.
		p.pending = p.pending || r.job.purpose == change
		s.idle()
		return
	case r.err != nil:
		p.pending = true
		s.retryWork("cannot read config", r.err)
		return
	}
	p.retry.reset()
	s.noteUnreadable(r.bad)
	if r.job.purpose == baseline {
		if p.refused.paths != "" && maps.Equal(p.refused.sums, r.sums) {
			s.log.Warn("child started with the configuration the check refused", "path", p.refused.paths)
		}
		s.endRefusal() // whatever it is, the child runs with what is on disk now
		p.applied = r.sums
		if !r.stable {
			// The files changed while they were read: what the child
			// read is unknown, so the next change that settles counts.
			p.applied = content{}
		}
		s.idle()
		return
	}
	if s.phase != running {
		p.pending = s.phase == restarting // a restart is under way: one more action after it
		return
	}
	if !r.stable {
		return // they changed while hashed: the debouncer has seen it, and will settle again
	}
	names, next := p.compare(s.cfg.configs, r.sums)
	if names == nil && !p.force {
		s.log.Debug("config unchanged")
		if p.refused.paths != "" {
			s.log.Info("config on disk is again what the child runs with", "path", p.refused.paths)
			s.endRefusal()
		}
		s.idle()
		return
	}
	if names != nil {
		s.log.Info("config changed", "path", strings.Join(names, ","))
	}
	p.names = names
	if s.cfg.check == nil {
		s.apply(next)
		return
	}
	s.startCheck(next)
}

// compare decides what a change's hash means: the entries that differ from
// what the child runs with (nil: none), and the content to apply.
func (p *pipeline) compare(paths []string, now content) (names []string, next content) {
	changed, next := changedPaths(paths, p.applied, now)
	for _, path := range changed {
		names = append(names, changedEntries(path, p.applied, now)...)
	}
	return names, next
}

// retryWork arms the pipeline's retry after what lacked resources.
func (s *supervisor) retryWork(what string, err error) {
	wait := s.pipe.retry.next()
	s.log.Warn(what+"; retrying", "error", err, "delay", wait)
	s.pipe.retryAt = s.clock.Now().Add(wait)
	s.lookAgainAt(s.pipe.retryAt)
}

// noteUnreadable warns once about each watched file that exists but cannot
// be read: its changes are seen only as changes of its error.
func (s *supervisor) noteUnreadable(bad unreadable) {
	for p, err := range bad {
		if !s.warned.unreadable[p] {
			s.log.Warn("config unreadable; only its presence is watched", "path", p, "error", err)
			s.warned.unreadable[p] = true
		}
	}
	for p := range s.warned.unreadable {
		if _, still := bad[p]; !still {
			s.log.Info("config readable again", "path", p)
			delete(s.warned.unreadable, p)
		}
	}
}

// startCheck runs -check on the candidate content.
func (s *supervisor) startCheck(candidate content) {
	p := &s.pipe
	pid, err := s.sys.start(s.checkSpec)
	switch {
	case err != nil && startLacksResources(err):
		p.pending = true
		s.retryWork("cannot start check", err)
		return
	case err != nil:
		s.log.Warn("check failed; keeping the running child", "command", strings.Join(s.cfg.check, " "), "error", err)
		p.force = false
		s.refuse(candidate)
		return
	}
	p.retry.reset()
	s.beginCheck(pid, candidate)
}

// checkFirst runs -check before the first start, so that a configuration
// it refuses is named before the program reads it, and reports whether it
// runs. The start waits for the verdict, then happens whatever it is, as
// it would without manager; a check that cannot be started is no reason
// to wait, nor to retry.
func (s *supervisor) checkFirst() bool {
	pid, err := s.sys.start(s.checkSpec)
	if err != nil {
		s.log.Warn("check failed; starting the child anyway", "command", strings.Join(s.cfg.check, " "), "error", err)
		return false
	}
	s.beginCheck(pid, nil)
	s.pipe.firstCheck = true
	// The start waits no longer than the check can last: it is killed
	// after -grace, and its output given up killWait later; the verdict is
	// in by then, unless the check's exit status never comes (a check
	// manager may not kill).
	s.startAt = s.pipe.checkEnd.Add(2 * killWait)
	s.lookAgainAt(s.startAt)
	return true
}

// beginCheck makes pid, a -check just started on candidate, the pipeline's
// step.
func (s *supervisor) beginCheck(pid int, candidate content) {
	p := &s.pipe
	p.step, p.since, p.candidate = checking, s.clock.Now(), candidate
	p.checkPid, p.checkEnd = pid, s.clock.Now().Add(s.cfg.grace)
	p.checkStatus, p.checkOutput = nil, nil
	s.log.Debug("check started", "pid", pid)
}

// logCheckOutput is the check's procSpec.relay: each line the check writes
// becomes a log line as it comes, from the relay's goroutine (the logger
// is safe for concurrent use), so that a check that takes long shows what
// it says when it says it, and the loop wakes once per check, not per
// line. A line too long to log whole says how long it was.
func logCheckOutput(log *logger) func(line string, length int) {
	return func(line string, length int) {
		if length > len(line) {
			log.Info("check output", "line", line, "length", length)
			return
		}
		log.Info("check output", "line", line)
	}
}

// onCheckExit takes the check's exit status. What it left in its process
// group is killed now, since a check leaves nothing behind, and what it
// left could hold its output open. The verdict waits for that output.
func (s *supervisor) onCheckExit(ws syscall.WaitStatus) {
	p := &s.pipe
	s.sys.kill(-p.checkPid, syscall.SIGKILL)
	p.checkStatus, p.checkEnd = &ws, time.Time{}
	s.judgeCheck()
}

// onCheckOutput takes the end of a check's output, from its relay.
func (s *supervisor) onCheckOutput(o outputEnd) {
	p := &s.pipe
	if p.step != checking || o.pid != p.checkPid {
		return // of a check abandoned since
	}
	if o.open {
		s.log.Warn("check output still open; no longer read (a process the check started outlived it)", "pid", o.pid, "after", s.checkSpec.relayFor)
	}
	p.checkOutput = &o
	s.judgeCheck()
}

// judgeCheck gives the check's verdict once both its exit status and the
// end of its output are in, whichever came first: a failure's log line
// carries the last of the output, so that why the check failed is seen at
// any log level. A passed check applies its change; a failed one leaves a
// refusal on disk.
func (s *supervisor) judgeCheck() {
	p := &s.pipe
	if p.checkStatus == nil || p.checkOutput == nil {
		return
	}
	ws, tail, candidate, first := *p.checkStatus, p.checkOutput.tail, p.candidate, p.firstCheck
	s.endCheck()
	passed := ws.Exited() && ws.ExitStatus() == 0
	attrs := append([]any{"command", strings.Join(s.cfg.check, " ")}, describeStatus(ws)...)
	if len(tail) > 0 {
		attrs = append(attrs, "output", strings.Join(tail, "\n"))
	}
	switch {
	case first && passed:
		s.log.Info("check passed; starting the child")
		s.startFirst()
	case first:
		s.log.Warn("check failed; starting the child anyway", attrs...)
		s.startFirst()
	case passed:
		s.log.Info("check passed")
		s.apply(candidate)
	default:
		s.log.Warn("check failed; keeping the running child", attrs...)
		p.force = false
		s.refuse(candidate)
	}
	s.idle()
}

// startFirst starts the first child, which waited for the first check's
// verdict, unless it has started since, or manager is exiting.
func (s *supervisor) startFirst() {
	if s.phase != starting {
		return
	}
	s.startAt = time.Time{}
	s.startChild(nil)
}

// onCheckTimeout kills a -check that outlived -grace; its status then comes
// through the reaper as a failure.
func (s *supervisor) onCheckTimeout() {
	s.log.Warn("check timed out; killing it", "pid", s.pipe.checkPid, "grace", s.cfg.grace)
	s.sys.kill(-s.pipe.checkPid, syscall.SIGKILL)
}

// endCheck ends the -check's step: whatever is left in its process group
// is killed, since a check leaves nothing behind, whether it exited or its
// verdict no longer matters. The end of its output, if it comes later,
// finds no check to belong to.
func (s *supervisor) endCheck() {
	p := &s.pipe
	if p.step != checking {
		return
	}
	if p.checkStatus == nil {
		s.sys.kill(-p.checkPid, syscall.SIGKILL) // at its exit, onCheckExit did
	}
	p.step, p.checkPid, p.checkEnd, p.candidate = idle, 0, time.Time{}, nil
	p.checkStatus, p.checkOutput, p.firstCheck = nil, nil, false
}

// refuse remembers that the check refused candidate, unless that is what
// the child runs with (a restart on demand with unchanged files): then no
// refused change is on disk any more.
func (s *supervisor) refuse(candidate content) {
	names, _ := s.pipe.compare(s.cfg.configs, candidate)
	if names == nil {
		s.endRefusal()
		return
	}
	now := s.clock.Now()
	s.pipe.refused = refusal{paths: strings.Join(names, ","), sums: candidate, at: now, remindAt: now.Add(remindEvery)}
}

// remindRefused says again that a change the check refused is on disk.
func (s *supervisor) remindRefused() {
	s.warnRefused()
	s.pipe.refused.remindAt = s.clock.Now().Add(remindEvery)
}

// warnRefused says that the next start will read a change the check
// refused: the running child does not, so nothing shows it but this.
func (s *supervisor) warnRefused() {
	r := &s.pipe.refused
	s.log.Warn("the configuration on disk was refused by the check; the next start will use it",
		"path", r.paths, "for", s.clock.Now().Sub(r.at).Round(time.Second))
}

// endRefusal forgets the refused change: the check passed another one, or
// the child runs with what is on disk.
func (s *supervisor) endRefusal() { s.pipe.refused = refusal{} }

// dropChange forgets the change in flight and any pending one: the child
// they were for is going away. At manager's exit, a refused change on disk
// is named a last time: the container's next start will read it.
func (s *supervisor) dropChange() {
	if s.phase == stopping && s.pipe.refused.paths != "" {
		s.warnRefused() // the last word on it: the next start is the container's
		s.endRefusal()
	}
	s.endCheck()
	s.pipe.pending, s.pipe.force = false, false
	s.pipe.retryAt = time.Time{}
}

// apply makes next the content the child runs with: by the reload signal,
// or by stopping the child so that settle starts a new one.
func (s *supervisor) apply(next content) {
	p := &s.pipe
	p.applied = next
	s.endRefusal()
	forced := p.force
	p.force = false
	if s.cfg.reloadSignal != 0 && !forced {
		s.log.Info("reloading", "signal", signalName(s.cfg.reloadSignal), "pid", s.child.pid)
		s.forward(s.cfg.reloadSignal)
		return
	}
	s.log.Info("restarting", "pid", s.child.pid, "signal", signalName(s.cfg.stopSignal))
	s.noteSelfMade(forced)
	s.phase = restarting
	s.stop(s.childTarget(), s.cfg.stopSignal)
	s.armGrace()
}

// noteSelfMade counts the restarts in a row for changes first seen while the
// child was starting, and warns once there are selfMadeWarn: a program that
// writes into its own watched directory restarts itself forever, each
// start making the next change.
func (s *supervisor) noteSelfMade(forced bool) {
	p := &s.pipe
	seenAfter := p.actingSeen.Sub(s.child.started)
	if forced || p.names == nil || p.actingSeen.IsZero() || seenAfter > selfMadeWindow+s.cfg.poll {
		p.selfMade = 0
		return
	}
	p.selfMade++
	if p.selfMade == selfMadeWarn {
		s.log.Warn("config changed right after each start: the program may be writing into what manager watches; move what it writes elsewhere",
			"path", strings.Join(p.names, ","), "restarts", p.selfMade)
	}
}

// onRestartSignal restarts the child as a change does (through -check, the
// stop signal, -grace, its whole group gone, then a new one), whether or
// not the files changed, and also with -reload-signal: on demand means a
// fresh process.
func (s *supervisor) onRestartSignal(sig syscall.Signal) {
	switch s.phase {
	case draining, stopping:
		s.log.Info("restart requested; ignored while stopping", "signal", signalName(sig))
		return
	case restarting, starting:
		s.log.Info("restart requested; a new child is on its way already", "signal", signalName(sig))
		return
	}
	s.log.Info("restart requested", "signal", signalName(sig))
	s.pipe.force, s.pipe.pending = true, true
	s.idle()
}

// warnMissing names the watched paths that cannot be seen at start: missing,
// unless they are the historical default, which most uses of manager never
// create, or on a way manager may not search.
func (s *supervisor) warnMissing(snap []stamp) {
	for _, p := range s.cfg.configs {
		if has(snap, p) {
			continue
		}
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

// warnMounts warns once about each watched file of mounts, found to be a
// single-file mount (docker run -v file:file, a Kubernetes subPath) when it
// appeared: it is pinned to the file that was there when the container
// started, so a replacement of its source (an editor's rename, every
// ConfigMap update) never shows through.
func (s *supervisor) warnMounts(mounts []string) {
	for _, p := range mounts {
		if s.warned.mounts[p] {
			continue
		}
		s.warned.mounts[p] = true
		s.log.Warn("config is a single-file mount", "path", p,
			"hint", "an update that replaces the file (a ConfigMap update, an editor's save) never shows through it: mount the directory instead and watch that")
	}
}
