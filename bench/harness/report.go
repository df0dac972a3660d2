package main

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"
)

// The report is the Targets table, then each section under its heading. A
// section that failed in this run, or that -only left out, shows what the
// previous BENCHMARKS.md (-previous) holds for it: its text and its Targets
// rows, marked with the run that measured them and, if it failed, with this
// run's error. So a failed run never replaces the last good numbers with
// nothing, and never passes them off as its own.
//
// Which run measured them is read from the header that bench/run writes
// ("Produced by ... on DATE." and the row "| manager | manager VERSION,
// ..."); for a section already carried over from an earlier run, from the
// note that carried it, so that it keeps naming the run that measured it.

// The notes that mark a carried section and its rows. They are written and
// read back here; change both together.
const (
	failedNote   = "**Failed in this run:**"
	notRunNote   = "Not run this time."
	measuredNote = "Below: the numbers of the last run that measured them, "
	neverNote    = "No earlier run in BENCHMARKS.md measured it."
	measuredCell = ". Last measured ("
	thenCell     = " (then: "
	oldMark      = " *(superseded)*" // after the target of a row that superseded names
)

// targetCell is a target as its row shows it: marked if superseded.
func targetCell(target string) string {
	if _, ok := superseded[target]; ok {
		return target + oldMark
	}
	return target
}

// previous is what an earlier BENCHMARKS.md holds.
type previous struct {
	run      string               // the run that wrote it: "manager VERSION on DATE"
	sections map[string]string    // by heading: the text below it
	rows     map[string][3]string // by target: its measured, floor and met cells
}

var (
	producedOn  = regexp.MustCompile(`(?m)^Produced by .* on (\d{4}-\d\d-\d\d \d\d:\d\d UTC)\.$`)
	managerLine = regexp.MustCompile(`(?m)^\| manager \| (manager [^,|]+)`)
)

// readPrevious reads the report at path; a path that is empty or does not
// exist holds nothing.
func readPrevious(path string) (previous, error) {
	p := previous{run: "an earlier run", sections: map[string]string{}, rows: map[string][3]string{}}
	if path == "" {
		return p, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, err
	}
	text := string(data)
	head, _, _ := strings.Cut(text, "\n## ")
	version, date := managerLine.FindStringSubmatch(head), producedOn.FindStringSubmatch(head)
	switch {
	case version != nil && date != nil:
		p.run = version[1] + " on " + date[1]
	case date != nil:
		p.run = "the run on " + date[1]
	}

	title := ""
	var body []string
	flush := func() {
		if title != "" {
			p.sections[title] = strings.TrimSpace(strings.Join(body, ""))
		}
	}
	for line := range strings.Lines(text) {
		if t, ok := strings.CutPrefix(line, "## "); ok {
			flush()
			title, body = strings.TrimSpace(t), nil
			continue
		}
		body = append(body, line)
		if title != "Targets" || !strings.HasPrefix(line, "| ") {
			continue
		}
		if c := cells(line); len(c) == 4 && c[0] != "target" {
			p.rows[strings.TrimSuffix(c[0], oldMark)] = [3]string{c[1], c[2], c[3]}
		}
	}
	flush()
	return p, nil
}

// cells splits a Markdown table row into its cells, leaving escaped bars
// ("\|") in them as they are.
func cells(row string) []string {
	var out []string
	var cell strings.Builder
	row = strings.TrimSpace(row)
	for i := 0; i < len(row); i++ {
		switch {
		case row[i] == '\\' && i+1 < len(row) && row[i+1] == '|':
			cell.WriteString(`\|`)
			i++
		case row[i] == '|':
			out = append(out, strings.TrimSpace(cell.String()))
			cell.Reset()
		default:
			cell.WriteByte(row[i])
		}
	}
	if len(out) < 2 {
		return nil
	}
	return out[1:] // before the first bar: nothing
}

// lastSection is a section's text as previously measured, without the note
// of an earlier carry-over, and the run that measured it; text is empty if
// no run did.
func (p previous) lastSection(title string) (text, run string) {
	text, ok := p.sections[title]
	if !ok {
		return "", ""
	}
	if !strings.HasPrefix(text, failedNote) && !strings.HasPrefix(text, notRunNote) {
		return text, p.run
	}
	// Carried over before: the numbers below the note are older still.
	for line := range strings.Lines(text) {
		if r, ok := strings.CutPrefix(line, measuredNote); ok {
			_, rest, _ := strings.Cut(text, line)
			return strings.TrimSpace(rest), strings.TrimSuffix(strings.TrimSpace(r), ".")
		}
	}
	return "", ""
}

