package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// Exit codes for a program that cannot be started, as a POSIX shell uses them.
const (
	exitNotFound      = 127
	exitNotExecutable = 126
)

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER from <linux/prctl.h>.
const prSetChildSubreaper = 36

// procSpec describes a process to start.
type procSpec struct {
	path       string   // resolved executable
	argv       []string // argv[0] as the user wrote it
	env        []string // manager's environment, read once
	files      []int    // the new process's fds 0, 1, 2; -1 leaves one closed
	extra      []int    // its fds 3, 4, …: the sockets it gets
	foreground bool     // make its group the foreground group of manager's controlling terminal

	// shim, if set, is manager's own binary, which starts the process so
	// that LISTEN_PID can be its pid (listen.go); "" execs it directly.
	shim string

	// relay, if set, gets each line that is not blank of what the process
	// writes on its standard output and error, which then go to a pipe
	// instead of files[1:3], as it comes; relayEnd gets the end of it,
	// once, when the pipe is closed or relayFor has passed: past that, only
	// a process that escaped the group could still hold the pipe. Both are
	// called from the relay's own goroutine.
	relay    func(line string, length int)
	relayEnd func(outputEnd)
	relayFor time.Duration
}

// outputEnd is what the relay of a process's output hands on at its end:
// what a verdict on the process needs of its output.
type outputEnd struct {
	pid  int
	tail []string // its last lines that were not blank: at most tailLines, about tailBytes in all
	open bool     // relayFor passed with the pipe still open
}

// launch starts spec. The kernel sends the parent-death signal when the
// thread that forked the process exits, not the process (prctl(2)
// PR_SET_PDEATHSIG; golang/go#27505). The Go runtime ends a thread only
// when a goroutine exits while locked to it, which no goroutine of manager
// does (each that locks unlocks first), so whatever thread forks lives as
// long as manager, and the signal means "manager died", even by SIGKILL.
func launch(spec procSpec) (int, error) { return startRelayed(spec) }

// startRelayed starts spec, with a pipe for its output if it has a relay,
// through the shim if it has one.
func startRelayed(spec procSpec) (int, error) {
	switch {
	case spec.shim != "":
		return startShimmed(spec)
	case spec.relay == nil:
		return forkExec(spec)
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return 0, os.NewSyscallError("pipe2", err)
	}
	// Non-blocking, so that os.File reads it through the netpoller and no
	// thread waits on it; the write end, the process's, stays blocking.
	// Set before the fork, so that a failure leaves no process whose
	// output nobody reads: it would die of SIGPIPE, and the end of its
	// output, which its verdict waits for, would never come.
	if err := syscall.SetNonblock(p[0], true); err != nil {
		syscall.Close(p[0])
		syscall.Close(p[1])
		return 0, os.NewSyscallError("fcntl", err)
	}
	spec.files = []int{spec.files[0], p[1], p[1]}
	pid, err := forkExec(spec)
	syscall.Close(p[1])
	if err != nil {
		syscall.Close(p[0])
		return pid, err
	}
	go relayLines(os.NewFile(uintptr(p[0]), "relay"), pid, spec)
	return pid, nil
}

// relayLineMax is the longest line relayed whole; a longer one is cut, and
// relayed with its length.
const relayLineMax = 2 << 10

// tailLines and tailBytes bound the end of a process's output that its
// relay keeps for the verdict: enough for a validator's reason (nginx -t
// gives it in two lines), little enough for one log line.
const (
	tailLines = 5
	tailBytes = 2 << 10
)

// relayLines hands each line read from r that is not blank to spec.relay
// until the end of r, or until spec.relayFor has passed, then the last of
// them to spec.relayEnd. It reads to the end whatever the length of a
// line: a reader that stopped early would leave the writer to die of
// SIGPIPE (a check printing a minified configuration on one line would
// fail). Lines longer than relayLineMax are cut; relay gets the length they
// had.
func relayLines(r *os.File, pid int, spec procSpec) {
	r.SetReadDeadline(time.Now().Add(spec.relayFor))
	var tail []string
	emit := func(line string, length int) {
		if length == len(line) && strings.TrimSpace(line) == "" {
			return
		}
		spec.relay(line, length)
		tail = keepTail(tail, line, length)
	}
	var line []byte
	length := 0
	buf := make([]byte, 4<<10)
	for {
		n, err := r.Read(buf)
		for rest := buf[:n]; len(rest) > 0; {
			i := bytes.IndexByte(rest, '\n')
			part := rest
			if i >= 0 {
				part = rest[:i]
			}
			line = append(line, part[:min(len(part), relayLineMax-len(line))]...)
			length += len(part)
			if i < 0 {
				break
			}
			emit(string(line), length)
			line, length, rest = line[:0], 0, rest[i+1:]
		}
		if err != nil {
			if length > 0 {
				emit(string(line), length)
			}
			r.Close()
			spec.relayEnd(outputEnd{pid: pid, tail: tail, open: errors.Is(err, os.ErrDeadlineExceeded)})
			return
		}
	}
}

