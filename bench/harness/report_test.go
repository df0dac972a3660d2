package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// goodReport is a report as bench/run writes it, shortened: a header, the
// Targets table and two sections.
const goodReport = `# Benchmarks

Produced by ` + "`make bench`" + ` (` + "`make static`" + `, then ` + "`bench/run`" + `, which took 303 s) on 2026-11-25 20:27 UTC.

| | |
|---|---|
| manager | manager 31e8b4a, 2494626 bytes, go1.26.8 linux/amd64 |

## Targets

| target | manager | floor or peers, same run | met |
|---|---|---|---|
| startup overhead within 0.3 ms of the Go floor | 4.16 ms (floor +2.57 ms) | 1.59 ms (bench/floor) | **no** |
| startup overhead ≤ 2× tini's | 4.62× tini's 0.90 ms | 1.76× (bench/floor) | **no** |
| reap storm, 10,000 orphans ≤ tini's time | 1052.03 ms | — | **no** |

## Startup overhead

| command | median |
|---|---|
| ` + "`a \\| b`" + ` | 0.69 ms |

## Reap storm

| init | median |
|---|---|
| manager | 1052.03 ms |
`

// writeReport writes text as a BENCHMARKS.md in a new directory.
func writeReport(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReportKeepsLastNumbers checks that a failed section and a section not
// run keep the previous run's text and Targets rows, marked with the run
// that measured them, and that carrying them over once more still names
// that run rather than the one in between.
func TestReportKeepsLastNumbers(t *testing.T) {
	// Only the first two sections: the others were never measured.
	outcomes := make([]outcome, len(sections))
	outcomes[0] = outcome{ran: true, err: errors.New("waited 1s for hyperfine | x\nsecond line")}
	prev, err := readPrevious(writeReport(t, goodReport))
	if err != nil {
		t.Fatal(err)
	}
	if want := "manager 31e8b4a on 2026-11-25 20:27 UTC"; prev.run != want {
		t.Errorf("readPrevious: run = %q, want %q", prev.run, want)
	}
	first := report(outcomes, prev)

	// The next run: startup does not run, reap fails.
	outcomes[0] = outcome{}
	outcomes[1] = outcome{ran: true, err: errors.New("waited 2s for ready")}
	prev, err = readPrevious(writeReport(t, "# Benchmarks\n\nProduced by x on 2026-12-01 10:00 UTC.\n\n| manager | manager abc, 1 bytes |\n\n"+first))
	if err != nil {
		t.Fatal(err)
	}
	second := report(outcomes, prev)

	for _, tc := range []struct {
		name, report, want string
	}{
		{"failed row", first, "| startup overhead ≤ 2× tini's | **failed** in this run: waited 1s for hyperfine \\| x / second line. " +
			"Last measured (manager 31e8b4a on 2026-11-25 20:27 UTC): 4.62× tini's 0.90 ms | 1.76× (bench/floor) | **failed** (then: **no**) |"},
		{"failed section", first, "## Startup overhead\n\n**Failed in this run:**\n\n    waited 1s for hyperfine | x\n    second line\n\n" +
			"Below: the numbers of the last run that measured them, manager 31e8b4a on 2026-11-25 20:27 UTC.\n\n| command | median |\n|---|---|\n| `a \\| b` | 0.69 ms |\n"},
		{"not run, never measured", first, "## Idle footprint\n\nNot run this time.\n\nNo earlier run in BENCHMARKS.md measured it.\n"},
		{"not run row, never measured", first, "| idle threads ≤ 5 *(superseded)* | not run this time | — | not run |"},
		{"new target, never measured", first, "| " + targetThreads + " | not run this time | — | not run |"},
		{"summary", first, "**Failed in this run: Startup overhead.** Not run this time: Reap storm, "},
		{"carried twice: row", second, "| startup overhead ≤ 2× tini's | not run this time. " +
			"Last measured (manager 31e8b4a on 2026-11-25 20:27 UTC): 4.62× tini's 0.90 ms | 1.76× (bench/floor) | not run (then: **no**) |"},
		{"carried twice: section", second, "## Startup overhead\n\nNot run this time.\n\n" +
			"Below: the numbers of the last run that measured them, manager 31e8b4a on 2026-11-25 20:27 UTC.\n\n| command | median |\n"},
		{"failed after not run: row", second, "| reap storm, 10,000 orphans ≤ tini's time | **failed** in this run: waited 2s for ready. " +
			"Last measured (manager 31e8b4a on 2026-11-25 20:27 UTC): 1052.03 ms | — | **failed** (then: **no**) |"},
		{"failed after not run: section", second, "## Reap storm\n\n**Failed in this run:**\n\n    waited 2s for ready\n\n" +
			"Below: the numbers of the last run that measured them, manager 31e8b4a on 2026-11-25 20:27 UTC.\n\n| init | median |\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(tc.report, tc.want) {
				t.Errorf("report does not hold\n%s\nreport:\n%s", tc.want, tc.report)
			}
		})
	}
	if strings.Contains(second, "waited 1s") {
		t.Errorf("the second report still shows the first run's error:\n%s", second)
	}
}

