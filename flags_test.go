package main

// Tests of the command line and of its twin, the MANAGER_ variables: what
// each flag and variable sets, what is refused and how the refusal reads,
// and the fuzz targets that hold the parser to the same rules.

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// env is a fake environment for parseConfig.
type env map[string]string

// lookup is env's lookupEnv.
func (e env) lookup(name string) (string, bool) {
	v, ok := e[name]
	return v, ok
}

// String shows e as a shell would set it, in a stable order.
func (e env) String() string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(e)) {
		out = append(out, k+"="+strconv.Quote(e[k]))
	}
	return "{" + strings.Join(out, " ") + "}"
}

// field returns one field of c by name, formatted for comparison.
func field(c *config, name string) string {
	switch name {
	case "argv":
		return fmt.Sprintf("%q", c.argv)
	case "configs":
		return fmt.Sprintf("%q", c.configs)
	case "poll":
		return c.poll.String()
	case "debounce":
		return c.debounce.String()
	case "check":
		return fmt.Sprintf("%q", c.check)
	case "reloadSignal":
		return signalOrNone(c.reloadSignal)
	case "stopSignal":
		return fmt.Sprintf("%s explicit=%v", signalName(c.stopSignal), c.stopExplicit)
	case "grace":
		return c.grace.String()
	case "group":
		return strconv.FormatBool(c.group)
	case "remap":
		return fmt.Sprint(slices.Sorted(maps.Keys(c.remap)))
	case "stopDelay":
		return c.stopDelay.String()
	case "restartSignal":
		return signalOrNone(c.restartSignal)
	case "restart":
		return fmt.Sprintf("%v:%d", c.restartMode, c.restartMax)
	case "logFormat":
		return c.logFormat
	case "logLevel":
		return c.logLevel.String()
	case "listen":
		var out []string
		for _, a := range c.listen {
			addr := a.path
			if addr == "" {
				addr = a.host + ":" + strconv.Itoa(a.port)
			}
			out = append(out, a.name+"="+addr)
		}
		return fmt.Sprintf("%q", out)
	}
	panic("no config field " + name)
}

// signalOrNone names sig, or says that there is none.
func signalOrNone(sig syscall.Signal) string {
	if sig == 0 {
		return "none"
	}
	return signalName(sig)
}

// argsCase is a command line and environment, and one field of the config
// they make.
type argsCase struct {
	name        string
	args        []string
	env         env
	field, want string
}

