package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
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
	checkPid  int       // the running -check; 0 when none
	checkEnd  time.Time // the -check is killed then; zero when none runs
	retry     backoff   // of hashing or checking again, after that lacked resources
	retryAt   time.Time // no hash or check starts before this

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
	s.warnMounts(first.snap)
}

// onPoll starts a look at the watched paths, beside the loop: a large
// directory must never delay forwarding, reaping or a timer. The next poll
// is armed when its result is in, so that looks never pile up.
func (s *supervisor) onPoll() {
	s.look(pollJob{paths: s.cfg.configs, prev: s.pipe.watch.last, dirs: s.pipe.looks})
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
	if appeared := vanished(s.cfg.configs, w.last, before); appeared != nil {
		s.warnMounts(w.last)
	}
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
		return
	}
	p.retry.reset()
	p.step, p.since, p.candidate = checking, s.clock.Now(), candidate
	p.checkPid, p.checkEnd = pid, s.clock.Now().Add(s.cfg.grace)
	s.log.Debug("check started", "pid", pid)
}

// relayCheckOutput is the check's procSpec.relay: each line the check writes
// becomes a log line; a line too long to log whole says how long it was.
func (s *supervisor) relayCheckOutput(line string, length int) {
	if length > len(line) {
		s.log.Info("check output", "line", line, "length", length)
		return
	}
	s.log.Info("check output", "line", line)
}

// onCheckExit applies the checked change if the check passed.
func (s *supervisor) onCheckExit(ws syscall.WaitStatus) {
	candidate := s.pipe.candidate
	s.endCheck()
	if ws.Exited() && ws.ExitStatus() == 0 {
		s.log.Info("check passed")
		s.apply(candidate)
	} else {
		s.log.Warn("check failed; keeping the running child", append([]any{"command", strings.Join(s.cfg.check, " ")}, describeStatus(ws)...)...)
		s.pipe.force = false
	}
	s.idle()
}

// onCheckTimeout kills a -check that outlived -grace; its status then comes
// through the reaper as a failure.
func (s *supervisor) onCheckTimeout() {
	s.log.Warn("check timed out; killing it", "pid", s.pipe.checkPid, "grace", s.cfg.grace)
	s.sys.kill(-s.pipe.checkPid, syscall.SIGKILL)
}

// endCheck ends the -check's step: whatever is left in its process group
// is killed, since a check leaves nothing behind, whether it exited or its
// verdict no longer matters.
func (s *supervisor) endCheck() {
	p := &s.pipe
	if p.step != checking {
		return
	}
	s.sys.kill(-p.checkPid, syscall.SIGKILL)
	p.step, p.checkPid, p.checkEnd, p.candidate = idle, 0, time.Time{}, nil
}

// dropChange forgets the change in flight and any pending one: the child
// they were for is going away.
func (s *supervisor) dropChange() {
	s.endCheck()
	s.pipe.pending, s.pipe.force = false, false
	s.pipe.retryAt = time.Time{}
}

// apply makes next the content the child runs with: by the reload signal,
// or by stopping the child so that settle starts a new one.
func (s *supervisor) apply(next content) {
	p := &s.pipe
	p.applied = next
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

// warnMounts warns once about each watched file of snap that is a
// single-file mount (docker run -v file:file, a Kubernetes subPath): it is
// pinned to the file that was there when the container started, so a
// replacement of its source (an editor's rename, every ConfigMap update)
// never shows through.
func (s *supervisor) warnMounts(snap []stamp) {
	for _, p := range s.cfg.configs {
		i := stampOf(snap, p)
		if s.warned.mounts[p] || i < 0 || snap[i].fp.isDir() || !isFileMount(p) {
			continue
		}
		s.warned.mounts[p] = true
		s.log.Warn("config is a single-file mount", "path", p,
			"hint", "an update that replaces the file (a ConfigMap update, an editor's save) never shows through it: mount the directory instead and watch that")
	}
}

// isFileMount reports whether path, a file, symlinks followed, is itself a
// mount point: a bind mount of a single file. A ConfigMap key (a symlink
// into its volume) or a file in a mounted directory is not one.
func isFileMount(path string) bool {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return false
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return false
	}
	points, err := mountPoints()
	return err == nil && points[real]
}

// mountPoints reads the mount points of manager's mount namespace from
// /proc/self/mountinfo, whose fifth field is one, with space, tab, newline
// and backslash escaped in octal.
func mountPoints() (map[string]bool, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			out[unescapeMountPath(f[4])] = true
		}
	}
	return out, nil
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
