package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

const (
	startupRuns   = 300 // how many times hyperfine runs each command
	startupWarmup = 20  // and how many times before, unmeasured

	// go-init gets a hyperfine of its own, with fewer runs: it exits only
	// when its reaper goroutine, which sleeps 1 s between two polls, next
	// wakes, so that each run takes about a second.
	goInitRuns   = 10
	goInitWarmup = 2
)

// timed is a command for hyperfine: its row's name and its command line.
type timed struct{ name, cmd string }

// timing is what hyperfine reports of one command, in seconds.
type timing struct{ Median, Stddev float64 }

// startup times INIT -- /bin/true against /bin/true alone with hyperfine.
// -N runs each command without a shell, so that a shell's start does not
// drown the difference; the overhead is the difference of the medians.
func (b *bench) startup() (section, error) {
	rows := []timed{
		{"/bin/true alone", "/bin/true"},
		{"Go floor (bench/floor)", b.floor + " /bin/true"},
		{"Go floor + os/signal (bench/forward)", b.forward + " /bin/true"},
		{"manager (defaults)", b.manager + " -- /bin/true"},
		{"manager -config ''", b.manager + " -config '' -- /bin/true"},
	}
	if b.before != "" {
		rows = append(rows, timed{b.beforeName("(defaults)"), b.before + " -- /bin/true"})
	}
	rows = append(rows,
		timed{"tini -s", "tini -s -- /bin/true"},
		timed{"dumb-init", "dumb-init /bin/true"},
		timed{"catatonit", "catatonit -- /bin/true"},
	)
	// Each run of a command starts at most two programs (an init and
	// /bin/true), and none costs more than a Go program's start, which
	// is the section's pace: hyperfine's work is at most twice a start per
	// run, warm-ups included.
	results, err := b.hyperfine("startup.json", rows, startupWarmup, startupRuns, 0)
	if err != nil {
		return section{}, err
	}

	// go-init: checked first to run the program that -main names, with its
	// arguments, and timed on its own (see goInitRuns).
	var goInit *timing
	goInitLine := code("go-init -main /bin/true")
	if in, ok := b.goInitCmd(); ok {
		took, err := b.checkGoInit(in)
		if err != nil {
			return section{}, err
		}
		// A run is two starts and the reaper's sleep, which the check
		// has just timed with them.
		r, err := b.hyperfine("startup-go-init.json", []timed{{"go-init", strings.Join(in.argv("/bin/true"), " ")}},
			goInitWarmup, goInitRuns, time.Duration(goInitWarmup+goInitRuns)*took)
		if err != nil {
			return section{}, fmt.Errorf("go-init: %w", err)
		}
		goInit = &r[0]
	}

	seconds := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	base := seconds(results[0].Median)
	overhead := map[string]time.Duration{}

	var md strings.Builder
	fmt.Fprintf(&md, "Median wall time of %d runs (after %d warm-up runs) of each command, run without a shell:\n", startupRuns, startupWarmup)
	fmt.Fprintf(&md, "`hyperfine -N --warmup %d --runs %d '/bin/true' 'INIT -- /bin/true' ...`.\n", startupWarmup, startupRuns)
	fmt.Fprintf(&md, "Overhead is the command's median minus the median of `/bin/true` alone.\n")
	fmt.Fprintf(&md, "go-init takes its program as one flag, `-main \"CMD ARGS\"`; it is timed by a hyperfine of its own, %d runs after\n", goInitRuns)
	fmt.Fprintf(&md, "%d warm-up runs, because it exits only when its reaper goroutine next wakes from a 1 s sleep (its source:\n", goInitWarmup)
	fmt.Fprintf(&md, "`removeZombies` polls `wait4` every second, and `cleanQuit` waits for it), so that each run takes about a second.\n")
	fmt.Fprintf(&md, "Its overhead is against the median of `/bin/true` above.\n\n")
	fmt.Fprintf(&md, "| command | median | σ | overhead |\n|---|---|---|---|\n")
	names := b.shortNames()
	for i, r := range rows {
		med := seconds(results[i].Median)
		overhead[r.name] = med - base
		fmt.Fprintf(&md, "| %s: %s | %s | %s | %s |\n", r.name, code(names.Replace(r.cmd)), ms(med),
			ms(seconds(results[i].Stddev)), ms(med-base))
	}
	goInitCell := b.noGo
	if goInit != nil {
		med := seconds(goInit.Median)
		fmt.Fprintf(&md, "| go-init (%d runs): %s | %s | %s | %s |\n", goInitRuns, goInitLine, ms(med), ms(seconds(goInit.Stddev)), ms(med-base))
		goInitCell = "go-init " + ms(med-base)
	} else {
		fmt.Fprintf(&md, "| go-init: %s | %s | — | — |\n", goInitLine, b.noGo)
	}

	m, tini := overhead["manager (defaults)"], overhead["tini -s"]
	floor, fwd := overhead["Go floor (bench/floor)"], overhead["Go floor + os/signal (bench/forward)"]
	limit := startupLimit(fwd)
	measured := fmt.Sprintf("%s (limit %s)", ms(m), ms(limit))
	if b.before != "" {
		measured += fmt.Sprintf("; before: %s", ms(overhead[b.beforeName("(defaults)")]))
	}
	return section{md.String(), []verdict{
		{"startup overhead within 0.3 ms of the Go floor",
			fmt.Sprintf("%s (floor %+.2f ms)", ms(m), float64(m-floor)/1e6),
			fmt.Sprintf("%s (bench/floor); %s with os/signal (bench/forward)", ms(floor), ms(fwd)),
			m-floor <= 300*time.Microsecond},
		{targetStartup, measured,
			fmt.Sprintf("%s (bench/forward); %s", ms(fwd), goInitCell),
			m <= limit},
		{"startup overhead ≤ 2× tini's",
			fmt.Sprintf("%.2f× tini's %s", float64(m)/float64(tini), ms(tini)),
			fmt.Sprintf("%.2f× (bench/floor); %.2f× (bench/forward)", float64(floor)/float64(tini), float64(fwd)/float64(tini)),
			m <= 2*tini},
	}}, nil
}

