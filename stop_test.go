package main

// Tests of stopping: signals forwarded, the shutdown and its grace period,
// leftovers, the stop delay, processes that cannot be killed.

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestShutdown proves that SIGTERM or SIGINT reaches the child (its group
// with -group) as itself, or as -stop-signal, then SIGCONT; a second one is
// forwarded, not extending -grace; at its end the child and group get
// SIGKILL; manager exits with the child's code.
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
		h.wantLog(`msg="shutting down" signal=SIGTERM stop-signal=SIGQUIT`)
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

// TestSignalsForwarded proves that HUP, QUIT, USR1, USR2, WINCH and a
// real-time signal are passed on to the child, or its group with -group,
// and change nothing else: the child keeps running.
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

// TestLeftovers proves that the processes a child left get the stop signal
// and are waited for before manager exits: its group, or as PID 1 every
// process, then SIGKILL after -grace, giving up after killWait; and that a
// member reaped by another parent is noticed without SIGCHLD.
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

// TestShutdownDuringRestartAsPID1 proves that as PID 1, a SIGTERM while the
// old child's group lingers before a restart sends the stop signal, then
// SIGKILL after -grace, to every process, not only to that group.
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

// TestStopDelay proves that after SIGTERM, for -stop-delay, the child keeps
// running and getting signals, then gets the stop signal; a second signal
// stops it at once; its exit in the delay ends manager with its code, even
// with -restart always; no change is acted on meanwhile.
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

// TestUnkillableChildIsGivenUp proves that a child that cannot be signalled
// is given up after -grace and killWait: manager exits with 137, warning
// that the signal was not sent and logging an error that the child cannot
// be killed.
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

// TestNoChangeDuringStopDelay proves that a change whose hash is under way
// when the stop delay begins is not acted on: the child is neither
// signalled nor replaced.
func TestNoChangeDuringStopDelay(t *testing.T) {
	// A change whose hash is under way when the stop delay begins.
	h, conf := watchHarness(t, "-stop-delay", "30s")
	pid := h.s.child.pid
	writeFile(t, conf, "b")
	h.held = true
	for h.hashCount() == 0 {
		h.polls(1)
	}
	h.signal(syscall.SIGTERM)
	h.deliver()
	h.wantKills()
	if h.s.phase != draining || h.s.child.pid != pid {
		t.Errorf("phase %v, pid %d → %d: the change was acted on during the stop delay", h.s.phase, pid, h.s.child.pid)
	}
}

// TestShutdownNamesBothSignals proves that the shutdown's log line names
// the signal manager received and the one the child gets, when a stop
// signal is configured (here from the environment, as docker run --init
// users do).
func TestShutdownNamesBothSignals(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	p := startManager(t, runOpts{env: []string{"MANAGER_STOP_SIGNAL=QUIT"}}, "-config=", "-grace", "1s", "--", helper, "signals")
	readyPid(t, p)
	p.signal(syscall.SIGTERM)
	p.stderr.wait(t, `level=INFO msg="shutting down" signal=SIGTERM stop-signal=SIGQUIT grace=1s$`, 10*time.Second)
	p.stdout.wait(t, `^got SIGQUIT`, 10*time.Second)
	if code := p.wait(10 * time.Second); code != 137 {
		t.Errorf("exit code %d, want 137 (the child ignores QUIT until SIGKILL)", code)
	}
	if got := p.stdout.matching(`^got SIGTERM`); len(got) > 0 {
		t.Errorf("the child got SIGTERM, want only the stop signal: %q", got)
	}
}

// TestFaultSignalsAreDropped proves that a fault signal sent to manager
// with kill(2) (podman kill -s ABRT) is logged and dropped, never
// forwarded, and never kills manager, as PID 1 or not.
func TestFaultSignalsAreDropped(t *testing.T) {
	t.Run("loop", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "/bin/true")
		for _, sig := range faultSignals {
			h.signal(sig)
			h.wantLog("level=WARN", `msg="signal not forwarded: a fault signal`, "signal="+signalName(sig))
		}
		h.wantKills()
		h.wantRunning()
	})
	integration(t)
	_, helper := binaries(t)
	for _, pid1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("PID 1 %v", pid1), func(t *testing.T) {
			p := startManager(t, runOpts{pid1: pid1}, "-config=", "--", helper, "signals")
			readyPid(t, p)
			for i, sig := range faultSignals {
				p.signal(sig)
				p.stderr.waitN(t, i+1, `level=WARN msg="signal not forwarded: a fault signal`, 10*time.Second)
			}
			p.signal(syscall.SIGUSR1) // still forwarding
			p.stdout.wait(t, `^got SIGUSR1`, 10*time.Second)
			p.signal(syscall.SIGTERM)
			if code := p.wait(10 * time.Second); code != 0 {
				t.Fatalf("exit code %d, want 0 from the child's TERM handler; log:\n%s", code, p.stderr)
			}
			if got := p.stdout.matching(`^got SIG(SEGV|BUS|FPE|ILL|TRAP|SYS|ABRT)`); len(got) > 0 {
				t.Errorf("fault signals reached the child: %q", got)
			}
		})
	}
}

