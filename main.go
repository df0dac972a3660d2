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
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
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
	info, ok := debug.ReadBuildInfo()
	if version != "dev" || !ok {
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

	logFormat string
	logLevel  slog.Level
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

// parseArgs turns the command line (without the program name) into a config.
// Flags are first collected as plain strings and then validated here, so that
// every error reads the same way: the flag, the value and what is wrong.
func parseArgs(args []string) (*config, error) {
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		command      = fs.String("command", "", "")
		poll         = fs.String("poll", "1s", "")
		debounce     = fs.String("debounce", "1s", "")
		reloadSignal = fs.String("reload-signal", "", "")
		check        = fs.String("check", "", "")
		stopSignal   = fs.String("stop-signal", "TERM", "")
		grace        = fs.String("grace", "10s", "")
		group        = fs.Bool("group", false, "")
		logFormat    = fs.String("log-format", "text", "")
		logLevel     = fs.String("log-level", "info", "")
		showVersion  = fs.Bool("version", false, "")
		configs      listFlag
		remaps       listFlag
	)
	fs.Var(&configs, "config", "")
	fs.Var(&remaps, "remap-exit", "")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if *showVersion {
		return nil, errVersion
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })

	c := &config{group: *group, stopExplicit: explicit["stop-signal"], remap: map[int]bool{}}
	var err error
	switch {
	case explicit["command"] && *command == "":
		return nil, errors.New(`-command "": empty command`)
	case explicit["command"]:
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
	if c.poll, err = parseDuration("poll", *poll, false); err != nil {
		return nil, err
	}
	if c.debounce, err = parseDuration("debounce", *debounce, true); err != nil {
		return nil, err
	}
	if c.grace, err = parseDuration("grace", *grace, true); err != nil {
		return nil, err
	}
	if *reloadSignal != "" {
		if c.reloadSignal, err = parseSignal(*reloadSignal); err != nil {
			return nil, fmt.Errorf("-reload-signal %q: %w", *reloadSignal, err)
		}
	}
	if c.stopSignal, err = parseSignal(*stopSignal); err != nil {
		return nil, fmt.Errorf("-stop-signal %q: %w", *stopSignal, err)
	}
	if explicit["check"] {
		c.check = strings.Fields(*check)
		if len(c.check) == 0 {
			return nil, fmt.Errorf("-check %q: empty command", *check)
		}
		// Unlike the program, whose absence is exit 127 as in a shell, a
		// check that cannot run is a bad flag: every change would fail it.
		if c.checkPath, err = resolveCommand(c.check[0]); err != nil {
			_, why := startError(c.check[0], err)
			return nil, fmt.Errorf("-check %q: %s: %w", *check, c.check[0], why)
		}
	}
	if c.check != nil && c.grace == 0 {
		// The check is killed after -grace: with none, it could never pass.
		return nil, fmt.Errorf("-grace %q: -check is killed after -grace, so it needs more than 0", *grace)
	}
	for _, v := range remaps.values {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 255 {
			return nil, fmt.Errorf("-remap-exit %q: not an exit code (0 to 255)", v)
		}
		c.remap[n] = true
	}
	switch *logFormat {
	case "text", "json":
		c.logFormat = *logFormat
	default:
		return nil, fmt.Errorf("-log-format %q: want text or json", *logFormat)
	}
	if err := c.logLevel.UnmarshalText([]byte(*logLevel)); err != nil || strings.ContainsAny(*logLevel, "+-") {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", *logLevel)
	}
	return c, nil
}

// parseDuration validates a duration flag. Poll must be positive, since a
// zero interval would be a busy loop; the others may be zero.
func parseDuration(name, v string, zeroOK bool) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		return 0, fmt.Errorf("-%s %q: invalid duration", name, v)
	case d < 0 || d == 0 && !zeroOK:
		return 0, fmt.Errorf("-%s %q: must be positive", name, v)
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
  -group                   forward signals to the program's process group
  -remap-exit N            report exit code N as 0; repeatable
  -log-format text|json    log format on stderr (default text)
  -log-level LEVEL         debug, info, warn or error (default info)
  -version                 print the version and exit

Signals: HUP, SIGHUP, hup or 1. Exit codes: the program's own, 128+N if
signal N killed it, 127 if COMMAND is not found, 126 if it cannot be
executed, 2 for a bad command line.
`

func main() {
	os.Exit(run(os.Args[1:]))
}

// run is manager's whole life; it returns the exit code so that main stays a
// thin shell and every deferred cleanup runs.
func run(args []string) int {
	cfg, err := parseArgs(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Print(usage)
		return 0
	case errors.Is(err, errVersion):
		fmt.Printf("manager %s\n", version)
		return 0
	case err != nil:
		fmt.Fprintf(os.Stderr, "manager: %v\n", err)
		return exitUsage
	}
	return supervise(cfg, newLogger(os.Stderr, cfg))
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
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
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

// signalName names sig the way kill -l does, with its SIG prefix.
func signalName(sig syscall.Signal) string {
	if int(sig) < len(signalNames) && signalNames[sig] != "" {
		return "SIG" + signalNames[sig]
	}
	return "signal " + strconv.Itoa(int(sig))
}
