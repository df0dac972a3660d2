package main

import (
	"bytes"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stage is how far a teardown has gone.
type stage int

const (
	calm   stage = iota // nothing is being stopped
	graced              // the stop signal was sent; the deadline ends the grace period
	killed              // SIGKILL was sent; the deadline ends the wait for the dead
	gaveUp              // that wait is over: what remains is not waited for
)

// teardown is the escalation that stops the child and what it left behind:
// the stop signal, -grace, SIGKILL, killWait, then giving up. A second
// signal or a leftover joins the escalation under way; it never restarts
// it.
type teardown struct {
	stage    stage
	deadline time.Time // the end of the grace period, or of killWait; zero otherwise
}

// onSignal handles a signal sent to manager: TERM and INT begin a shutdown,
// -restart-signal restarts the child, a fault signal is logged and dropped,
// every other one is forwarded.
func (s *supervisor) onSignal(sig syscall.Signal) {
	switch {
	case sig == s.cfg.restartSignal:
		s.onRestartSignal(sig)
	case (sig == syscall.SIGTERM || sig == syscall.SIGINT) && s.phase != stopping:
		s.onStopSignal(sig)
	case sig == syscall.SIGCONT && s.child.pid != 0:
		s.resumeJob()
	case slices.Contains(faultSignals[:], sig):
		s.log.Warn("signal not forwarded: a fault signal names a fault of the process it is sent to; send it to the child's pid",
			"signal", signalName(sig), "pid", s.child.pid)
	default:
		s.forward(sig)
	}
}

// onStopSignal handles the first SIGTERM or SIGINT, which stops the child,
// after -stop-delay if there is one: the child keeps running (and getting
// every other signal) while a load balancer stops sending it requests. A
// second one during the delay ends it at once.
func (s *supervisor) onStopSignal(sig syscall.Signal) {
	if s.cfg.stopDelay <= 0 || s.phase != running || s.child.pid == 0 {
		s.shutdown(sig)
		return
	}
	s.log.Info("stop delayed", "signal", signalName(sig), "delay", s.cfg.stopDelay)
	s.phase = draining
	s.drainSig, s.drainEnd = sig, s.clock.Now().Add(s.cfg.stopDelay)
	s.dropChange()
}

// forward sends sig to the child, or to its process group with -group.
func (s *supervisor) forward(sig syscall.Signal) {
	target := s.childTarget()
	if target == 0 {
		s.log.Debug("signal not forwarded: no child", "signal", signalName(sig))
		return
	}
	if s.signal(target, sig) {
		s.log.Debug("signal forwarded", "signal", signalName(sig), "pid", target)
	}
}

// childTarget is the kill(2) pid of the child, or of its group with -group;
// 0 when there is none.
func (s *supervisor) childTarget() int {
	if s.cfg.group {
		return -s.child.pgid
	}
	return s.child.pid
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

// shutdown begins manager's exit: the child gets sig (or -stop-signal if it
// was given), then -grace before its group is killed. No restart happens
// after this, and a -check in progress is abandoned.
func (s *supervisor) shutdown(sig syscall.Signal) {
	s.why = "shutdown on " + signalName(sig)
	received := sig
	if s.cfg.stopExplicit {
		sig = s.cfg.stopSignal
	}
	s.log.Info("shutting down", "signal", signalName(received), "stop-signal", signalName(sig), "grace", s.cfg.grace)
	if s.child.pid == 0 && s.child.started.IsZero() {
		s.code = 128 + int(received) // no child ever ran: manager ends as the signal it got would end one
	}
	s.beginExit()
	if s.child.pid != 0 {
		s.stop(s.childTarget(), sig)
		s.armGrace()
		return
	}
	// The child is already gone: a restart was waiting for its group. As
	// PID 1 the leftovers are now every process, not just that group: they
	// get the stop signal and a grace period of their own.
	if s.pid1 {
		s.tear = teardown{}
	}
	if s.signalLeftovers(sig) {
		s.armGrace()
	}
	s.settle()
}

// beginExit makes the supervisor's goal manager's exit: no change is acted
// on any more, nothing is retried or waited for, and a -check in progress
// is abandoned.
func (s *supervisor) beginExit() {
	s.phase = stopping
	s.pollAt, s.drainEnd, s.startAt = time.Time{}, time.Time{}, time.Time{}
	s.dropChange()
}

// armGrace starts the grace period unless a teardown is under way already:
// a second signal or a leftover does not extend it.
func (s *supervisor) armGrace() {
	if s.tear.stage == calm {
		s.tear = teardown{stage: graced, deadline: s.clock.Now().Add(s.cfg.grace)}
	}
}

// onGrace handles the end of the grace period: everything still there is
// killed, and manager waits a little longer for the kills to be reaped;
// after that, it gives up on what remains. Both lines name what was waited
// for, where manager can list it, so that a slow stop explains itself.
func (s *supervisor) onGrace() {
	target := s.leftoverTarget()
	if s.tear.stage == killed {
		s.log.Warn("processes remain after SIGKILL; not waiting for them", append([]any{"pid", target}, s.nameLeftovers(target, false)...)...)
		s.tear.stage = gaveUp
		s.settle()
		return
	}
	s.log.Warn("grace period over; killing", append([]any{"pid", target, "grace", s.cfg.grace}, s.nameLeftovers(target, false)...)...)
	s.tear = teardown{stage: killed, deadline: s.clock.Now().Add(killWait)}
	if s.child.pid != 0 {
		s.signal(s.child.pid, syscall.SIGKILL) // it may have left its group
	}
	if target != 0 {
		s.signal(target, syscall.SIGKILL)
	}
}

// leftoverTarget is the kill(2) pid that reaches what the child may leave
// behind: its process group, or as PID 1 at exit every process there is.
// kill(-1) from a manager that is not PID 1 would reach the whole machine.
// It is 0, no target, before the first child started (never kill(0),
// manager's own group) and once the child's group was seen empty: its
// number may then belong to an unrelated process's group.
func (s *supervisor) leftoverTarget() int {
	if s.pid1 && s.phase == stopping {
		return -1
	}
	return -s.child.pgid
}

// leftoversRemain reports whether any leftover is to be waited for. Only
// ESRCH means none: EPERM means some exist that manager may not signal (a
// setuid helper), and they are waited for, up to the grace period and
// killWait. As PID 1 at exit, processes that entered the namespace from
// outside are not waited for (see splitOutsiders).
func (s *supervisor) leftoversRemain() bool {
	_, remain := s.lookAtLeftovers()
	return remain
}

// lookAtLeftovers reports whether the leftover target reaches any process,
// and whether any of them is to be waited for. The two differ only as PID
// 1 at exit, where /proc tells the program's processes from those that
// entered from outside. Where it cannot (/proc is not the namespace's own),
// every process is waited for, as kill(-1, 0) finds them.
func (s *supervisor) lookAtLeftovers() (exist, remain bool) {
	target := s.leftoverTarget()
	if target == 0 || s.tear.stage == gaveUp {
		return false, false
	}
	if target == -1 {
		if own, outside, ok := s.census(target); ok {
			return len(own)+len(outside) > 0, len(own) > 0
		}
	}
	exist = s.sys.kill(target, 0) != syscall.ESRCH
	return exist, exist
}

// signalLeftovers sends sig to the leftovers, unless they were already sent
// SIGKILL, and reports whether any is to be waited for. Processes that
// entered from outside get sig too, but are not waited for: PID 1's exit
// ends them.
func (s *supervisor) signalLeftovers(sig syscall.Signal) bool {
	exist, remain := s.lookAtLeftovers()
	if !exist {
		return false
	}
	if s.tear.stage != killed {
		target := s.leftoverTarget()
		attrs := append([]any{"pid", target, "signal", signalName(sig)}, s.nameLeftovers(target, true)...)
		s.log.Info("stopping leftover processes", attrs...)
		s.stop(target, sig)
	}
	return remain
}

// census lists the processes target reaches, as PID 1 only: the
// program's own, which are waited for, and those that entered from
// outside, which are not. Every member of the child's group is the
// program's: a process that entered from outside is in a session of its
// own, and setpgid(2) joins groups of the same session only. ok is false
// where manager does not list processes: not PID 1, where /proc may be a
// whole machine's and a stop looks again every recheckEvery, or where
// /proc is not the namespace's own (kill(2) then decides alone).
func (s *supervisor) census(target int) (own, outside []procInfo, ok bool) {
	if !s.pid1 || target == 0 {
		return nil, nil, false
	}
	ps, ok := s.sys.procs()
	if !ok {
		return nil, nil, false
	}
	if target != -1 {
		for _, p := range ps {
			if p.pgid == -target {
				own = append(own, p)
			}
		}
		return own, nil, true
	}
	own, outside = splitOutsiders(ps)
	return own, outside, true
}

// nameLeftovers returns log attributes naming the processes target reaches
// that are waited for (leftovers=) and, with outsiders, those that entered
// from outside (outside=); none where manager does not list processes.
func (s *supervisor) nameLeftovers(target int, outsiders bool) []any {
	own, outside, _ := s.census(target)
	var attrs []any
	if len(own) > 0 {
		attrs = append(attrs, "leftovers", nameProcs(own))
	}
	if outsiders && len(outside) > 0 {
		attrs = append(attrs, "outside", nameProcs(outside))
	}
	return attrs
}

// procInfo is a process of manager's PID namespace, as /proc shows it.
type procInfo struct {
	pid, ppid, pgid int
	name            string // its command name (comm): the executable's file name, cut to 15 bytes, unless it renamed itself
}

// maxNamed bounds the processes a log line names; the rest are counted.
const maxNamed = 10

// nameProcs names processes in a log attribute, as "name[pid]" in the
// order they come (/proc lists them in pid order), the first maxNamed of
// them, then how many more there are.
func nameProcs(ps []procInfo) string {
	var b strings.Builder
	for i, p := range ps[:min(len(ps), maxNamed)] {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(p.name + "[" + strconv.Itoa(p.pid) + "]")
	}
	if len(ps) > maxNamed {
		b.WriteString(" and " + strconv.Itoa(len(ps)-maxNamed) + " more")
	}
	return b.String()
}

// splitOutsiders splits the processes of manager's PID namespace, manager
// being PID 1, into the program's own and those that entered from outside.
// A process whose parents lead to PID 1 is the program's: a descendant of
// the child, or an orphan re-parented to manager. One whose parents lead
// to parent 0 without passing PID 1 was put there by setns(2) (docker
// exec, kubectl exec, nsenter): its parent is outside the namespace. It is
// no part of the program, and the kernel ends it when PID 1 exits; waiting
// for it, an interactive shell that ignores SIGTERM, would hold every stop
// for the whole grace period. A process whose parent is missing (it has
// just exited) goes to PID 1, and so does one the walk cannot place.
func splitOutsiders(ps []procInfo) (own, outside []procInfo) {
	parent := make(map[int]int, len(ps))
	for _, p := range ps {
		parent[p.pid] = p.ppid
	}
	for _, p := range ps {
		if p.pid == 1 {
			continue
		}
		up := p.ppid
		for steps := 0; up > 1 && steps < len(ps); steps++ { // bounded: a pid reused during the listing may close a loop
			next, ok := parent[up]
			if !ok {
				up = 1
				break
			}
			up = next
		}
		if up == 0 {
			outside = append(outside, p)
		} else {
			own = append(own, p)
		}
	}
	return own, outside
}

// readProcs lists the processes of manager's PID namespace, and reports
// whether it could. The /proc mounted must be the namespace's own, where
// /proc/self names manager by its own pid (as /proc/self/stat would): a
// /proc of another namespace (the host's, when the PID namespace was made
// without mounting one, as by unshare --pid alone) lists other processes.
func readProcs() ([]procInfo, bool) {
	if self, err := os.Readlink("/proc/self"); err != nil || self != strconv.Itoa(os.Getpid()) {
		return nil, false
	}
	names, err := osFS{}.readDir("/proc")
	if err != nil {
		return nil, false
	}
	var ps []procInfo
	var buf [256]byte // "pid (comm) state ppid pgrp" fits: comm is at most 64 bytes
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		fd, err := syscall.Open("/proc/"+name+"/stat", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			continue // gone since the directory was read
		}
		n, err := syscall.Read(fd, buf[:])
		syscall.Close(fd)
		if err != nil {
			continue
		}
		if p, ok := parseStat(pid, buf[:max(n, 0)]); ok {
			ps = append(ps, p)
		}
	}
	return ps, true
}

// parseStat reads a process's parent, group and name from the start of
// /proc/PID/stat: "pid (comm) state ppid pgrp ...". The name may hold
// spaces and parentheses itself, so it ends at the last ")".
func parseStat(pid int, b []byte) (procInfo, bool) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return procInfo{}, false
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 3 {
		return procInfo{}, false
	}
	ppid, err := strconv.Atoi(f[1])
	pgid, err2 := strconv.Atoi(f[2])
	if err != nil || err2 != nil {
		return procInfo{}, false
	}
	return procInfo{pid: pid, ppid: ppid, pgid: pgid, name: string(b[open+1 : end])}, true
}

