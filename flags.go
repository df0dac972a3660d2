package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

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
	logLevel  level

	listen []listenAddr // -listen, in the order given; nil means no socket
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

// String and Set make listFlag a flag.Value; each use of the flag adds one
// value.
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
		listens       listFlag
	)
	fs.Var(&configs, "config", "")
	fs.Var(&remaps, "remap-exit", "")
	fs.Var(&listens, "listen", "")
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
	// refuse is the one-line error for value v of flag: where v came
	// from, v quoted and cut, and why it is refused.
	refuse := func(flag, v string, why any) error {
		return fmt.Errorf("%s %s: %v", name(flag), quoteValue(v), why)
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
		return nil, refuse("poll", *poll, "under "+minPoll.String()+", polling is a busy loop")
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
			return nil, refuse("reload-signal", *reloadSignal, err)
		}
		if c.reloadSignal == syscall.SIGKILL || c.reloadSignal == syscall.SIGSTOP {
			return nil, refuse("reload-signal", *reloadSignal, signalName(c.reloadSignal)+" cannot be caught: the program could never handle it")
		}
	}
	if c.stopSignal, err = parseSignal(*stopSignal); err != nil {
		return nil, refuse("stop-signal", *stopSignal, err)
	}
	if c.stopSignal == syscall.SIGSTOP {
		return nil, refuse("stop-signal", *stopSignal, "SIGSTOP only suspends the program, it never makes it exit")
	}
	if *restartSignal != "" {
		if c.restartSignal, err = parseSignal(*restartSignal); err != nil {
			return nil, refuse("restart-signal", *restartSignal, err)
		}
		if err := checkRestartSignal(c.restartSignal); err != nil {
			return nil, refuse("restart-signal", *restartSignal, err)
		}
	}
	var ok bool
	if c.restartMode, c.restartMax, ok = parseRestart(*restart); !ok {
		return nil, refuse("restart", *restart, "want no, on-failure[:N] or always[:N], N at least 1")
	}
	if source["check"] != "" {
		c.check = strings.Fields(*check)
		if len(c.check) == 0 {
			return nil, refuse("check", *check, "empty command")
		}
		// Unlike the program, whose absence is exit 127 as in a shell, a
		// check that cannot run is a bad flag: every change would fail it.
		if c.checkPath, err = resolveCommand(c.check[0]); err != nil {
			_, why := startError(c.check[0], err)
			return nil, refuse("check", *check, printable(c.check[0])+": "+why.Error())
		}
	}
	if c.check != nil && c.grace == 0 {
		// The check is killed after -grace: with none, it could never pass.
		return nil, refuse("grace", *grace, "-check is killed after -grace, so it needs more than 0")
	}
	for _, v := range remaps.values {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 255 {
			return nil, refuse("remap-exit", v, "not an exit code (0 to 255)")
		}
		c.remap[n] = true
	}
	for _, v := range listens.values {
		a, err := parseListen(v)
		if err != nil {
			return nil, refuse("listen", v, err)
		}
		c.listen = append(c.listen, a)
	}
	switch *logFormat {
	case "text", "json":
		c.logFormat = *logFormat
	default:
		return nil, refuse("log-format", *logFormat, "want text or json")
	}
	if c.logLevel, ok = parseLevel(*logLevel); !ok {
		return nil, refuse("log-level", *logLevel, "want debug, info, warn or error")
	}
	return c, nil
}

