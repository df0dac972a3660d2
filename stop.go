package main

import (
	"os"
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
// -restart-signal restarts the child, every other one is forwarded.
func (s *supervisor) onSignal(sig syscall.Signal) {
	switch {
	case sig == s.cfg.restartSignal:
		s.onRestartSignal(sig)
	case (sig == syscall.SIGTERM || sig == syscall.SIGINT) && s.phase != stopping:
		s.onStopSignal(sig)
	case sig == syscall.SIGCONT && s.child.pid != 0:
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
	s.log.Info("shutting down", "signal", signalName(sig), "grace", s.cfg.grace)
	s.why = "shutdown on " + signalName(sig)
	if s.cfg.stopExplicit {
		sig = s.cfg.stopSignal
	}
	if s.child.pid == 0 && s.child.started.IsZero() {
		s.code = 128 + int(sig) // no child ever ran: manager ends as the signal would end one
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
// after that, it gives up on what remains.
func (s *supervisor) onGrace() {
	if s.tear.stage == killed {
		s.log.Warn("processes remain after SIGKILL; not waiting for them", "pid", s.leftoverTarget())
		s.tear.stage = gaveUp
		s.settle()
		return
	}
	s.log.Warn("grace period over; killing", "pid", s.leftoverTarget(), "grace", s.cfg.grace)
	s.tear = teardown{stage: killed, deadline: s.clock.Now().Add(killWait)}
	if s.child.pid != 0 {
		s.signal(s.child.pid, syscall.SIGKILL) // it may have left its group
	}
	if target := s.leftoverTarget(); target != 0 {
		s.signal(target, syscall.SIGKILL)
	}
}

// leftoverTarget is the kill(2) pid that reaches what the child may leave
// behind: its process group, or as PID 1 at exit every process there is.
// kill(-1) from a manager that is not PID 1 would reach the whole machine.
func (s *supervisor) leftoverTarget() int {
	if s.pid1 && s.phase == stopping {
		return -1
	}
	return -s.child.pgid // 0 when no child ever started: no target, never kill(0), manager's own group
}

// leftoversRemain reports whether any leftover exists. Only ESRCH means
// none: EPERM means some exist that manager may not signal (a setuid
// helper), and they are waited for, up to the grace period and killWait.
func (s *supervisor) leftoversRemain() bool {
	target := s.leftoverTarget()
	return target != 0 && s.tear.stage != gaveUp && s.sys.kill(target, 0) != syscall.ESRCH
}

// signalLeftovers sends sig to the leftovers, unless they were already sent
// SIGKILL, and reports whether any exist.
func (s *supervisor) signalLeftovers(sig syscall.Signal) bool {
	if !s.leftoversRemain() {
		return false
	}
	if s.tear.stage != killed {
		target := s.leftoverTarget()
		s.log.Info("stopping leftover processes", "pid", target, "signal", signalName(sig))
		s.stop(target, sig)
	}
	return true
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
