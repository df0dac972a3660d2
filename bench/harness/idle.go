package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	idleSettle = 3 * time.Second  // before memory and threads are read
	idleSpan   = 20 * time.Second // over which CPU use is counted
)

// rssStarts is how many times manager, its before binary and go-init are
// started at once for their idle RSS: a Go program's differs from start to
// start by up to 200 KiB, as a race at start-up goes (whether the runtime's
// second P allocates before main's init), so one start is a coin toss. The
// RSS target is judged on the median.
const rssStarts = 7

// usage is what /proc says of a process at one moment.
type usage struct {
	rssKiB  int   // VmRSS
	threads int   // Threads
	ticks   int   // utime+stime, in clock ticks (1/100 s)
	cpu     int64 // nanoseconds on a CPU, summed over its threads
	wakeups int   // context switches, summed over its threads
}

// readUsage reads pid's usage from /proc.
func readUsage(pid int) (usage, error) {
	var u usage
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for line := range strings.Lines(string(status)) {
		f := strings.Fields(line)
		switch {
		case len(f) < 2:
		case f[0] == "VmRSS:":
			u.rssKiB, _ = strconv.Atoi(f[1])
		case f[0] == "Threads:":
			u.threads, _ = strconv.Atoi(f[1])
		}
	}
	stat, err := statFields(pid)
	if err != nil {
		return u, err
	}
	utime, _ := strconv.Atoi(stat[14-3])
	stime, _ := strconv.Atoi(stat[15-3])
	u.ticks = utime + stime

	// Per thread: schedstat's first field is the time on a CPU in
	// nanoseconds, finer than the ticks; the context switches count wake-ups.
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil {
		return u, err
	}
	for _, t := range tasks {
		if data, err := os.ReadFile(t + "/schedstat"); err == nil {
			if f := strings.Fields(string(data)); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				u.cpu += n
			}
		}
		data, err := os.ReadFile(t + "/status")
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(data)) {
			f := strings.Fields(line)
			if len(f) == 2 && strings.HasSuffix(f[0], "ctxt_switches:") {
				n, _ := strconv.Atoi(f[1])
				u.wakeups += n
			}
		}
	}
	return u, nil
}