// ttyState is what manager knows of its controlling terminal.
type ttyState int

const (
	ttyUnasked ttyState = iota // not asked about yet
	ttySeen                    // manager has one
	ttyGone                    // it has none, or it hung up: never asked about again
)

// holdsTerminal reports whether manager's process group is the foreground
// group of its controlling terminal: a shell's foreground job, or a
// container's PID 1 given a terminal.
func (s *supervisor) holdsTerminal() bool {
	fg := s.terminalGroup()
	return fg != 0 && fg == s.pgrp
}

// terminalGroup returns the foreground process group of manager's
// controlling terminal, 0 when it has none. A terminal that hung up (ssh
// lost, window closed) is gone for good: the kernel detached it from the
// session, and its program, if it survived the SIGHUP, runs on without it.
func (s *supervisor) terminalGroup() int {
	if s.tty == ttyGone {
		return 0
	}
	fg, err := s.sys.foreground()
	switch {
	case err != nil:
		s.log.Warn("cannot reach the terminal", "error", err)
	case fg != 0:
		s.tty = ttySeen
	case s.tty == ttySeen:
		s.loseTerminal(errNoTerminal)
	default:
		s.tty = ttyGone
	}
	return fg
}

// loseTerminal forgets manager's controlling terminal, which hung up, and
// says so once: every child from now on runs without it.
func (s *supervisor) loseTerminal(err error) {
	s.tty = ttyGone
	s.log.Warn("terminal gone; the child runs without it", "error", err)
}

