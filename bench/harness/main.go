// Harness measures manager beside tini, dumb-init, catatonit, go-init and
// the Go floors (bench/floor, bench/forward: the bare Go init) and prints
// the results as Markdown, for BENCHMARKS.md. bench/run builds it and runs
// it as root (PID namespaces); progress goes to standard error.
//
// Usage:
//
//	harness -manager PATH -floor PATH -forward PATH -work DIR
//		[-go-init PATH | -go-init-missing WHY] [-before PATH -before-version V]
//		[-only SECTION,...] [-previous BENCHMARKS.md] [-slack N]
//
// -go-init is pablo-ruth/go-init, built by bench/run from its source, a Go
// peer measured beside manager in the startup, idle and size sections; without
// it, its rows say -go-init-missing. -before is an older manager binary
// (bench/run's BENCH_BEFORE), measured beside this one in the startup, idle,
// size and restart sections as "manager (before)", labeled with -before-version,
// its -version output.
//
// Each section runs on its own: one that fails is reported as failed and
// the others still run. A failed section, and one that -only leaves out,
// keeps the text and Targets rows that -previous holds for it, marked with
// the run that measured them (see report.go). The exit status is 0 when
// every section ran and succeeded, 1 when some failed (the report is
// complete all the same), and 2 when there is no report.
//
// Every wait is bounded by a multiple of the machine's pace (see wait.go);
// -slack sets the multiple, default 10, and a tiny one such as 0.001 makes
// the waits expire, to see a failure reported.
//
// The harness is also the child that the inits run, the way a Go test binary
// is its own helper: "harness stamp" prints its start time and waits for
// SIGTERM, "harness sigrecv" prints the time of every SIGUSR1 it receives,
// "harness poll PERIOD FILE" stats FILE every PERIOD, and "harness true"
// exits at once, to time a start.
package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// bench is what every section needs: the programs under test, a scratch
// directory and the pace that bounds its waits.
type bench struct {
	manager string  // the static manager binary
	floor   string  // bench/floor: fork-exec and wait4, the least Go init
	forward string  // bench/forward: bench/floor plus os/signal as the contract requires
	self    string  // this binary, run as a child
	goInit  string  // pablo-ruth/go-init, or "" when not available
	noGo    string  // why go-init is not available, for its rows
	before  string  // an older manager binary (BENCH_BEFORE), or ""
	beforeV string  // its -version output
	work    string  // scratch directory, removed by bench/run
	slack   float64 // multiplies every bound on a wait (-slack)

	pace   pace     // of "harness true", taken as each section starts
	floors []string // the floorPrograms built, once needed
}

// section is one part of the report: its Markdown, below its heading, and
// the targets it checks.
type section struct {
	markdown string
	verdicts []verdict
}

// verdict is one row of the targets table: manager's number and, where
// one applies, the best that a Go program reaches in the same measurement
// (or, for reload, the peers').
type verdict struct {
	target   string
	measured string
	floor    string
	met      bool
}

// sectionSpec is a section of the report as the harness knows it before it
// runs: its name for -only, its heading, and the Targets rows it feeds, which
// a failed run of it must still show.
type sectionSpec struct {
	name    string
	title   string
	targets []string
	run     func(*bench) (section, error)
}

// sections in the order of the report.
var sections = []sectionSpec{
	{"startup", "Startup overhead", []string{
		"startup overhead within 0.3 ms of the Go floor",
		targetStartup,
		"startup overhead ≤ 2× tini's",
	}, (*bench).startup},
	{"reap", "Reap storm", []string{
		"reap storm, 10,000 orphans ≤ tini's time",
	}, (*bench).reapStorm},
	{"signal", "Signal forwarding latency", []string{
		"signal latency p50 ≤ tini's + 30 µs",
		"signal latency p99 ≤ 250 µs",
	}, (*bench).signalLatency},
	{"idle", "Idle footprint", []string{
		"idle RSS ≤ 2.5 MiB",
		targetRSS,
		"idle threads ≤ 5",
		targetThreads,
		"idle CPU over 20 s at the defaults: 0 ticks",
		"idle CPU over 20 s at `-poll 100ms`: ≤ 1 tick",
	}, (*bench).idle},
	{"size", "Binary size", []string{
		"static binary ≤ 2.0 MB",
		targetSize,
	}, (*bench).size},
	{"reload", "Reload latency", []string{
		"reload latency at `-poll 100ms -debounce 100ms` ≤ 200 ms",
	}, (*bench).reload},
	{"restart", "Restart cost", []string{
		"no fd growth over 1,000 restarts (contract §7)",
		"no fd growth over 1,000 restarts with -listen",
	}, (*bench).restart},
}