// argsCases are accepted configurations. The fuzz seeds come from here too.
var argsCases = []argsCase{
	{"poll at its minimum", []string{"-poll", "10ms"}, nil, "poll", "10ms"},
	{"stop delay default", nil, nil, "stopDelay", "0s"},
	{"stop delay", []string{"-stop-delay", "5s"}, nil, "stopDelay", "5s"},
	{"stop delay zero", []string{"--stop-delay=0"}, nil, "stopDelay", "0s"},
	{"restart default", nil, nil, "restart", "no:0"},
	{"restart no", []string{"-restart", "no"}, nil, "restart", "no:0"},
	{"restart on failure", []string{"-restart", "on-failure"}, nil, "restart", "on-failure:0"},
	{"restart on failure limited", []string{"-restart", "on-failure:3"}, nil, "restart", "on-failure:3"},
	{"restart always", []string{"-restart", "always"}, nil, "restart", "always:0"},
	{"restart always once", []string{"-restart", "always:1"}, nil, "restart", "always:1"},
	{"restart signal default", nil, nil, "restartSignal", "none"},
	{"restart signal", []string{"-restart-signal", "USR2"}, nil, "restartSignal", "SIGUSR2"},
	{"restart signal HUP", []string{"-restart-signal", "sighup"}, nil, "restartSignal", "SIGHUP"},
	{"restart signal real-time", []string{"-restart-signal", "64"}, nil, "restartSignal", "signal 64"},
	{"reload signal TERM", []string{"-reload-signal", "TERM"}, nil, "reloadSignal", "SIGTERM"},
	{"stop signal KILL", []string{"-stop-signal", "KILL"}, nil, "stopSignal", "SIGKILL explicit=true"},

	// Each variable sets its flag.
	{"MANAGER_COMMAND", nil, env{"MANAGER_COMMAND": "/bin/app"}, "argv", `["/bin/app"]`},
	{"MANAGER_COMMAND takes every positional", []string{"a", "-b"}, env{"MANAGER_COMMAND": "/bin/app"}, "argv", `["/bin/app" "a" "-b"]`},
	{"MANAGER_CONFIG", nil, env{"MANAGER_CONFIG": "/etc/app"}, "configs", `["/etc/app"]`},
	{"MANAGER_CONFIG list", nil, env{"MANAGER_CONFIG": "/etc/a:/etc/b/"}, "configs", `["/etc/a" "/etc/b/"]`},
	{"MANAGER_CONFIG empty disables", nil, env{"MANAGER_CONFIG": ""}, "configs", `[]`},
	{"MANAGER_CONFIG colon disables", nil, env{"MANAGER_CONFIG": ":"}, "configs", `[]`},
	{"MANAGER_CONFIG empty entries", nil, env{"MANAGER_CONFIG": "/a::/b:"}, "configs", `["/a" "/b"]`},
	{"MANAGER_POLL", nil, env{"MANAGER_POLL": "2s"}, "poll", "2s"},
	{"MANAGER_DEBOUNCE", nil, env{"MANAGER_DEBOUNCE": "0s"}, "debounce", "0s"},
	{"MANAGER_RELOAD_SIGNAL", nil, env{"MANAGER_RELOAD_SIGNAL": "hup"}, "reloadSignal", "SIGHUP"},
	{"MANAGER_CHECK", nil, env{"MANAGER_CHECK": "/bin/true -t"}, "check", `["/bin/true" "-t"]`},
	{"MANAGER_STOP_SIGNAL is explicit", nil, env{"MANAGER_STOP_SIGNAL": "QUIT"}, "stopSignal", "SIGQUIT explicit=true"},
	{"MANAGER_GRACE", nil, env{"MANAGER_GRACE": "3s"}, "grace", "3s"},
	{"MANAGER_STOP_DELAY", nil, env{"MANAGER_STOP_DELAY": "7s"}, "stopDelay", "7s"},
	{"MANAGER_GROUP true", nil, env{"MANAGER_GROUP": "true"}, "group", "true"},
	{"MANAGER_GROUP 1", nil, env{"MANAGER_GROUP": "1"}, "group", "true"},
	{"MANAGER_GROUP false", nil, env{"MANAGER_GROUP": "false"}, "group", "false"},
	{"MANAGER_GROUP 0", nil, env{"MANAGER_GROUP": "0"}, "group", "false"},
	{"MANAGER_REMAP_EXIT", nil, env{"MANAGER_REMAP_EXIT": "143"}, "remap", "[143]"},
	{"MANAGER_REMAP_EXIT list", nil, env{"MANAGER_REMAP_EXIT": "143,0"}, "remap", "[0 143]"},
	{"MANAGER_REMAP_EXIT spaces and trailing comma", nil, env{"MANAGER_REMAP_EXIT": " 143, 0,"}, "remap", "[0 143]"},
	{"MANAGER_RESTART", nil, env{"MANAGER_RESTART": "always:5"}, "restart", "always:5"},
	{"MANAGER_RESTART_SIGNAL", nil, env{"MANAGER_RESTART_SIGNAL": "USR1"}, "restartSignal", "SIGUSR1"},
	{"MANAGER_LOG_FORMAT", nil, env{"MANAGER_LOG_FORMAT": "json"}, "logFormat", "json"},
	{"MANAGER_LOG_LEVEL", nil, env{"MANAGER_LOG_LEVEL": "debug"}, "logLevel", "DEBUG"},
	{"MANAGER_LISTEN", nil, env{"MANAGER_LISTEN": "web=:8080"}, "listen", `["web=:8080"]`},
	{"MANAGER_LISTEN list", nil, env{"MANAGER_LISTEN": " :80, /run/a.sock ,"}, "listen", `["listen=:80" "listen=/run/a.sock"]`},
	{"-listen repeatable", []string{"-listen", "a=:1", "-listen", "[::1]:2"}, nil, "listen", `["a=:1" "listen=[::1]:2"]`},
	{"-listen wins", []string{"-listen", ":1"}, env{"MANAGER_LISTEN": "bad"}, "listen", `["listen=:1"]`},
	{"no -listen", nil, nil, "listen", `[]`},

	// An empty variable is unset: it is how a container takes back what
	// its image set, since it cannot unset it.
	{"empty MANAGER_GRACE is unset", nil, env{"MANAGER_GRACE": ""}, "grace", "10s"},
	{"empty MANAGER_CHECK is unset", nil, env{"MANAGER_CHECK": ""}, "check", "[]"},
	{"empty MANAGER_COMMAND is unset", []string{"/bin/app"}, env{"MANAGER_COMMAND": ""}, "argv", `["/bin/app"]`},
	{"empty MANAGER_STOP_SIGNAL is unset", nil, env{"MANAGER_STOP_SIGNAL": ""}, "stopSignal", "SIGTERM explicit=false"},
	{"MANAGER_VERSION is no variable", nil, env{"MANAGER_VERSION": "true"}, "argv", `["/usr/local/bin/redis-exporter"]`},

	// The command line wins, and the variable it overrides is not read:
	// a flag is how a bad value baked into an image gets fixed.
	{"-grace wins", []string{"-grace", "1s"}, env{"MANAGER_GRACE": "3s"}, "grace", "1s"},
	{"-grace wins over a bad variable", []string{"-grace", "1s"}, env{"MANAGER_GRACE": "ten"}, "grace", "1s"},
	{"-config wins", []string{"-config", "/c"}, env{"MANAGER_CONFIG": "/a:/b"}, "configs", `["/c"]`},
	{"-config '' wins", []string{"-config="}, env{"MANAGER_CONFIG": "/a"}, "configs", `[]`},
	{"-remap-exit wins", []string{"-remap-exit", "4"}, env{"MANAGER_REMAP_EXIT": "3"}, "remap", "[4]"},
	{"-group=false wins", []string{"-group=false"}, env{"MANAGER_GROUP": "true"}, "group", "false"},
	{"-command wins", []string{"-command", "/bin/b"}, env{"MANAGER_COMMAND": "/bin/a"}, "argv", `["/bin/b"]`},
	{"-stop-signal wins", []string{"-stop-signal", "INT"}, env{"MANAGER_STOP_SIGNAL": "QUIT"}, "stopSignal", "SIGINT explicit=true"},
	{"-log-format wins", []string{"-log-format", "text"}, env{"MANAGER_LOG_FORMAT": "json"}, "logFormat", "text"},
	{"other variables still count", []string{"-grace", "1s"}, env{"MANAGER_GRACE": "3s", "MANAGER_POLL": "2s"}, "poll", "2s"},
}

// TestParseConfig checks what each flag and variable sets.
func TestParseConfig(t *testing.T) {
	for _, tc := range argsCases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(tc.args, tc.env.lookup)
			if err != nil {
				t.Fatalf("parseConfig(%q, %v): %v", tc.args, tc.env, err)
			}
			if got := field(c, tc.field); got != tc.want {
				t.Errorf("parseConfig(%q, %v).%s = %s, want %s", tc.args, tc.env, tc.field, got, tc.want)
			}
			if p := configProblem(c); p != "" {
				t.Errorf("parseConfig(%q, %v) accepted a bad config: %s", tc.args, tc.env, p)
			}
		})
	}
}

// argsErrorCase is a command line and environment that must be refused,
// and the one line that says why.
type argsErrorCase struct {
	name string
	args []string
	env  env
	want string
}