// keepTail adds line, cut from length bytes, to tail, which keeps the last
// tailLines lines, fewer if they hold more than tailBytes.
func keepTail(tail []string, line string, length int) []string {
	if length > len(line) {
		line += "…"
	}
	tail = append(tail, line)
	size := 0
	for _, l := range tail {
		size += len(l)
	}
	for len(tail) > tailLines || len(tail) > 1 && size > tailBytes {
		size -= len(tail[0])
		tail = slices.Delete(tail, 0, 1)
	}
	return tail
}

// errNoTerminal is a start that was to get the terminal when manager no
// longer has one.
var errNoTerminal = errors.New("no controlling terminal")

// terminalFailed reports whether err is how a start that was to take the
// terminal fails when the terminal is gone: tcsetpgrp's ENOTTY (hung up),
// ENXIO or EIO, or no terminal left to open. An exec's own failures (a
// busy or missing file) are none of these, and leave the terminal be.
func terminalFailed(err error) bool {
	return errors.Is(err, errNoTerminal) || errors.Is(err, syscall.ENOTTY) ||
		errors.Is(err, syscall.ENXIO) || errors.Is(err, syscall.EIO)
}

// forkExec starts spec in a new process group. It never waits: the reaper
// is the only waiter in manager.
func forkExec(spec procSpec) (int, error) {
	files := make([]uintptr, 0, len(spec.files)+len(spec.extra))
	for _, fd := range append(spec.files[:len(spec.files):len(spec.files)], spec.extra...) {
		files = append(files, uintptr(fd)) // -1 becomes a closed fd in the child
	}
	sys := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	start := func() (int, error) {
		return syscall.ForkExec(spec.path, spec.argv, &syscall.ProcAttr{Env: spec.env, Files: files, Sys: sys})
	}
	if !spec.foreground {
		return start()
	}
	// Foreground makes the child call tcsetpgrp on Ctty, with its signals
	// blocked, before it sets up its descriptors: Ctty is manager's
	// descriptor (syscall.SysProcAttr), so /dev/tty opened close-on-exec
	// serves when none of the standard streams is the terminal, and the
	// program gets no descriptor it did not have.
	var pid int
	err := onTerminal(func(fd int, _ bool) (err error) {
		sys.Foreground, sys.Ctty = true, fd
		pid, err = start()
		return err
	})
	return pid, err
}

// errNotFound is a command name without a slash that no directory of PATH
// holds.
var errNotFound = errors.New("not found in PATH")

// resolveCommand finds the executable for name the way a shell would: a name
// with a slash is used as is, any other is looked up in PATH ("" meaning
// the working directory); either must be an executable file. A shell
// reports the first file of the name in PATH that cannot be executed as
// "permission denied" (126), not as missing (127), and so does manager.
func resolveCommand(name string) (string, error) {
	if strings.Contains(name, "/") {
		return name, executable(name)
	}
	denied := ""
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if dir == "" {
			dir = "."
		}
		p := strings.TrimSuffix(dir, "/") + "/" + name
		err := executable(p)
		if err == nil {
			return p, nil
		}
		if denied == "" && errors.Is(err, fs.ErrPermission) {
			denied = p
		}
	}
	if denied != "" {
		return denied, &fs.PathError{Op: "exec", Path: denied, Err: syscall.EACCES}
	}
	return "", errNotFound
}

// executable says why path cannot be executed, or returns nil: it must be
// a file that access(2) lets manager execute, or, where access is refused
// by a seccomp filter (EPERM) or missing (ENOSYS), one with an execute bit.
func executable(path string) error {
	var st syscall.Stat_t
	if err := ignoringEINTR(func() error { return syscall.Stat(path, &st) }); err != nil {
		return &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		return &fs.PathError{Op: "exec", Path: path, Err: syscall.EISDIR}
	}
	err := syscall.Access(path, 1) // X_OK
	if err == syscall.EPERM || err == syscall.ENOSYS {
		err = nil
		if st.Mode&0o111 == 0 {
			err = syscall.EACCES
		}
	}
	if err != nil {
		return &fs.PathError{Op: "exec", Path: path, Err: err}
	}
	return nil
}

