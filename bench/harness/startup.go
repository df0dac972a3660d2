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
)

// startup times INIT -- /bin/true against /bin/true alone with hyperfine.
// -N runs each command without a shell, so that a shell's start does not
// drown the difference; the overhead is the difference of the medians.
func (b *bench) startup() (section, error) {
	type row struct{ name, cmd string }
	rows := []row{
		{"/bin/true alone", "/bin/true"},
		{"Go floor (bench/floor)", b.floor + " /bin/true"},
		{"Go floor + os/signal (bench/forward)", b.forward + " /bin/true"},
		{"manager (defaults)", b.manager + " -- /bin/true"},
		{"manager -config ''", b.manager + " -config '' -- /bin/true"},
		{"tini -s", "tini -s -- /bin/true"},
		{"dumb-init", "dumb-init /bin/true"},
		{"catatonit", "catatonit -- /bin/true"},
	}
	out := filepath.Join(b.work, "startup.json")
	args := []string{"-N", "--warmup", fmt.Sprint(startupWarmup), "--runs", fmt.Sprint(startupRuns),
		"--style", "basic", "--export-json", out}
	for _, r := range rows {
		args = append(args, "-n", r.name, r.cmd)
	}
	// Each run of a command starts at most two programs (an init and
	// /bin/true), and none costs more than a Go program's start, which
	// is the section's pace: hyperfine's work is at most twice a start per
	// run, warm-ups included.
	d := b.pace.deadline(fmt.Sprintf("hyperfine to run %d commands %d times each", len(rows), startupWarmup+startupRuns),
		2*len(rows)*(startupWarmup+startupRuns), 0)
	cmd := exec.Command("hyperfine", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return section{}, fmt.Errorf("hyperfine: %w", err)
	}
	timer := time.AfterFunc(d.limit, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	if !timer.Stop() {
		return section{}, d.err("hyperfine still running, killed (its progress is above)")
	}
	if err != nil {
		return section{}, fmt.Errorf("hyperfine: %w", err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return section{}, err
	}
	var report struct {
		Results []struct {
			Median, Stddev float64
		}
	}
	if err := json.Unmarshal(data, &report); err != nil {
		return section{}, fmt.Errorf("hyperfine's JSON: %w", err)
	}
	if len(report.Results) != len(rows) {
		return section{}, fmt.Errorf("hyperfine reported %d results for %d commands", len(report.Results), len(rows))
	}
	seconds := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	base := seconds(report.Results[0].Median)
	overhead := map[string]time.Duration{}

	var md strings.Builder
	fmt.Fprintf(&md, "Median wall time of %d runs (after %d warm-up runs) of each command, run without a shell:\n", startupRuns, startupWarmup)
	fmt.Fprintf(&md, "`hyperfine -N --warmup %d --runs %d '/bin/true' 'INIT -- /bin/true' ...`.\n", startupWarmup, startupRuns)
	fmt.Fprintf(&md, "Overhead is the command's median minus the median of `/bin/true` alone.\n\n")
	fmt.Fprintf(&md, "| command | median | σ | overhead |\n|---|---|---|---|\n")
	for i, r := range rows {
		med := seconds(report.Results[i].Median)
		overhead[r.name] = med - base
		cmdline := strings.NewReplacer(b.floor, "floor", b.forward, "forward", b.manager, "manager").Replace(r.cmd)
		fmt.Fprintf(&md, "| %s: %s | %s | %s | %s |\n", r.name, code(cmdline), ms(med),
			ms(seconds(report.Results[i].Stddev)), ms(med-base))
	}

	m, tini := overhead["manager (defaults)"], overhead["tini -s"]
	floor, fwd := overhead["Go floor (bench/floor)"], overhead["Go floor + os/signal (bench/forward)"]
	return section{md.String(), []verdict{
		{"startup overhead within 0.3 ms of the Go floor",
			fmt.Sprintf("%s (floor %+.2f ms)", ms(m), float64(m-floor)/1e6),
			fmt.Sprintf("%s (bench/floor); %s with os/signal (bench/forward)", ms(floor), ms(fwd)),
			m-floor <= 300*time.Microsecond},
		{"startup overhead ≤ 2× tini's",
			fmt.Sprintf("%.2f× tini's %s", float64(m)/float64(tini), ms(tini)),
			fmt.Sprintf("%.2f× (bench/floor); %.2f× (bench/forward)", float64(floor)/float64(tini), float64(fwd)/float64(tini)),
			m <= 2*tini},
	}}, nil
}