// argsErrorCases are refused configurations. The fuzz seeds come from here too.
var argsErrorCases = []argsErrorCase{
	// Unknown flags read as written, with a way out.
	{"unknown flag", []string{"-bogus"}, nil, "flag provided but not defined: -bogus (manager -h lists the flags)"},
	{"unknown flag, two dashes", []string{"--bogus"}, nil, "flag provided but not defined: --bogus (manager -h lists the flags)"},
	{"unknown flag with a value", []string{"--bogus=-bogus"}, nil, "flag provided but not defined: --bogus (manager -h lists the flags)"},
	{"unknown flag after a good one", []string{"--grace", "1s", "--bogus", "app"}, nil, "flag provided but not defined: --bogus (manager -h lists the flags)"},
	{"unknown flag with a newline", []string{"--bo\ngus"}, nil, `flag provided but not defined: "--bo\ngus" (manager -h lists the flags)`},
	{"missing value, two dashes", []string{"--grace"}, nil, "flag needs an argument: --grace (manager -h lists the flags)"},
	{"bool with value, two dashes", []string{"--group=maybe"}, nil, `invalid boolean value "maybe" for --group: parse error (manager -h lists the flags)`},
	{"bool with a value naming it", []string{"--group=--group"}, nil, `invalid boolean value "--group" for --group: parse error (manager -h lists the flags)`},
	{"bad syntax", []string{"---grace", "1s"}, nil, "bad flag syntax: ---grace (manager -h lists the flags)"},
	{"bad syntax with a newline", []string{"-=\n"}, nil, `bad flag syntax: "-=\n" (manager -h lists the flags)`},

	// Nonsense is a bad flag.
	{"poll busy", []string{"-poll", "1ns"}, nil, `-poll "1ns": under 10ms, polling is a busy loop`},
	{"poll just under", []string{"-poll", "9.999ms"}, nil, `-poll "9.999ms": under 10ms, polling is a busy loop`},
	{"reload KILL", []string{"-reload-signal", "KILL"}, nil, `-reload-signal "KILL": SIGKILL cannot be caught: the program could never handle it`},
	{"reload STOP", []string{"-reload-signal", "sigstop"}, nil, `-reload-signal "sigstop": SIGSTOP cannot be caught: the program could never handle it`},
	{"reload 9", []string{"-reload-signal", "9"}, nil, `-reload-signal "9": SIGKILL cannot be caught: the program could never handle it`},
	{"stop STOP", []string{"-stop-signal", "STOP"}, nil, `-stop-signal "STOP": SIGSTOP only suspends the program, it never makes it exit`},
	{"stop 19", []string{"-stop-signal", "19"}, nil, `-stop-signal "19": SIGSTOP only suspends the program, it never makes it exit`},

	// The new flags.
	{"stop delay negative", []string{"-stop-delay", "-1s"}, nil, `-stop-delay "-1s": must be positive`},
	{"stop delay unitless", []string{"-stop-delay", "10"}, nil, `-stop-delay "10": invalid duration`},
	{"restart unknown", []string{"-restart", "sometimes"}, nil, `-restart "sometimes": want no, on-failure[:N] or always[:N], N at least 1`},
	{"restart empty", []string{"-restart", ""}, nil, `-restart "": want no, on-failure[:N] or always[:N], N at least 1`},
	{"restart upper case", []string{"-restart", "ALWAYS"}, nil, `-restart "ALWAYS": want no, on-failure[:N] or always[:N], N at least 1`},
	{"restart zero", []string{"-restart", "always:0"}, nil, `-restart "always:0": want no, on-failure[:N] or always[:N], N at least 1`},
	{"restart not a number", []string{"-restart", "always:x"}, nil, `-restart "always:x": want no, on-failure[:N] or always[:N], N at least 1`},
	{"restart no number", []string{"-restart", "on-failure:"}, nil, `-restart "on-failure:": want no, on-failure[:N] or always[:N], N at least 1`},
	{"restart signed", []string{"-restart", "on-failure:+2"}, nil, `-restart "on-failure:+2": want no, on-failure[:N] or always[:N], N at least 1`},
	{"restart negative", []string{"-restart", "always:-1"}, nil, `-restart "always:-1": want no, on-failure[:N] or always[:N], N at least 1`},
	{"restart huge", []string{"-restart", "always:99999999999999999999"}, nil, `-restart "always:99999999999999999999": want no, on-failure[:N] or always[:N], N at least 1`},
	{"restart no with a limit", []string{"-restart", "no:1"}, nil, `-restart "no:1": want no, on-failure[:N] or always[:N], N at least 1`},
	{"restart signal unknown", []string{"-restart-signal", "FOO"}, nil, `-restart-signal "FOO": unknown signal`},
	{"restart signal out of range", []string{"-restart-signal", "65"}, nil, `-restart-signal "65": no signal number 65 (1 to 64)`},
	{"restart signal KILL", []string{"-restart-signal", "KILL"}, nil, `-restart-signal "KILL": SIGKILL cannot be caught`},
	{"restart signal STOP", []string{"-restart-signal", "STOP"}, nil, `-restart-signal "STOP": SIGSTOP cannot be caught`},
	{"restart signal TERM", []string{"-restart-signal", "TERM"}, nil, `-restart-signal "TERM": SIGTERM shuts manager down`},
	{"restart signal INT", []string{"-restart-signal", "2"}, nil, `-restart-signal "2": SIGINT shuts manager down`},
	{"restart signal CHLD", []string{"-restart-signal", "CHLD"}, nil, `-restart-signal "CHLD": SIGCHLD is not one manager forwards; use one it does, such as USR2`},
	{"restart signal URG", []string{"-restart-signal", "URG"}, nil, `-restart-signal "URG": SIGURG is not one manager forwards; use one it does, such as USR2`},
	{"restart signal SEGV", []string{"-restart-signal", "SEGV"}, nil, `-restart-signal "SEGV": SIGSEGV is not one manager forwards; use one it does, such as USR2`},
	{"restart signal 33", []string{"-restart-signal", "33"}, nil, `-restart-signal "33": signal 33 is not one manager forwards; use one it does, such as USR2`},
	{"restart signal CONT", []string{"-restart-signal", "CONT"}, nil, `-restart-signal "CONT": SIGCONT is job control: a shell's fg, bg or Ctrl-Z would restart the program`},
	{"restart signal TSTP", []string{"-restart-signal", "TSTP"}, nil, `-restart-signal "TSTP": SIGTSTP is job control: a shell's fg, bg or Ctrl-Z would restart the program`},
	{"restart signal TTIN", []string{"-restart-signal", "21"}, nil, `-restart-signal "21": SIGTTIN is job control: a shell's fg, bg or Ctrl-Z would restart the program`},
	{"restart signal TTOU", []string{"-restart-signal", "sigttou"}, nil, `-restart-signal "sigttou": SIGTTOU is job control: a shell's fg, bg or Ctrl-Z would restart the program`},
	{"restart signal PIPE", []string{"-restart-signal", "PIPE"}, nil, `-restart-signal "PIPE": SIGPIPE is what a write to a closed pipe raises: a broken pipe would restart the program`},

	// A bad variable is named as such, in the flags' style.
	{"MANAGER_GRACE", nil, env{"MANAGER_GRACE": "ten"}, `MANAGER_GRACE "ten": invalid duration`},
	{"MANAGER_POLL busy", nil, env{"MANAGER_POLL": "5ms"}, `MANAGER_POLL "5ms": under 10ms, polling is a busy loop`},
	{"MANAGER_DEBOUNCE", nil, env{"MANAGER_DEBOUNCE": "-1s"}, `MANAGER_DEBOUNCE "-1s": must be positive`},
	{"MANAGER_STOP_DELAY", nil, env{"MANAGER_STOP_DELAY": "soon"}, `MANAGER_STOP_DELAY "soon": invalid duration`},
	{"MANAGER_RELOAD_SIGNAL", nil, env{"MANAGER_RELOAD_SIGNAL": "KILL"}, `MANAGER_RELOAD_SIGNAL "KILL": SIGKILL cannot be caught: the program could never handle it`},
	{"MANAGER_STOP_SIGNAL", nil, env{"MANAGER_STOP_SIGNAL": "SIGFOO"}, `MANAGER_STOP_SIGNAL "SIGFOO": unknown signal`},
	{"MANAGER_RESTART", nil, env{"MANAGER_RESTART": "always:0"}, `MANAGER_RESTART "always:0": want no, on-failure[:N] or always[:N], N at least 1`},
	{"MANAGER_RESTART_SIGNAL", nil, env{"MANAGER_RESTART_SIGNAL": "TERM"}, `MANAGER_RESTART_SIGNAL "TERM": SIGTERM shuts manager down`},
	{"MANAGER_GROUP", nil, env{"MANAGER_GROUP": "yes"}, `MANAGER_GROUP "yes": want true, false, 1 or 0`},
	{"MANAGER_REMAP_EXIT", nil, env{"MANAGER_REMAP_EXIT": "143,x"}, `MANAGER_REMAP_EXIT "x": not an exit code (0 to 255)`},
	{"MANAGER_REMAP_EXIT too big", nil, env{"MANAGER_REMAP_EXIT": "256"}, `MANAGER_REMAP_EXIT "256": not an exit code (0 to 255)`},
	{"MANAGER_LOG_FORMAT", nil, env{"MANAGER_LOG_FORMAT": "xml"}, `MANAGER_LOG_FORMAT "xml": want text or json`},
	{"MANAGER_LOG_LEVEL", nil, env{"MANAGER_LOG_LEVEL": "trace"}, `MANAGER_LOG_LEVEL "trace": want debug, info, warn or error`},
	{"MANAGER_CHECK", nil, env{"MANAGER_CHECK": "no-such-validator -t"}, `MANAGER_CHECK "no-such-validator -t": no-such-validator: not found in PATH`},
	{"MANAGER_CHECK blank", nil, env{"MANAGER_CHECK": " "}, `MANAGER_CHECK " ": empty command`},
	{"MANAGER_GRACE zero with a check", []string{"-check", "/bin/true"}, env{"MANAGER_GRACE": "0s"}, `MANAGER_GRACE "0s": -check is killed after -grace, so it needs more than 0`},
	{"-grace zero with MANAGER_CHECK", []string{"-grace", "0s"}, env{"MANAGER_CHECK": "/bin/true"}, `-grace "0s": -check is killed after -grace, so it needs more than 0`},
	{"a flag is still checked", []string{"-grace", "ten"}, env{"MANAGER_GRACE": "1s"}, `-grace "ten": invalid duration`},

	// A value of any length gives one short line.
	{"long value", []string{"-grace", strings.Repeat("x", 10000)}, nil, `-grace "` + strings.Repeat("x", 64) + `"… (10000 bytes): invalid duration`},
	{"long variable", nil, env{"MANAGER_LOG_LEVEL": strings.Repeat("é", 5000)}, `MANAGER_LOG_LEVEL "` + strings.Repeat("é", 32) + `"… (10000 bytes): want debug, info, warn or error`},
	{"long check", []string{"-check", strings.Repeat("y", 300)}, nil, `-check "` + strings.Repeat("y", 64) + `"… (300 bytes): "` + strings.Repeat("y", 64) + `"… (300 bytes): not found in PATH`},
	{"long -listen", nil, env{"MANAGER_LISTEN": ":80," + strings.Repeat("h", 500) + ":80"}, `MANAGER_LISTEN "` + strings.Repeat("h", 64) + `"… (503 bytes): HOST must be an IP address (an IPv6 one in brackets) or localhost`},
	{"long flag name", []string{"--" + strings.Repeat("z", 3000)}, nil, `flag provided but not defined: "--` + strings.Repeat("z", 62) + `"… (3002 bytes) (manager -h lists the flags)`},
}

