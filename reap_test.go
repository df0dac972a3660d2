package main

// Tests of the launcher and reaper vocabulary: signal names, the signals
// forwarded, exit codes, and why a command cannot start.

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestParseSignal proves that a signal is read by name, with or without SIG
// and in any case, by alias (IOT, POLL) or by number from 1 to 64, that
// anything else is refused, and that signals are named as SIGTERM, or
// "signal 40" for one without a name.
func TestParseSignal(t *testing.T) {
	tests := []struct {
		in   string
		want syscall.Signal
	}{
		{"HUP", syscall.SIGHUP}, {"SIGHUP", syscall.SIGHUP}, {"hup", syscall.SIGHUP},
		{"sighup", syscall.SIGHUP}, {"SigHup", syscall.SIGHUP}, {"1", syscall.SIGHUP},
		{"TERM", syscall.SIGTERM}, {"15", syscall.SIGTERM}, {"quit", syscall.SIGQUIT},
		{"USR1", syscall.SIGUSR1}, {"sigusr2", syscall.SIGUSR2}, {"WINCH", syscall.SIGWINCH},
		{"IOT", syscall.SIGABRT}, {"POLL", syscall.SIGIO}, {"KILL", syscall.SIGKILL},
		{"64", syscall.Signal(64)}, {"35", syscall.Signal(35)},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSignal(tc.in)
			if err != nil || got != tc.want {
				t.Errorf("parseSignal(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "SIG", "HUPP", "0", "-1", "65", "RTMIN", " HUP"} {
		if got, err := parseSignal(bad); err == nil {
			t.Errorf("parseSignal(%q) = %v, want an error", bad, got)
		}
	}
	if got := signalName(syscall.SIGTERM); got != "SIGTERM" {
		t.Errorf("signalName(SIGTERM) = %q, want SIGTERM", got)
	}
	if got := signalName(40); got != "signal 40" {
		t.Errorf("signalName(40) = %q, want signal 40", got)
	}
}

// TestForwardedSignals proves that manager forwards HUP, QUIT, USR1, USR2,
// WINCH, PIPE, ALRM, CONT, TSTP and real-time signals, and never TERM or
// INT (they shut down), CHLD, URG, PROF, KILL, STOP or a fault signal.
func TestForwardedSignals(t *testing.T) {
	got := forwardedSignals()
	for _, never := range []syscall.Signal{syscall.SIGCHLD, syscall.SIGURG, syscall.SIGKILL, syscall.SIGSTOP,
		syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGSYS,
		syscall.SIGABRT, syscall.SIGPROF, syscall.SIGTERM, syscall.SIGINT} {
		if slices.Contains(got, os.Signal(never)) {
			t.Errorf("forwardedSignals() contains %s", signalName(never))
		}
	}
	for _, always := range []syscall.Signal{syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2,
		syscall.SIGWINCH, syscall.SIGPIPE, syscall.SIGALRM, syscall.SIGCONT, syscall.SIGTSTP, 35, 64} {
		if !slices.Contains(got, os.Signal(always)) {
			t.Errorf("forwardedSignals() lacks %s", signalName(always))
		}
	}
}

// TestExitCode proves that a wait status gives manager's exit code: the
// code the child exited with, or 128 plus the signal that killed it, core
// dumped or not.
func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		ws   syscall.WaitStatus
		want int
	}{
		{"exit 0", exitedWith(0), 0},
		{"exit 3", exitedWith(3), 3},
		{"exit 255", exitedWith(255), 255},
		{"SIGKILL", signaled(syscall.SIGKILL), 137},
		{"SIGTERM", signaled(syscall.SIGTERM), 143},
		{"SIGINT", signaled(syscall.SIGINT), 130},
		{"SIGSEGV with core", signaled(syscall.SIGSEGV) | 0x80, 139},
	}
	for _, tc := range tests {
		if got := exitCode(tc.ws); got != tc.want {
			t.Errorf("%s: exitCode(%#x) = %d, want %d", tc.name, uint32(tc.ws), got, tc.want)
		}
	}
}

// TestStartError proves that a command that cannot start gives 127 when it
// or its script's interpreter is missing, not found in PATH included, and
// 126 when it is not executable or of a bad format, with a reason that says
// which.
func TestStartError(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/no/such/interpreter\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		err  error
		code int
		why  string
	}{
		{"missing", "/no/such/app", &os.PathError{Op: "fork/exec", Path: "/no/such/app", Err: syscall.ENOENT}, 127, "no such file or directory"},
		{"missing interpreter", script, &os.PathError{Op: "fork/exec", Path: script, Err: syscall.ENOENT}, 127, "interpreter not found"},
		{"not executable", "/etc/hostname", &os.PathError{Op: "fork/exec", Path: "/etc/hostname", Err: syscall.EACCES}, 126, "permission denied"},
		{"bad format", "/x", &os.PathError{Op: "fork/exec", Path: "/x", Err: syscall.ENOEXEC}, 126, "exec format error"},
	}
	for _, tc := range tests {
		code, why := startError(tc.path, tc.err)
		if code != tc.code || !strings.Contains(why.Error(), tc.why) {
			t.Errorf("%s: startError(%q, %v) = %d, %q; want %d, %q", tc.name, tc.path, tc.err, code, why, tc.code, tc.why)
		}
	}
	if _, err := resolveCommand("no-such-program-anywhere"); err == nil {
		t.Errorf("resolveCommand(no-such-program-anywhere) = nil error")
	} else if code, _ := startError("no-such-program-anywhere", err); code != 127 {
		t.Errorf("startError(resolveCommand(missing)) = %d, want 127", code)
	}
}

