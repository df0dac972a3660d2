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
	case sig == syscall.SIGCONT && s.child.job:
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
// It is 0, no target, before the first child started (never kill(0),
// manager's own group) and once the child's group was seen empty: its
// number may then belong to an unrelated process's group.
func (s *supervisor) leftoverTarget() int {
	if s.pid1 && s.phase == stopping {
		return -1
	}
	return -s.child.pgid
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

// onChildStopped handles the child being stopped. At a terminal (a shell's
// job, Ctrl-Z), the shell waits for manager, not for the child: manager
// stops itself too, so that the shell sees its job stopped and gives the
// prompt back, as dumb-init does. As PID 1 there is no such shell, and the
// kernel would not stop PID 1 anyway.
func (s *supervisor) onChildStopped(sig syscall.Signal) {
	s.log.Info("child stopped", "pid", s.child.pid, "signal", signalName(sig))
	if !s.spec.foreground || s.pid1 || s.phase != running && s.phase != draining {
		return
	}
	s.child.job = true
	s.log.Info("stopping manager too, as the shell's job", "pid", os.Getpid())
	syscall.Kill(os.Getpid(), syscall.SIGSTOP)
}

// resumeJob continues a child manager stopped with: the shell's fg or bg
// continued manager. After fg, manager's group holds the terminal again, and
// hands it back to the child's group, which the terminal stopped as a whole.
func (s *supervisor) resumeJob() {
	s.child.job = false
	if ownsTerminal() {
		if err := giveTerminal(s.child.pgid); err != nil {
			s.log.Warn("cannot give the terminal back to the child", "pid", -s.child.pgid, "error", err)
		}
	}
	s.log.Info("continuing child", "pid", -s.child.pgid)
	s.signal(-s.child.pgid, syscall.SIGCONT)
}
