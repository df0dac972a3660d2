package main

// Integration tests of contract §9 and §10: the stop delay, restarts on
// demand (-restart-signal) and after the child exits (-restart).

import (
	"fmt"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// TestStopDelayed proves -stop-delay: the child runs on, getting signals,
// for the delay, and a second TERM or the child's exit ends it.
func TestStopDelayed(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	t.Run("the child runs on, getting signals, for the delay", func(t *testing.T) {
		t.Parallel()
		p := startManager(t, runOpts{}, "-config=", "-stop-delay", "1s", "--", helper, "signals")
		readyPid(t, p)
		sent := time.Now()
		p.signal(syscall.SIGTERM)
		p.stderr.wait(t, `level=INFO msg="stop delayed" signal=SIGTERM delay=1s`, 5*time.Second)
		p.signal(syscall.SIGUSR1)
		p.stdout.wait(t, "^got SIGUSR1", 5*time.Second)
		if got := p.stdout.matching("^got SIGTERM"); len(got) > 0 {
			t.Fatalf("the child got SIGTERM before SIGUSR1, within the delay: %q", got)
		}
		p.stdout.wait(t, "^got SIGTERM", 10*time.Second)
		if took := time.Since(sent); took < 900*time.Millisecond {
			t.Errorf("the child got SIGTERM %v after manager, before the 1s delay", took)
		}
		if code := p.wait(10 * time.Second); code != 0 {
			t.Errorf("exit code %d, want the child's 0", code)
		}
	})
	t.Run("a second TERM ends the delay", func(t *testing.T) {
		t.Parallel()
		p := startManager(t, runOpts{}, "-config=", "-stop-delay", "60s", "--", helper, "signals")
		readyPid(t, p)
		p.signal(syscall.SIGTERM)
		p.stderr.wait(t, `msg="stop delayed"`, 5*time.Second)
		p.signal(syscall.SIGTERM)
		p.stdout.wait(t, "^got SIGTERM", 5*time.Second)
		if code := p.wait(10 * time.Second); code != 0 {
			t.Errorf("exit code %d, want the child's 0", code)
		}
	})
	t.Run("the child exiting during the delay ends manager", func(t *testing.T) {
		t.Parallel()
		p := startManager(t, runOpts{}, "-config=", "-stop-delay", "60s", "--", helper, "signals")
		child := readyPid(t, p)
		p.signal(syscall.SIGTERM)
		p.stderr.wait(t, `msg="stop delayed"`, 5*time.Second)
		syscall.Kill(child, syscall.SIGKILL)
		if code := p.wait(10 * time.Second); code != 137 {
			t.Errorf("exit code %d, want the child's 137", code)
		}
	})
	t.Run("no change is acted on during the delay", func(t *testing.T) {
		t.Parallel()
		p, _, conf := watchedApp(t, "", "-stop-delay", "1s")
		wantStarts(t, p, "v1")
		p.signal(syscall.SIGTERM)
		p.stderr.wait(t, `msg="stop delayed"`, 5*time.Second)
		writeFile(t, conf, "v2")
		if code := p.wait(10 * time.Second); code != 143 {
			t.Errorf("exit code %d, want 143", code)
		}
		wantStarts(t, p, "v1")
		if got := p.stderr.matching(`msg="config changed"|msg=restarting`); len(got) > 0 {
			t.Errorf("acted on a change during the stop delay: %q", got)
		}
	})
}

// TestRestartOnDemand proves -restart-signal: a new process with unchanged
// files, the old group gone first, the signal not forwarded, and a failing
// check keeping the child.
func TestRestartOnDemand(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	t.Run("unchanged files, a new process, the old group gone first", func(t *testing.T) {
		t.Parallel()
		p, _, _ := watchedApp(t, "", "-restart-signal", "USR2", "-reload-signal", "HUP")
		wantStarts(t, p, "v1")
		p.signal(syscall.SIGUSR2)
		p.stderr.wait(t, `level=INFO msg="restart requested" signal=SIGUSR2`, 5*time.Second)
		wantStarts(t, p, "v1", "v1") // the app's lock proves no overlap
		pids := p.stdout.matching(`^start pid=`)
		if pids[0] == pids[1] {
			t.Errorf("same process after a requested restart: %q", pids)
		}
		stop(t, p)
	})
	t.Run("not forwarded", func(t *testing.T) {
		t.Parallel()
		p := startManager(t, runOpts{}, "-config=", "-restart-signal", "USR2", "--", helper, "signals")
		first := readyPid(t, p)
		p.signal(syscall.SIGUSR2)
		p.stdout.wait(t, fmt.Sprintf("^got SIGTERM pid=%d", first), 5*time.Second)
		p.stdout.waitN(t, 2, `^ready pid=`, 10*time.Second)
		if got := p.stdout.matching("^got SIGUSR2"); len(got) > 0 {
			t.Errorf("the restart signal was forwarded: %q", got)
		}
		p.signal(syscall.SIGTERM)
		p.wait(10 * time.Second)
	})
	t.Run("a failing check keeps the child", func(t *testing.T) {
		t.Parallel()
		p, _, conf := watchedApp(t, "", "-restart-signal", "USR2", "-check", helper+" exit 1")
		wantStarts(t, p, "v1")
		p.signal(syscall.SIGUSR2)
		p.stderr.wait(t, `level=WARN msg="check failed; keeping the running child" command=".* exit 1" code=1`, 10*time.Second)
		writeFile(t, conf, "v2") // the sentinel: refused too, and no restart before it
		p.stderr.waitN(t, 2, `msg="check failed; keeping the running child"`, 10*time.Second)
		wantStarts(t, p, "v1")
		stop(t, p)
	})
}

// readyRuns waits for the n-th run of the "exits" helper.
func readyRuns(t *testing.T, p *proc, n int) {
	t.Helper()
	p.stdout.waitN(t, n, `^ready pid=\d+ run=\d+`, 30*time.Second)
}

// TestRestartAfterExit proves -restart: restarts with backoff, the limit of
// restarts in a row, and TERM during a backoff exiting at once.
func TestRestartAfterExit(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	counter := func(t *testing.T) string { return filepath.Join(t.TempDir(), "runs") }
	t.Run("on-failure: 1s, then 2s, until exit 0", func(t *testing.T) {
		t.Parallel()
		p := startManager(t, runOpts{}, "-config=", "-restart", "on-failure", "--", helper, "exits", counter(t), "3", "3", "0")
		if code := p.wait(30 * time.Second); code != 0 {
			t.Fatalf("exit code %d, want 0 from the third run; log:\n%s", code, p.stderr)
		}
		readyRuns(t, p, 3)
		delays := p.stderr.matching(`msg="child exited; restarting" .*code=3 delay=`)
		if len(delays) != 2 || !regexp.MustCompile(`delay=1s `).MatchString(delays[0]) || !regexp.MustCompile(`delay=2s `).MatchString(delays[1]) {
			t.Errorf("restarts logged %q, want one after 1s, one after 2s", delays)
		}
		starts := logTimes(t, p.stderr.matching(`msg="child started"`))
		if gap := starts[1].Sub(starts[0]); gap < 900*time.Millisecond {
			t.Errorf("second run %v after the first, before the 1s backoff", gap)
		}
		if gap := starts[2].Sub(starts[1]); gap < 1800*time.Millisecond {
			t.Errorf("third run %v after the second, before the 2s backoff", gap)
		}
	})
	t.Run("on-failure:2 gives up after two restarts", func(t *testing.T) {
		t.Parallel()
		p := startManager(t, runOpts{}, "-config=", "-restart", "on-failure:2", "--", helper, "exits", counter(t), "3", "3", "4")
		if code := p.wait(30 * time.Second); code != 4 {
			t.Fatalf("exit code %d, want the last run's 4", code)
		}
		readyRuns(t, p, 3)
		p.stderr.wait(t, `level=WARN msg="child exited; not restarting it again" .*code=4 restarts=2 limit=on-failure:2`, time.Second)
	})
	t.Run("always restarts after exit 0", func(t *testing.T) {
		t.Parallel()
		p := startManager(t, runOpts{}, "-config=", "-restart", "always:1", "--", helper, "exits", counter(t), "0")
		if code := p.wait(30 * time.Second); code != 0 {
			t.Fatalf("exit code %d, want 0", code)
		}
		readyRuns(t, p, 2)
	})
	t.Run("TERM during the backoff exits at once", func(t *testing.T) {
		t.Parallel()
		// The fourth backoff is 8 s: a manager that waited it out would
		// take seconds, far more than a slow machine adds.
		p := startManager(t, runOpts{}, "-config=", "-restart", "always", "--", helper, "exits", counter(t), "3")
		p.stderr.wait(t, `msg="child exited; restarting" .*delay=8s`, 30*time.Second)
		sent := time.Now()
		p.signal(syscall.SIGTERM)
		if code := p.wait(10 * time.Second); code != 3 {
			t.Fatalf("exit code %d, want the last child's 3", code)
		}
		if took := time.Since(sent); took > 4*time.Second {
			t.Errorf("manager took %v to exit during an 8s backoff", took)
		}
		if runs := p.stdout.matching(`^ready pid=\d+ run=\d+`); len(runs) != 4 {
			t.Errorf("%d runs, want 4: none after the TERM", len(runs))
		}
	})
}

// logTimes parses the time= of text log lines.
func logTimes(t *testing.T, lines []string) []time.Time {
	t.Helper()
	var out []time.Time
	for _, l := range lines {
		m := regexp.MustCompile(`^time=(\S+)`).FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("no time in log line %q", l)
		}
		ts, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ts)
	}
	return out
}
