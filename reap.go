package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
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
	foreground bool     // give it the terminal on fd 0

	// relay, if set, gets each line the process writes on its standard
	// output and error, which then go to a pipe instead of files[1:3],
	// for at most relayFor: past that, only a process that escaped its
	// group could still hold the pipe.
	relay    func(line string)
	relayFor time.Duration
}

// launchReq asks the launcher goroutine to start a process.
type launchReq struct {
	spec  procSpec
	reply chan launchResult
}

// launchResult is the launcher's answer: a pid, or why there is none.
type launchResult struct {
	pid int
	err error
}

var (
	launchOnce sync.Once
	launchReqs chan launchReq // to the launcher; never closed
)

// launch starts spec from the one goroutine that starts every process,
// locked to its OS thread for the rest of manager's life. The kernel sends
// the parent-death signal when the thread that forked the process exits, not
// the process (prctl(2) PR_SET_PDEATHSIG; golang/go#27505), and Go retires
// unlocked threads at will; from that thread, the signal means "manager
// died", even by SIGKILL.
//
// The supervisor loop itself is not the locked goroutine: a locked goroutine
// is woken through a thread hand-off, which every signal, poll and
// signal.Notify at start-up would pay. Only starts, which are rare, pay it
// here (hyperfine, manager -config= -- /bin/true: 5.7 ms then, 5.1 now).
func launch(spec procSpec) (int, error) {
	startLauncher()
	reply := make(chan launchResult)
	launchReqs <- launchReq{spec, reply}
	r := <-reply
	return r.pid, r.err
}

// startLauncher starts the launcher goroutine, once, and returns when its
// thread is its own.
func startLauncher() {
	launchOnce.Do(func() {
		launchReqs = make(chan launchReq)
		locked := make(chan struct{})
		defer func() { <-locked }()
		go func() {
			runtime.LockOSThread() // never unlocked: this goroutine never returns
			close(locked)
			for r := range launchReqs {
				pid, err := startRelayed(r.spec)
				r.reply <- launchResult{pid, err}
			}
		}()
	})
}

// startRelayed starts spec, with a pipe for its output if it has a relay.
func startRelayed(spec procSpec) (int, error) {
	if spec.relay == nil {
		return forkExec(spec)
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return 0, os.NewSyscallError("pipe2", err)
	}
	spec.files = []int{spec.files[0], p[1], p[1]}
	pid, err := forkExec(spec)
	syscall.Close(p[1])
	// Non-blocking, so that os.File reads it through the netpoller and
	// no thread waits on it; the write end, the process's, stays blocking.
	if err != nil || syscall.SetNonblock(p[0], true) != nil {
		syscall.Close(p[0])
		return pid, err
	}
	go relayLines(os.NewFile(uintptr(p[0]), "relay"), spec.relay, spec.relayFor)
	return pid, nil
}

// relayLines hands each line read from r to relay until the end of r, or
// until for has passed.
func relayLines(r *os.File, relay func(string), d time.Duration) {
	defer r.Close()
	r.SetReadDeadline(time.Now().Add(d))
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		relay(sc.Text())
	}
}

// forkExec starts spec in a new process group, on the calling thread, which
// must be the launcher's. It never waits: the reaper is the only waiter in
// manager.
func forkExec(spec procSpec) (int, error) {
	files := make([]uintptr, len(spec.files))
	for i, fd := range spec.files {
		files[i] = uintptr(fd) // -1 becomes a closed fd in the child
	}
	attr := &syscall.ProcAttr{
		Env:   spec.env,
		Files: files,
		Sys: &syscall.SysProcAttr{
			Setpgid:   true,
			Pdeathsig: syscall.SIGKILL,
			// Foreground makes the child call tcsetpgrp on Ctty (fd 0 here)
			// before exec; it fails the start when fd 0 is not a terminal,
			// so it is only asked for when the terminal is manager's.
			Foreground: spec.foreground,
			Ctty:       0,
		},
	}
	return syscall.ForkExec(spec.path, spec.argv, attr)
}

// resolveCommand finds the executable for name the way a shell would: a name
// with a slash is used as is, any other is looked up in PATH; either must be
// an executable file.
func resolveCommand(name string) (string, error) {
	path, err := exec.LookPath(name)
	if errors.Is(err, exec.ErrDot) {
		// PATH lists ".": a shell would run the file, and so do we.
		err = nil
	}
	if errors.Is(err, exec.ErrNotFound) && !strings.Contains(name, "/") {
		// LookPath skips files without execute permission; a shell
		// reports the first one as "permission denied" (126), not as
		// missing (127), and so do we.
		for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
			if dir == "" {
				dir = "."
			}
			p := filepath.Join(dir, name)
			if fi, serr := os.Stat(p); serr == nil && !fi.IsDir() {
				return p, &fs.PathError{Op: "exec", Path: p, Err: syscall.EACCES}
			}
		}
	}
	return path, err
}

// startError explains a failure to start path and returns the exit code that
// reports it: 127 when there is nothing to run, 126 when it cannot be run.
func startError(path string, err error) (int, error) {
	if errors.Is(err, exec.ErrNotFound) {
		return exitNotFound, errors.New("not found in PATH")
	}
	// The caller names the command; only the cause is kept.
	var ee *exec.Error
	if errors.As(err, &ee) {
		err = ee.Err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
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

// reapAll collects every child that has exited, stopped or continued,
// without blocking, and hands each to handle. It is the only place in
// manager that waits for a process: two waiters would steal each other's
// exit statuses. Stops are asked for (WUNTRACED) so that a child stopped at
// a terminal can be seen; they are no exits. It reports whether children
// remain, as its last wait4 learns.
func reapAll(handle func(pid int, status syscall.WaitStatus)) (remain bool) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG|syscall.WUNTRACED|syscall.WCONTINUED, nil)
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

// ownsTerminal reports whether fd 0 is a terminal whose foreground process
// group is manager's, the case in which the child must get the terminal for
// job control, Ctrl-C and reads to work as without manager.
func ownsTerminal() bool {
	var pgrp int32
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, 0, syscall.TIOCGPGRP, uintptr(unsafe.Pointer(&pgrp)))
	return e == 0 && int(pgrp) == syscall.Getpgrp()
}

// giveTerminal makes pgid the foreground process group of the terminal on
// fd 0. From a background group, tcsetpgrp(3) raises SIGTTOU, which
// manager catches, so the call would be restarted forever; the kernel lets
// it through when the calling thread blocks SIGTTOU, which it does here,
// on a thread of its own for the moment.
func giveTerminal(pgid int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	old := blockThreadSignals(syscall.SIGTTOU)
	defer setThreadSignalMask(old)
	p := int32(pgid)
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, 0, syscall.TIOCSPGRP, uintptr(unsafe.Pointer(&p))); e != 0 {
		return os.NewSyscallError("tcsetpgrp", e)
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