// idle starts every init at once with a sleeping child, and the Go floors
// beside them, and reads their memory and threads after 3 s and their CPU
// use over the next 20 s. Manager watches one existing file, at its default
// poll and at -poll 100ms.
func (b *bench) idle() (section, error) {
	conf := filepath.Join(b.work, "idle.conf")
	if err := os.WriteFile(conf, []byte("idle\n"), 0o644); err != nil {
		return section{}, err
	}
	inits := []initCmd{
		{"manager -config FILE (poll 1s)", []string{b.manager, "-config", conf, "--"}, false},
		{"manager -config FILE -poll 100ms", []string{b.manager, "-config", conf, "-poll", "100ms", "--"}, false},
	}
	if b.before != "" {
		inits = append(inits, initCmd{b.beforeName("-config FILE (poll 1s)"), []string{b.before, "-config", conf, "--"}, false})
	}
	inits = append(inits,
		initCmd{"Go floor (bench/floor)", []string{b.floor}, false},
		initCmd{"Go floor + os/signal (bench/forward)", []string{b.forward}, false},
	)
	goInit, haveGoInit := b.goInitCmd()
	if haveGoInit {
		inits = append(inits, goInit)
	}
	inits = append(inits, b.peers(false)[1:]...)
	withChild := len(inits) // the inits, each with the child /bin/sleep 1000
	// Not inits, started without a child: Go programs that only poll, and
	// one that only links what the contract requires and waits.
	floors, err := b.floorBinaries()
	if err != nil {
		return section{}, err
	}
	others := []initCmd{
		{"Go floor: sleep 1s + stat loop (harness poll)", []string{b.self, "poll", "1s", conf}, false},
		{"Go floor: sleep 100ms + stat loop (harness poll)", []string{b.self, "poll", "100ms", conf}, false},
		{"Go floor: the same, GOMAXPROCS=1", []string{"env", "GOMAXPROCS=1", b.self, "poll", "100ms", conf}, false}, // env execs: same pid
		{"Go floor: mandated packages only, waiting (see Binary size)", []string{floors[len(floors)-1]}, false},
	}
	var cmds []*exec.Cmd
	defer func() {
		for _, c := range cmds {
			b.pace.stop(c)
		}
	}()
	for _, in := range inits {
		cmds = append(cmds, in.command("/bin/sleep", "1000"))
	}
	for _, o := range others {
		cmds = append(cmds, o.command())
	}
	inits = append(inits, others...)
	for i, c := range cmds {
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // see stop
		if err := c.Start(); err != nil {
			cmds = cmds[:i] // stop only what started
			return section{}, fmt.Errorf("%s: %w", inits[i].name, err)
		}
	}
	// The RSS samples: each of these inits started rssStarts-1 more times,
	// beside the row's own start.
	sampled := []string{"manager -config FILE (poll 1s)"} // the targets' row
	if b.before != "" {
		sampled = append(sampled, b.beforeName("-config FILE (poll 1s)"))
	}
	if haveGoInit {
		sampled = append(sampled, goInit.name)
	}
	var copies [][]*exec.Cmd
	defer func() {
		for _, cs := range copies {
			for _, c := range cs {
				b.pace.stop(c)
			}
		}
	}()
	row := func(name string) int {
		return slices.IndexFunc(inits, func(in initCmd) bool { return in.name == name })
	}
	for _, name := range sampled {
		in := inits[row(name)]
		var cs []*exec.Cmd
		for range rssStarts - 1 {
			c := in.command("/bin/sleep", "1000")
			c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := c.Start(); err != nil {
				copies = append(copies, cs)
				return section{}, fmt.Errorf("%s: %w", name, err)
			}
			cs = append(cs, c)
		}
		copies = append(copies, cs)
	}
	progress("waiting %s, then %s", idleSettle, idleSpan)
	time.Sleep(idleSettle)
	samples := make(map[string][]int)
	for i, name := range sampled {
		for _, c := range copies[i] {
			u, err := readUsage(c.Process.Pid)
			if err != nil {
				return section{}, fmt.Errorf("%s: %w", name, err)
			}
			samples[name] = append(samples[name], u.rssKiB)
		}
	}
	// The copies must not count in the CPU use of the span that follows.
	for _, cs := range copies {
		for _, c := range cs {
			b.pace.stop(c)
		}
	}
	copies = nil
	first := make([]usage, len(cmds))
	for i, c := range cmds {
		u, err := readUsage(c.Process.Pid)
		if err != nil {
			return section{}, fmt.Errorf("%s: %w", inits[i].name, err)
		}
		first[i] = u
		// Each init must be running its child: the words of go-init's
		// -main, above all, which it splits itself.
		if i < withChild {
			if err := hasChild(c.Process.Pid, "/bin/sleep", "1000"); err != nil {
				return section{}, fmt.Errorf("%s: %w", inits[i].name, err)
			}
		}
	}
	time.Sleep(idleSpan)

	var md strings.Builder
	fmt.Fprintf(&md, "All run at once: each init with the child `/bin/sleep 1000`, manager watching one existing file (`-config FILE`);\n")
	fmt.Fprintf(&md, "beside them, without a child, Go programs that only sleep on a Go timer and stat that file (what a timer's\n")
	fmt.Fprintf(&md, "wake-up costs any Go program) and the program that links only the packages the contract requires, waiting.\n")
	fmt.Fprintf(&md, "VmRSS and Threads from /proc/PID/status %s after the start; then over %s: CPU ticks (utime+stime of\n", idleSettle, idleSpan)
	fmt.Fprintf(&md, "/proc/PID/stat, 1/100 s), CPU time (sum over threads of /proc/PID/task/*/schedstat) and wake-ups (context switches).\n")
	fmt.Fprintf(&md, "Each init is checked to be the parent of `/bin/sleep 1000` (go-init: `go-init -main \"/bin/sleep 1000\"`).\n\n")
	fmt.Fprintf(&md, "| program | VmRSS | threads | CPU ticks / 20 s | CPU time / 20 s | wake-ups / 20 s |\n|---|---|---|---|---|---|\n")
	last := make([]usage, len(cmds))
	for i, c := range cmds {
		u, err := readUsage(c.Process.Pid)
		if err != nil {
			return section{}, fmt.Errorf("%s: %w", inits[i].name, err)
		}
		last[i] = u
		f := first[i]
		fmt.Fprintf(&md, "| %s | %s | %d | %d | %s | %d |\n", inits[i].name, mib(f.rssKiB), f.threads,
			u.ticks-f.ticks, ms(time.Duration(u.cpu-f.cpu)), u.wakeups-f.wakeups)
		progress("%s: %s, %d threads, %d ticks", inits[i].name, mib(f.rssKiB), f.threads, u.ticks-f.ticks)
	}
	if !haveGoInit {
		fmt.Fprintf(&md, "| go-init | %s | — | — | — | — |\n", b.noGo)
	}
	fmt.Fprintf(&md, "\nVmRSS of %d starts at once of each (the row above among them), %s after the start. A Go program's idle\n", rssStarts, idleSettle)
	fmt.Fprintf(&md, "RSS differs from start to start, as a race at start-up goes: whether the runtime's second P allocates before\n")
	fmt.Fprintf(&md, "main's init (manager's sets GOMAXPROCS to 1). The RSS target is judged on the median.\n\n")
	fmt.Fprintf(&md, "| program | min | median | max | all, KiB |\n|---|---|---|---|---|\n")
	median := make(map[string]int)
	for _, name := range sampled {
		kib := append(samples[name], first[row(name)].rssKiB)
		slices.Sort(kib)
		median[name] = kib[len(kib)/2]
		all := make([]string, len(kib))
		for j, k := range kib {
			all[j] = strconv.Itoa(k)
		}
		fmt.Fprintf(&md, "| %s | %s | %s | %s | %s |\n", name, mib(kib[0]), mib(median[name]), mib(kib[len(kib)-1]), strings.Join(all, " "))
	}

	// By name: the rows of manager and of the floors each target is set against.
	at := func(name string) (usage, usage) {
		for i, in := range inits {
			if in.name == name {
				return first[i], last[i]
			}
		}
		panic("idle: no row " + name)
	}
	const defName = "manager -config FILE (poll 1s)"
	def, defEnd := at(defName)
	fast, fastEnd := at("manager -config FILE -poll 100ms")
	fwd, _ := at("Go floor + os/signal (bench/forward)")
	// The new targets' cells: go-init's numbers beside bench/forward's, and
	// the before binary's beside manager's.
	var gi usage
	peerRSS, peerThreads := b.noGo, b.noGo
	if haveGoInit {
		gi, _ = at(goInit.name)
		peerRSS, peerThreads = fmt.Sprintf("go-init %s (median of %d)", mib(median[goInit.name]), rssStarts), fmt.Sprintf("go-init %d", gi.threads)
	}
	peerRSS += fmt.Sprintf("; bench/forward %s", mib(fwd.rssKiB))
	peerThreads += fmt.Sprintf("; bench/forward %d", fwd.threads)
	rss, threads := fmt.Sprintf("%s (median of %d)", mib(median[defName]), rssStarts), strconv.Itoa(def.threads)
	if b.before != "" {
		bef, _ := at(b.beforeName("-config FILE (poll 1s)"))
		rss += "; before: " + mib(median[b.beforeName("-config FILE (poll 1s)")])
		threads += fmt.Sprintf("; before: %d", bef.threads)
	}
	mandated, _ := at("Go floor: mandated packages only, waiting (see Binary size)")
	poll1, poll1End := at("Go floor: sleep 1s + stat loop (harness poll)")
	poll100, poll100End := at("Go floor: sleep 100ms + stat loop (harness poll)")
	single, singleEnd := at("Go floor: the same, GOMAXPROCS=1")
	cpu := func(a, b usage) string {
		return fmt.Sprintf("%s (%s)", ticks(b.ticks-a.ticks), ms(time.Duration(b.cpu-a.cpu)))
	}
	return section{md.String(), []verdict{
		{"idle RSS ≤ 2.5 MiB", mib(def.rssKiB),
			fmt.Sprintf("%s (mandated packages only); %s (bench/forward)", mib(mandated.rssKiB), mib(fwd.rssKiB)),
			def.rssKiB <= 2560},
		{targetRSS, rss, peerRSS, rssMet(median[defName], median[goInit.name], haveGoInit)},
		{"idle threads ≤ 5", strconv.Itoa(def.threads), fmt.Sprintf("%d (bench/forward)", fwd.threads), def.threads <= 5},
		{targetThreads, threads, peerThreads, def.threads <= 8},
		{"idle CPU over 20 s at the defaults: 0 ticks", cpu(def, defEnd), cpu(poll1, poll1End) + ": 1 s timer + stat",
			defEnd.ticks == def.ticks},
		{"idle CPU over 20 s at `-poll 100ms`: ≤ 1 tick", cpu(fast, fastEnd),
			cpu(poll100, poll100End) + ": 100 ms timer + stat; " + cpu(single, singleEnd) + " with GOMAXPROCS=1",
			fastEnd.ticks-fast.ticks <= 1},
	}}, nil
}

