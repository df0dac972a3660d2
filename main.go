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
// working directory and standard streams. When standard input is a terminal
// that manager holds in the foreground, the program is given the terminal.
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
//		a non-zero exit keeps the running program untouched.
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
//		exit is manager's exit).
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
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
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

const (
	defaultCommand = "/usr/local/bin/redis-exporter"
	defaultConfig  = "/usr/local/bin/conf/exporter.conf"
)

// exitUsage is the exit code for a bad command line, as for flag.ExitOnError.
const exitUsage = 2

// config is the validated command line: everything run needs, decided before
// anything starts.
type config struct {
	argv []string // the program and its arguments; argv[0] as given

	configs   []string      // watched paths; empty means no watching
	poll      time.Duration // interval between two looks at configs
	debounce  time.Duration // quiet time before a change is acted on
	check     []string      // validation command; nil means none
	checkPath string        // check[0] resolved in PATH

	reloadSignal syscall.Signal // sent on a change; 0 means restart instead
	stopSignal   syscall.Signal // stops the program on a restart or at exit
	stopExplicit bool           // -stop-signal was given, so shutdown uses it too
	grace        time.Duration
	group        bool
	remap        map[int]bool // exit codes reported as 0

	stopDelay     time.Duration  // -stop-delay; 0 means none
	restartSignal syscall.Signal // -restart-signal; 0 means none
	restartMode   restartMode    // -restart; the zero value restartNo
	restartMax    int            // N of on-failure:N or always:N; 0 means no limit

	logFormat string
	logLevel  slog.Level
}

// restartMode says which exits of a child that ends by itself are followed
// by a new child (-restart).
type restartMode int

const (
	// restartNo makes the child's exit manager's exit: the default.
	restartNo restartMode = iota
	// restartOnFailure restarts a child that exited non-zero or was killed
	// by a signal.
	restartOnFailure
	// restartAlways restarts a child however it ended, exit 0 included.
	restartAlways
)

// String names the mode as -restart spells it.
func (m restartMode) String() string {
	switch m {
	case restartNo:
		return "no"
	case restartOnFailure:
		return "on-failure"
	case restartAlways:
		return "always"
	}
	return "restartMode(" + strconv.Itoa(int(m)) + ")"
}

// listFlag collects the values of a repeatable flag.
type listFlag struct {
	values []string
	set    bool // the flag appeared at least once
}

func (l *listFlag) String() string { return strings.Join(l.values, ",") }

func (l *listFlag) Set(v string) error {
	l.values = append(l.values, v)
	l.set = true
	return nil
}

// errVersion and flag.ErrHelp are the two successful early exits of parseArgs.
var errVersion = errors.New("version requested")

// minPoll is the shortest -poll: below it, looking at the watched paths
// becomes a busy loop that takes a core from the program.
const minPoll = 10 * time.Millisecond

// parseArgs turns the command line (without the program name) into a
// config, as if no MANAGER_ variable were set: tests stay independent of the
// environment they run in.
func parseArgs(args []string) (*config, error) {
	return parseConfig(args, noEnvironment)
}

// noEnvironment is a lookupEnv in which no variable is set.
func noEnvironment(string) (string, bool) { return "", false }