// startError explains a failure to start path and returns the exit code that
// reports it: 127 when there is nothing to run, 126 when it cannot be run.
func startError(path string, err error) (int, error) {
	if errors.Is(err, errNotFound) {
		return exitNotFound, err
	}
	// The caller names the command; only the cause is kept.
	for e := err; e != nil; e = errors.Unwrap(e) {
		if pe, ok := e.(*fs.PathError); ok {
			err = pe.Err
			break
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		if fi, serr := os.Stat(path); serr == nil && fi.Mode().IsRegular() {
			// execve says ENOENT for a missing interpreter too: the #! line's
			// program, or the dynamic loader of a binary copied into an image
			// without its libc.
			return exitNotFound, errors.New("interpreter not found (a script's #! program, or the dynamic loader of a non-static binary)")
		}
		return exitNotFound, syscall.ENOENT
	}
	return exitNotExecutable, err
}

// reapAll collects every child that has exited or stopped,
// without blocking, and hands each to handle. It is the only place in
// manager that waits for a process: two waiters would steal each other's
// exit statuses. Stops are asked for (WUNTRACED) so that a child stopped at
// a terminal can be seen; they are no exits. It reports whether children
// remain, as its last wait4 learns.
func reapAll(handle func(pid int, status syscall.WaitStatus)) (remain bool) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG|syscall.WUNTRACED, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return err == nil // 0: children remain, none has changed state; ECHILD: none
		}
		handle(pid, ws)
	}
}

// startLacksResources reports whether a process could not be started for
// want of resources that come back by themselves: fork's EAGAIN (a full
// pids cgroup, RLIMIT_NPROC) or ENOMEM (a memory limit), or descriptors for
// the pipe that reports exec's errors. Such starts are retried; only "not
// found" and "not executable" are final.
func startLacksResources(err error) bool {
	return errors.Is(err, syscall.EAGAIN) || lacksResources(err)
}

// exitCode maps a wait status to a shell-style exit code: the process's own
// code, or 128+N when signal N killed it.
func exitCode(ws syscall.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return 1
}

// describeStatus gives the log attributes of an exit status.
func describeStatus(ws syscall.WaitStatus) []any {
	if ws.Signaled() {
		return []any{"signal", signalName(ws.Signal()), "code", exitCode(ws)}
	}
	return []any{"code", exitCode(ws)}
}

// becomeSubreaper makes orphans of manager's descendants its children, so it
// reaps them as PID 1 would (prctl(2), PR_SET_CHILD_SUBREAPER).
func becomeSubreaper() error {
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		return fmt.Errorf("prctl PR_SET_CHILD_SUBREAPER: %w", e)
	}
	return nil
}

