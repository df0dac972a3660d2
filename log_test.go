package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

// logTime is the fixed time of the lines compared: milliseconds and
// nanoseconds both non-zero, in a zone that is not UTC.
var logTime = time.Date(2024, 2, 29, 23, 59, 58, 123456789, time.FixedZone("", 5*3600+30*60))

// logWrites records each Write call, to show that a line is one call.
type logWrites struct {
	mu    sync.Mutex
	calls []string
}

// Write records p as one call.
func (w *logWrites) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, string(p))
	return len(p), nil
}

// slogLine formats a record through log/slog's own handler, as a
// slog.Logger at level min would, with time t.
func slogLine(json bool, min level, t time.Time, l level, msg string, args []any) string {
	var buf bytes.Buffer
	opts := &slog.HandlerOptions{Level: slog.Level(min)}
	var h slog.Handler = slog.NewTextHandler(&buf, opts)
	if json {
		h = slog.NewJSONHandler(&buf, opts)
	}
	if h.Enabled(context.Background(), slog.Level(l)) {
		r := slog.NewRecord(t, slog.Level(l), msg, 0)
		r.Add(args...)
		h.Handle(context.Background(), r)
	}
	return buf.String()
}

// lineLog formats the same record through logger, failing t unless the
// line came in a single Write call.
func lineLog(t *testing.T, json bool, min level, now time.Time, l level, msg string, args []any) string {
	t.Helper()
	var w logWrites
	g := newLineLogger(&w, json, min)
	g.now = func() time.Time { return now }
	g.log(l, msg, args...)
	switch len(w.calls) {
	case 0:
		return ""
	case 1:
		if !strings.HasSuffix(w.calls[0], "\n") || strings.Count(w.calls[0], "\n") != 1 {
			t.Errorf("line %q is not one line", w.calls[0])
		}
		return w.calls[0]
	}
	t.Errorf("one line written in %d calls: %q", len(w.calls), w.calls)
	return strings.Join(w.calls, "")
}

// format names the format for messages.
func format(json bool) string {
	if json {
		return "json"
	}
	return "text"
}

type logColor int

func (c logColor) String() string { return [...]string{"red", "green", "blue"}[c] }

type logNilErr struct{ s string }

func (e *logNilErr) Error() string { return e.s }

type logPanicErr struct{}

func (logPanicErr) Error() string { panic("boom") }