// parseConfig turns the command line (without the program name) and the
// MANAGER_ variables that lookupEnv finds into a config. Flags are first
// collected as plain strings and then validated here, so that every error
// reads the same way: the flag or variable, the value and what is wrong.
func parseConfig(args []string, lookupEnv func(string) (string, bool)) (*config, error) {
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		command       = fs.String("command", "", "")
		poll          = fs.String("poll", "1s", "")
		debounce      = fs.String("debounce", "1s", "")
		reloadSignal  = fs.String("reload-signal", "", "")
		check         = fs.String("check", "", "")
		stopSignal    = fs.String("stop-signal", "TERM", "")
		grace         = fs.String("grace", "10s", "")
		stopDelay     = fs.String("stop-delay", "0s", "")
		restartSignal = fs.String("restart-signal", "", "")
		restart       = fs.String("restart", "no", "")
		group         = fs.Bool("group", false, "")
		logFormat     = fs.String("log-format", "text", "")
		logLevel      = fs.String("log-level", "info", "")
		showVersion   = fs.Bool("version", false, "")
		configs       listFlag
		remaps        listFlag
	)
	fs.Var(&configs, "config", "")
	fs.Var(&remaps, "remap-exit", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, flagError(err, args, fs.Args())
	}
	if *showVersion {
		return nil, errVersion
	}
	source, err := applyEnvironment(fs, lookupEnv)
	if err != nil {
		return nil, err
	}
	// name is how an error names where a flag's value came from.
	name := func(flag string) string {
		if s := source[flag]; s != "" {
			return s
		}
		return "-" + flag
	}

	c := &config{group: *group, stopExplicit: source["stop-signal"] != "", remap: map[int]bool{}}
	switch {
	case source["command"] != "" && *command == "":
		return nil, errors.New(`-command "": empty command`)
	case source["command"] != "":
		c.argv = append([]string{*command}, fs.Args()...)
	case fs.NArg() > 0:
		c.argv = fs.Args()
	default:
		c.argv = []string{defaultCommand}
	}
	if c.argv[0] == "" {
		return nil, errors.New(`command "": empty command`)
	}

	c.configs = []string{defaultConfig}
	if configs.set {
		c.configs = nil
		for _, p := range configs.values {
			if p != "" {
				c.configs = append(c.configs, p)
			}
		}
	}
	if c.poll, err = parseDuration(name("poll"), *poll, false); err != nil {
		return nil, err
	}
	if c.poll < minPoll {
		return nil, fmt.Errorf("%s %q: under %v, polling is a busy loop", name("poll"), *poll, minPoll)
	}
	if c.debounce, err = parseDuration(name("debounce"), *debounce, true); err != nil {
		return nil, err
	}
	if c.grace, err = parseDuration(name("grace"), *grace, true); err != nil {
		return nil, err
	}
	if c.stopDelay, err = parseDuration(name("stop-delay"), *stopDelay, true); err != nil {
		return nil, err
	}
	if *reloadSignal != "" {
		if c.reloadSignal, err = parseSignal(*reloadSignal); err != nil {
			return nil, fmt.Errorf("%s %q: %w", name("reload-signal"), *reloadSignal, err)
		}
		if c.reloadSignal == syscall.SIGKILL || c.reloadSignal == syscall.SIGSTOP {
			return nil, fmt.Errorf("%s %q: %s cannot be caught: the program could never handle it", name("reload-signal"), *reloadSignal, signalName(c.reloadSignal))
		}
	}
	if c.stopSignal, err = parseSignal(*stopSignal); err != nil {
		return nil, fmt.Errorf("%s %q: %w", name("stop-signal"), *stopSignal, err)
	}
	if c.stopSignal == syscall.SIGSTOP {
		return nil, fmt.Errorf("%s %q: SIGSTOP only suspends the program, it never makes it exit", name("stop-signal"), *stopSignal)
	}
	if *restartSignal != "" {
		if c.restartSignal, err = parseSignal(*restartSignal); err != nil {
			return nil, fmt.Errorf("%s %q: %w", name("restart-signal"), *restartSignal, err)
		}
		if err := checkRestartSignal(c.restartSignal); err != nil {
			return nil, fmt.Errorf("%s %q: %w", name("restart-signal"), *restartSignal, err)
		}
	}
	var ok bool
	if c.restartMode, c.restartMax, ok = parseRestart(*restart); !ok {
		return nil, fmt.Errorf("%s %q: want no, on-failure[:N] or always[:N], N at least 1", name("restart"), *restart)
	}
	if source["check"] != "" {
		c.check = strings.Fields(*check)
		if len(c.check) == 0 {
			return nil, fmt.Errorf("%s %q: empty command", name("check"), *check)
		}
		// Unlike the program, whose absence is exit 127 as in a shell, a
		// check that cannot run is a bad flag: every change would fail it.
		if c.checkPath, err = resolveCommand(c.check[0]); err != nil {
			_, why := startError(c.check[0], err)
			return nil, fmt.Errorf("%s %q: %s: %w", name("check"), *check, c.check[0], why)
		}
	}
	if c.check != nil && c.grace == 0 {
		// The check is killed after -grace: with none, it could never pass.
		return nil, fmt.Errorf("%s %q: -check is killed after -grace, so it needs more than 0", name("grace"), *grace)
	}
	for _, v := range remaps.values {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 255 {
			return nil, fmt.Errorf("%s %q: not an exit code (0 to 255)", name("remap-exit"), v)
		}
		c.remap[n] = true
	}
	switch *logFormat {
	case "text", "json":
		c.logFormat = *logFormat
	default:
		return nil, fmt.Errorf("%s %q: want text or json", name("log-format"), *logFormat)
	}
	if err := c.logLevel.UnmarshalText([]byte(*logLevel)); err != nil || strings.ContainsAny(*logLevel, "+-") {
		return nil, fmt.Errorf("%s %q: want debug, info, warn or error", name("log-level"), *logLevel)
	}
	return c, nil
}