// TestParseConfigErrors checks that each bad value is refused with one line
// naming the flag or variable and the value.
func TestParseConfigErrors(t *testing.T) {
	for _, tc := range argsErrorCases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(tc.args, tc.env.lookup)
			if err == nil || err.Error() != tc.want {
				t.Errorf("parseConfig(%q, %v) = %v, %v; want error %q", tc.args, tc.env, c, err, tc.want)
			}
		})
	}
}

// TestRestartSignalIsForwardedOne checks that -restart-signal takes exactly
// the signals manager would otherwise forward: any other is either not
// received at all, or already means something to manager or the runtime;
// and none of those the terminal or a broken pipe raise by themselves.
func TestRestartSignalIsForwardedOne(t *testing.T) {
	forwarded := forwardedSignals()
	refused := []os.Signal{syscall.SIGCONT, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGPIPE}
	for n := 1; n <= maxSignal; n++ {
		_, err := parseArgs([]string{"-restart-signal", strconv.Itoa(n)})
		sig := os.Signal(syscall.Signal(n))
		if want := slices.Contains(forwarded, sig) && !slices.Contains(refused, sig); (err == nil) != want {
			t.Errorf("parseArgs(-restart-signal %d) error = %v; want accepted %v (forwarded %v)", n, err, want, want)
		}
	}
}