// TestLogMatchesSlog requires every record, at every level, in both formats,
// to come out byte for byte as slog writes it.
func TestLogMatchesSlog(t *testing.T) {
	long := strings.Repeat("long value with spaces ", 1000) // past the 16 KiB kept
	tests := []struct {
		name string
		msg  string
		args []any
	}{
		{"plain", "child started", []any{"pid", 42, "command", "/bin/sh"}},
		{"no args", "config unchanged", nil},
		{"empty message", "", nil},
		{"message with spaces", "hello world", nil},
		{"message needing quotes", `say "hi" a=b`, nil},
		{"message with newline and tab", "line one\nline two\tend", nil},
		{"message with controls", "\x00\x01\x1b[31m\x1f\x7f", nil},
		{"message non-ASCII", "café 日本語", nil},
		{"message invalid UTF-8", "bad \xff\xfe\xc3 end", nil},
		{"message U+FFFD", "replacement \ufffd", nil},
		{"message U+2028", "sep\u2028para\u2029", nil},
		{"message html", "<script>&amp;</script>", nil},
		{"message backslash", `C:\path\to`, nil},
		{"message unicode spaces", "nb\u00a0sp\u0085\u2003\u3000zw\u200b", nil},
		{"message long", long, nil},
		{"empty string", "m", []any{"k", ""}},
		{"strings", "m", []any{"a", "x y", "b", `q"q`, "c", "a=b", "d", `back\slash`, "e", "nl\n", "f", "tab\t", "g", "\x00\x7f", "h", "del\x7f", "i", `\`}},
		{"non-ASCII values", "m", []any{"a", "é", "b", "日本", "c", "\xff", "d", "\u2028", "e", "<>&", "f", long}},
		{"keys needing quotes", "m", []any{"a b", 1, "a=b", 2, "", 3, `k"`, 4, "é", 5, "\n", 6, "\xff", 7}},
		{"ints", "m", []any{"a", 0, "b", -1, "c", math.MaxInt64, "d", math.MinInt64, "e", int64(-7), "f", int32(-8), "g", int8(-9), "h", int16(10)}},
		{"uints", "m", []any{"a", uint64(math.MaxUint64), "b", uint(3), "c", uint8(255), "d", uint16(4), "e", uint32(5), "f", uintptr(6)}},
		{"durations", "m", []any{"a", time.Duration(0), "b", 1500 * time.Millisecond, "c", 10 * time.Millisecond, "d", -3 * time.Second, "e", 1500 * time.Nanosecond, "f", time.Duration(math.MinInt64)}},
		{"bools", "m", []any{"a", true, "b", false}},
		{"times", "m", []any{"a", logTime, "b", time.Time{}, "c", time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"errors", "m", []any{"a", errors.New("plain"), "b", errors.New("line one\nline two"), "c", fmt.Errorf("wrapped: %w", errors.New("x=y")), "d", errors.New("")}},
		{"nil error", "m", []any{"error", error(nil), "b", nil}},
		{"empty attr dropped", "m", []any{"", nil, "after", 1}},
		{"nil pointer error", "m", []any{"e", (*logNilErr)(nil)}},
		{"panicking error", "m", []any{"e", logPanicErr{}}},
		{"stringer", "m", []any{"c", logColor(1)}},
		{"lone trailing value", "m", []any{"k", "v", "orphan"}},
		{"value at key position", "m", []any{42, "k", "v", nil, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, json := range []bool{false, true} {
				if json && tc.name == "stringer" {
					continue // written otherwise on purpose: TestLogJSONDiffers
				}
				for _, l := range []level{levelDebug, levelInfo, levelWarn, levelError, levelDebug - 1, levelInfo + 2, levelError + 5} {
					want := slogLine(json, levelDebug-10, logTime, l, tc.msg, tc.args)
					got := lineLog(t, json, levelDebug-10, logTime, l, tc.msg, tc.args)
					if got != want {
						t.Errorf("format(%q) %s at %v = %q, want %q", tc.msg, format(json), l, got, want)
					}
				}
			}
		})
	}
}

// TestLogTime requires the time of a line to be written as slog writes it,
// and left out when zero.
func TestLogTime(t *testing.T) {
	tests := []struct {
		name string
		t    time.Time
	}{
		{"fixed zone", logTime},
		{"utc whole second", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"utc millis", time.Date(2024, 1, 2, 3, 4, 5, 7e6, time.UTC)},
		{"utc last nano", time.Date(2024, 12, 31, 23, 59, 59, 999999999, time.UTC)},
		{"negative offset", time.Date(1999, 12, 31, 23, 0, 0, 100, time.FixedZone("", -(9*3600+30*60)))},
		{"local", time.Unix(1700000000, 5e8).Local()},
		{"zero", time.Time{}},
		{"year 10000", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, json := range []bool{false, true} {
				want := slogLine(json, levelInfo, tc.t, levelInfo, "m", []any{"k", "v"})
				got := lineLog(t, json, levelInfo, tc.t, levelInfo, "m", []any{"k", "v"})
				if got != want {
					t.Errorf("format(%v) %s = %q, want %q", tc.t, format(json), got, want)
				}
			}
		})
	}
}

// TestLogThreshold requires lines below the logger's level to be left
// out, and enabled to agree with slog's Enabled.
func TestLogThreshold(t *testing.T) {
	for _, min := range []level{levelDebug, levelInfo, levelWarn, levelError} {
		t.Run(min.String(), func(t *testing.T) {
			h := slog.NewTextHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.Level(min)})
			g := newLineLogger(&logWrites{}, false, min)
			for l := levelDebug - 2; l <= levelError+2; l++ {
				if got, want := g.enabled(l), h.Enabled(context.Background(), slog.Level(l)); got != want {
					t.Errorf("enabled(%v) = %v, want %v", l, got, want)
				}
				for _, json := range []bool{false, true} {
					want := slogLine(json, min, logTime, l, "m", []any{"k", 1})
					got := lineLog(t, json, min, logTime, l, "m", []any{"k", 1})
					if got != want {
						t.Errorf("format(%v) %s = %q, want %q", l, format(json), got, want)
					}
				}
			}
		})
	}
}

// TestLogMethods requires Debug, Info, Warn and Error to log at their
// levels, and a logger made by newLineLogger to take the time itself.
func TestLogMethods(t *testing.T) {
	var w logWrites
	g := newLineLogger(&w, false, levelDebug)
	g.Debug("d", "k", 1)
	g.Info("i")
	g.Warn("w")
	g.Error("e")
	if len(w.calls) != 4 {
		t.Fatalf("4 lines written in %d calls: %q", len(w.calls), w.calls)
	}
	for i, want := range []string{"level=DEBUG msg=d k=1\n", "level=INFO msg=i\n", "level=WARN msg=w\n", "level=ERROR msg=e\n"} {
		if got := w.calls[i]; !strings.HasPrefix(got, "time=") || !strings.HasSuffix(got, " "+want) {
			t.Errorf("line %d = %q, want time=... %q", i, got, want)
		}
	}
}