// reclaimTerminal takes the terminal back for manager's own group when the
// child that held it has exited and another is to follow. The terminal's
// foreground group would otherwise stay the exited child's, empty or left
// to leftovers being stopped, and a Ctrl-C would reach nobody but them,
// while manager's own SIGINT is what ends a backoff. The next child takes
// the terminal when it starts. A terminal the shell took meanwhile (bg) is
// the shell's.
func (s *supervisor) reclaimTerminal() {
	if !s.child.term {
		return
	}
	s.child.term = false
	if s.terminalGroup() != s.child.pgid {
		return
	}
	if err := s.sys.giveTerminal(s.pgrp); err != nil {
		s.log.Warn("cannot take the terminal back", "pid", s.pgrp, "error", err)
	}
}

// interrupted reports whether the child, which held the terminal, died of
// its Ctrl-C or Ctrl-\ (SIGINT, SIGQUIT): there they reach the child's group
// only, never manager, so the user's way to end manager is to end the
// child that way. Such a death is the user's choice, not a failure to
// restart from, as systemd's Restart=on-failure spares a service's clean
// signals.
func (s *supervisor) interrupted(ws syscall.WaitStatus) bool {
	return s.child.term && ws.Signaled() && (ws.Signal() == syscall.SIGINT || ws.Signal() == syscall.SIGQUIT)
}