// envName is the environment variable of a flag: MANAGER_ and the flag's
// name in upper case, with _ for -.
func envName(flag string) string {
	return "MANAGER_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyEnvironment gives each flag that the command line left out the value
// of its MANAGER_ variable, if one is set, and returns where each given flag
// came from, as errors name it: "-grace" or "MANAGER_GRACE". A variable of a
// flag given on the command line is not even read, so an image's bad default
// can be overridden by a flag.
//
// An empty variable counts as unset, since a container cannot unset what its
// image sets (Dockerfile ENV, a Kubernetes env: entry) but can empty it; the
// exception is MANAGER_CONFIG, where empty means watch nothing, as an empty
// -config does. Repeatable flags take lists: MANAGER_CONFIG separated by ":"
// as PATH is, MANAGER_REMAP_EXIT by ",".
func applyEnvironment(fs *flag.FlagSet, lookupEnv func(string) (string, bool)) (map[string]string, error) {
	source := map[string]string{}
	fs.Visit(func(f *flag.Flag) { source[f.Name] = "-" + f.Name })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || source[f.Name] != "" || f.Name == "version" {
			return
		}
		env := envName(f.Name)
		v, ok := lookupEnv(env)
		if !ok || v == "" && f.Name != "config" {
			return
		}
		source[f.Name] = env
		values := []string{v}
		switch f.Name {
		case "config":
			values = strings.Split(v, ":")
		case "remap-exit":
			values = nil
			for _, code := range strings.Split(v, ",") {
				if code = strings.TrimSpace(code); code != "" {
					values = append(values, code)
				}
			}
		}
		for _, x := range values {
			// Only the boolean -group can refuse a value here; the others
			// are strings, validated by parseConfig like a flag's.
			if f.Value.Set(x) != nil {
				err = fmt.Errorf("%s %q: want true, false, 1 or 0", env, v)
				return
			}
		}
	})
	return source, err
}

// flagError rewrites an error of the flag package so that it names the flag
// as the user wrote it (the package says -bogus for --bogus), and points to
// the usage. fs.Args() after the error gives rest: the flag package has
// consumed the offending argument, except in a syntax error, which quotes it.
func flagError(err error, args, rest []string) error {
	msg := err.Error()
	if s, ok := strings.CutPrefix(msg, "bad flag syntax: "); ok {
		msg = "bad flag syntax: " + printable(s)
	} else if i := len(args) - len(rest) - 1; i >= 0 && i < len(args) {
		written, _, _ := strings.Cut(args[i], "=")
		canonical := "-" + strings.TrimLeft(written, "-")
		// The flag's name comes after any value the message quotes.
		if j := strings.LastIndex(msg, canonical); j >= 0 {
			msg = msg[:j] + printable(written) + msg[j+len(canonical):]
		}
	}
	return fmt.Errorf("%s (manager -h lists the flags)", msg)
}

// printable returns s, or s quoted if it holds anything (a newline, a
// terminal escape) that would not read as itself on one line.
func printable(s string) string {
	if q := strconv.Quote(s); q[1:len(q)-1] != s {
		return q
	}
	return s
}

// checkRestartSignal says why sig cannot be the -restart-signal, or returns
// nil. The signal must reach manager and be one it would otherwise forward:
// taking one of the others would break what manager uses it for.
func checkRestartSignal(sig syscall.Signal) error {
	for _, s := range forwardedSignals() {
		if s == sig {
			return nil
		}
	}
	switch sig {
	case syscall.SIGKILL, syscall.SIGSTOP:
		return fmt.Errorf("%s cannot be caught", signalName(sig))
	case syscall.SIGTERM, syscall.SIGINT:
		return fmt.Errorf("%s shuts manager down", signalName(sig))
	}
	return fmt.Errorf("%s is not one manager forwards; use one it does, such as USR2", signalName(sig))
}

// parseRestart reads a -restart policy: no, on-failure, on-failure:N, always
// or always:N with N at least 1. It returns the mode and N (0 for no limit),
// and reports whether v is such a policy.
func parseRestart(v string) (mode restartMode, max int, ok bool) {
	policy, limit, limited := strings.Cut(v, ":")
	switch policy {
	case "no":
		return restartNo, 0, !limited
	case "on-failure":
		mode = restartOnFailure
	case "always":
		mode = restartAlways
	default:
		return restartNo, 0, false
	}
	if !limited {
		return mode, 0, true
	}
	if strings.Trim(limit, "0123456789") != "" {
		return restartNo, 0, false // Atoi would take a sign
	}
	max, err := strconv.Atoi(limit)
	if err != nil || max < 1 {
		return restartNo, 0, false
	}
	return mode, max, true
}