// startupLimit is targetStartup's bound on manager's overhead, given that
// of the bare Go init, bench/forward: 1.25 times it, plus 0.5 ms.
func startupLimit(forward time.Duration) time.Duration {
	return forward*5/4 + 500*time.Microsecond
}

// hyperfine runs rows through hyperfine, warmup and runs times each,
// exporting to file in the scratch directory, and returns their timings in
// order. The wait for it is two starts per run of each row, plus fixed, the
// time that the rows take by design.
func (b *bench) hyperfine(file string, rows []timed, warmup, runs int, fixed time.Duration) ([]timing, error) {
	out := filepath.Join(b.work, file)
	args := []string{"-N", "--warmup", fmt.Sprint(warmup), "--runs", fmt.Sprint(runs),
		"--style", "basic", "--export-json", out}
	for _, r := range rows {
		args = append(args, "-n", r.name, r.cmd)
	}
	d := b.pace.deadline(fmt.Sprintf("hyperfine to run %d commands %d times each", len(rows), warmup+runs),
		2*len(rows)*(warmup+runs), fixed)
	cmd := exec.Command("hyperfine", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("hyperfine: %w", err)
	}
	timer := time.AfterFunc(d.limit, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	if !timer.Stop() {
		return nil, d.err("hyperfine still running, killed (its progress is above)")
	}
	if err != nil {
		return nil, fmt.Errorf("hyperfine: %w", err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	var report struct{ Results []timing }
	if err := json.Unmarshal(data, &report); err != nil {
		return nil, fmt.Errorf("hyperfine's JSON: %w", err)
	}
	if len(report.Results) != len(rows) {
		return nil, fmt.Errorf("hyperfine reported %d results for %d commands", len(report.Results), len(rows))
	}
	return report.Results, nil
}

// checkGoInit runs go-init once with a child that leaves a trace,
// `touch FILE`, to make sure that the way the benchmarks invoke it runs the
// program and its arguments, and returns how long that took: a start of
// go-init and of its child, and the 1 s sleep of its reaper.
func (b *bench) checkGoInit(in initCmd) (time.Duration, error) {
	touch, err := exec.LookPath("touch")
	if err != nil {
		return 0, fmt.Errorf("go-init's check: %w", err)
	}
	trace := filepath.Join(b.work, "go-init-ran")
	cmd := in.command(touch, trace)
	d := b.pace.deadline("go-init -main 'touch FILE' to exit", 2, time.Second)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("go-init: %w", err)
	}
	timer := time.AfterFunc(d.limit, func() { cmd.Process.Kill() })
	err = cmd.Wait()
	took := time.Since(start)
	if !timer.Stop() {
		return 0, d.err("go-init still running, killed")
	}
	if err != nil {
		return 0, fmt.Errorf("go-init %s: %w", strings.Join(cmd.Args[1:], " "), err)
	}
	if _, err := os.Stat(trace); err != nil {
		return 0, fmt.Errorf("go-init %s exited 0 but did not run its program: %w", strings.Join(cmd.Args[1:], " "), err)
	}
	progress("go-init ran %s in %s", strings.Join(cmd.Args[1:], " "), ms(took))
	return took, nil
}

// shortNames replaces the paths of the programs under test in a command
// line by their names.
func (b *bench) shortNames() *strings.Replacer {
	// The before binary first: it may share the manager's path as a prefix.
	var pairs []string
	for _, p := range [][2]string{{b.before, "manager-before"}, {b.manager, "manager"}, {b.floor, "floor"},
		{b.forward, "forward"}, {b.goInit, "go-init"}} {
		if p[0] != "" {
			pairs = append(pairs, p[0], p[1])
		}
	}
	return strings.NewReplacer(pairs...)
}
