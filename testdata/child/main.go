// Child is the program that the release tests run under a release binary of
// another architecture, which the test binary, built for this machine,
// cannot be. It is built for that architecture as the release is, and run
// through qemu-user's binfmt_misc entry.
//
// Usage:
//
//	child exit N    print the ready line, then exit with code N
//	child sleep     print the ready line, then wait for a signal to end it
//
// The ready line, "ready pid=N", says that signals sent from now on reach it.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// main runs the command given by the arguments.
func main() {
	fmt.Printf("ready pid=%d\n", os.Getpid())
	switch {
	case len(os.Args) == 3 && os.Args[1] == "exit":
		n, err := strconv.Atoi(os.Args[2])
		if err != nil {
			fmt.Fprintf(os.Stderr, "child: exit %q: %v\n", os.Args[2], err)
			os.Exit(2)
		}
		os.Exit(n)
	case len(os.Args) == 2 && os.Args[1] == "sleep":
		// SIGTERM keeps its default action: it kills the child, and the
		// manager above reports 128+15.
		for {
			time.Sleep(time.Hour)
		}
	}
	fmt.Fprintln(os.Stderr, "usage: child exit N | child sleep")
	os.Exit(2)
}
