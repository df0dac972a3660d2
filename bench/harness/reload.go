package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	reloads     = 10                    // config changes per tool; the median is reported
	restarts    = 1000                  // restarts in the restart benchmark
	restartPoll = 10 * time.Millisecond // manager's -poll in the restart benchmark: the least it accepts
)

// event is a line of the stamp child: its start or its stop, at CLOCK_MONOTONIC t.
type event struct {
	start bool
	t     int64
}

// watcher is a running tool whose children are stamp processes.
type watcher struct {
	name   string // the tool, for messages
	cmd    *exec.Cmd
	dir    string // holds app.conf
	events chan event
	seq    int  // makes every rewrite of app.conf different
	pace   pace // bounds the waits for its children
}

// startWatcher runs argv (followed by the stamp child) in a new directory
// holding app.conf, and waits for the first child: two starts' worth, the
// tool's and the child's.
func startWatcher(name string, argv []string, self, dir, stdin string, p pace) (*watcher, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	w := &watcher{name: name, dir: dir, events: make(chan event, 16), pace: p}
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
	if _, err := w.next(true, 0, p.deadline("the first start of harness stamp under "+name, 2, 0)); err != nil {
		p.stop(w.cmd)
		return nil, err
	}
	return w, nil
}

// next waits for the child's next start (or stop) after the instant after,
// until d passes.
func (w *watcher) next(start bool, after int64, d *deadline) (int64, error) {
	timer := time.NewTimer(time.Until(d.at()))
	defer timer.Stop()
	var seen []string // the other events meanwhile
	for {
		select {
		case e, ok := <-w.events:
			if !ok {
				return 0, fmt.Errorf("waiting for %s: %s exited; saw %s", d.what, w.name, list(seen))
			}
			if e.start == start && e.t > after {
				return e.t, nil
			}
			kind := "stop"
			if e.start {
				kind = "start"
			}
			seen = append(seen, fmt.Sprintf("a child's %s %s after the change", kind, ms(time.Duration(e.t-after))))
		case <-timer.C:
			return 0, d.err(fmt.Sprintf("%s; %s %s", list(seen), w.name, describeProc(w.cmd.Process.Pid)))
		}
	}
}

