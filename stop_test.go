package main

// Tests of stopping: signals forwarded, the shutdown and its grace period,
// leftovers, the stop delay, processes that cannot be killed.

import (
	"os"
	"slices"
	"syscall"
	"testing"
	"time"
)

func TestShutdown(t *testing.T) {
	t.Run("TERM is forwarded, child exits within grace", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "/bin/true")
		pid := h.s.child.pid
		h.signal(syscall.SIGTERM)
		h.wantKills(sent{pid, syscall.SIGTERM}, sent{pid, syscall.SIGCONT})
		h.k.exit(pid, signaled(syscall.SIGTERM))
		h.reap()
		h.wantDone(143)
		h.wantLog("msg=exiting", `reason="shutdown on SIGTERM"`, "code=143")
	})
	t.Run("INT is forwarded as INT", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "/bin/true")
		h.signal(syscall.SIGINT)
		h.wantKills(sent{h.s.child.pid, syscall.SIGINT}, sent{h.s.child.pid, syscall.SIGCONT})
	})
	t.Run("explicit stop signal replaces TERM", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-stop-signal", "QUIT", "/bin/true")
		h.signal(syscall.SIGTERM)
		h.wantKills(sent{h.s.child.pid, syscall.SIGQUIT}, sent{h.s.child.pid, syscall.SIGCONT})
	})
	t.Run("group mode signals the group", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-group", "/bin/true")
		h.signal(syscall.SIGTERM)
		h.wantKills(sent{-h.s.child.pgid, syscall.SIGTERM}, sent{-h.s.child.pgid, syscall.SIGCONT})
	})
	t.Run("second TERM is forwarded, grace not extended", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-grace", "5s", "/bin/true")
		pid := h.s.child.pid
		h.signal(syscall.SIGTERM)
		h.advance(3 * time.Second)
		h.signal(syscall.SIGTERM)
		h.wantKills(sent{pid, syscall.SIGTERM}, sent{pid, syscall.SIGCONT}, sent{pid, syscall.SIGTERM})
		h.advance(2 * time.Second) // 5s after the first
		h.wantKills(sent{pid, syscall.SIGKILL}, sent{-pid, syscall.SIGKILL})
	})
	t.Run("grace expiry kills child and group", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-grace", "1s", "/bin/true")
		pid := h.s.child.pid
		h.signal(syscall.SIGTERM)
		h.advance(999 * time.Millisecond)
		h.wantKills(sent{pid, syscall.SIGTERM}, sent{pid, syscall.SIGCONT})
		h.advance(time.Millisecond)
		h.wantKills(sent{pid, syscall.SIGKILL}, sent{-pid, syscall.SIGKILL})
		h.k.exit(pid, signaled(syscall.SIGKILL))
		h.reap()
		h.wantDone(137)
	})
}

func TestSignalsForwarded(t *testing.T) {
	for _, s := range []syscall.Signal{syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, 40} {
		h := newHarness(t, false, "-config=", "/bin/true")
		h.signal(s)
		h.wantKills(sent{h.s.child.pid, s})
		hg := newHarness(t, false, "-config=", "-group", "/bin/true")
		hg.signal(s)
		hg.wantKills(sent{-hg.s.child.pgid, s})
		if h.s.phase != running || hg.s.phase != running {
			t.Errorf("%s changed the phase", signalName(s))
		}
	}
}

func TestLeftovers(t *testing.T) {
	t.Run("not PID 1: the group gets the stop signal, then is waited for", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-stop-signal", "USR2", "/bin/true")
		pid := h.s.child.pid
		left := h.k.spawn(pid)
		h.k.exit(pid, exitedWith(0))
		h.reap()
		h.wantKills(sent{-pid, syscall.SIGUSR2}, sent{-pid, syscall.SIGCONT})
		if h.s.phase == exited {
			t.Fatal("done while a group member is alive")
		}
		h.k.exit(left, exitedWith(0))
		h.reap()
		h.wantDone(0)
	})
	t.Run("PID 1: every process gets the stop signal, then SIGKILL", func(t *testing.T) {
		h := newHarness(t, true, "-config=", "-grace", "2s", "/bin/true")
		pid := h.s.child.pid
		h.k.spawn(1) // an orphan from another group
		h.k.exit(pid, exitedWith(5))
		h.reap()
		h.wantKills(sent{-1, syscall.SIGTERM}, sent{-1, syscall.SIGCONT})
		h.advance(2 * time.Second)
		h.wantKills(sent{-1, syscall.SIGKILL})
		h.advance(killWait) // a zombie nobody reaps: give up after killWait
		h.wantDone(5)
	})
	t.Run("a member reaped by another parent is noticed without SIGCHLD", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "/bin/true")
		pid := h.s.child.pid
		left := h.k.spawn(pid)
		h.k.exit(pid, exitedWith(0))
		h.reap()
		h.k.vanish(left)
		h.advance(recheckEvery)
		h.wantDone(0)
	})
}