// openTerminal returns a descriptor of manager's controlling terminal: the
// first of its standard streams that is that terminal, or else /dev/tty,
// opened for the caller to close. fd is -1 when manager has no controlling
// terminal, or it hung up (the kernel then detaches it from the session, and
// descriptors of it answer EIO); err says why /dev/tty could not be opened
// for want of descriptors or memory.
func openTerminal() (fd int, opened bool, err error) {
	sid, _, _ := syscall.RawSyscall(syscall.SYS_GETSID, 0, 0, 0)
	for std := 0; std <= 2; std++ {
		// TIOCGSID answers ENOTTY on a terminal that is not the caller's
		// controlling terminal (tty_ioctl(4)).
		var s int32
		if ioctlPtr(std, syscall.TIOCGSID, unsafe.Pointer(&s)) == nil && uintptr(s) == sid {
			return std, false, nil
		}
	}
	// O_NONBLOCK: a serial line without CLOCAL would make open wait for
	// its carrier; the descriptor only serves for ioctls.
	err = ignoringEINTR(func() (err error) {
		fd, err = syscall.Open("/dev/tty", syscall.O_RDWR|syscall.O_NOCTTY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		return err
	})
	switch {
	case err == nil:
		return fd, true, nil
	case lacksResources(err):
		return -1, false, &fs.PathError{Op: "open", Path: "/dev/tty", Err: err}
	}
	return -1, false, nil // ENXIO: no controlling terminal
}

// onTerminal calls f with a descriptor of manager's controlling terminal;
// opened says it is /dev/tty, opened for the call and closed after it.
// Without a terminal, it returns errNoTerminal, or why /dev/tty could not
// be opened.
func onTerminal(f func(fd int, opened bool) error) error {
	fd, opened, err := openTerminal()
	if fd < 0 {
		if err == nil {
			err = errNoTerminal
		}
		return err
	}
	if opened {
		defer syscall.Close(fd)
	}
	return f(fd, opened)
}

// terminalForeground returns the foreground process group of manager's
// controlling terminal, 0 when it has none.
func terminalForeground() (int, error) {
	var pgrp int32
	err := onTerminal(func(fd int, _ bool) error {
		if ioctlPtr(fd, syscall.TIOCGPGRP, unsafe.Pointer(&pgrp)) != nil {
			pgrp = 0 // hung up since openTerminal looked
		}
		return nil
	})
	if err == errNoTerminal {
		return 0, nil
	}
	return int(pgrp), err
}

// terminalNeedsDescriptor reports whether manager's next start would open
// /dev/tty to give its program the terminal: manager's group is in the
// terminal's foreground, and none of its standard streams is the terminal.
func terminalNeedsDescriptor() bool {
	needs := false
	onTerminal(func(fd int, opened bool) error {
		var pgrp int32
		needs = opened && ioctlPtr(fd, syscall.TIOCGPGRP, unsafe.Pointer(&pgrp)) == nil && int(pgrp) == syscall.Getpgrp()
		return nil
	})
	return needs
}

// giveTerminal makes pgid the foreground process group of manager's
// controlling terminal. From a background group, tcsetpgrp(3) raises
// SIGTTOU, which manager catches, so the call would be restarted forever;
// the kernel lets it through when the calling thread blocks SIGTTOU, which
// it does here, on a thread of its own for the moment.
func giveTerminal(pgid int) error {
	return onTerminal(func(fd int, _ bool) error {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		old := blockThreadSignals(syscall.SIGTTOU)
		defer setThreadSignalMask(old)
		p := int32(pgid)
		if err := ioctlPtr(fd, syscall.TIOCSPGRP, unsafe.Pointer(&p)); err != nil {
			return os.NewSyscallError("tcsetpgrp", err)
		}
		return nil
	})
}

// ioctlPtr is ioctl(2) with a pointer argument.
func ioctlPtr(fd int, req uintptr, arg unsafe.Pointer) error {
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), req, uintptr(arg)); e != 0 {
		return e
	}
	return nil
}

// blockThreadSignals blocks sigs on the calling thread only, which must be
// locked to its goroutine, and returns the mask it had.
func blockThreadSignals(sigs ...syscall.Signal) (old uint64) {
	var set uint64
	for _, s := range sigs {
		set |= 1 << (uint(s) - 1)
	}
	const sigBlock = 0
	syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, sigBlock, uintptr(unsafe.Pointer(&set)), uintptr(unsafe.Pointer(&old)), 8, 0, 0)
	return old
}

// setThreadSignalMask restores a mask blockThreadSignals returned.
func setThreadSignalMask(mask uint64) {
	const sigSetmask = 2
	syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, sigSetmask, uintptr(unsafe.Pointer(&mask)), 0, 8, 0, 0)
}

// signals are the channels manager's signals arrive on, subscribed to before
// anything else happens.
type signals struct {
	chld     chan os.Signal // SIGCHLD; one slot, since each wake-up reaps until nothing is left
	shutdown chan os.Signal // TERM and INT
	forward  chan os.Signal // everything else manager forwards
	ignored  []syscall.Signal
}

// subscribe asks for every signal manager handles. It runs first thing in
// main: until it returns, a SIGTERM takes the Go runtime's default path,
// which for PID 1 (which the kernel will not kill) ends in exit code 2.
//
// TERM and INT get their own channel so that a flood of other signals can
// never crowd out a shutdown (os/signal drops what a full channel cannot
// take). A signal manager was started with ignored (nohup's HUP, the INT of
// a shell's "cmd &") is not subscribed to, so that it stays ignored, also
// for the child, which inherits ignored dispositions through exec, as under
// tini and catatonit. Only what the Go runtime leaves as it found it can be
// seen that way: it respects an inherited SIG_IGN for HUP and INT, and
// leaves TSTP, TTIN, TTOU and CONT alone until subscribed, but installs its
// handler over every other signal before main runs.
func subscribe() *signals {
	s := &signals{chld: make(chan os.Signal, 1), shutdown: make(chan os.Signal, 8), forward: make(chan os.Signal, 256)}
	// Each signal.Notify is a handshake with the runtime's signal thread
	// (tens of µs): TERM and INT, which end PID 1 with code 2 until then,
	// come first.
	s.notify(s.shutdown, syscall.SIGTERM, syscall.SIGINT)
	signal.Notify(s.chld, syscall.SIGCHLD)
	var forward []syscall.Signal
	for _, sig := range forwardedSignals() {
		forward = append(forward, sig.(syscall.Signal))
	}
	// The fault signals too: the runtime has a handler for each, so the
	// kernel delivers them even to PID 1, and one sent with kill(2)
	// (podman kill -s ABRT) would crash manager, killing every process
	// of the container at once. Subscribed, one sent by a process comes
	// here (a real fault still crashes: the runtime tells them apart by
	// si_code), to be logged and dropped.
	s.notify(s.forward, append(forward, faultSignals[:]...)...)
	return s
}