// list joins what a wait saw, or says it saw nothing.
func list(seen []string) string {
	if len(seen) == 0 {
		return "no child start or stop"
	}
	return strings.Join(seen, ", ")
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
	// react is how long the tool takes by design to act on a change, which
	// bounds the wait for the new child beside its starts. Manager's is
	// its flags': the poll that sees the change, the debounce, and the poll
	// after it. reflex and entr took 0.3 s and 0.1 s in every run so far;
	// they get 1 s.
	tools := []struct {
		name  string
		argv  []string
		stdin string
		react time.Duration
	}{
		{"manager (defaults: -poll 1s -debounce 1s)", []string{b.manager, "-config", "app.conf", "--"}, "", 3 * time.Second},
		{"manager -poll 100ms -debounce 100ms", []string{b.manager, "-config", "app.conf", "-poll", "100ms", "-debounce", "100ms", "--"}, "", 300 * time.Millisecond},
		{"reflex -s", []string{"reflex", "-s", "-d", "none", "-r", `(^|/)app\.conf$`, "--"}, "", time.Second},
		{"entr -r", []string{"entr", "-n", "-r"}, "app.conf\n", time.Second},
	}
	var md strings.Builder
	fmt.Fprintf(&md, "`app.conf` gets new bytes by rename into place (write `app.conf.new`, `rename(2)`), after a random pause of\n")
	fmt.Fprintf(&md, "0.3–0.8 s from the previous start so that the change falls anywhere in a poll period. Latency is from just before\n")
	fmt.Fprintf(&md, "`rename(2)` to the CLOCK_MONOTONIC reading that the new child (`harness stamp`) takes first thing in `main`;\n")
	fmt.Fprintf(&md, "so it includes the old child's stop and the Go runtime's start in the new one (see the direct row). %d changes each.\n\n", reloads)
	fmt.Fprintf(&md, "| tool | command | median | min | max | unasked restarts |\n|---|---|---|---|---|---|\n")

	// The floor: the same child started directly, with nothing to notice.
	var direct []time.Duration
	for range reloads {
		d, err := directStart(b.self, b.pace)
		if err != nil {
			return section{}, err
		}
		direct = append(direct, d)
	}
	median(direct) // sorts: min first, max last
	fmt.Fprintf(&md, "| direct start (floor) | `harness stamp` | %s | %s | %s | |\n", ms(direct[reloads/2]), ms(direct[0]), ms(direct[reloads-1]))

	medians := make([]time.Duration, len(tools))
	for i, tool := range tools {
		// Taken again for each tool: the load changes over the minute
		// this section takes.
		p, err := b.measurePace("harness true", b.self, "true")
		if err != nil {
			return section{}, err
		}
		progress("%s: %d changes (%s)", tool.name, reloads, p)
		w, err := startWatcher(tool.name, tool.argv, b.self, filepath.Join(b.work, fmt.Sprintf("reload%d", i)), tool.stdin, p)
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
				// The old child's stop, the tool's fork and the
				// new child's start: three starts' worth.
				d := p.deadline(fmt.Sprintf("the new child's start under %s after change %d", tool.name, len(lat)+1), 3, tool.react)
				var started int64
				started, err = w.next(true, sent, d)
				lat = append(lat, time.Duration(started-sent))
			}
			if err != nil {
				p.stop(w.cmd)
				return section{}, fmt.Errorf("%s: %w", tool.name, err)
			}
		}
		time.Sleep(time.Second) // not a bound: the time a late double restart has to show
		extra += w.drain()
		p.stop(w.cmd)
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
// just before fork-exec to the child's first reading of the clock. The wait
// for it is one start's worth of p.
func directStart(self string, p pace) (time.Duration, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer outR.Close()
	cmd := exec.Command(self, "stamp")
	cmd.Stdout = outW
	sent := mono()
	err = cmd.Start()
	outW.Close()
	if err != nil {
		return 0, err
	}
	defer p.stop(cmd)
	d := p.deadline("harness stamp to start", 1, 0)
	outR.SetReadDeadline(d.at())
	line, err := bufio.NewReader(outR).ReadString('\n')
	if expired(err) {
		return 0, d.err(fmt.Sprintf("it printed %q; it %s", line, describeProc(cmd.Process.Pid)))
	}
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
// after: none of them may grow. With -before, the older manager goes through
// the same, in a column of its own; its failure is reported there and does
// not fail the section.
func (b *bench) restart() (section, error) {
	now, err := b.restarts(b.manager, filepath.Join(b.work, "restart"))
	if err != nil {
		return section{}, err
	}
	// The same with a socket held across the restarts: each start then
	// goes through manager's shim, which sets LISTEN_PID.
	addr, err := freeAddr()
	if err != nil {
		return section{}, err
	}
	progress("manager -listen %s: the same", addr)
	cols := []restartCol{{"manager", now, nil}, {"manager -listen " + addr, restartRun{}, nil}}
	cols[1].run, cols[1].err = b.restarts(b.manager, filepath.Join(b.work, "restart-listen"), "-listen", addr)
	if b.before != "" {
		progress("%s: the same", b.beforeName(""))
		col := restartCol{name: b.beforeName("")}
		if col.run, col.err = b.restarts(b.before, filepath.Join(b.work, "restart-before")); col.err != nil {
			progress("%s: %v", b.beforeName(""), col.err)
		}
		cols = append(cols, col)
	}

	var md strings.Builder
	fmt.Fprintf(&md, "`manager -config app.conf -poll %s -debounce 0 -- harness stamp`; %d changes by rename into place, each after the\n", restartPoll, restarts)
	fmt.Fprintf(&md, "previous new child started. Change → start includes the wait for two polls (a change is acted on at the first\n")
	fmt.Fprintf(&md, "poll that finds it unchanged); old child's stop → new child's start is from the old child's SIGTERM handler to the\n")
	fmt.Fprintf(&md, "new child's `main`, which includes the Go runtime's start in the child. With `-listen`, each start also runs\n")
	fmt.Fprintf(&md, "manager's shim (a short start of manager's own binary, which sets `LISTEN_PID` and execs the child).\n\n")
	md.WriteString("| measure |")
	for _, c := range cols {
		fmt.Fprintf(&md, " %s |", c.name)
	}
	md.WriteString("\n|---|" + strings.Repeat("---|", len(cols)) + "\n")
	for _, m := range []struct {
		name string
		cell func(restartRun) string
	}{
		{fmt.Sprintf("wall time for %d restarts", restarts), func(r restartRun) string {
			return fmt.Sprintf("%s (%s per restart)", ms(r.wall), ms(r.wall/restarts))
		}},
		{"change → new child's start, median / p99", func(r restartRun) string {
			return fmt.Sprintf("%s / %s", ms(median(r.cycle)), ms(percentile(r.cycle, 99)))
		}},
		{"old child's stop → new child's start, median / p99", func(r restartRun) string {
			return fmt.Sprintf("%s / %s", ms(median(r.gap)), ms(percentile(r.gap, 99)))
		}},
		{"manager's open fds, before → after", func(r restartRun) string { return fmt.Sprintf("%d → %d", r.fdsBefore, r.fdsAfter) }},
		{"manager's threads, before → after", func(r restartRun) string {
			return fmt.Sprintf("%d → %d", r.before.threads, r.after.threads)
		}},
		{"manager's VmRSS, before → after", func(r restartRun) string {
			return fmt.Sprintf("%s → %s", mib(r.before.rssKiB), mib(r.after.rssKiB))
		}},
	} {
		fmt.Fprintf(&md, "| %s |", m.name)
		for _, c := range cols {
			if c.err != nil {
				fmt.Fprintf(&md, " **failed**: %s |", cell(c.err.Error()))
			} else {
				fmt.Fprintf(&md, " %s |", m.cell(c.run))
			}
		}
		md.WriteString("\n")
	}
	verdicts := []verdict{
		{"no fd growth over 1,000 restarts (contract §7)", fmt.Sprintf("%d → %d", now.fdsBefore, now.fdsAfter), "", now.fdsAfter <= now.fdsBefore},
	}
	if l := cols[1]; l.err == nil {
		verdicts = append(verdicts, verdict{"no fd growth over 1,000 restarts with -listen", fmt.Sprintf("%d → %d", l.run.fdsBefore, l.run.fdsAfter), "", l.run.fdsAfter <= l.run.fdsBefore})
	}
	return section{md.String(), verdicts}, nil
}

// restartCol is one column of the restart table: a manager, how it ran.
type restartCol struct {
	name string
	run  restartRun
	err  error
}

// freeAddr returns a loopback TCP address no socket is bound to now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// restartRun is what one manager binary did over the restarts.
type restartRun struct {
	wall                time.Duration
	cycle, gap          []time.Duration // change → start, stop → start
	before, after       usage
	fdsBefore, fdsAfter int
}

// restarts runs the manager binary bin, with extra flags, in dir through
// the restarts.
func (b *bench) restarts(bin, dir string, extra ...string) (restartRun, error) {
	var r restartRun
	argv := append(append([]string{bin, "-config", "app.conf", "-poll", restartPoll.String(), "-debounce", "0"}, extra...), "--")
	w, err := startWatcher("manager", argv, b.self, dir, "", b.pace)
	if err != nil {
		return r, err
	}
	defer b.pace.stop(w.cmd)
	pid := w.cmd.Process.Pid
	time.Sleep(200 * time.Millisecond) // not a bound: for manager's start-up to be over
	if r.before, err = readUsage(pid); err != nil {
		return r, err
	}
	if r.fdsBefore, err = countFDs(pid); err != nil {
		return r, err
	}

	begin := time.Now()
	for i := range restarts {
		sent, err := w.change()
		if err != nil {
			return r, err
		}
		// Manager acts at the second poll after the change (-debounce
		// 0) and signals the old child: a start's worth besides.
		d := b.pace.deadline(fmt.Sprintf("the old child's stop after change %d", i+1), 1, 2*restartPoll)
		stopped, err := w.next(false, sent, d)
		if err != nil {
			return r, err
		}
		// The old child's exit, its reaping and the new child's start.
		d = b.pace.deadline(fmt.Sprintf("the new child's start after change %d", i+1), 2, 0)
		started, err := w.next(true, stopped, d)
		if err != nil {
			return r, err
		}
		r.cycle = append(r.cycle, time.Duration(started-sent))
		r.gap = append(r.gap, time.Duration(started-stopped))
		if (i+1)%250 == 0 {
			progress("%d of %d restarts", i+1, restarts)
		}
	}
	r.wall = time.Since(begin)
	time.Sleep(200 * time.Millisecond)
	if r.after, err = readUsage(pid); err != nil {
		return r, err
	}
	if r.fdsAfter, err = countFDs(pid); err != nil {
		return r, err
	}
	progress("%d restarts in %s", restarts, r.wall)
	return r, nil
}

// countFDs counts pid's open file descriptors.
func countFDs(pid int) (int, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(fds), err
}
