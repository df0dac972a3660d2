package main

// Tests of the documentation: the README stays a first page, and no link in
// it or in the manual leads nowhere.

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// readmeLimit is the most README.md may weigh: it is where a user starts,
// and the reference lives in docs/manual.md.
const readmeLimit = 16 << 10

// docs are the documents whose relative links must lead somewhere.
var docs = []string{"README.md", filepath.Join("docs", "manual.md")}

// TestDocsLinks proves that README.md is at most 16 KiB, and that every
// relative link in README.md and docs/manual.md names a file or directory
// of the repository that exists and, where it names a section (#anchor) of
// a Markdown file, a heading of that file.
func TestDocsLinks(t *testing.T) {
	if fi, err := os.Stat("README.md"); err != nil {
		t.Fatal(err)
	} else if fi.Size() > readmeLimit {
		t.Errorf("README.md is %d bytes, want at most %d: move reference material to docs/manual.md", fi.Size(), readmeLimit)
	}
	for _, doc := range docs {
		text, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		links := markdownLinks(string(text))
		if len(links) == 0 {
			t.Errorf("%s: no links found; the link pattern no longer matches", doc)
		}
		for _, link := range links {
			if err := checkLink(doc, link); err != "" {
				t.Errorf("%s: link %q: %s", doc, link, err)
			}
		}
	}
}

// linkPattern matches an inline link's target, [text](target), and a
// reference definition's, [name]: target.
var linkPattern = regexp.MustCompile(`\]\(([^)\s]+)\)|(?m)^\[[^\]]+\]:\s+(\S+)`)

// markdownLinks returns the link targets of a Markdown text, outside fenced
// code blocks, whose brackets are code, not links.
func markdownLinks(text string) []string {
	var prose strings.Builder
	fenced := false
	for _, line := range strings.SplitAfter(text, "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			prose.WriteString(line)
		}
	}
	var links []string
	for _, m := range linkPattern.FindAllStringSubmatch(prose.String(), -1) {
		links = append(links, m[1]+m[2])
	}
	return links
}

// checkLink says what is wrong with link, a target found in doc, or returns
// "". Links to other sites are not followed.
func checkLink(doc, link string) string {
	if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
		return ""
	}
	path, anchor, _ := strings.Cut(link, "#")
	target := doc
	if path != "" {
		target = filepath.Join(filepath.Dir(doc), path)
		if _, err := os.Stat(target); err != nil {
			return "no such file: " + target
		}
	}
	if anchor == "" || !strings.HasSuffix(target, ".md") {
		return ""
	}
	text, err := os.ReadFile(target)
	if err != nil {
		return err.Error()
	}
	if !markdownAnchors(string(text))[anchor] {
		return "no heading in " + target + " has the anchor #" + anchor
	}
	return ""
}

// markdownAnchors returns the anchors GitHub gives the headings of a
// Markdown text: lower case, punctuation dropped, spaces made hyphens.
func markdownAnchors(text string) map[string]bool {
	anchors := map[string]bool{}
	fenced := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
		}
		heading, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " ")
		if fenced || !ok || !strings.HasPrefix(line, "#") {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(heading) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		anchors[b.String()] = true
	}
	return anchors
}