// parseDuration validates a duration flag, named in errors by name (a flag
// or a variable). Poll must be positive, since a zero interval would be a
// busy loop; the others may be zero.
func parseDuration(name, v string, zeroOK bool) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%s %q: invalid duration", name, v)
	case d < 0 || d == 0 && !zeroOK:
		return 0, fmt.Errorf("%s %q: must be positive", name, v)
	}
	return d, nil
}

// usage is printed by -h. It is kept by hand, not generated by the flag
// package, so that it reads as the README shows it.
const usage = `usage: manager [flags] [--] [COMMAND [ARG...]]

Runs COMMAND as a container's PID 1: reaps zombies, forwards signals,
stops gracefully and restarts COMMAND when its configuration changes.

  -command PATH            program to run (default /usr/local/bin/redis-exporter);
                           all positional arguments become its arguments
  -config PATH             file or directory to watch; repeatable; '' disables
                           (default /usr/local/bin/conf/exporter.conf)
  -poll DURATION           interval between two looks at the watched paths (default 1s)
  -debounce DURATION       quiet time before acting on a change (default 1s)
  -reload-signal SIG       on a change, send SIG instead of restarting
  -check "CMD ARG..."      run CMD before acting on a change; non-zero exit
                           keeps the running program untouched
  -stop-signal SIG         signal that stops the program (default TERM)
  -grace DURATION          time to exit before SIGKILL of the group (default 10s)
  -stop-delay DURATION     on SIGTERM or SIGINT, keep the program running this
                           long before stopping it (default 0)
  -restart-signal SIG      SIG sent to manager restarts the program
  -restart POLICY          restart the program when it exits by itself:
                           no, on-failure[:N] or always[:N], giving up after
                           N restarts in a row (default no)
  -group                   forward signals to the program's process group
  -remap-exit N            report exit code N as 0; repeatable
  -log-format text|json    log format on stderr (default text)
  -log-level LEVEL         debug, info, warn or error (default info)
  -version                 print the version and exit

Every flag but -version can also be set in the environment as
MANAGER_<FLAG>, e.g. MANAGER_STOP_SIGNAL=QUIT; lists are MANAGER_CONFIG=a:b
and MANAGER_REMAP_EXIT=143,0. A flag on the command line wins.

Signals: HUP, SIGHUP, hup or 1. Exit codes: the program's own, 128+N if
signal N killed it, 127 if COMMAND is not found, 126 if it cannot be
executed, 2 for a bad command line or MANAGER_ variable.
`

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

// newLogger builds the slog logger for cfg. Log lines go to standard error
// only: standard output belongs to the program.
func newLogger(w io.Writer, cfg *config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.logLevel}
	if cfg.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Descriptors manager needs free besides standard input, output and error:
// two for the runtime's netpoller (epoll and an eventfd, taken at the first
// timer: were they missing then, the runtime would crash), two for the pipe
// through which fork reports exec's errors, and with -check, /dev/null and
// a pipe for the check's output.
const (
	descriptorsNeeded      = 4
	descriptorsNeededCheck = 7
)

// checkDescriptors makes sure manager can run under its RLIMIT_NOFILE: it
// tries to open the descriptors it will need, then closes them. A file
// descriptor that lacks later, for a moment (a file opened for hashing
// while a child starts), only delays that start or hash.
func checkDescriptors(cfg *config) error {
	need := descriptorsNeeded
	if cfg.check != nil {
		need = descriptorsNeededCheck
	}
	var got []int
	defer func() {
		for _, fd := range got {
			syscall.Close(fd)
		}
	}()
	for len(got) < need {
		fd, _, e := syscall.Syscall(syscall.SYS_FCNTL, 2, syscall.F_DUPFD_CLOEXEC, 0)
		if e != 0 {
			var lim syscall.Rlimit
			syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
			return fmt.Errorf("too few file descriptors: RLIMIT_NOFILE %d leaves %d free, and manager needs %d (ulimit -n, docker run --ulimit nofile=N)",
				lim.Cur, len(got), need)
		}
		got = append(got, int(fd))
	}
	return nil
}

// logWriter is manager's standard error, written so that logging can never
// harm: lines go through a bounded queue to a goroutine of their own, so
// the supervisor loop never waits on a full pipe whose reader stalled, and
// a line that finds the queue full is dropped and counted, as is one the
// descriptor refuses (a broken pipe, a hung-up terminal). The count is
// reported in a line of its own before the next line that gets through.
type logWriter struct {
	fd      int
	queue   chan logEntry
	dropped atomic.Int64
	format  atomic.Pointer[config] // the log format of the count's line; nil: text
}