// faultSignals are the synchronous fault signals: they name a fault of the
// process that gets them, so manager never forwards them.
var faultSignals = [...]syscall.Signal{syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL,
	syscall.SIGTRAP, syscall.SIGSYS, syscall.SIGABRT}

// notify subscribes c to sigs, except those ignored at start.
func (s *signals) notify(c chan os.Signal, sigs ...syscall.Signal) {
	var want []os.Signal
	for _, sig := range sigs {
		if ignoredAtStart(sig) {
			s.ignored = append(s.ignored, sig)
		} else {
			want = append(want, sig)
		}
	}
	signal.Notify(c, want...)
}

// ignoredAtStart reports whether sig's disposition is SIG_IGN now, before
// manager subscribes to it.
func ignoredAtStart(sig syscall.Signal) bool {
	var old [8]uintptr // struct sigaction; its handler comes first on every architecture manager is built for
	_, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&old[0])), 8, 0, 0)
	const sigIgn = 1
	return e == 0 && old[0] == sigIgn
}

// forwardedSignals lists every signal forwarded to the child: all that a Go
// program can catch, except SIGCHLD (manager's own), SIGURG (the Go runtime
// preempts goroutines with it), SIGPROF (the runtime keeps it for
// profiling), the synchronous fault signals, which concern manager itself,
// and 32 to 34, reserved by C libraries and never delivered to os/signal.
func forwardedSignals() []os.Signal {
	var out []os.Signal
	for n := 1; n <= maxSignal; n++ {
		switch sig := syscall.Signal(n); sig {
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD, syscall.SIGURG, syscall.SIGPROF,
			syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL, syscall.SIGTRAP,
			syscall.SIGSYS, syscall.SIGABRT, 32, 33, 34,
			syscall.SIGTERM, syscall.SIGINT: // on the shutdown channel
		default:
			out = append(out, sig)
		}
	}
	return out
}

// signalNames are the Linux signal names without their SIG prefix, indexed
// by number; IOT and POLL are accepted as the aliases of ABRT and IO.
var signalNames = [...]string{
	1: "HUP", 2: "INT", 3: "QUIT", 4: "ILL", 5: "TRAP", 6: "ABRT", 7: "BUS",
	8: "FPE", 9: "KILL", 10: "USR1", 11: "SEGV", 12: "USR2", 13: "PIPE",
	14: "ALRM", 15: "TERM", 16: "STKFLT", 17: "CHLD", 18: "CONT", 19: "STOP",
	20: "TSTP", 21: "TTIN", 22: "TTOU", 23: "URG", 24: "XCPU", 25: "XFSZ",
	26: "VTALRM", 27: "PROF", 28: "WINCH", 29: "IO", 30: "PWR", 31: "SYS",
}

// maxSignal is the highest signal number on Linux (SIGRTMAX).
const maxSignal = 64

// parseSignal reads a signal as HUP, SIGHUP, hup or 1.
func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > maxSignal {
			return 0, fmt.Errorf("no signal number %d (1 to %d)", n, maxSignal)
		}
		return syscall.Signal(n), nil
	}
	name := strings.TrimPrefix(upperASCII(s), "SIG")
	switch name {
	case "IOT":
		name = "ABRT"
	case "POLL":
		name = "IO"
	}
	for n, v := range signalNames {
		if v != "" && v == name {
			return syscall.Signal(n), nil
		}
	}
	return 0, errors.New("unknown signal")
}

// upperASCII upper-cases the ASCII letters of s and leaves every other
// byte as it is: Unicode's case mapping would read "ſighup" (long s) as
// SIGHUP and "ınfo" (dotless i) as INFO. No byte of a multi-byte UTF-8
// sequence is an ASCII letter.
func upperASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// signalName names sig the way kill -l does, with its SIG prefix.
func signalName(sig syscall.Signal) string {
	if int(sig) < len(signalNames) && signalNames[sig] != "" {
		return "SIG" + signalNames[sig]
	}
	return "signal " + strconv.Itoa(int(sig))
}
