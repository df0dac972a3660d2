package main

// Integration tests of manager at a terminal: an interactive bash on a
// pseudo-terminal runs manager as its job, as a user at a shell does, and
// the test types on the terminal's master side.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// TestBackgroundJobRestart proves that a manager the shell put in the
// background (Ctrl-Z, bg) starts its next program without the terminal, so
// that the shell keeps reading commands from it; that program, stopped for
// reading the terminal, stops manager, the shell's job; and fg gives it the
// terminal, where Ctrl-C ends it.
func TestBackgroundJobRestart(t *testing.T) {
	integration(t)
	manager, helper := binaries(t)
	ptm, term := bashOnTerminal(t, "--norc", "--noprofile", "-i")
	type_ := typist(t, ptm)
	type_("echo shell=$$\n")
	shell := atoi(t, term.wait(t, `^shell=(\d+)`, 10*time.Second)[1])
	// The first program does not read; those after it do.
	ran := filepath.Join(t.TempDir(), "ran")
	program := fmt.Sprintf(`test -e %s && exec %s readline; touch %s; exec %s sleep`, ran, helper, ran, helper)
	type_(fmt.Sprintf("%s -config= -restart-signal USR2 -- sh -c '%s'\n", manager, program))
	pid := atoi(t, term.wait(t, `msg="not PID 1: reaping orphans as a child subreaper" pid=(\d+)`, 10*time.Second)[1])
	term.wait(t, `^ready pid=\d+`, 10*time.Second)
	type_("\x1a") // Ctrl-Z
	term.wait(t, `Stopped`, 10*time.Second)
	type_("bg\n")
	term.wait(t, `msg="continuing child"`, 10*time.Second)
	type_("kill -USR2 %1\n")
	term.waitN(t, 2, `^ready pid=\d+`, 10*time.Second)
	type_("echo alive=$((6*7))\n")
	term.wait(t, `^alive=42\r?$`, 10*time.Second)
	eventually(t, 10*time.Second, func() error {
		if state, _, _ := procState(pid); state != 'T' {
			return fmt.Errorf("manager in state %c, want stopped (T) with its program, which read the terminal", state)
		}
		return nil
	})
	type_("jobs\n")
	term.waitN(t, 2, `Stopped`, 10*time.Second)
	wantForeground(t, ptm, shell, "the shell")
	type_("fg\n")
	term.waitN(t, 2, `msg="continuing child"`, 10*time.Second)
	type_("hello\n")
	term.wait(t, `^read: "hello" <nil>`, 10*time.Second)
	interruptEnds(t, type_, term)
}

// TestForegroundedJob proves that a manager started in the background
// and brought to the foreground with fg, which sends a running job no
// SIGCONT, gives its program the terminal when it first reads from it.
func TestForegroundedJob(t *testing.T) {
	integration(t)
	manager, helper := binaries(t)
	ptm, term := bashOnTerminal(t, "--norc", "--noprofile", "-i")
	type_ := typist(t, ptm)
	type_(fmt.Sprintf("%s -config= -- %s readline-on-usr1 &\n", manager, helper))
	pid := atoi(t, term.wait(t, `msg="not PID 1: reaping orphans as a child subreaper" pid=(\d+)`, 10*time.Second)[1])
	child := atoi(t, term.wait(t, `^ready pid=(\d+)`, 10*time.Second)[1])
	type_("fg\n")
	wantForeground(t, ptm, pid, "manager")
	if err := syscall.Kill(child, syscall.SIGUSR1); err != nil { // now it reads
		t.Fatal(err)
	}
	term.wait(t, `msg="continuing child"`, 10*time.Second)
	type_("hello\n")
	term.wait(t, `^read: "hello" <nil>`, 10*time.Second)
	interruptEnds(t, type_, term)
}

// TestTerminalNotOnStandardInput proves that the program gets manager's
// controlling terminal when standard input is not that terminal: a program
// that reads /dev/tty can, Ctrl-Z stops it and manager, giving the shell
// its prompt back, fg continues both, and Ctrl-C ends them, also with none
// of the standard streams a terminal.
func TestTerminalNotOnStandardInput(t *testing.T) {
	integration(t)
	manager, helper := binaries(t)
	for _, redirect := range []string{"</dev/null", "</dev/null >/dev/null 2>&1"} {
		t.Run(redirect, func(t *testing.T) {
			ptm, term := bashOnTerminal(t, "--norc", "--noprofile", "-i")
			type_ := typist(t, ptm)
			type_("echo shell=$$\n")
			shell := atoi(t, term.wait(t, `^shell=(\d+)`, 10*time.Second)[1])
			type_(fmt.Sprintf("%s -config= -- %s readtty %s\n", manager, helper, redirect))
			term.wait(t, `^ready pid=\d+`, 10*time.Second)
			type_("hello\n")
			term.wait(t, `tty read: "hello"`, 10*time.Second)
			type_("\x1a") // Ctrl-Z
			term.wait(t, `Stopped`, 10*time.Second)
			type_("fg\n")
			type_("again\n")
			term.wait(t, `tty read: "again"`, 10*time.Second)
			type_("\x03") // Ctrl-C
			wantForeground(t, ptm, shell, "the shell, once manager exited")
			wantShellCode(t, type_, term, 130)
		})
	}
}