// onChildStopped handles the child being stopped. At a terminal (Ctrl-Z,
// or a read from the terminal by a child in the background), the shell
// waits for manager, not for the child: manager stops itself too, so that
// the shell sees its job stopped and gives the prompt back, as dumb-init
// does. A child stopped for using the terminal while manager's own group
// holds it, though, was started in the background and manager since
// brought to the foreground: bash's fg sends a running job no SIGCONT, so
// this is the first manager hears of it, and it hands the child the
// terminal and continues it. As PID 1 there is no such shell, and the
// kernel would not stop PID 1 anyway.
func (s *supervisor) onChildStopped(sig syscall.Signal) {
	s.log.Info("child stopped", "pid", s.child.pid, "signal", signalName(sig))
	if s.pid1 || s.phase != running && s.phase != draining {
		return
	}
	byTerminal := sig == syscall.SIGTTIN || sig == syscall.SIGTTOU
	if !s.child.term {
		s.passTerminal()
		if s.child.term && byTerminal {
			s.continueJob()
			return
		}
	}
	if !s.child.term && !byTerminal {
		return
	}
	s.child.job = true
	s.log.Info("stopping manager too, as the shell's job", "pid", os.Getpid())
	s.sys.kill(os.Getpid(), syscall.SIGSTOP)
}

// resumeJob handles SIGCONT while a child runs: the shell's fg or bg may
// have continued manager, as its job. After fg, manager's group holds the
// terminal, and hands it to the child's group (stopped as a whole by
// Ctrl-Z, or started while manager was in the background). A child manager
// stopped with is continued with its group; otherwise SIGCONT is forwarded.
func (s *supervisor) resumeJob() {
	job := s.child.job
	s.child.job = false
	s.passTerminal()
	if !job {
		s.forward(syscall.SIGCONT)
		return
	}
	s.continueJob()
}

// continueJob continues the child's group, which the terminal stopped as
// a whole.
func (s *supervisor) continueJob() {
	s.log.Info("continuing child", "pid", -s.child.pgid)
	s.signal(-s.child.pgid, syscall.SIGCONT)
}

// passTerminal hands the terminal to the child's group if manager's group
// holds it, and records whether the child's group holds it now.
func (s *supervisor) passTerminal() {
	switch fg := s.terminalGroup(); fg {
	case 0:
	case s.pgrp:
		err := s.sys.giveTerminal(s.child.pgid)
		if err != nil {
			s.log.Warn("cannot give the terminal to the child", "pid", -s.child.pgid, "error", err)
		}
		s.child.term = err == nil
	default:
		s.child.term = fg == s.child.pgid
	}
}