// TestLogUnsupported pins what is written for values of kinds manager does
// not log, which slog formats with encoding/json in JSON, and in text
// sometimes otherwise than fmt.
func TestLogUnsupported(t *testing.T) {
	tests := []struct {
		name       string
		v          any
		text, json string // as logger writes v
		slogText   bool   // whether slog writes text too
	}{
		{"stringer", logColor(2), "blue", `"blue"`, true},        // slog JSON: 2
		{"struct", struct{ A int }{1}, "{A:1}", `"{A:1}"`, true}, // slog JSON: {"A":1}
		{"float64", 1.5, "1.5", `"1.5"`, true},                   // slog JSON: 1.5
		{"float32", float32(0.1), "0.1", `"0.1"`, false},         // slog: 0.10000000149011612
		{"bytes", []byte("ab"), `"[97 98]"`, `"[97 98]"`, false}, // slog: "ab", "YWI="
		{"NaN", math.NaN(), "NaN", `"NaN"`, true},                // slog JSON: an error
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := []any{"k", tc.v}
			want := "level=INFO msg=m k=" + tc.text + "\n"
			if got := lineLog(t, false, levelInfo, time.Time{}, levelInfo, "m", args); got != want {
				t.Errorf("format(%v) text = %q, want %q", tc.v, got, want)
			}
			if s := slogLine(false, levelInfo, time.Time{}, levelInfo, "m", args); (s == want) != tc.slogText {
				t.Errorf("slog writes %q, logger %q: same is %v, want %v", s, want, s == want, tc.slogText)
			}
			want = `{"level":"INFO","msg":"m","k":` + tc.json + "}\n"
			if got := lineLog(t, true, levelInfo, time.Time{}, levelInfo, "m", args); got != want {
				t.Errorf("format(%v) json = %q, want %q", tc.v, got, want)
			}
		})
	}
}

// TestLogLevelString requires level names to be slog's, between the named
// levels and at the ends of int too.
func TestLogLevelString(t *testing.T) {
	ls := []level{math.MinInt, math.MaxInt}
	for l := levelDebug - 6; l <= levelError+6; l++ {
		ls = append(ls, l)
	}
	for _, l := range ls {
		if got, want := l.String(), slog.Level(l).String(); got != want {
			t.Errorf("format(%d) = %q, want %q", int(l), got, want)
		}
	}
}

// TestLogParseLevel requires the four documented names, in any ASCII case,
// and nothing else.
func TestLogParseLevel(t *testing.T) {
	tests := []struct {
		in   string
		want level
		ok   bool
	}{
		{"debug", levelDebug, true},
		{"DEBUG", levelDebug, true},
		{"info", levelInfo, true},
		{"Info", levelInfo, true},
		{"warn", levelWarn, true},
		{"wARn", levelWarn, true},
		{"error", levelError, true},
		{"ERROR", levelError, true},
		{"", 0, false},
		{"verbose", 0, false},
		{"warning", 0, false},
		{"info+2", 0, false},
		{"warn-1", 0, false},
		{"info+0", 0, false},
		{"ınfo", 0, false}, // dotless i, which slog's strings.ToUpper takes for I
		{" info", 0, false},
		{"info\n", 0, false},
		{"4", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := parseLevel(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Errorf("parseLevel(%q) = %v, %v, want %v, %v", tc.in, got, ok, tc.want, tc.ok)
			}
			if ok {
				var l slog.Level
				if err := l.UnmarshalText([]byte(tc.in)); err != nil || level(l) != got {
					t.Errorf("slog parses %q as %v, %v; parseLevel as %v", tc.in, l, err, got)
				}
			}
		})
	}
}

// TestLogConcurrent requires lines logged at once from several goroutines
// to arrive whole, each in its own Write call.
func TestLogConcurrent(t *testing.T) {
	var w logWrites
	g := newLineLogger(&w, true, levelInfo)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				g.Info("concurrent", "goroutine", i, "line", j, "pad", strings.Repeat("x", i*j))
			}
		}()
	}
	wg.Wait()
	if len(w.calls) != 8*50 {
		t.Fatalf("%d lines written, want %d", len(w.calls), 8*50)
	}
	for _, line := range w.calls {
		if !strings.HasPrefix(line, `{"time":`) || !strings.HasSuffix(line, "}\n") || strings.Count(line, "\n") != 1 {
			t.Errorf("line %q is not whole", line)
		}
	}
}

// FuzzLogMatchesSlog requires any message, string value, key and int to be
// written as slog writes them, in both formats.
func FuzzLogMatchesSlog(f *testing.F) {
	f.Add("child started", "/bin/sh", 42)
	f.Add("", "", 0)
	f.Add("a=b \"q\"", "x y\n\t\\", -1)
	f.Add("\xff\u2028<>&", "é日本\x00\x7f", math.MaxInt)
	f.Add("\u00a0\ufffd", "\u200b\u0085", math.MinInt)
	f.Fuzz(func(t *testing.T, msg, val string, n int) {
		args := []any{"s", val, val, n, "d", time.Duration(n), "e", errors.New(val), "u", uint64(n)}
		now := time.Unix(0, int64(n)).In(time.FixedZone("", (n%48)*1800))
		l := level(n%24 - 12)
		for _, json := range []bool{false, true} {
			want := slogLine(json, levelDebug-1, now, l, msg, args)
			got := lineLog(t, json, levelDebug-1, now, l, msg, args)
			if got != want {
				t.Errorf("format(%q, %q, %d) %s = %q, want %q", msg, val, n, format(json), got, want)
			}
		}
	})
}