// The targets that make manager lighter than every Go peer (go-init and the
// bare Go init, bench/forward), each checked on the numbers of one run.
const (
	targetStartup = "startup overhead ≤ 1.25 × bench/forward's + 0.5 ms"
	targetRSS     = "idle RSS ≤ 2.9 MiB and ≤ go-init's"
	targetThreads = "idle threads ≤ 8"
	targetSize    = "static binary ≤ 2.2 MB (2,200,000 bytes)"
)

// superseded maps the earlier targets that a later one replaces to that
// one. Their rows stay in the report, marked, for comparison.
var superseded = map[string]string{
	"startup overhead within 0.3 ms of the Go floor": targetStartup,
	"idle RSS ≤ 2.5 MiB":                             targetRSS,
	"idle threads ≤ 5":                               targetThreads,
	"static binary ≤ 2.0 MB":                         targetSize,
}

// outcome is what became of one section in this run.
type outcome struct {
	ran  bool // false: -only left it out
	err  error
	sec  section // when ran and err is nil
	took time.Duration
}

func main() {
	// Taken before anything else, so that a "stamp" child reports the
	// moment its main function began, as close to its start as Go allows.
	t := mono()
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "stamp":
			stamp(t)
			return
		case "sigrecv":
			sigrecv()
			return
		case "sigfd":
			sigfd()
			return
		case "poll":
			poll(os.Args[2:])
			return
		case "true":
			return
		}
	}
	failed, err := run()
	if err != nil {
		fmt.Fprintf(os.Stderr, "harness: %v\n", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

// run runs the sections and prints the report; failed reports whether a
// section failed, err that there is no report.
func run() (failed bool, err error) {
	b := bench{slack: defaultSlack}
	flag.StringVar(&b.manager, "manager", "", "manager binary")
	flag.StringVar(&b.floor, "floor", "", "bench/floor binary")
	flag.StringVar(&b.forward, "forward", "", "bench/forward binary")
	flag.StringVar(&b.work, "work", "", "scratch directory")
	flag.Float64Var(&b.slack, "slack", defaultSlack, "multiple of the machine's pace that bounds each wait")
	flag.StringVar(&b.goInit, "go-init", "", "pablo-ruth/go-init binary (a Go peer); empty: not available")
	flag.StringVar(&b.noGo, "go-init-missing", goInitMissing, "what go-init's rows say when -go-init is empty")
	flag.StringVar(&b.before, "before", "", "an older manager binary, measured beside -manager as \"manager (before)\"")
	flag.StringVar(&b.beforeV, "before-version", "", "the -version output of -before, for its rows")
	only := flag.String("only", "", "comma-separated sections to run (default all)")
	previous := flag.String("previous", "", "the BENCHMARKS.md to keep numbers from for sections that fail or are not run")
	flag.Parse()
	if b.manager == "" || b.floor == "" || b.forward == "" || b.work == "" {
		return false, errors.New("-manager, -floor, -forward and -work are required")
	}
	if b.before != "" && b.beforeV == "" {
		return false, errors.New("-before needs -before-version")
	}
	if b.slack <= 0 {
		return false, fmt.Errorf("-slack %g: not positive", b.slack)
	}
	var chosen []string
	if *only != "" {
		chosen = strings.Split(*only, ",")
		for _, name := range chosen {
			if !slices.ContainsFunc(sections, func(s sectionSpec) bool { return s.name == name }) {
				return false, fmt.Errorf("-only %s: no such section", name)
			}
		}
	}
	prev, err := readPrevious(*previous)
	if err != nil {
		return false, err
	}
	if b.self, err = os.Executable(); err != nil {
		return false, err
	}

	begin := time.Now()
	outcomes := make([]outcome, len(sections))
	var ran, bad []string
	for i, s := range sections {
		if chosen != nil && !slices.Contains(chosen, s.name) {
			continue
		}
		ran = append(ran, s.name)
		outcomes[i] = b.runSection(s, len(ran), cmp.Or(len(chosen), len(sections)))
		if outcomes[i].err != nil {
			bad = append(bad, s.name)
		}
	}
	summary := fmt.Sprintf("%d sections run in %s", len(ran), time.Since(begin).Round(time.Second))
	for i, o := range outcomes {
		if o.ran {
			summary += fmt.Sprintf("; %s %s", sections[i].name, o.took.Round(100*time.Millisecond))
		}
	}
	if len(bad) > 0 {
		summary += fmt.Sprintf(". FAILED: %s (BENCHMARKS.md keeps their last numbers)", strings.Join(bad, ", "))
	}
	progress("== %s", summary)
	fmt.Print(report(outcomes, prev))
	return len(bad) > 0, nil
}

// runSection runs one section, the n-th of of in this run, and reports its
// start, its end and how long it took on standard error.
func (b *bench) runSection(s sectionSpec, n, of int) (o outcome) {
	start := time.Now()
	progress("== %s: started at %s (section %d of %d)", s.name, start.Format("15:04:05"), n, of)
	o.ran = true
	defer func() {
		// A bug in one section is that section's failure; its deferred
		// clean-ups have run by now.
		if p := recover(); p != nil {
			o.err = fmt.Errorf("panic: %v", p)
		}
		o.took = time.Since(start)
		if o.err != nil {
			progress("== %s: FAILED after %s: %v", s.name, o.took.Round(100*time.Millisecond), o.err)
			return
		}
		progress("== %s: done in %s", s.name, o.took.Round(100*time.Millisecond))
	}()
	if b.pace, o.err = b.measurePace("harness true", b.self, "true"); o.err != nil {
		return o
	}
	progress("%s: %s", s.name, b.pace)
	sec, err := s.run(b)
	if err != nil {
		o.err = err
		return o
	}
	var got []string
	for _, v := range sec.verdicts {
		got = append(got, v.target)
	}
	if !slices.Equal(got, s.targets) {
		o.err = fmt.Errorf("harness bug: the section checked targets %q, the sections table says %q", got, s.targets)
		return o
	}
	o.sec = sec
	return o
}

// progress reports on standard error, which bench/run leaves on the
// terminal while standard output becomes the report.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

// mono reads CLOCK_MONOTONIC in nanoseconds. Unlike time.Now's monotonic
// reading, which counts from each process's start, it is comparable between
// processes: the sender of a signal and its receiver, a file's writer and the
// child that starts because of it.
func mono() int64 {
	var ts syscall.Timespec
	syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, 1 /* CLOCK_MONOTONIC */, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano()
}

// initCmd is an init under test: the words that go before the child's
// command line. An init that takes its child as the value of one flag
// (go-init's -main "CMD ARGS") has joined set: the child's words become one
// argument, joined by spaces, after the prefix.
type initCmd struct {
	name   string
	prefix []string
	joined bool
}

// command is the init running argv.
func (in initCmd) command(argv ...string) *exec.Cmd {
	all := in.argv(argv...)
	return exec.Command(all[0], all[1:]...)
}

// argv is the init's command line running argv.
func (in initCmd) argv(argv ...string) []string {
	if in.joined {
		argv = []string{strings.Join(argv, " ")}
	}
	return append(slices.Clone(in.prefix), argv...)
}

// goInitMissing is what go-init's rows say when bench/run could not build it.
const goInitMissing = "not available (set GO_INIT_SRC to pablo-ruth/go-init's source)"

// goInitCmd is go-init running its child: it takes the child's command line
// as one flag, -main, which it splits at spaces (strings.Fields), so that no
// word of the child may hold a space. ok is false when it is not available.
func (b *bench) goInitCmd() (in initCmd, ok bool) {
	return initCmd{"go-init", []string{b.goInit, "-main"}, true}, b.goInit != ""
}

// beforeName is the name of the -before manager's rows: "manager (before,
// VERSION)", then what follows.
func (b *bench) beforeName(rest string) string {
	return strings.TrimSpace(fmt.Sprintf("manager (before, %s) %s", b.beforeV, rest))
}

// peers are the inits compared with manager. Outside PID 1, tini needs -s to
// reap as a child subreaper, as manager and catatonit do unasked; dumb-init
// has no subreaper mode and needs nothing to forward signals.
func (b *bench) peers(pid1 bool) []initCmd {
	tini := []string{"tini", "-s", "--"}
	if pid1 {
		tini = []string{"tini", "--"}
	}
	return []initCmd{
		{"manager", []string{b.manager, "--"}, false},
		{"tini", tini, false},
		{"dumb-init", []string{"dumb-init"}, false},
		{"catatonit", []string{"catatonit", "--"}, false},
	}
}

// median of a sample, which it sorts.
func median(d []time.Duration) time.Duration {
	return percentile(d, 50)
}

// percentile p of a sample, which it sorts: the smallest value with at least
// p% of the sample at or below it.
func percentile(d []time.Duration, p int) time.Duration {
	slices.Sort(d)
	i := (len(d)*p+99)/100 - 1
	return d[max(i, 0)]
}

// code formats s as inline code in a Markdown table cell, where a "|" would
// end the cell.
func code(s string) string {
	return "`" + strings.ReplaceAll(s, "|", `\|`) + "`"
}

// ms formats a duration in milliseconds.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// us formats a duration in microseconds.
func us(d time.Duration) string {
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}
