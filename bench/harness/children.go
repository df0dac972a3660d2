package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

// stamp is the child of the reload and restart benchmarks. It prints
// "start T" with T the CLOCK_MONOTONIC reading taken first thing in main,
// then waits; on SIGTERM or SIGINT (the stop signals of manager, entr and
// reflex) it prints "stop T" and exits, so that a restart can be timed from
// the old child's end to the new child's start.
func stamp(t int64) {
	stopped := make(chan os.Signal, 1)
	signal.Notify(stopped, syscall.SIGTERM, syscall.SIGINT)
	fmt.Printf("start %d\n", t)
	<-stopped
	fmt.Printf("stop %d\n", mono())
	os.Exit(0)
}

// usr1 is the signal set holding SIGUSR1, as the kernel's sigset_t.
const usr1 = uint64(1) << (syscall.SIGUSR1 - 1)

// sigrecv is the child of the signal benchmark. It blocks SIGUSR1 and
// re-executes itself as sigfd: a blocked signal stays blocked across execve,
// and the Go runtime gives every thread the mask that the process started
// with, so that in sigfd no thread takes SIGUSR1 and a signalfd gets it.
func sigrecv() {
	runtime.LockOSThread() // the mask is per thread; exec from the same one
	set := usr1
	if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, 0 /* SIG_BLOCK */, uintptr(unsafe.Pointer(&set)), 0, 8, 0, 0); e != 0 {
		fmt.Fprintf(os.Stderr, "sigrecv: rt_sigprocmask: %v\n", e)
		os.Exit(1)
	}
	self, err := os.Executable()
	if err == nil {
		err = syscall.Exec(self, []string{self, "sigfd"}, os.Environ())
	}
	fmt.Fprintf(os.Stderr, "sigrecv: exec: %v\n", err)
	os.Exit(1)
}

// sigfd prints "ready", then the CLOCK_MONOTONIC reading at each SIGUSR1 it
// reads from a signalfd, one per line. A thread blocked in read(2) wakes
// straight into the timestamp, as a C init in sigwaitinfo(2) would, which
// os/signal's handler, goroutine and channel cannot match: that keeps the
// receiving end's share of each latency small.
func sigfd() {
	set := usr1
	fd, _, e := syscall.RawSyscall6(syscall.SYS_SIGNALFD4, ^uintptr(0) /* -1: a new fd */, uintptr(unsafe.Pointer(&set)), 8, syscall.O_CLOEXEC, 0, 0)
	if e != 0 {
		fmt.Fprintf(os.Stderr, "sigfd: signalfd: %v\n", e)
		os.Exit(1)
	}
	fmt.Println("ready")
	var info [128]byte // struct signalfd_siginfo
	for {
		_, err := syscall.Read(int(fd), info[:])
		t := mono()
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "sigfd: read: %v\n", err)
			os.Exit(1)
		}
		fmt.Println(t)
	}
}

// poll is the least Go program that watches a file: sleep on a Go timer,
// stat the file, forever. The idle benchmark runs it beside manager to show
// what a timer's wake-up costs any Go program.
func poll(args []string) {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: harness poll PERIOD FILE")
		os.Exit(2)
	}
	period, err := time.ParseDuration(args[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "poll: %v\n", err)
		os.Exit(2)
	}
	for {
		time.Sleep(period)
		os.Stat(args[1])
	}
}