// TestEnvironmentMirrorsFlags checks, for every flag -h lists, that its
// variable exists and means what the flag means: the same config from the
// same value, and the same error, naming the variable, for a bad one. A
// flag added to the usage without a sample here fails the test.
func TestEnvironmentMirrorsFlags(t *testing.T) {
	samples := map[string][2]string{ // flag: a good value that is no default, a bad one
		"command":        {"/bin/app", ""},
		"config":         {"/etc/app", ""},
		"poll":           {"2s", "often"},
		"debounce":       {"3s", "often"},
		"reload-signal":  {"HUP", "STOP"},
		"check":          {"/bin/true -t", "no-such-validator"},
		"stop-signal":    {"QUIT", "STOP"},
		"grace":          {"4s", "ten"},
		"stop-delay":     {"5s", "-1s"},
		"restart-signal": {"USR2", "CHLD"},
		"restart":        {"on-failure:3", "always:0"},
		"group":          {"true", ""},
		"remap-exit":     {"143", "256"},
		"log-format":     {"json", "xml"},
		"log-level":      {"debug", "trace"},
		"listen":         {"web=127.0.0.1:8080", "127.0.0.1"},
	}
	defaults, err := parseArgs(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(usage, -1) {
		name := m[1]
		if name == "version" {
			continue
		}
		sample, ok := samples[name]
		if !ok {
			t.Errorf("-%s: no sample values; add them to this test", name)
			continue
		}
		variable := envName(name)
		good, bad := sample[0], sample[1]
		byFlag, err := parseArgs([]string{"-" + name + "=" + good})
		if err != nil {
			t.Fatalf("parseArgs(-%s=%q): %v", name, good, err)
		}
		byEnv, err := parseConfig(nil, env{variable: good}.lookup)
		switch {
		case err != nil:
			t.Errorf("parseConfig(nil, %s=%q): %v", variable, good, err)
		case !reflect.DeepEqual(byEnv, byFlag):
			t.Errorf("parseConfig(nil, %s=%q) = %+v, want %+v as from -%s", variable, good, byEnv, byFlag, name)
		case reflect.DeepEqual(byEnv, defaults):
			t.Errorf("parseConfig(nil, %s=%q) = the defaults; the variable is not read", variable, good)
		}
		if bad == "" {
			continue // no bad value, or none worded as the flag's (-group's is the flag package's)
		}
		_, flagErr := parseArgs([]string{"-" + name + "=" + bad})
		_, envErr := parseConfig(nil, env{variable: bad}.lookup)
		if flagErr == nil || envErr == nil {
			t.Errorf("-%s %q or %s=%q accepted: %v, %v", name, bad, variable, bad, flagErr, envErr)
			continue
		}
		if want := variable + strings.TrimPrefix(flagErr.Error(), "-"+name); envErr.Error() != want {
			t.Errorf("parseConfig(nil, %s=%q) error = %q, want %q", variable, bad, envErr, want)
		}
	}
}

// TestOnlyManagerVariablesAreRead checks that parseConfig asks the
// environment for the flags' variables only, and never for -version's: a
// MANAGER_VERSION meant for the program must not turn manager into a
// version printer.
func TestOnlyManagerVariablesAreRead(t *testing.T) {
	var asked []string
	_, err := parseConfig(nil, func(name string) (string, bool) {
		asked = append(asked, name)
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"MANAGER_CHECK", "MANAGER_COMMAND", "MANAGER_CONFIG", "MANAGER_DEBOUNCE", "MANAGER_GRACE",
		"MANAGER_GROUP", "MANAGER_LISTEN", "MANAGER_LOG_FORMAT", "MANAGER_LOG_LEVEL", "MANAGER_POLL", "MANAGER_RELOAD_SIGNAL",
		"MANAGER_REMAP_EXIT", "MANAGER_RESTART", "MANAGER_RESTART_SIGNAL", "MANAGER_STOP_DELAY", "MANAGER_STOP_SIGNAL"}
	if slices.Sort(asked); !slices.Equal(asked, want) {
		t.Errorf("parseConfig read %q, want %q", asked, want)
	}
}

// configProblem says what is wrong with a config parseConfig accepted, or
// returns "". These are the promises the rest of manager builds on.
func configProblem(c *config) string {
	isSignal := func(sig syscall.Signal) bool { return sig >= 1 && sig <= maxSignal }
	switch {
	case len(c.argv) == 0 || c.argv[0] == "":
		return fmt.Sprintf("argv %q: no command", c.argv)
	case slices.Contains(c.configs, ""):
		return fmt.Sprintf("configs %q: an empty path", c.configs)
	case c.poll < minPoll:
		return fmt.Sprintf("poll %v: under %v", c.poll, minPoll)
	case c.debounce < 0 || c.grace < 0 || c.stopDelay < 0:
		return fmt.Sprintf("debounce %v, grace %v, stop delay %v: negative", c.debounce, c.grace, c.stopDelay)
	case c.check != nil && (len(c.check) == 0 || c.checkPath == "" || c.grace <= 0):
		return fmt.Sprintf("check %q (path %q) with grace %v", c.check, c.checkPath, c.grace)
	case c.check == nil && c.checkPath != "":
		return fmt.Sprintf("check path %q without a check", c.checkPath)
	case c.reloadSignal != 0 && (!isSignal(c.reloadSignal) || c.reloadSignal == syscall.SIGKILL || c.reloadSignal == syscall.SIGSTOP):
		return fmt.Sprintf("reload signal %d", c.reloadSignal)
	case !isSignal(c.stopSignal) || c.stopSignal == syscall.SIGSTOP:
		return fmt.Sprintf("stop signal %d", c.stopSignal)
	case c.restartSignal != 0 && !slices.Contains(forwardedSignals(), os.Signal(c.restartSignal)):
		return fmt.Sprintf("restart signal %d: not one manager forwards", c.restartSignal)
	case c.restartMode != restartNo && c.restartMode != restartOnFailure && c.restartMode != restartAlways:
		return fmt.Sprintf("restart mode %d", c.restartMode)
	case c.restartMax < 0 || c.restartMode == restartNo && c.restartMax != 0:
		return fmt.Sprintf("restart %v with limit %d", c.restartMode, c.restartMax)
	case c.logFormat != "text" && c.logFormat != "json":
		return fmt.Sprintf("log format %q", c.logFormat)
	case !slices.Contains([]level{levelDebug, levelInfo, levelWarn, levelError}, c.logLevel):
		return fmt.Sprintf("log level %v", c.logLevel)
	case c.remap == nil:
		return "remap: nil map"
	}
	for _, a := range c.listen {
		if p := listenProblem(a); p != "" {
			return p
		}
	}
	for code := range c.remap {
		if code < 0 || code > 255 {
			return fmt.Sprintf("remap %d: not an exit code", code)
		}
	}
	return ""
}

// splitNUL splits a fuzz input into strings ended by NUL, which no real
// argument or variable can hold; the last may lack its NUL.
func splitNUL(s string) []string {
	parts := strings.Split(s, "\x00")
	if parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	return parts
}

// joinNUL is the inverse of splitNUL, for seeds.
func joinNUL(parts []string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p + "\x00")
	}
	return b.String()
}