func TestShutdownDuringRestartAsPID1(t *testing.T) {
	// The old child is reaped, a member of its group lingers, and SIGTERM
	// comes: as PID 1 every process must now get the stop signal, not only
	// that group.
	h, conf := watchHarness(t)
	h.s.pid1 = true
	old := h.s.child.pid
	writeFile(t, conf, "b")
	h.polls(10)
	h.k.spawn(old)
	h.k.exit(old, exitedWith(0))
	h.reap()
	h.wantKills(sent{old, syscall.SIGTERM}, sent{old, syscall.SIGCONT}, sent{-old, syscall.SIGTERM}, sent{-old, syscall.SIGCONT})
	h.signal(syscall.SIGTERM)
	h.wantKills(sent{-1, syscall.SIGTERM}, sent{-1, syscall.SIGCONT})
	h.advance(10 * time.Second) // the default grace, for the leftovers
	h.wantKills(sent{-1, syscall.SIGKILL})
}

// TestNeverKillAllUnlessPID1 drives every path that signals leftovers and
// checks that kill(-1) is used as PID 1 only: elsewhere it would signal every
// process of the user, or of the machine for root.
func TestNeverKillAllUnlessPID1(t *testing.T) {
	scenarios := map[string]func(h *harness){
		"child exits, group lingers, grace expires": func(h *harness) {
			h.k.spawn(h.s.child.pid)
			h.k.exit(h.s.child.pid, exitedWith(0))
			h.reap()
			h.advance(10 * time.Second)
		},
		"shutdown, child ignores TERM": func(h *harness) {
			h.signal(syscall.SIGTERM)
			h.advance(10 * time.Second)
			h.k.exit(h.s.child.pid, signaled(syscall.SIGKILL))
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

func TestStopDelay(t *testing.T) {
	t.Run("child keeps running and getting signals, then is stopped", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-stop-delay", "5s", "/bin/true")
		pid := h.s.child.pid
		h.signal(syscall.SIGTERM)
		h.wantKills()
		h.wantLog("stop delayed", "signal=SIGTERM", "delay=5s")
		h.signal(syscall.SIGUSR1)
		h.wantKills(sent{pid, syscall.SIGUSR1})
		h.advance(4999 * time.Millisecond)
		h.wantKills()
		h.advance(time.Millisecond)
		h.wantKills(sent{pid, syscall.SIGTERM}, sent{pid, syscall.SIGCONT})
		h.k.exit(pid, signaled(syscall.SIGTERM))
		h.reap()
		h.wantDone(143)
	})
	t.Run("a second TERM ends the delay at once", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-stop-delay", "5s", "/bin/true")
		pid := h.s.child.pid
		h.signal(syscall.SIGTERM)
		h.signal(syscall.SIGINT)
		h.wantKills(sent{pid, syscall.SIGINT}, sent{pid, syscall.SIGCONT})
		h.advance(5 * time.Second) // the delay's end: nothing more
		h.wantKills()
	})
	t.Run("the child exiting during the delay ends manager with its code", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-stop-delay", "5s", "-restart", "always", "/bin/true")
		h.signal(syscall.SIGTERM)
		h.k.exit(h.s.child.pid, exitedWith(4))
		h.reap()
		h.wantDone(4)
	})
	t.Run("no change is acted on during the delay", func(t *testing.T) {
		h, conf := watchHarness(t, "-stop-delay", "5s")
		h.signal(syscall.SIGTERM)
		writeFile(t, conf, "b")
		h.polls(20)
		h.wantKills()
		if h.s.phase != draining {
			t.Errorf("phase = %v during the delay, want draining", h.s.phase)
		}
	})
}

