// Harness measures manager beside tini, dumb-init and catatonit and prints
// the results as Markdown, for BENCHMARKS.md. bench/run builds it and runs
// it as root (PID namespaces); progress goes to standard error.
//
// Usage:
//
//	harness -manager PATH -floor PATH -forward PATH -work DIR [-only SECTION,...] [-slack N]
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
	work    string  // scratch directory, removed by bench/run
	slack   float64 // multiplies every bound on a wait (-slack)

	pace   pace     // of "harness true", taken as each section starts
	floors []string // the floorPrograms built, once needed
}

// section is one part of the report: its Markdown and the targets it checks.
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

// sections in the order of the report.
var sections = []struct {
	name string
	run  func(*bench) (section, error)
}{
	{"startup", (*bench).startup},
	{"reap", (*bench).reapStorm},
	{"signal", (*bench).signalLatency},
	{"idle", (*bench).idle},
	{"size", (*bench).size},
	{"reload", (*bench).reload},
	{"restart", (*bench).restart},
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
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "harness: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	b := bench{slack: defaultSlack}
	flag.StringVar(&b.manager, "manager", "", "manager binary")
	flag.StringVar(&b.floor, "floor", "", "bench/floor binary")
	flag.StringVar(&b.forward, "forward", "", "bench/forward binary")
	flag.StringVar(&b.work, "work", "", "scratch directory")
	flag.Float64Var(&b.slack, "slack", defaultSlack, "multiple of the machine's pace that bounds each wait")
	only := flag.String("only", "", "comma-separated sections to run (default all)")
	flag.Parse()
	if b.manager == "" || b.floor == "" || b.forward == "" || b.work == "" {
		return errors.New("-manager, -floor, -forward and -work are required")
	}
	if b.slack <= 0 {
		return fmt.Errorf("-slack %g: not positive", b.slack)
	}
	var err error
	if b.self, err = os.Executable(); err != nil {
		return err
	}
	var out []section
	for _, s := range sections {
		if *only != "" && !slices.Contains(strings.Split(*only, ","), s.name) {
			continue
		}
		start := time.Now()
		progress("== %s: started at %s", s.name, start.Format("15:04:05"))
		if b.pace, err = b.measurePace("harness true", b.self, "true"); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		progress("%s: %s", s.name, b.pace)
		sec, err := s.run(&b)
		if err != nil {
			progress("== %s: FAILED after %s", s.name, time.Since(start).Round(100*time.Millisecond))
			return fmt.Errorf("%s: %w", s.name, err)
		}
		progress("== %s: done in %s", s.name, time.Since(start).Round(100*time.Millisecond))
		out = append(out, sec)
	}

	fmt.Println("## Targets")
	fmt.Println()
	fmt.Println("| target | manager | floor or peers, same run | met |")
	fmt.Println("|---|---|---|---|")
	for _, s := range out {
		for _, v := range s.verdicts {
			met := "**no**"
			if v.met {
				met = "yes"
			}
			fmt.Printf("| %s | %s | %s | %s |\n", v.target, v.measured, cmp.Or(v.floor, "—"), met)
		}
	}
	for _, s := range out {
		fmt.Println()
		fmt.Print(s.markdown)
	}
	return nil
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
// command line.
type initCmd struct {
	name   string
	prefix []string
}

// command is the init running argv.
func (in initCmd) command(argv ...string) *exec.Cmd {
	all := append(slices.Clone(in.prefix), argv...)
	return exec.Command(all[0], all[1:]...)
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
		{"manager", []string{b.manager, "--"}},
		{"tini", tini},
		{"dumb-init", []string{"dumb-init"}},
		{"catatonit", []string{"catatonit", "--"}},
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