// envOf reads a fuzz input of NAME=VALUE strings as an environment.
func envOf(s string) env {
	e := env{}
	for _, kv := range splitNUL(s) {
		k, v, _ := strings.Cut(kv, "=")
		e[k] = v
	}
	return e
}

// envSeed writes e as a fuzz input for envOf.
func envSeed(e env) string {
	var kvs []string
	for _, k := range slices.Sorted(maps.Keys(e)) {
		kvs = append(kvs, k+"="+e[k])
	}
	return joinNUL(kvs)
}

// FuzzParseArgs feeds parseConfig any command line and environment: it must
// never panic, every config it accepts must keep the promises of
// configProblem, and every refusal must be one line.
func FuzzParseArgs(f *testing.F) {
	for _, tc := range argsCases {
		f.Add(joinNUL(tc.args), envSeed(tc.env))
	}
	for _, tc := range argsErrorCases {
		f.Add(joinNUL(tc.args), envSeed(tc.env))
	}
	// The cases of TestParseArgs and TestParseArgsErrors, whose tables are
	// local to them.
	for _, args := range [][]string{
		nil, {"/bin/app", "-x", "y"}, {"--", "/bin/app", "--grace", "1s"},
		{"-command", "/bin/app", "a", "-b"}, {"--command=/bin/app", "--", "--a"},
		{"--grace", "3s", "--stop-signal", "sigquit", "app"}, {"-config", "/a", "-config", "/b/"},
		{"-config", ""}, {"-check", "  /bin/true  -t\tx "}, {"-reload-signal", "1"},
		{"-remap-exit", "143", "-remap-exit", "0"}, {"-log-format", "json"},
		{"-frobnicate"}, {"-grace"}, {"-command", ""}, {"--", ""}, {"-poll", "often"}, {"-poll", "0s"},
		{"-debounce", "-1s"}, {"-grace", "10"}, {"-grace", "ten"}, {"-reload-signal", "SIGFOO"},
		{"-stop-signal", "65"}, {"-stop-signal", "0"}, {"-check", "  "}, {"-check", "no-such-validator -t"},
		{"-remap-exit", "x"}, {"-remap-exit", "256"}, {"-log-format", "xml"}, {"-log-level", "trace"},
		{"-log-level", "info+2"}, {"-group=maybe"}, {"-grace", "0s", "-check", "/bin/true"},
		{"-listen", "web=[::1]:80"}, {"-listen", "/run/a=b.sock"}, {"-listen", "x:=1.2.3.4:5"},
		{"-h"}, {"--help"}, {"-version"}, {"-version=false", "app"},
	} {
		f.Add(joinNUL(args), "")
	}
	f.Fuzz(func(t *testing.T, argsIn, envIn string) {
		args, e := splitNUL(argsIn), envOf(envIn)
		c, err := parseConfig(args, e.lookup)
		switch {
		case errors.Is(err, flag.ErrHelp), errors.Is(err, errVersion):
			if c != nil {
				t.Fatalf("parseConfig(%q, %v) = %+v with %v", args, e, c, err)
			}
		case err != nil:
			if c != nil || strings.ContainsAny(err.Error(), "\n\r") || err.Error() == "" {
				t.Fatalf("parseConfig(%q, %v) = %+v, %q; want no config and a one-line error", args, e, c, err)
			}
		default:
			if p := configProblem(c); p != "" {
				t.Fatalf("parseConfig(%q, %v) accepted a bad config: %s", args, e, p)
			}
		}
	})
}

// FuzzParseSignal feeds parseSignal any string: what it accepts is a signal
// from 1 to 64, spelled in ASCII, whose name and number read back as the same
// signal.
func FuzzParseSignal(f *testing.F) {
	for _, s := range []string{"HUP", "SIGHUP", "hup", "sighup", "SigHup", "1", "TERM", "15", "quit", "USR1",
		"sigusr2", "WINCH", "IOT", "POLL", "KILL", "64", "35", "", "SIG", "HUPP", "0", "-1", "65", "RTMIN",
		" HUP", "+1", "01", "SIGSIGHUP", "ſighup", "ıo"} {
		f.Add(s)
	}
	for n := 1; n <= maxSignal+1; n++ {
		f.Add(strconv.Itoa(n))
		f.Add(signalName(syscall.Signal(n)))
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := parseSignal(s)
		if err != nil {
			if sig != 0 || strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("parseSignal(%q) = %d, %q; want 0 and a one-line error", s, sig, err)
			}
			return
		}
		if sig < 1 || sig > maxSignal {
			t.Fatalf("parseSignal(%q) = %d, want 1 to %d", s, sig, maxSignal)
		}
		for _, r := range s {
			if r >= 0x80 {
				t.Fatalf("parseSignal(%q) = %s, want no signal from a name outside ASCII", s, signalName(sig))
			}
		}
		if back, err := parseSignal(strconv.Itoa(int(sig))); back != sig {
			t.Fatalf("parseSignal(%q) = %d, but parseSignal(%d) = %d, %v", s, sig, sig, back, err)
		}
		if name := signalName(sig); strings.HasPrefix(name, "SIG") {
			for _, spelling := range []string{name, strings.TrimPrefix(name, "SIG"), strings.ToLower(name)} {
				if back, err := parseSignal(spelling); back != sig {
					t.Fatalf("parseSignal(%q) = %s, but parseSignal(%q) = %d, %v", s, name, spelling, back, err)
				}
			}
		}
	})
}

