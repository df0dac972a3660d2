// Demo is the program that "make demo" runs under manager: a stand-in for a
// server that reads a configuration file at start.
//
// Usage:
//
//	demo CONFIG        run: print the configuration, then wait for signals
//	demo -check CONFIG validate: exit 1 unless every line is "key = value"
//
// It re-reads CONFIG on SIGHUP, and on SIGTERM or SIGINT it says goodbye and
// exits 0, as a well-behaved server would.
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	switch {
	case len(os.Args) == 3 && os.Args[1] == "-check":
		if err := check(os.Args[2]); err != nil {
			fmt.Fprintf(os.Stderr, "demo -check: %v\n", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "demo -check: %s is valid\n", os.Args[2])
	case len(os.Args) == 2:
		os.Exit(serve(os.Args[1]))
	default:
		fmt.Fprintln(os.Stderr, "usage: demo CONFIG | demo -check CONFIG")
		os.Exit(2)
	}
}

// serve prints the configuration and handles signals until told to stop.
func serve(config string) int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	fmt.Printf("demo[%d]: started with %s\n", os.Getpid(), describe(config))
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			fmt.Printf("demo[%d]: SIGHUP, reloaded %s\n", os.Getpid(), describe(config))
			continue
		}
		fmt.Printf("demo[%d]: %v received, finishing requests, goodbye\n", os.Getpid(), sig)
		return 0
	}
	return 1
}

// describe summarises the configuration in one phrase.
func describe(config string) string {
	b, err := os.ReadFile(config)
	if err != nil {
		return fmt.Sprintf("no configuration (%v)", err)
	}
	return fmt.Sprintf("configuration %q", strings.TrimSpace(string(b)))
}

// check accepts a file whose non-empty lines all read "key = value".
func check(config string) error {
	f, err := os.Open(config)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); !ok || strings.TrimSpace(k) == "" || strings.TrimSpace(v) == "" {
			return fmt.Errorf("%s:%d: want key = value, got %q", config, n, line)
		}
	}
	return sc.Err()
}
