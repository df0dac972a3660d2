// The runtime would otherwise keep two cgroup files open for good, to
// follow a container's CPU limit, which manager, running on one P, has no
// use for: descriptors are scarce under a tiny RLIMIT_NOFILE.
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0

// Manager is a PID 1 for containers: it runs one program, reaps every zombie,
// forwards signals, stops gracefully, and restarts the program (or sends it a
// reload signal) when its configuration files change.
//
// Usage:
//
//	manager [flags] [--] [COMMAND [ARG...]]
//
// The command is the first positional argument, or the -command flag, in
// which case every positional argument belongs to it. A command without a
// slash is looked up in PATH. With no command at all, manager runs
// /usr/local/bin/redis-exporter, the historical default. Flag parsing stops at
// "--" or at the first positional argument, so the program's own flags are
// never taken for manager's.
//
// The program runs in its own process group with manager's environment,
// working directory and standard streams. When manager's process group is
// the foreground group of its controlling terminal (a shell's foreground
// job, docker run -it), decided before each start, the program's group is
// made the terminal's foreground group, whichever of the standard streams
// is the terminal, if any; a manager in the background (Ctrl-Z, then bg)
// starts it without the terminal, and fg hands the terminal over. Between
// two programs manager holds the terminal itself, so that Ctrl-C reaches
// it. A terminal that hangs up is gone: the next programs start without it.
// Manager reaps every process that ends up as its child, also when it is not
// PID 1 (it then registers as a child subreaper). Every signal manager can
// catch is forwarded to the program, or to its process group with -group.
// SIGTERM and SIGINT also begin a shutdown: the program gets the signal, then
// -grace to exit before its process group is killed. Manager exits with the
// program's exit code, or 128+N if signal N killed it.
//
// Nothing in manager's own plumbing may hurt the program: its log lines on
// standard error go through a bounded queue, so that a broken or stalled
// pipe drops (and counts) them rather than stalling it; files are hashed
// beside its loop; a fork refused for lack of pids or memory is retried; and
// every thread it will need is made before the program starts, so that a
// full pids cgroup cannot crash it.
//
// The flags are:
//
//	-command PATH
//		The program to run (default /usr/local/bin/redis-exporter).
//	-config PATH
//		A file or directory to watch; repeatable, any use replaces the
//		default /usr/local/bin/conf/exporter.conf; -config '' watches nothing.
//	-poll DURATION
//		How often the watched paths are looked at (default 1s).
//	-debounce DURATION
//		How long the paths must stay unchanged before manager acts (default 1s).
//	-reload-signal SIG
//		On a change, send SIG to the program instead of restarting it.
//	-check "CMD ARG..."
//		Before acting on a change, run CMD (split on white space, no shell);
//		a non-zero exit keeps the running program untouched. It also runs
//		once before the first start, which waits for its verdict and then
//		starts the program whatever it is, as it would start without manager.
//	-stop-signal SIG
//		The signal that stops the program on a restart, and on shutdown
//		when given explicitly (default TERM).
//	-grace DURATION
//		How long a stopping program has before its process group is sent
//		SIGKILL (default 10s).
//	-stop-delay DURATION
//		On the first SIGTERM or SIGINT, keep the program running (and
//		receiving every other signal) this long before stopping it, so that
//		a load balancer stops sending it traffic first (default 0). A second
//		SIGTERM or SIGINT ends the delay at once.
//	-restart-signal SIG
//		SIG sent to manager is not forwarded: it restarts the program as a
//		configuration change would (through -check), whether or not the
//		files changed. It must be a signal manager would otherwise forward.
//	-restart no|on-failure[:N]|always[:N]
//		Restart the program when it exits by itself: on-failure after a
//		non-zero exit or a death by signal, always after any exit. Restarts
//		back off from 1s to 30s; with N, manager gives up after N restarts
//		in a row and exits with the last code (default no: the program's
//		exit is manager's exit). A program that held the terminal and died
//		of SIGINT or SIGQUIT (Ctrl-C, Ctrl-\) is not restarted: manager
//		exits with 130 or 131, as without it.
//	-group
//		Forward signals to the program's process group, not the program alone.
//	-remap-exit N
//		Report exit code N as 0; repeatable (143 for a JVM stopped by TERM).
//	-log-format text|json
//		The format of manager's log lines on standard error (default text).
//	-log-level debug|info|warn|error
//		The least severe level logged (default info).
//	-version
//		Print the version and exit.
//
// Signals are named with or without SIG, in any case, or by number: HUP,
// SIGHUP and 1 are the same. An invalid flag exits 2 with one line naming it.
// Nonsense is invalid too: a -poll under 10ms, a -reload-signal that cannot
// be caught, -stop-signal STOP.
//
// Every flag but -version can also be given as an environment variable,
// MANAGER_ and the flag's name in upper case with _ for -: MANAGER_GRACE=5s
// is -grace 5s. MANAGER_CONFIG is a list separated by colons (set but empty,
// it watches nothing), MANAGER_REMAP_EXIT one separated by commas. A flag on
// the command line wins over its variable; any other variable set to the
// empty string counts as unset. An invalid value exits 2 with one line
// naming the variable. The variables stay in the program's environment.
// This is how manager is configured where it is started without flags, as
// by docker run --init --init-path and podman run --init --init-path.
//
// Example, as a container's entry point:
//
//	ENTRYPOINT ["/manager", "-config", "/etc/app", "-check", "/app -t", "-reload-signal", "HUP", "--"]
//	CMD ["/app"]
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=..."; a plain
// go build or go install leaves it "dev", and init then takes it from what
// the go command recorded in the binary.
var version = "dev"

// init names a binary built without -X by the build information the go
// command stamps into it (go version -m shows it): the module version of a
// go install module@vX or of a tagged checkout, else the commit, with
// -dirty for uncommitted changes, as git describe --dirty writes it. An
// untagged checkout is stamped (Go 1.24+) with a pseudo-version ending in
// the commit; the commit alone is what a user finds in git log.
func init() {
	if version != "dev" {
		return
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision" && len(s.Value) >= 12:
			rev = s.Value[:12]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "-dirty"
		}
	}
	v := strings.TrimSuffix(info.Main.Version, "+dirty")
	switch {
	case rev != "" && (v == "" || v == "(devel)" || strings.HasSuffix(v, rev)):
		version = rev + dirty
	case v != "" && v != "(devel)":
		version = v + dirty
	}
}

func main() {
	// Signals first: one that arrives before manager subscribes is lost,
	// or for PID 1 ends it with exit code 2.
	sigs := subscribe()
	stderr := newLogWriter(2)
	code := run(os.Args[1:], sigs, stderr)
	stderr.flush(flushWait)
	os.Exit(code)
}

// run is manager's whole life; it returns the exit code so that main stays a
// thin shell and every deferred cleanup runs.
func run(args []string, sigs *signals, stderr *logWriter) int {
	cfg, err := parseConfig(args, os.LookupEnv)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Print(usage)
		return 0
	case errors.Is(err, errVersion):
		fmt.Printf("manager %s\n", version)
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "manager: %v\n", err)
		return exitUsage
	}
	if err := checkDescriptors(cfg); err != nil {
		fmt.Fprintf(stderr, "manager: %v\n", err)
		return exitUsage
	}
	prepareRuntime()
	stderr.format.Store(cfg)
	return supervise(cfg, newLogger(stderr, cfg), sigs)
}