// TestRelayLines proves that a relay reads a process's output to its end
// whatever the length of its lines (a writer whose reader stopped would
// die of SIGPIPE): a long line is relayed cut, with its length, blank lines
// not at all, and the last lines are handed on at the end.
func TestRelayLines(t *testing.T) {
	type relayed struct {
		line   string
		length int
	}
	relay := func(out string, d time.Duration) ([]relayed, outputEnd) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		go func() {
			w.Write([]byte(out))
			if d >= time.Minute {
				w.Close()
			}
		}()
		var got []relayed
		var end outputEnd
		spec := procSpec{relay: func(line string, length int) { got = append(got, relayed{line, length}) },
			relayEnd: func(o outputEnd) { end = o }, relayFor: d}
		relayLines(r, 42, spec)
		return got, end
	}
	long := strings.Repeat("x", 300_000)
	got, end := relay("first\n\n   \r\n"+long+"\nreason 1\nreason 2\nreason 3\nreason 4\nlast, unended", time.Minute)
	want := []relayed{{"first", 5}, {long[:relayLineMax], len(long)}, {"reason 1", 8}, {"reason 2", 8},
		{"reason 3", 8}, {"reason 4", 8}, {"last, unended", 13}}
	if !slices.Equal(got, want) {
		show := func(rs []relayed) (out []string) {
			for _, r := range rs {
				out = append(out, fmt.Sprintf("%.20q (%d bytes of %d)", r.line, len(r.line), r.length))
			}
			return out
		}
		t.Errorf("relayed %q, want %q", show(got), show(want))
	}
	wantTail := []string{"reason 1", "reason 2", "reason 3", "reason 4", "last, unended"}
	if end.pid != 42 || !slices.Equal(end.tail, wantTail) || end.open {
		t.Errorf("end %+v, want pid 42, tail %q, not open", end, wantTail)
	}

	_, end = relay("still writing\n", 50*time.Millisecond) // the writer keeps it open
	if !end.open || !slices.Equal(end.tail, []string{"still writing"}) {
		t.Errorf("end %+v at the deadline, want open, tail [still writing]", end)
	}
}

// TestKeepTail proves that the end of an output kept for a verdict is its
// last five lines within about 2 KiB: a line over the limit is kept cut and
// marked with "…", and older lines are dropped whole to stay within the
// bytes.
func TestKeepTail(t *testing.T) {
	cut := strings.Repeat("x", relayLineMax)
	tests := []struct {
		name  string
		lines []string // a line longer than relayLineMax is cut first
		want  []string
	}{
		{"few", []string{"a", "b"}, []string{"a", "b"}},
		{"the last five", []string{"1", "2", "3", "4", "5", "6", "7"}, []string{"3", "4", "5", "6", "7"}},
		{"a long line alone", []string{"a", strings.Repeat("x", 300_000)}, []string{cut + "…"}},
		{"bytes bound", []string{strings.Repeat("x", 300_000), "b", "c"}, []string{"b", "c"}},
		{"bytes bound, whole lines", []string{strings.Repeat("y", 1500), strings.Repeat("z", 1000)}, []string{strings.Repeat("z", 1000)}},
	}
	for _, tc := range tests {
		var tail []string
		for _, l := range tc.lines {
			tail = keepTail(tail, l[:min(len(l), relayLineMax)], len(l))
		}
		if !slices.Equal(tail, tc.want) {
			t.Errorf("%s: keepTail of %.60q = %.60q, want %.60q", tc.name, tc.lines, tail, tc.want)
		}
	}
}

// TestNoThreadEndsLocked proves, from the source, what the parent-death
// signal relies on: every function of manager that locks its goroutine to
// a thread unlocks it again. A goroutine that ended locked would end its
// thread, and the kernel would then SIGKILL every program that thread
// forked, though manager lives on.
func TestNoThreadEndsLocked(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			var body *ast.BlockStmt
			switch fn := n.(type) {
			case *ast.FuncDecl:
				body = fn.Body
			case *ast.FuncLit:
				body = fn.Body
			}
			if body == nil {
				return true
			}
			locks, unlocks := lockCalls(body)
			if locks > unlocks {
				t.Errorf("%s: a function locks its goroutine to a thread %d times and unlocks it %d times", fset.Position(n.Pos()), locks, unlocks)
			}
			checked += locks
			return true
		})
	}
	if checked == 0 {
		t.Fatal("found no runtime.LockOSThread: the check looks at the wrong files")
	}
}

// lockCalls counts the calls of runtime.LockOSThread and UnlockOSThread in
// body, leaving out those of the functions it defines: each has its own.
func lockCalls(body *ast.BlockStmt) (locks, unlocks int) {
	ast.Inspect(body, func(n ast.Node) bool {
		if _, ok := n.(*ast.FuncLit); ok {
			return false
		}
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		if sel, ok := call.Fun.(*ast.SelectorExpr); ok {
			if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "runtime" {
				switch sel.Sel.Name {
				case "LockOSThread":
					locks++
				case "UnlockOSThread":
					unlocks++
				}
			}
		}
		return true
	})
	return locks, unlocks
}