// TestOutsidersNotWaited proves that, as PID 1 at exit, processes that
// entered the namespace from outside (docker exec: their parent shows as 0)
// get the stop signal but are not waited for, while the program's own
// leftovers keep their grace period, and that every line of the wait names
// those waited for.
func TestOutsidersNotWaited(t *testing.T) {
	t.Run("an exec'd shell and its child hold no stop", func(t *testing.T) {
		h := newHarness(t, true, "-config=", "-grace", "30s", "/bin/true")
		pid := h.s.child.pid
		shell := h.k.enter("bash")
		job := h.k.spawn(shell) // the shell's own child, in the shell's group
		h.signal(syscall.SIGTERM)
		h.wantKills(sent{pid, syscall.SIGTERM}, sent{pid, syscall.SIGCONT})
		h.k.exit(pid, exitedWith(0))
		h.reap()
		h.wantKills(sent{-1, syscall.SIGTERM}, sent{-1, syscall.SIGCONT})
		h.wantDone(0)
		h.wantLog(`msg="stopping leftover processes" pid=-1 signal=SIGTERM`, fmt.Sprintf(`outside="bash[%d] spawned[%d]"`, shell, job))
		if strings.Contains(h.logs.String(), "leftovers=") {
			t.Errorf("processes named as waited for, none of them the program's:\n%s", h.logs.String())
		}
	})
	t.Run("the program's own leftover is waited for and named", func(t *testing.T) {
		h := newHarness(t, true, "-config=", "-grace", "30s", "/bin/true")
		pid := h.s.child.pid
		left := h.k.spawn(pid) // re-parented to manager once the child exits
		shell := h.k.enter("bash")
		h.k.exit(pid, exitedWith(0))
		h.reap()
		h.wantKills(sent{-1, syscall.SIGTERM}, sent{-1, syscall.SIGCONT})
		h.wantLog(`msg="stopping leftover processes" pid=-1 signal=SIGTERM`,
			fmt.Sprintf(`leftovers=spawned[%d] outside=bash[%d]`, left, shell))
		h.advance(30*time.Second - time.Millisecond)
		if h.s.phase == exited {
			t.Fatalf("exited before the grace period ended, a leftover of the program alive; log:\n%s", h.logs.String())
		}
		h.advance(time.Millisecond)
		h.wantKills(sent{-1, syscall.SIGKILL})
		h.wantLog(`level=WARN msg="grace period over; killing" pid=-1 grace=30s`, fmt.Sprintf("leftovers=spawned[%d]", left))
		if got := h.logs.String(); strings.Contains(got[strings.Index(got, "grace period over"):], "bash") {
			t.Errorf("the exec'd shell is named as waited for at the grace period's end:\n%s", got)
		}
		h.k.exit(left, signaled(syscall.SIGKILL))
		h.reap()
		h.wantDone(0) // the shell lives on until PID 1 exits
	})
	t.Run("the child alive at the grace period's end is named", func(t *testing.T) {
		h := newHarness(t, true, "-config=", "-grace", "1s", "/bin/true")
		pid := h.s.child.pid
		h.signal(syscall.SIGTERM)
		h.advance(time.Second)
		h.wantLog("grace period over; killing", fmt.Sprintf("leftovers=true[%d]", pid))
		h.advance(killWait)
		h.wantLog("processes remain after SIGKILL", fmt.Sprintf("leftovers=true[%d]", pid))
	})
	t.Run("without the namespace's /proc, every process is waited for", func(t *testing.T) {
		h := newHarness(t, true, "-config=", "-grace", "30s", "/bin/true")
		h.k.noProc = true
		h.k.enter("bash")
		h.k.exit(h.s.child.pid, exitedWith(0))
		h.reap()
		h.wantKills(sent{-1, syscall.SIGTERM}, sent{-1, syscall.SIGCONT})
		h.advance(30 * time.Second)
		h.wantKills(sent{-1, syscall.SIGKILL})
		h.advance(killWait)
		h.wantDone(0)
		if strings.Contains(h.logs.String(), "leftovers=") {
			t.Errorf("processes named without a listing:\n%s", h.logs.String())
		}
	})
	t.Run("a log line names ten, then counts", func(t *testing.T) {
		h := newHarness(t, true, "-config=", "/bin/true")
		pid := h.s.child.pid
		var left []string
		for range 12 {
			left = append(left, fmt.Sprintf("spawned[%d]", h.k.spawn(pid)))
		}
		h.k.exit(pid, exitedWith(0))
		h.reap()
		h.wantLog(fmt.Sprintf(`leftovers="%s and 2 more"`, strings.Join(left[:10], " ")))
	})
	t.Run("during a restart, the child's group is named", func(t *testing.T) {
		h := newHarness(t, true, "-config=", "-restart", "always", "/bin/true")
		pid := h.s.child.pid
		left := h.k.spawn(pid)
		h.k.spawn(1) // another orphan, in no group of the child's
		h.k.exit(pid, exitedWith(1))
		h.reap()
		h.wantLog(fmt.Sprintf(`msg="stopping leftover processes" pid=-%d signal=SIGTERM leftovers=spawned[%d]`, pid, left))
	})
}