// logEntry is a line to write, or a flush marker.
type logEntry struct {
	line []byte
	done chan struct{} // closed once every line queued before it is written
}

const (
	logQueue  = 256         // lines: bursts of a few hundred, then drops
	flushWait = time.Second // how long manager's last lines may hold its exit
)

// newLogWriter starts the writer of fd, and returns once its thread is
// ready: made now, while threads can be made, and with its signals blocked.
func newLogWriter(fd int) *logWriter {
	w := &logWriter{fd: fd, queue: make(chan logEntry, logQueue)}
	ready := make(chan struct{})
	go w.run(ready)
	<-ready
	return w
}

// Write queues a copy of p, or drops it if the queue is full.
func (w *logWriter) Write(p []byte) (int, error) {
	select {
	case w.queue <- logEntry{line: bytes.Clone(p)}:
	default:
		w.dropped.Add(1)
	}
	return len(p), nil
}

// run writes the queued lines, on a thread of its own that blocks SIGPIPE
// and SIGTTOU. The kernel sends SIGPIPE for a write to a pipe without
// reader to the writing thread, where blocked it stays pending and
// harmless: delivered, manager would take it for one sent to it, and
// forward it to the child. A write to a terminal from a background process
// group with "stty tostop" raises SIGTTOU, which manager catches, so the
// write would be restarted forever; the kernel lets it through when the
// writing thread blocks SIGTTOU.
func (w *logWriter) run(ready chan<- struct{}) {
	runtime.LockOSThread() // never unlocked: the mask belongs to this thread
	blockThreadSignals(syscall.SIGPIPE, syscall.SIGTTOU)
	close(ready)
	for e := range w.queue {
		if e.done != nil {
			close(e.done)
			continue
		}
		if n := w.dropped.Load(); n > 0 && writeFull(w.fd, w.dropNotice(n)) == nil {
			w.dropped.Add(-n)
		}
		if writeFull(w.fd, e.line) != nil {
			w.dropped.Add(1)
		}
	}
}

// dropNotice is the line that reports n dropped lines, in the log's format.
func (w *logWriter) dropNotice(n int64) []byte {
	cfg := w.format.Load()
	if cfg == nil {
		cfg = &config{logFormat: "text"}
	}
	var b bytes.Buffer
	newLogger(&b, cfg).Log(context.Background(), max(slog.LevelWarn, cfg.logLevel), "log lines dropped", "count", n)
	return b.Bytes()
}

// writeFull writes all of b to fd. A descriptor someone made non-blocking
// is waited for with ppoll rather than spun on.
func writeFull(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		switch err {
		case nil:
			b = b[n:]
		case syscall.EINTR:
		case syscall.EAGAIN:
			pfd := struct {
				fd             int32
				events, revent int16
			}{fd: int32(fd), events: 0x4} // POLLOUT
			syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, 0, 0, 0, 0)
		default:
			return err
		}
	}
	return nil
}

// flush waits up to d for the lines queued so far to be written. It naps
// rather than sets a timer: a timer would start the runtime's netpoller,
// which needs descriptors that may be lacking when manager exits early. It
// yields before each nap: manager runs with one P, which a goroutine keeps
// through a nap, and without the yield the writer would wait for the
// runtime's monitor to take the P back, up to 10 ms at every exit.
func (w *logWriter) flush(d time.Duration) {
	deadline := time.Now().Add(d)
	done := make(chan struct{})
	queued := false
	for time.Now().Before(deadline) {
		if !queued {
			select {
			case w.queue <- logEntry{done: done}:
				queued = true
			default:
			}
		}
		runtime.Gosched()
		if queued {
			select {
			case <-done:
				return
			default:
			}
		}
		syscall.Nanosleep(&millisecond, nil)
	}
}

// millisecond is the log writer's polling pause, built once: Timespec's
// fields are 32 bits wide on 32-bit architectures.
var millisecond = syscall.NsecToTimespec(int64(time.Millisecond))

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
	// Upper case by ASCII only: Unicode case folding would read "ſighup"
	// (long s) as SIGHUP.
	name := strings.TrimPrefix(strings.Map(asciiUpper, s), "SIG")
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

// asciiUpper upper-cases the ASCII letter r, and leaves anything else as it is.
func asciiUpper(r rune) rune {
	if 'a' <= r && r <= 'z' {
		return r - 'a' + 'A'
	}
	return r
}

// signalName names sig the way kill -l does, with its SIG prefix.
func signalName(sig syscall.Signal) string {
	if int(sig) < len(signalNames) && signalNames[sig] != "" {
		return "SIG" + signalNames[sig]
	}
	return "signal " + strconv.Itoa(int(sig))
}