// TestReportMeasured checks that a section that ran shows its own numbers
// and nothing of the previous report.
func TestReportMeasured(t *testing.T) {
	outcomes := make([]outcome, len(sections))
	for i, s := range sections {
		var verdicts []verdict
		for _, target := range s.targets {
			verdicts = append(verdicts, verdict{target: target, measured: "new " + s.name, met: true})
		}
		outcomes[i] = outcome{ran: true, sec: section{markdown: "text of " + s.name + "\n", verdicts: verdicts}}
	}
	prev, err := readPrevious(writeReport(t, goodReport))
	if err != nil {
		t.Fatal(err)
	}
	got := report(outcomes, prev)
	for _, bad := range []string{"1052.03", "Failed", "not run", "Last measured"} {
		if strings.Contains(got, bad) {
			t.Errorf("report holds %q:\n%s", bad, got)
		}
	}
	if want := "| reap storm, 10,000 orphans ≤ tini's time | new reap | — | yes |\n"; !strings.Contains(got, want) {
		t.Errorf("report does not hold %q:\n%s", want, got)
	}
	if want := "\n## Reap storm\n\ntext of reap\n"; !strings.Contains(got, want) {
		t.Errorf("report does not hold %q:\n%s", want, got)
	}
}

// TestReadPreviousMissing checks that a report that does not exist, or
// none given, holds nothing rather than failing the run.
func TestReadPreviousMissing(t *testing.T) {
	for _, path := range []string{"", filepath.Join(t.TempDir(), "none.md")} {
		p, err := readPrevious(path)
		if err != nil || len(p.sections) != 0 || len(p.rows) != 0 {
			t.Errorf("readPrevious(%q) = %d sections, %d rows, %v; want none, nil", path, len(p.sections), len(p.rows), err)
		}
	}
}

// TestReportSuperseded checks that the rows of superseded targets are
// marked, that the report says what replaced them, and that a marked row of
// a previous report is read back under its target, to be carried over.
func TestReportSuperseded(t *testing.T) {
	for old, by := range superseded {
		if _, ok := superseded[by]; ok {
			t.Errorf("%q is superseded by %q, itself superseded", old, by)
		}
		found := 0
		for _, s := range sections {
			for _, target := range s.targets {
				if target == old || target == by {
					found++
				}
			}
		}
		if found != 2 {
			t.Errorf("%q → %q: %d of the two targets in the sections table", old, by, found)
		}
	}

	outcomes := make([]outcome, len(sections))
	outcomes[0] = outcome{ran: true, sec: section{markdown: "startup\n", verdicts: []verdict{
		{target: sections[0].targets[0], measured: "16.62 ms"},
		{target: targetStartup, measured: "16.62 ms (limit 15.05 ms)", floor: "11.64 ms (bench/forward)"},
		{target: sections[0].targets[2], measured: "3.67×", met: true},
	}}}
	first := report(outcomes, previous{})
	for _, want := range []string{
		"| startup overhead within 0.3 ms of the Go floor *(superseded)* | 16.62 ms | — | **no** |\n",
		"| " + targetStartup + " | 16.62 ms (limit 15.05 ms) | 11.64 ms (bench/forward) | **no** |\n",
		"| startup overhead ≤ 2× tini's | 3.67× | — | yes |\n",
		"kept for comparison, each replaced by a later one: startup overhead within 0.3 ms of the Go floor → " + targetStartup + "; ",
		"; static binary ≤ 2.0 MB → " + targetSize + ".\n",
	} {
		if !strings.Contains(first, want) {
			t.Errorf("report does not hold\n%s\nreport:\n%s", want, first)
		}
	}

	prev, err := readPrevious(writeReport(t, "# Benchmarks\n\nProduced by x on 2026-12-05 10:00 UTC.\n\n| manager | manager abc, 1 bytes |\n\n"+first))
	if err != nil {
		t.Fatal(err)
	}
	outcomes[0] = outcome{}
	second := report(outcomes, prev)
	want := "| startup overhead within 0.3 ms of the Go floor *(superseded)* | not run this time. " +
		"Last measured (manager abc on 2026-12-05 10:00 UTC): 16.62 ms | — | not run (then: **no**) |\n"
	if !strings.Contains(second, want) {
		t.Errorf("report does not hold\n%s\nreport:\n%s", want, second)
	}
}