// TestSplitOutsiders proves that processes whose parents lead to PID 1 are
// the program's (descendants, orphans, one whose parent just exited, a loop
// of reused pids) and those whose parents lead to 0 without it (an exec'd
// shell and its jobs) are outsiders.
func TestSplitOutsiders(t *testing.T) {
	tests := []struct {
		name      string
		ps        [][2]int // pid, ppid
		own, outs []int
	}{
		{"the program's descendants", [][2]int{{1, 0}, {2, 1}, {3, 2}, {4, 3}}, []int{2, 3, 4}, nil},
		{"an exec'd shell and its job", [][2]int{{1, 0}, {2, 1}, {7, 0}, {8, 7}, {9, 8}}, []int{2}, []int{7, 8, 9}},
		{"an orphan re-parented to PID 1", [][2]int{{1, 0}, {5, 1}}, []int{5}, nil},
		{"a parent gone during the listing", [][2]int{{1, 0}, {5, 99}}, []int{5}, nil},
		{"a loop of reused pids", [][2]int{{1, 0}, {5, 6}, {6, 5}}, []int{5, 6}, nil},
	}
	pids := func(ps []procInfo) []int {
		var out []int
		for _, p := range ps {
			out = append(out, p.pid)
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ps []procInfo
			for _, p := range tc.ps {
				ps = append(ps, procInfo{pid: p[0], ppid: p[1]})
			}
			own, outs := splitOutsiders(ps)
			if !slices.Equal(pids(own), tc.own) || !slices.Equal(pids(outs), tc.outs) {
				t.Errorf("splitOutsiders(%v) = %v, %v; want %v, %v", tc.ps, pids(own), pids(outs), tc.own, tc.outs)
			}
		})
	}
}

// TestParseStat proves that /proc/PID/stat gives a process's parent, group
// and name, a name holding spaces and parentheses included, and that a line
// cut short or without its name in parentheses is refused.
func TestParseStat(t *testing.T) {
	tests := []struct {
		stat string
		want procInfo
		ok   bool
	}{
		{"12 (bash) S 0 12 12 34816 12 4194560 1092", procInfo{12, 0, 12, "bash"}, true},
		{"13 (a) b (c) R 1 7 7 0 -1", procInfo{13, 1, 7, "a) b (c"}, true},
		{"14 (sleep) S 2", procInfo{}, false},
		{"15 sleep S 2 3", procInfo{}, false},
	}
	for _, tc := range tests {
		pid, _ := strconv.Atoi(strings.Fields(tc.stat)[0])
		if got, ok := parseStat(pid, []byte(tc.stat)); got != tc.want || ok != tc.ok {
			t.Errorf("parseStat(%q) = %+v, %v; want %+v, %v", tc.stat, got, ok, tc.want, tc.ok)
		}
	}
}

// TestReusedGroupNumber proves that once the exited child's group was seen
// empty, its number is forgotten: a process that then leads a group with
// that number (pids wrap; a container's count from 1) is neither waited for
// before the restart nor signalled, with -group, at shutdown, or as PID 1.
func TestReusedGroupNumber(t *testing.T) {
	for _, pid1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart, pid1=%v", pid1), func(t *testing.T) {
			h := newHarness(t, pid1, "-config=", "-group", "-restart", "on-failure", "/bin/true")
			old := h.s.child.pid
			h.k.exit(old, exitedWith(1))
			h.reap()
			h.wantKills()  // its group is empty: nothing to stop
			h.k.spawn(old) // an unrelated process, in a group numbered as the old one
			h.signal(syscall.SIGUSR1)
			h.wantKills() // -group: not forwarded, there is no child
			h.advance(time.Second)
			h.wantRunning()
			if h.starts() != 2 {
				t.Fatalf("starts = %d after the 1s backoff, want 2: the restart waited on a reused group number; log:\n%s", h.starts(), h.logs.String())
			}
			h.signal(syscall.SIGUSR1)
			h.wantKills(sent{-h.s.child.pid, syscall.SIGUSR1})
		})
	}
	t.Run("shutdown during the backoff, not PID 1", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "-grace", "1s", "-restart", "on-failure", "/bin/true")
		old := h.s.child.pid
		h.k.exit(old, exitedWith(3))
		h.reap()
		h.k.spawn(old)
		h.signal(syscall.SIGTERM)
		h.wantDone(3)
		h.wantKills()
	})
	t.Run("the daemon warning names the child that exited", func(t *testing.T) {
		h := newHarness(t, false, "-config=", "/bin/true")
		pid := h.s.child.pid
		h.k.spawn(9999) // a daemon: in a session and group of its own
		h.k.exit(pid, exitedWith(0))
		h.reap()
		h.wantDone(0)
		h.wantLog("child exited 0 at once", fmt.Sprintf("pid=%d ", pid))
	})
}

// TestJobControlDecisions proves the loop's job-control decisions at a
// terminal: who stops, who is continued, and who gets the terminal.
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