// TestBadConfigurationExits2 runs the binary with bad flags and variables:
// nothing starts, the exit code is 2, and standard error is one line naming
// what is wrong.
func TestBadConfigurationExits2(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"bad variable", []string{"MANAGER_GRACE=ten"}, nil, `manager: MANAGER_GRACE "ten": invalid duration`},
		{"bad list element", []string{"MANAGER_REMAP_EXIT=143,x"}, nil, `manager: MANAGER_REMAP_EXIT "x": not an exit code (0 to 255)`},
		{"nonsense variable", []string{"MANAGER_POLL=1ns"}, nil, `manager: MANAGER_POLL "1ns": under 10ms, polling is a busy loop`},
		{"nonsense flag", nil, []string{"-stop-signal", "STOP"}, `manager: -stop-signal "STOP": SIGSTOP only suspends the program, it never makes it exit`},
		{"busy poll", nil, []string{"-poll", "1ns"}, `manager: -poll "1ns": under 10ms, polling is a busy loop`},
		{"uncatchable reload", nil, []string{"-reload-signal", "KILL"}, `manager: -reload-signal "KILL": SIGKILL cannot be caught: the program could never handle it`},
		{"unknown flag", nil, []string{"--bogus"}, `manager: flag provided but not defined: --bogus (manager -h lists the flags)`},
		{"job control restart signal", []string{"MANAGER_RESTART_SIGNAL=CONT"}, nil, `manager: MANAGER_RESTART_SIGNAL "CONT": SIGCONT is job control: a shell's fg, bg or Ctrl-Z would restart the program`},
		{"PIPE restart signal", nil, []string{"-restart-signal", "PIPE"}, `manager: -restart-signal "PIPE": SIGPIPE is what a write to a closed pipe raises: a broken pipe would restart the program`},
		{"a long value", []string{"MANAGER_CHECK=" + strings.Repeat("v", 100000)}, nil, `manager: MANAGER_CHECK "` + strings.Repeat("v", 64) + `"… (100000 bytes): "` + strings.Repeat("v", 64) + `"… (100000 bytes): not found in PATH`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startManager(t, runOpts{env: tc.env}, append(tc.args, "--", helper, "exit", "0")...)
			if code := p.wait(10 * time.Second); code != exitUsage {
				t.Errorf("manager %q with %q: exit code %d, want %d", tc.args, tc.env, code, exitUsage)
			}
			if got := p.stderr.String(); got != tc.want {
				t.Errorf("manager %q with %q printed %q, want the one line %q", tc.args, tc.env, got, tc.want)
			}
			if got := p.stdout.String(); got != "" {
				t.Errorf("manager %q with %q: the program ran and printed %q", tc.args, tc.env, got)
			}
		})
	}
}

// TestEnvironmentConfigures runs the binary configured by MANAGER_
// variables alone, as docker run --init and podman run --init do.
func TestEnvironmentConfigures(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	t.Run("a variable takes effect", func(t *testing.T) {
		t.Parallel()
		p := startManager(t, runOpts{env: []string{"MANAGER_CONFIG=", "MANAGER_REMAP_EXIT=3", "MANAGER_LOG_FORMAT=json"}}, "--", helper, "exit", "3")
		if code := p.wait(10 * time.Second); code != 0 {
			t.Errorf("MANAGER_REMAP_EXIT=3, child exits 3: exit code %d, want 0; log:\n%s", code, p.stderr)
		}
		wantJSONLog(t, p)
	})
	t.Run("the command line wins", func(t *testing.T) {
		t.Parallel()
		// The overridden variables are bad: a flag must fix a bad variable,
		// not trip over it.
		p := startManager(t, runOpts{env: []string{"MANAGER_CONFIG=", "MANAGER_REMAP_EXIT=x", "MANAGER_LOG_FORMAT=xml"}},
			"-remap-exit", "4", "-log-format", "json", "--", helper, "exit", "3")
		if code := p.wait(10 * time.Second); code != 3 {
			t.Errorf("MANAGER_REMAP_EXIT=x, -remap-exit 4, child exits 3: exit code %d, want 3; log:\n%s", code, p.stderr)
		}
		wantJSONLog(t, p)
	})
	t.Run("the variables reach the program", func(t *testing.T) {
		t.Parallel()
		vars := []string{"MANAGER_CONFIG=", "MANAGER_GRACE=5s", "MANAGER_LOG_LEVEL=warn"}
		p := startManager(t, runOpts{env: vars}, "--", helper, "env")
		if code := p.wait(10 * time.Second); code != 0 {
			t.Fatalf("exit code %d, want 0; log:\n%s", code, p.stderr)
		}
		for _, v := range vars {
			if got := p.stdout.matching("^" + regexp.QuoteMeta(v) + "$"); len(got) != 1 {
				t.Errorf("the program's environment lacks %s; it printed:\n%s", v, p.stdout)
			}
		}
		// MANAGER_LOG_LEVEL=warn took effect too: no info lines.
		if got := p.stderr.String(); got != "" {
			t.Errorf("MANAGER_LOG_LEVEL=warn printed info lines: %q", got)
		}
	})
	t.Run("MANAGER_CONFIG=a:b watches both", func(t *testing.T) {
		t.Parallel()
		a := filepath.Join(t.TempDir(), "a.conf")
		b := filepath.Join(t.TempDir(), "b.conf")
		writeFile(t, a, "v1")
		writeFile(t, b, "other")
		waitNotRacy(t, a)
		waitNotRacy(t, b)
		env := []string{"MANAGER_CONFIG=" + a + ":" + b, "MANAGER_POLL=100ms", "MANAGER_DEBOUNCE=500ms"}
		p := startManager(t, runOpts{env: env}, "--", helper, "app", filepath.Join(t.TempDir(), "lock"), a)
		wantStarts(t, p, "v1")
		writeFile(t, b, "changed") // the app reads only a: a restart shows as a second "v1"
		wantStarts(t, p, "v1", "v1")
		writeFile(t, a, "v2")
		wantStarts(t, p, "v1", "v1", "v2")
		stop(t, p)
	})
}

// wantJSONLog checks that manager logged, and only JSON lines, ending with
// its exit line.
func wantJSONLog(t *testing.T, p *proc) {
	t.Helper()
	all := strings.Split(p.stderr.String(), "\n")
	for _, line := range all {
		var rec struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Level == "" || rec.Msg == "" {
			t.Errorf("log line %q is not a JSON record with level and msg (%v)", line, err)
		}
	}
	if last := all[len(all)-1]; !strings.Contains(last, `"msg":"exiting"`) {
		t.Errorf("last log line %q, want the JSON exit line", last)
	}
}

