package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	reloads     = 10   // config changes per tool; the median is reported
	restarts    = 1000 // restarts in the restart benchmark
	eventLimit  = 15 * time.Second
	restartPoll = "5ms"
)

// event is a line of the stamp child: its start or its stop, at CLOCK_MONOTONIC t.
type event struct {
	start bool
	t     int64
}

// watcher is a running tool whose children are stamp processes.
type watcher struct {
	cmd    *exec.Cmd
	dir    string // holds app.conf
	events chan event
	seq    int // makes every rewrite of app.conf different
}

// startWatcher runs argv (followed by the stamp child) in a new directory
// holding app.conf, and waits for the first child.
func startWatcher(argv []string, self, dir, stdin string) (*watcher, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	w := &watcher{dir: dir, events: make(chan event, 16)}
	if err := os.WriteFile(filepath.Join(dir, "app.conf"), []byte("seq 0\n"), 0o644); err != nil {
		return nil, err
	}
	all := append(append([]string{}, argv...), self, "stamp")
	w.cmd = exec.Command(all[0], all[1:]...)
	w.cmd.Dir = dir
	if stdin != "" {
		w.cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := w.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		lines := bufio.NewScanner(out)
		for lines.Scan() {
			kind, t, ok := strings.Cut(lines.Text(), " ")
			n, err := strconv.ParseInt(t, 10, 64)
			if ok && err == nil {
				w.events <- event{kind == "start", n}
			}
		}
		close(w.events)
	}()
	if _, err := w.next(true, 0); err != nil {
		stop(w.cmd)
		return nil, err
	}
	return w, nil
}

// next waits for the child's next start (or stop) after the instant after.
func (w *watcher) next(start bool, after int64) (int64, error) {
	limit := time.After(eventLimit)
	for {
		select {
		case e, ok := <-w.events:
			if !ok {
				return 0, fmt.Errorf("%s exited", w.cmd.Path)
			}
			if e.start == start && e.t > after {
				return e.t, nil
			}
		case <-limit:
			return 0, fmt.Errorf("no child start or stop within %s", eventLimit)
		}
	}
}

// drain discards pending events and counts the starts among them: restarts
// that no change asked for.
func (w *watcher) drain() (starts int) {
	for {
		select {
		case e, ok := <-w.events:
			if !ok {
				return starts // the tool exited; next says so
			}
			if e.start {
				starts++
			}
		default:
			return starts
		}
	}
}

// change renames new content into place over app.conf, as an editor or a
// ConfigMap update does, and returns the CLOCK_MONOTONIC time just before.
func (w *watcher) change() (int64, error) {
	w.seq++
	tmp := filepath.Join(w.dir, "app.conf.new")
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("seq %d\n", w.seq)), 0o644); err != nil {
		return 0, err
	}
	t := mono()
	return t, os.Rename(tmp, filepath.Join(w.dir, "app.conf"))
}

// reload times, for manager and its peers among file watchers, a rename
// into place of the config until the new child's main function begins.
func (b *bench) reload() (section, error) {
	tools := []struct {
		name  string
		argv  []string
		stdin string
	}{
		{"manager (defaults: -poll 1s -debounce 1s)", []string{b.manager, "-config", "app.conf", "--"}, ""},
		{"manager -poll 100ms -debounce 100ms", []string{b.manager, "-config", "app.conf", "-poll", "100ms", "-debounce", "100ms", "--"}, ""},
		{"reflex -s", []string{"reflex", "-s", "-d", "none", "-r", `(^|/)app\.conf$`, "--"}, ""},
		{"entr -r", []string{"entr", "-n", "-r"}, "app.conf\n"},
	}
	var md strings.Builder
	fmt.Fprintf(&md, "## Reload latency\n\n")
	fmt.Fprintf(&md, "`app.conf` gets new bytes by rename into place (write `app.conf.new`, `rename(2)`), after a random pause of\n")
	fmt.Fprintf(&md, "0.3–0.8 s from the previous start so that the change falls anywhere in a poll period. Latency is from just before\n")
	fmt.Fprintf(&md, "`rename(2)` to the CLOCK_MONOTONIC reading that the new child (`harness stamp`) takes first thing in `main`;\n")
	fmt.Fprintf(&md, "so it includes the old child's stop and the Go runtime's start in the new one (see the direct row). %d changes each.\n\n", reloads)
	fmt.Fprintf(&md, "| tool | command | median | min | max | unasked restarts |\n|---|---|---|---|---|---|\n")

	// The floor: the same child started directly, with nothing to notice.
	var direct []time.Duration
	for range reloads {
		d, err := directStart(b.self)
		if err != nil {
			return section{}, err
		}
		direct = append(direct, d)
	}
	median(direct) // sorts: min first, max last
	fmt.Fprintf(&md, "| direct start (floor) | `harness stamp` | %s | %s | %s | |\n", ms(direct[reloads/2]), ms(direct[0]), ms(direct[reloads-1]))

	medians := make([]time.Duration, len(tools))
	for i, tool := range tools {
		w, err := startWatcher(tool.argv, b.self, filepath.Join(b.work, fmt.Sprintf("reload%d", i)), tool.stdin)
		if err != nil {
			return section{}, fmt.Errorf("%s: %w", tool.name, err)
		}
		var lat []time.Duration
		extra := 0
		for range reloads {
			time.Sleep(300*time.Millisecond + rand.N(500*time.Millisecond))
			extra += w.drain()
			sent, err := w.change()
			if err == nil {
				var started int64
				started, err = w.next(true, sent)
				lat = append(lat, time.Duration(started-sent))
			}
			if err != nil {
				stop(w.cmd)
				return section{}, fmt.Errorf("%s: %w", tool.name, err)
			}
		}
		time.Sleep(time.Second) // let a late double restart show
		extra += w.drain()
		stop(w.cmd)
		med := median(lat)
		medians[i] = med
		progress("%s: median %s", tool.name, ms(med))
		cmdline := strings.Join(tool.argv, " ")
		cmdline = strings.ReplaceAll(cmdline, b.manager, "manager")
		if tool.stdin != "" {
			cmdline = "echo app.conf | " + cmdline
		}
		fmt.Fprintf(&md, "| %s | %s | %s | %s | %s | %d |\n", tool.name, code(cmdline+" harness stamp"), ms(med), ms(lat[0]), ms(lat[reloads-1]), extra)
	}
	return section{md.String(), []verdict{
		{"reload latency at `-poll 100ms -debounce 100ms` ≤ 200 ms", ms(medians[1]),
			fmt.Sprintf("reflex -s %s, entr -r %s (not Go floors: the peers)", ms(medians[2]), ms(medians[3])),
			medians[1] <= 200*time.Millisecond},
	}}, nil
}