// TestNewTargets checks the bounds of the targets against the Go peers.
func TestNewTargets(t *testing.T) {
	ms := time.Millisecond
	if got, want := startupLimit(10*ms), 13*ms; got != want {
		t.Errorf("startupLimit(10 ms) = %s, want %s", got, want)
	}
	for _, tc := range []struct {
		manager, goInit int // KiB
		have            bool
		met             bool
	}{
		{2969, 3000, true, true},  // 2.899 MiB
		{2970, 3000, true, false}, // 2.900 MiB and a fraction: above 2.9 MiB
		{2800, 2799, true, false}, // above go-init's
		{2800, 2800, true, true},  // equal to go-init's
		{2000, 0, false, false},   // no go-init to compare with
	} {
		if got := rssMet(tc.manager, tc.goInit, tc.have); got != tc.met {
			t.Errorf("rssMet(%d KiB, go-init %d KiB, available %v) = %v, want %v", tc.manager, tc.goInit, tc.have, got, tc.met)
		}
	}
}

// TestGoInitCommand checks that go-init gets its child as one -main flag,
// which it splits at spaces, and that the report names the binaries by
// their names, the older manager's apart from the newer.
func TestGoInitCommand(t *testing.T) {
	b := bench{manager: "/w/manager", before: "/w/manager-before", beforeV: "manager v1", floor: "/w/floor", forward: "/w/forward", goInit: "/w/go-init"}
	in, ok := b.goInitCmd()
	if got, want := in.argv("/bin/sleep", "1000"), []string{"/w/go-init", "-main", "/bin/sleep 1000"}; !ok || !slices.Equal(got, want) {
		t.Errorf("go-init's argv = %q (available %v), want %q", got, ok, want)
	}
	if got := (initCmd{"tini", []string{"tini", "--"}, false}).argv("/bin/sleep", "1000"); !slices.Equal(got, []string{"tini", "--", "/bin/sleep", "1000"}) {
		t.Errorf("tini's argv = %q", got)
	}
	got := b.shortNames().Replace("/w/manager -- /bin/true; /w/manager-before -- /bin/true; /w/go-init -main /bin/true")
	if want := "manager -- /bin/true; manager-before -- /bin/true; go-init -main /bin/true"; got != want {
		t.Errorf("shortNames: %q, want %q", got, want)
	}
	if got, want := b.beforeName("(defaults)"), "manager (before, manager v1) (defaults)"; got != want {
		t.Errorf("beforeName = %q, want %q", got, want)
	}
	if _, ok := (&bench{}).goInitCmd(); ok {
		t.Errorf("go-init available without a binary")
	}
}

// TestHasChild checks the idle section's check that an init runs its
// child, on a child of the test.
func TestHasChild(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip(err)
	}
	cmd := exec.Command(sleep, "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	// The child may not have exec'd yet: its cmdline is the test's until then.
	deadline := time.Now().Add(10 * time.Second)
	for hasChild(os.Getpid(), sleep, "1000") != nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := hasChild(os.Getpid(), sleep, "1000"); err != nil {
		t.Error(err)
	}
	err = hasChild(os.Getpid(), sleep, "999")
	if err == nil || !strings.Contains(err.Error(), sleep+" 1000") {
		t.Errorf("hasChild(sleep 999) = %v, want an error naming the child %s 1000", err, sleep)
	}
}