func TestUnkillableChildIsGivenUp(t *testing.T) {
	h := newHarness(t, false, "-config=", "-grace", "1s", "/bin/true")
	pid := h.s.child.pid
	h.k.unkillable = map[int]bool{pid: true}
	h.signal(syscall.SIGTERM)
	h.advance(time.Second + killWait)
	h.wantDone(137)
	h.wantLog("level=WARN", "signal not sent", "operation not permitted")
	h.wantLog("level=ERROR", "child cannot be killed")
}

func TestNoChangeDuringStopDelay(t *testing.T) {
	// A change whose hash is under way when the stop delay begins.
	h, conf := watchHarness(t, "-stop-delay", "30s")
	pid := h.s.child.pid
	writeFile(t, conf, "b")
	h.held = true
	for len(h.hashes) == 0 {
		h.polls(1)
	}
	h.signal(syscall.SIGTERM)
	h.deliver()
	h.wantKills()
	if h.s.phase != draining || h.s.child.pid != pid {
		t.Errorf("phase %v, pid %d → %d: the change was acted on during the stop delay", h.s.phase, pid, h.s.child.pid)
	}
}

func TestJobControlDecisions(t *testing.T) {
	self := os.Getpid() // manager stops itself as the shell's job
	t.Run("Ctrl-Z stops manager too; fg gives the terminal back", func(t *testing.T) {
		h := terminalHarness(t, managerGroup)
		h.begin()
		pid := h.s.child.pid
		h.k.queued = append(h.k.queued, reaped{pid, stoppedBy(syscall.SIGTSTP)})
		h.reap()
		h.wantKills(sent{self, syscall.SIGSTOP})
		h.k.fg = managerGroup // fg: the shell gave manager's group the terminal
		h.signal(syscall.SIGCONT)
		h.wantKills(sent{-pid, syscall.SIGCONT})
		if h.k.fg != pid {
			t.Errorf("foreground group %d after fg, want the child's %d", h.k.fg, pid)
		}
	})
	t.Run("bg continues the child without the terminal", func(t *testing.T) {
		h := terminalHarness(t, managerGroup, "-restart", "always")
		h.begin()
		pid := h.s.child.pid
		h.k.queued = append(h.k.queued, reaped{pid, stoppedBy(syscall.SIGTSTP)})
		h.reap()
		h.k.fg = shellGroup
		h.k.takeKills()
		h.signal(syscall.SIGCONT)
		h.wantKills(sent{-pid, syscall.SIGCONT})
		h.k.exit(pid, signaled(syscall.SIGINT)) // not the terminal's Ctrl-C: restarted
		h.reap()
		h.advance(time.Second)
		h.wantRunning()
		h.wantTerminal(true, false)
		if h.k.fg != shellGroup {
			t.Errorf("foreground group %d, want the shell's %d", h.k.fg, shellGroup)
		}
	})
	t.Run("a read from the background stops manager too", func(t *testing.T) {
		h := terminalHarness(t, shellGroup)
		h.begin()
		h.k.queued = append(h.k.queued, reaped{h.s.child.pid, stoppedBy(syscall.SIGTTIN)})
		h.reap()
		h.wantKills(sent{self, syscall.SIGSTOP})
	})
	t.Run("a read after fg gets the terminal", func(t *testing.T) {
		h := terminalHarness(t, shellGroup)
		h.begin()
		pid := h.s.child.pid
		h.k.fg = managerGroup // fg sends a running job no SIGCONT
		h.k.queued = append(h.k.queued, reaped{pid, stoppedBy(syscall.SIGTTIN)})
		h.reap()
		h.wantKills(sent{-pid, syscall.SIGCONT})
		if h.k.fg != pid {
			t.Errorf("foreground group %d, want the child's %d", h.k.fg, pid)
		}
	})
	t.Run("a stop away from the terminal is the child's own", func(t *testing.T) {
		h := terminalHarness(t, shellGroup)
		h.begin()
		h.k.queued = append(h.k.queued, reaped{h.s.child.pid, stoppedBy(syscall.SIGSTOP)})
		h.reap()
		h.wantKills()
	})
}
