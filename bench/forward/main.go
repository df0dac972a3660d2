// Forward is the least Go init that handles signals the way the contract
// requires: it subscribes with signal.Notify to every signal it can catch
// except SIGURG (the runtime's own) and the synchronous fault signals,
// starts its arguments, forwards each signal to that process, reaps with
// wait4(-1, WNOHANG) on SIGCHLD, and exits with the process's status. It has
// no flags, logs, timers or config watching: the benchmarks run it beside
// manager to tell what os/signal and the Go runtime cost from what manager
// adds.
//
// Usage:
//
//	forward PATH [ARG...]
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		os.Stderr.WriteString("usage: forward PATH [ARG...]\n")
		os.Exit(2)
	}
	// Subscribed before the child exists, as manager does, so that none of
	// its signals or its exit can be missed.
	sigs := make(chan os.Signal, 256)
	signal.Notify(sigs, catchable()...)
	pid, err := syscall.ForkExec(os.Args[1], os.Args[1:], &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		os.Stderr.WriteString("forward: " + os.Args[1] + ": " + err.Error() + "\n")
		os.Exit(127)
	}
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			syscall.Kill(pid, sig.(syscall.Signal))
			continue
		}
		for {
			var ws syscall.WaitStatus
			p, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err == syscall.EINTR {
				continue
			}
			if err != nil || p <= 0 {
				break
			}
			if p != pid {
				continue // an orphan
			}
			if ws.Signaled() {
				os.Exit(128 + int(ws.Signal()))
			}
			os.Exit(ws.ExitStatus())
		}
	}
}

// catchable lists the signals a Go program can subscribe to, but SIGURG,
// which the runtime preempts goroutines with, SIGPROF, which it keeps for
// profiling, the synchronous fault signals, and 32 to 34, which C libraries
// reserve and os/signal never delivers.
func catchable() []os.Signal {
	var out []os.Signal
	for n := 1; n <= 64; n++ {
		switch sig := syscall.Signal(n); sig {
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGURG, syscall.SIGPROF,
			syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL,
			syscall.SIGTRAP, syscall.SIGSYS, syscall.SIGABRT, 32, 33, 34:
		default:
			out = append(out, sig)
		}
	}
	return out
}