// rssMet tells whether manager's idle RSS meets targetRSS: at most 2.9 MiB,
// and at most go-init's; without go-init, the second half cannot be checked
// and the target is not met.
func rssMet(managerKiB, goInitKiB int, haveGoInit bool) bool {
	return managerKiB*10 <= 29*1024 && haveGoInit && managerKiB <= goInitKiB
}

// hasChild checks that one of pid's children runs argv.
func hasChild(pid int, argv ...string) error {
	lists, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	if err != nil {
		return err
	}
	var seen []string
	for _, list := range lists {
		data, err := os.ReadFile(list)
		if err != nil {
			continue // the thread has just exited
		}
		for _, child := range strings.Fields(string(data)) {
			cmdline, err := os.ReadFile("/proc/" + child + "/cmdline")
			if err != nil {
				continue
			}
			words := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
			if slices.Equal(words, argv) {
				return nil
			}
			seen = append(seen, strings.Join(words, " "))
		}
	}
	if len(seen) == 0 {
		seen = []string{"none"}
	}
	return fmt.Errorf("no child runs %q; its children: %s", strings.Join(argv, " "), strings.Join(seen, ", "))
}

// ticks formats a count of clock ticks.
func ticks(n int) string {
	if n == 1 {
		return "1 tick"
	}
	return fmt.Sprintf("%d ticks", n)
}

// mib formats KiB as MiB.
func mib(kib int) string {
	return fmt.Sprintf("%.2f MiB", float64(kib)/1024)
}
