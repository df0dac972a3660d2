package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		{"not run row, never measured", first, "| idle threads ≤ 5 | not run this time | — | not run |"},
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
