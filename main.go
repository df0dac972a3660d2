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
//	-listen [NAME=]ADDRESS
//		Hold a listening socket for the program across restarts;
//		repeatable. ADDRESS is HOST:PORT, :PORT, [IPV6]:PORT (TCP) or an
//		absolute path (a Unix stream socket). NAME (default listen) is
//		its entry in LISTEN_FDNAMES. See "Sockets held across restarts".
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
// Exit codes: the program's own, or 128+N if signal N killed it; 127 if
// the command is not found, 126 if it cannot be executed; 2 for a bad
// flag or MANAGER_ variable, or too small an RLIMIT_NOFILE; 1 if a socket
// of -listen cannot be bound (in use, no permission, no such directory) or
// one inherited cannot be held. Each failure to start is one line on
// standard error, and nothing has been started.
//
// Sockets held across restarts: with -listen, manager binds each address
// and listens (SO_REUSEADDR, never SO_REUSEPORT; the largest backlog the
// kernel allows, net.core.somaxconn) before it starts anything, keeps the
// sockets open for its whole life and never accepts on them. Between one
// program's stop and the next one's start, connections wait in the
// kernel's backlog: a restart refuses none. Every program manager starts
// gets the sockets as descriptors 3, 4, … in the order given, with
// LISTEN_FDS, LISTEN_FDNAMES (the names joined by colons) and LISTEN_PID,
// the program's own pid, as systemd's socket activation passes them
// (sd_listen_fds(3)), and no other descriptor above 2 (Linux 5.11 and
// later: close_range(2)); manager's own sockets are in blocking mode at
// each start, as they were made, whatever the last program set. HOST is
// an IP address, or localhost for 127.0.0.1 (no name is resolved); [::]
// and other IPv6 addresses are IPv6 only, while :PORT is every address of both
// families: an IPv6 socket on [::] that IPv4 connections reach too, or
// 0.0.0.0 where the kernel has no IPv6 (the log line "listening" says
// which). A socket file already at a Unix socket's path is replaced;
// anything else there is an error. If a program removes the file, the
// socket is bound anew, with a warning, before the next start; the file is
// removed when manager exits. -check gets no socket and no LISTEN_
// variable. Sockets manager was itself given by socket activation
// (LISTEN_FDS with LISTEN_PID its own pid, as systemd and podman pass
// them; LISTEN_FDNAMES optional, "unknown" where it names none) are held
// and passed on the same way, after those of -listen. LISTEN_ variables
// meant for another pid are left alone for the program, unless manager
// holds sockets, which replace them. For LISTEN_PID to be the program's
// pid, manager starts each program through its own binary
// (/proc/self/exe, or where /proc is not mounted the path it was started
// by), which sets the variable and execs the program in its place: same
// pid, process group, terminal, blocked and ignored signals, and
// parent-death signal. That is one more start of a Go program at each
// start (7 to 10 ms more from one program's stop to the next one's start,
// median on 2 CPUs), with its few threads for that moment; without
// sockets, none of this happens. A program that binds its own port gains
// nothing from -listen, nor one that uses UDP, which -listen does not
// offer; a -check that needs the socket (haproxy -c with bind fd@3) fails.
//
// Every flag but -version can also be given as an environment variable,
// MANAGER_ and the flag's name in upper case with _ for -: MANAGER_GRACE=5s
// is -grace 5s. MANAGER_CONFIG is a list separated by colons (set but empty,
// it watches nothing), MANAGER_REMAP_EXIT and MANAGER_LISTEN are separated
// by commas. A flag on the command line wins over its variable; any other
// variable set to the empty string counts as unset. An invalid value exits
// 2 with one line naming the variable. The variables stay in the program's
// environment.
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
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
)

// tuneRuntime lowers the garbage collector's goal once manager polls: it
// holds little live data, and its only garbage comes from polls and the
// restarts they cause; Go's default 4 MB minimum heap goal would let that
// garbage grow its footprint by as much before the first collection. The
// call stops the world (0.7 ms, measured), so it is made at the first poll
// rather than at start, where a manager that watches nothing would pay it
// for nothing.
var tuneRuntime = sync.OnceFunc(func() { debug.SetGCPercent(gcPercent) })

// gcPercent sets the garbage collector's heap goal (GOGC).
const gcPercent = 20

// threadReserve is how many threads manager makes the runtime create
// before it starts a child. The Go runtime creates threads as it needs
// them, and crashes when it cannot ("newosproc"), which a child that fills
// the container's pids limit would cause: as PID 1, killing every process
// at once. A thread is needed for each goroutine that can be blocked in a
// system call at the same time (the loop, the hasher, the log writer),
// besides the one that runs the P and those with fixed jobs (sysmon, the
// signal receiver); the runtime keeps idle threads for good, so once made,
// none is ever needed again. Eight in all, with the one the runtime keeps
// for starting threads on behalf of locked ones.
const threadReserve = 3

// init gives the runtime one P before anything else of manager runs: the
// loop is a single goroutine, and with more Ps every wake-up of a timer
// also wakes idle threads that spin for work and find none (measured at
// -poll 100ms: 15 to 20% less CPU with one), and each P keeps caches of
// its own (100 to 200 KiB more resident memory, measured). The runtime has
// started with one P per CPU by then; what ran on the others before this
// is what GOMAXPROCS=1 in the environment would have saved.
func init() { runtime.GOMAXPROCS(1) }

// prepareRuntime makes every thread manager will ever need, before it
// starts anything.
func prepareRuntime() { reserveThreads(threadReserve) }

// reserveThreads makes the runtime create n threads: n goroutines lock
// themselves to a thread each and wait until all have, which the runtime
// can only serve with n threads, then return them to its idle pool. It
// returns once they are all back: a thread the runtime needed right after
// would otherwise find none idle yet, and make one more.
func reserveThreads(n int) {
	var locked, unlocked sync.WaitGroup
	release := make(chan struct{})
	locked.Add(n)
	unlocked.Add(n)
	for range n {
		go func() {
			runtime.LockOSThread()
			locked.Done()
			<-release
			runtime.UnlockOSThread()
			unlocked.Done()
		}()
	}
	locked.Wait()
	close(release)
	unlocked.Wait()
}

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
	// The files of Unix sockets are removed however manager ends from here.
	socks, code, err := takeSockets(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "manager: %v\n", err)
		return code
	}
	defer socks.release()
	prepareRuntime()
	stderr.format.Store(cfg)
	return supervise(cfg, newLogger(stderr, cfg), sigs, socks)
}

// takeSockets binds the sockets of -listen and takes those manager was
// started with, before anything starts, and on error returns the exit code
// for it: too few descriptors is a bad command line (exitUsage), a socket
// that cannot be bound or taken is exitSockets.
func takeSockets(cfg *config) (*sockets, int, error) {
	inherited, mine, err := inheritSockets(os.LookupEnv, os.Getpid())
	if err != nil {
		return nil, exitSockets, err
	}
	if err := checkDescriptors(cfg, len(cfg.listen)+len(inherited) > 0); err != nil {
		return nil, exitUsage, err
	}
	socks, err := holdSockets(cfg, inherited, mine)
	return socks, exitSockets, err
}