// TestHungUpTerminal proves that a terminal that hangs up (ssh loses its
// connection) under a program that survives SIGHUP does not turn the next
// restart into a start failure: the program is started without the
// terminal, and a warning says so.
func TestHungUpTerminal(t *testing.T) {
	integration(t)
	manager, helper := binaries(t)
	out, log := fifoLines(t)
	ptm, _ := bashOnTerminal(t, "--norc", "--noprofile", "-i")
	type_ := typist(t, ptm)
	type_(fmt.Sprintf("%s -config= -restart-signal USR2 -- %s signals >%s 2>&1\n", manager, helper, out))
	pid := atoi(t, log.wait(t, `msg="not PID 1: reaping orphans as a child subreaper" pid=(\d+)`, 10*time.Second)[1])
	first := atoi(t, log.wait(t, `^ready pid=(\d+)`, 10*time.Second)[1])
	wantForeground(t, ptm, first, "the program")
	ptm.Close() // the terminal hangs up
	// The shell passes its SIGHUP on to its job, manager to the program.
	log.wait(t, `^got SIGHUP`, 10*time.Second)
	if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	log.waitN(t, 2, `^ready pid=`, 10*time.Second)
	log.wait(t, `level=WARN msg="terminal gone; the child runs without it"`, time.Second)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	log.wait(t, `msg=exiting reason="shutdown on SIGTERM" code=0`, 10*time.Second)
}

// TestInterruptAtTerminal proves that a program holding the terminal that
// Ctrl-C or Ctrl-\ ends is not restarted, whatever -restart says: manager
// exits with 130 or 131, as the program would have without it.
func TestInterruptAtTerminal(t *testing.T) {
	integration(t)
	manager, helper := binaries(t)
	tests := []struct {
		name, restart, key string
		command            string
		want               int
	}{
		{"Ctrl-C", "on-failure", "\x03", helper + " sleep", 130},
		{`Ctrl-\`, "always", "\x1c", "sleep 600", 131}, // a Go program would dump its goroutines and exit 2
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ptm, term := bashOnTerminal(t, "--norc", "--noprofile", "-i")
			type_ := typist(t, ptm)
			type_(fmt.Sprintf("cd %s && ulimit -c 0\n", t.TempDir())) // no core file from SIGQUIT
			type_(fmt.Sprintf("%s -config= -restart %s -- %s\n", manager, tc.restart, tc.command))
			term.wait(t, `msg="child started"`, 10*time.Second)
			type_(tc.key)
			term.wait(t, fmt.Sprintf(`msg=exiting reason="child exited" code=%d`, tc.want), 10*time.Second)
			wantShellCode(t, type_, term, tc.want)
			if got := term.matching(`msg="child exited; restarting"`); len(got) > 0 {
				t.Errorf("restarted after %s: %q", tc.name, got)
			}
		})
	}
}

// TestInterruptDuringRestart proves that between two programs, during the
// -restart backoff and while the exited program's group is being stopped,
// manager holds the terminal, so that Ctrl-C reaches it and ends it at
// once with the last program's code.
func TestInterruptDuringRestart(t *testing.T) {
	integration(t)
	manager, helper := binaries(t)
	tests := []struct {
		name    string
		args    string
		between string // a log line of manager waiting between two programs
		want    int
	}{
		{"backoff", "-restart always -- " + helper + " exits " + filepath.Join(t.TempDir(), "runs") + " 3",
			`msg="child exited; restarting" .*delay=4s`, 3},
		{"leftovers", "-restart always -grace 60s -- " + helper + " leave ignore-term",
			`msg="stopping leftover processes"`, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ptm, term := bashOnTerminal(t, "--norc", "--noprofile", "-i")
			type_ := typist(t, ptm)
			type_(fmt.Sprintf("%s -config= %s\n", manager, tc.args))
			pid := atoi(t, term.wait(t, `msg="not PID 1: reaping orphans as a child subreaper" pid=(\d+)`, 10*time.Second)[1])
			term.wait(t, tc.between, 30*time.Second)
			wantForeground(t, ptm, pid, "manager")
			type_("\x03") // Ctrl-C
			term.wait(t, fmt.Sprintf(`msg=exiting reason="shutdown on SIGINT" code=%d`, tc.want), 10*time.Second)
			wantShellCode(t, type_, term, tc.want)
		})
	}
}

// typist returns a function that types s on the terminal whose master side
// is ptm.
// interruptEnds types Ctrl-C at the shell and waits for the program in the
// foreground, and manager with it, to end with 130, as the shell says.
func interruptEnds(t *testing.T, type_ func(string), term *lines) {
	t.Helper()
	type_("\x03") // Ctrl-C
	term.wait(t, `msg=exiting reason="child exited" code=130`, 10*time.Second)
	wantShellCode(t, type_, term, 130)
}

// wantShellCode asks the shell for the last exit code and waits for code.
func wantShellCode(t *testing.T, type_ func(string), term *lines, code int) {
	t.Helper()
	type_("echo code=$?\n")
	term.wait(t, fmt.Sprintf(`^code=%d\r?$`, code), 10*time.Second)
}

func typist(t *testing.T, ptm *os.File) func(s string) {
	return func(s string) {
		t.Helper()
		if _, err := ptm.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
}

// wantForeground waits until pgid, named who, is the foreground process
// group of the terminal whose master side is ptm.
func wantForeground(t *testing.T, ptm *os.File, pgid int, who string) {
	t.Helper()
	eventually(t, 5*time.Second, func() error {
		var fg int32
		if err := ioctl(ptm, syscall.TIOCGPGRP, unsafe.Pointer(&fg)); err != nil {
			return fmt.Errorf("tcgetpgrp: %v", err)
		}
		if int(fg) != pgid {
			return fmt.Errorf("the terminal's foreground group is %d, want %d (%s)", fg, pgid, who)
		}
		return nil
	})
}

// fifoLines makes a named pipe for a process to write to, and returns its
// path and the lines written there. The test holds it open for writing
// too: its lines never end.
func fifoLines(t *testing.T) (string, *lines) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0) // read and write: no wait for a writer
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return path, readLines(f)
}

// atoi reads a number a regular expression matched.
func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