// lastRow is a target's cells as previously measured (measured, floor and
// met), without the note of an earlier carry-over, and the run that measured
// them; ok is false if no run did.
func (p previous) lastRow(target string) (c [3]string, run string, ok bool) {
	c, ok = p.rows[target]
	if !ok {
		return c, "", false
	}
	if !strings.HasPrefix(c[0], "**failed**") && !strings.HasPrefix(c[0], "not run") {
		return c, p.run, true
	}
	_, rest, found := strings.Cut(c[0], measuredCell)
	if !found {
		return c, "", false
	}
	run, c[0], _ = strings.Cut(rest, "): ")
	_, met, _ := strings.Cut(c[2], thenCell)
	c[2] = strings.TrimSuffix(met, ")")
	return c, run, true
}

// report renders the outcomes of this run, in the order of sections.
func report(outcomes []outcome, prev previous) string {
	var md strings.Builder
	var failed, skipped []string
	for i, o := range outcomes {
		switch {
		case !o.ran:
			skipped = append(skipped, sections[i].title)
		case o.err != nil:
			failed = append(failed, sections[i].title)
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(&md, "**Failed in this run: %s.** ", strings.Join(failed, ", "))
	}
	if len(skipped) > 0 {
		fmt.Fprintf(&md, "Not run this time: %s. ", strings.Join(skipped, ", "))
	}
	if len(failed)+len(skipped) > 0 {
		fmt.Fprintf(&md, "Their sections and Targets rows show the numbers of the last run that measured them, marked as such.\n\n")
	}

	fmt.Fprintf(&md, "## Targets\n\n")
	fmt.Fprintf(&md, "| target | manager | floor or peers, same run | met |\n")
	fmt.Fprintf(&md, "|---|---|---|---|\n")
	for i, o := range outcomes {
		if o.ran && o.err == nil {
			for _, v := range o.sec.verdicts {
				met := "**no**"
				if v.met {
					met = "yes"
				}
				fmt.Fprintf(&md, "| %s | %s | %s | %s |\n", targetCell(v.target), v.measured, cmp.Or(v.floor, "—"), met)
			}
			continue
		}
		for _, target := range sections[i].targets {
			c, run, ok := prev.lastRow(target)
			measured, met := "not run this time", "not run"
			if o.ran {
				measured, met = "**failed** in this run: "+cell(o.err.Error()), "**failed**"
			}
			if ok {
				measured += fmt.Sprintf("%s%s): %s", measuredCell, run, c[0])
				met += thenCell + c[2] + ")"
			} else {
				c[1] = "—"
			}
			fmt.Fprintf(&md, "| %s | %s | %s | %s |\n", targetCell(target), measured, c[1], met)
		}
	}
	var replaced []string
	for _, s := range sections {
		for _, target := range s.targets {
			if by, ok := superseded[target]; ok {
				replaced = append(replaced, fmt.Sprintf("%s → %s", target, by))
			}
		}
	}
	if len(replaced) > 0 {
		fmt.Fprintf(&md, "\nRows marked%s are earlier targets, kept for comparison, each replaced by a later one: %s.\n", oldMark, strings.Join(replaced, "; "))
	}

	for i, o := range outcomes {
		fmt.Fprintf(&md, "\n## %s\n\n", sections[i].title)
		if o.ran && o.err == nil {
			md.WriteString(o.sec.markdown)
			continue
		}
		if o.ran {
			fmt.Fprintf(&md, "%s\n\n", failedNote)
			for line := range strings.Lines(o.err.Error()) {
				fmt.Fprintf(&md, "    %s", line)
			}
			md.WriteString("\n\n")
		} else {
			fmt.Fprintf(&md, "%s\n\n", notRunNote)
		}
		text, run := prev.lastSection(sections[i].title)
		if text == "" {
			fmt.Fprintf(&md, "%s\n", neverNote)
			continue
		}
		fmt.Fprintf(&md, "%s%s.\n\n%s\n", measuredNote, run, text)
	}
	return md.String()
}

// cell makes s fit in a Markdown table cell: one line, bars escaped.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " / ")), " ")
}