// directStart times one start of the stamp child with no tool between: from
// just before fork-exec to the child's first reading of the clock.
func directStart(self string) (time.Duration, error) {
	cmd := exec.Command(self, "stamp")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	sent := mono()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer stop(cmd)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return 0, err
	}
	var t int64
	if _, err := fmt.Sscanf(line, "start %d", &t); err != nil {
		return 0, fmt.Errorf("stamp said %q", line)
	}
	return time.Duration(t - sent), nil
}

// restart drives 1,000 restarts of manager by config changes and reports the
// time per restart and manager's descriptors, threads and memory before and
// after: none of them may grow.
func (b *bench) restart() (section, error) {
	argv := []string{b.manager, "-config", "app.conf", "-poll", restartPoll, "-debounce", "0", "--"}
	w, err := startWatcher(argv, b.self, filepath.Join(b.work, "restart"), "")
	if err != nil {
		return section{}, err
	}
	defer stop(w.cmd)
	pid := w.cmd.Process.Pid
	time.Sleep(200 * time.Millisecond)
	before, err := readUsage(pid)
	if err != nil {
		return section{}, err
	}
	fdsBefore, err := countFDs(pid)
	if err != nil {
		return section{}, err
	}

	var cycle, gap []time.Duration
	begin := time.Now()
	for i := range restarts {
		sent, err := w.change()
		if err != nil {
			return section{}, err
		}
		stopped, err := w.next(false, sent)
		if err != nil {
			return section{}, fmt.Errorf("restart %d: %w", i, err)
		}
		started, err := w.next(true, stopped)
		if err != nil {
			return section{}, fmt.Errorf("restart %d: %w", i, err)
		}
		cycle = append(cycle, time.Duration(started-sent))
		gap = append(gap, time.Duration(started-stopped))
	}
	wall := time.Since(begin)
	time.Sleep(200 * time.Millisecond)
	after, err := readUsage(pid)
	if err != nil {
		return section{}, err
	}
	fdsAfter, err := countFDs(pid)
	if err != nil {
		return section{}, err
	}
	progress("%d restarts in %s", restarts, wall)

	var md strings.Builder
	fmt.Fprintf(&md, "## Restart cost\n\n")
	fmt.Fprintf(&md, "`manager -config app.conf -poll %s -debounce 0 -- harness stamp`; %d changes by rename into place, each after the\n", restartPoll, restarts)
	fmt.Fprintf(&md, "previous new child started. Change → start includes the wait for two polls (a change is acted on at the first\n")
	fmt.Fprintf(&md, "poll that finds it unchanged); old child's stop → new child's start is from the old child's SIGTERM handler to the\n")
	fmt.Fprintf(&md, "new child's `main`, which includes the Go runtime's start in the child.\n\n")
	fmt.Fprintf(&md, "| measure | value |\n|---|---|\n")
	fmt.Fprintf(&md, "| wall time for %d restarts | %s (%s per restart) |\n", restarts, ms(wall), ms(wall/restarts))
	fmt.Fprintf(&md, "| change → new child's start, median / p99 | %s / %s |\n", ms(median(cycle)), ms(percentile(cycle, 99)))
	fmt.Fprintf(&md, "| old child's stop → new child's start, median / p99 | %s / %s |\n", ms(median(gap)), ms(percentile(gap, 99)))
	fmt.Fprintf(&md, "| manager's open fds, before → after | %d → %d |\n", fdsBefore, fdsAfter)
	fmt.Fprintf(&md, "| manager's threads, before → after | %d → %d |\n", before.threads, after.threads)
	fmt.Fprintf(&md, "| manager's VmRSS, before → after | %s → %s |\n", mib(before.rssKiB), mib(after.rssKiB))
	return section{md.String(), []verdict{
		{"no fd growth over 1,000 restarts (contract §7)", fmt.Sprintf("%d → %d", fdsBefore, fdsAfter), "", fdsAfter <= fdsBefore},
	}}, nil
}

// countFDs counts pid's open file descriptors.
func countFDs(pid int) (int, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(fds), err
}