// envName is the environment variable of a flag: MANAGER_ and the flag's
// name in upper case, with _ for -.
func envName(flag string) string {
	return "MANAGER_" + upperASCII(strings.ReplaceAll(flag, "-", "_"))
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
// as PATH is, MANAGER_REMAP_EXIT and MANAGER_LISTEN by ",".
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
		case "remap-exit", "listen":
			values = nil
			for _, item := range strings.Split(v, ",") {
				if item = strings.TrimSpace(item); item != "" {
					values = append(values, item)
				}
			}
		}
		for _, x := range values {
			// Only the boolean -group can refuse a value here; the others
			// are strings, validated by parseConfig like a flag's.
			if f.Value.Set(x) != nil {
				err = fmt.Errorf("%s %s: want true, false, 1 or 0", env, quoteValue(v))
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

// quoteValue quotes a bad value for its error line, cut to its first 64
// bytes and its length, so that a value of any length (a file pasted into
// a variable) still gives one short line.
func quoteValue(v string) string {
	const keep = 64
	if len(v) <= keep {
		return strconv.Quote(v)
	}
	n := keep
	for n > 0 && !utf8.RuneStart(v[n]) {
		n--
	}
	return strconv.Quote(v[:n]) + "… (" + strconv.Itoa(len(v)) + " bytes)"
}

// printable returns s, or s quoted if it holds anything (a newline, a
// terminal escape) that would not read as itself on one line.
func printable(s string) string {
	if q := strconv.Quote(s); q[1:len(q)-1] != s || len(s) > 64 {
		return quoteValue(s)
	}
	return s
}

// checkRestartSignal says why sig cannot be the -restart-signal, or returns
// nil. The signal must reach manager and be one it would otherwise forward:
// taking one of the others would break what manager uses it for.
func checkRestartSignal(sig syscall.Signal) error {
	switch sig {
	case syscall.SIGCONT, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU:
		return fmt.Errorf("%s is job control: a shell's fg, bg or Ctrl-Z would restart the program", signalName(sig))
	case syscall.SIGPIPE:
		return errors.New("SIGPIPE is what a write to a closed pipe raises: a broken pipe would restart the program")
	}
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
		return 0, fmt.Errorf("%s %s: invalid duration", name, quoteValue(v))
	case d < 0 || d == 0 && !zeroOK:
		return 0, fmt.Errorf("%s %s: must be positive", name, quoteValue(v))
	}
	return d, nil
}

// Descriptors manager needs free besides standard input, output and error:
// two for the runtime's netpoller (epoll and an eventfd, taken at the first
// timer: were they missing then, the runtime would crash), two for the pipe
// through which fork reports exec's errors, and with -check, /dev/null and
// a pipe for the check's output. A start that gives the program the
// terminal through /dev/tty needs one more (terminalNeedsDescriptor). With
// sockets, one for each of -listen, and two for the pipe through which the
// shim reports its exec's errors.
const (
	descriptorsNeeded      = 4
	descriptorsNeededCheck = 7
	descriptorsNeededShim  = 2
)

// checkDescriptors makes sure manager can run under its RLIMIT_NOFILE: it
// tries to open the descriptors it will need, then closes them. A file
// descriptor that lacks later, for a moment (a file opened for hashing
// while a child starts), only delays that start or hash. Programs are
// started through the shim when manager holds sockets, its own or
// inherited ones (shim).
func checkDescriptors(cfg *config, shim bool) error {
	need := descriptorsNeeded
	if cfg.check != nil {
		need = descriptorsNeededCheck
	}
	if terminalNeedsDescriptor() {
		need++
	}
	if shim {
		need += len(cfg.listen) + descriptorsNeededShim
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

// usage is printed by -h. It is kept by hand, not generated by the flag
// package, so that it reads as docs/manual.md shows it.
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
  -check "CMD ARG..."      run CMD before acting on a change, and once before
                           the first start; non-zero exit keeps the running
                           program untouched
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
  -listen [NAME=]ADDRESS   hold a listening socket across restarts: HOST:PORT,
                           :PORT, [IPV6]:PORT or /PATH (Unix); repeatable; the
                           program gets them as fd 3, 4, ... with LISTEN_FDS
  -log-format text|json    log format on stderr (default text)
  -log-level LEVEL         debug, info, warn or error (default info)
  -version                 print the version and exit

Every flag but -version can also be set in the environment as
MANAGER_<FLAG>, e.g. MANAGER_STOP_SIGNAL=QUIT; lists are MANAGER_CONFIG=a:b,
MANAGER_REMAP_EXIT=143,0 and MANAGER_LISTEN=:80,/run/app.sock. A flag on
the command line wins.

Signals: HUP, SIGHUP, hup or 1. Exit codes: the program's own, 128+N if
signal N killed it, 127 if COMMAND is not found, 126 if it cannot be
executed, 2 for a bad command line or MANAGER_ variable, 1 if a socket
cannot be bound or held.
`