// TestParseArgs proves what the command line sets: defaults; the command,
// after -- or not, or -command with every argument after it; two-dash
// flags; -config replacing the default, or empty for none; -check split on
// blanks; signals by name or number; repeated -remap-exit; json logs.
func TestParseArgs(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		argv      []string
		configs   []string
		check     []string
		stop      syscall.Signal
		explicit  bool
		reload    syscall.Signal
		grace     time.Duration
		remapped  []int
		logFormat string
	}{
		{name: "defaults", args: nil, argv: []string{defaultCommand}, configs: []string{defaultConfig}, stop: syscall.SIGTERM, grace: 10 * time.Second, logFormat: "text"},
		{name: "positional", args: []string{"/bin/app", "-x", "y"}, argv: []string{"/bin/app", "-x", "y"}},
		{name: "after dashes", args: []string{"--", "/bin/app", "--grace", "1s"}, argv: []string{"/bin/app", "--grace", "1s"}},
		{name: "-command takes every positional", args: []string{"-command", "/bin/app", "a", "-b"}, argv: []string{"/bin/app", "a", "-b"}},
		{name: "-command with dashes", args: []string{"--command=/bin/app", "--", "--a"}, argv: []string{"/bin/app", "--a"}},
		{name: "double-dash flags", args: []string{"--grace", "3s", "--stop-signal", "sigquit", "app"}, argv: []string{"app"}, grace: 3 * time.Second, stop: syscall.SIGQUIT, explicit: true},
		{name: "config replaces default", args: []string{"-config", "/a", "-config", "/b/"}, configs: []string{"/a", "/b/"}},
		{name: "config empty disables", args: []string{"-config", ""}, configs: []string{}},
		{name: "check split on spaces", args: []string{"-check", "  /bin/true  -t\tx "}, check: []string{"/bin/true", "-t", "x"}},
		{name: "reload by number", args: []string{"-reload-signal", "1"}, reload: syscall.SIGHUP},
		{name: "remap repeatable", args: []string{"-remap-exit", "143", "-remap-exit", "0"}, remapped: []int{0, 143}},
		{name: "json", args: []string{"-log-format", "json"}, logFormat: "json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseArgs(tc.args)
			if err != nil {
				t.Fatalf("parseArgs(%q): %v", tc.args, err)
			}
			if tc.argv != nil && !slices.Equal(c.argv, tc.argv) {
				t.Errorf("parseArgs(%q).argv = %q, want %q", tc.args, c.argv, tc.argv)
			}
			if tc.configs != nil && !slices.Equal(c.configs, tc.configs) {
				t.Errorf("parseArgs(%q).configs = %q, want %q", tc.args, c.configs, tc.configs)
			}
			if tc.check != nil && !slices.Equal(c.check, tc.check) {
				t.Errorf("parseArgs(%q).check = %q, want %q", tc.args, c.check, tc.check)
			}
			if tc.stop != 0 && (c.stopSignal != tc.stop || c.stopExplicit != tc.explicit) {
				t.Errorf("parseArgs(%q) stop signal = %v (explicit %v), want %v (explicit %v)", tc.args, c.stopSignal, c.stopExplicit, tc.stop, tc.explicit)
			}
			if c.reloadSignal != tc.reload {
				t.Errorf("parseArgs(%q).reloadSignal = %v, want %v", tc.args, c.reloadSignal, tc.reload)
			}
			if tc.grace != 0 && c.grace != tc.grace {
				t.Errorf("parseArgs(%q).grace = %v, want %v", tc.args, c.grace, tc.grace)
			}
			for _, n := range tc.remapped {
				if !c.remap[n] {
					t.Errorf("parseArgs(%q) does not remap %d", tc.args, n)
				}
			}
			if tc.logFormat != "" && c.logFormat != tc.logFormat {
				t.Errorf("parseArgs(%q).logFormat = %q, want %q", tc.args, c.logFormat, tc.logFormat)
			}
		})
	}
}

// TestParseArgsErrors proves that a bad command line is refused with one
// line naming the flag and its value and saying why: unknown flags, missing
// values, empty commands, bad durations, signals, exit codes and log
// settings, a -check that cannot run, and -check with -grace 0.
func TestParseArgsErrors(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-frobnicate"}, "flag provided but not defined: -frobnicate (manager -h lists the flags)"},
		{"missing value", []string{"-grace"}, "flag needs an argument: -grace (manager -h lists the flags)"},
		{"empty command", []string{"-command", ""}, `-command "": empty command`},
		{"empty positional", []string{"--", ""}, `command "": empty command`},
		{"poll not a duration", []string{"-poll", "often"}, `-poll "often": invalid duration`},
		{"poll zero", []string{"-poll", "0s"}, `-poll "0s": must be positive`},
		{"debounce negative", []string{"-debounce", "-1s"}, `-debounce "-1s": must be positive`},
		{"grace unitless", []string{"-grace", "10"}, `-grace "10": invalid duration`},
		{"grace not a duration", []string{"-grace", "ten"}, `-grace "ten": invalid duration`},
		{"reload unknown", []string{"-reload-signal", "SIGFOO"}, `-reload-signal "SIGFOO": unknown signal`},
		{"stop out of range", []string{"-stop-signal", "65"}, `-stop-signal "65": no signal number 65 (1 to 64)`},
		{"stop zero", []string{"-stop-signal", "0"}, `-stop-signal "0": no signal number 0 (1 to 64)`},
		{"check empty", []string{"-check", "  "}, `-check "  ": empty command`},
		{"check not found", []string{"-check", "no-such-validator -t"}, `-check "no-such-validator -t": no-such-validator: not found in PATH`},
		{"check not executable", []string{"-check", notExec}, fmt.Sprintf("-check %q: %s: permission denied", notExec, notExec)},
		{"remap not a number", []string{"-remap-exit", "x"}, `-remap-exit "x": not an exit code (0 to 255)`},
		{"remap too big", []string{"-remap-exit", "256"}, `-remap-exit "256": not an exit code (0 to 255)`},
		{"log format", []string{"-log-format", "xml"}, `-log-format "xml": want text or json`},
		{"log level", []string{"-log-level", "trace"}, `-log-level "trace": want debug, info, warn or error`},
		{"log level offset", []string{"-log-level", "info+2"}, `-log-level "info+2": want debug, info, warn or error`},
		{"bool with value", []string{"-group=maybe"}, `invalid boolean value "maybe" for -group: parse error (manager -h lists the flags)`},
		{"check without grace", []string{"-grace", "0s", "-check", "/bin/true"}, `-grace "0s": -check is killed after -grace, so it needs more than 0`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseArgs(tc.args)
			if err == nil || err.Error() != tc.want {
				t.Errorf("parseArgs(%q) error = %v, want %q", tc.args, err, tc.want)
			}
		})
	}
}

// TestManualShowsUsage proves that docs/manual.md shows what manager -h
// prints, verbatim, as a fenced block of its own: the manual's copy of the
// usage cannot drift from the code's.
func TestManualShowsUsage(t *testing.T) {
	manual, err := os.ReadFile(filepath.Join("docs", "manual.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(manual), "```\n"+usage+"```\n") {
		t.Errorf("docs/manual.md does not show manager -h verbatim; paste:\n%s", usage)
	}
}
