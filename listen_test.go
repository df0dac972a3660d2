package main

// Tests of the sockets held across restarts (-listen): the addresses, the
// sockets each program gets and how, their rebinding, and, end to end, that
// a restart refuses no connection.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// TestParseListen checks what each -listen value means.
func TestParseListen(t *testing.T) {
	tests := []struct {
		in, name, path, host string
		ip                   []byte
		port                 int
	}{
		{"127.0.0.1:8080", "listen", "", "127.0.0.1", []byte{127, 0, 0, 1}, 8080},
		{":80", "listen", "", "", nil, 80},
		{"web=:80", "web", "", "", nil, 80},
		{"localhost:1", "listen", "", "localhost", []byte{127, 0, 0, 1}, 1},
		{"0.0.0.0:65535", "listen", "", "0.0.0.0", []byte{0, 0, 0, 0}, 65535},
		{"[::1]:443", "listen", "", "[::1]", append(make([]byte, 15), 1), 443},
		{"[::]:443", "listen", "", "[::]", make([]byte, 16), 443},
		{"a b=[::ffff:10.0.0.1]:9", "a b", "", "[::ffff:10.0.0.1]", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1}, 9},
		{"/run/app.sock", "listen", "/run/app.sock", "", nil, 0},
		{"api=/run/app.sock", "api", "/run/app.sock", "", nil, 0},
		{"/run/a=b.sock", "listen", "/run/a=b.sock", "", nil, 0},
		{"x=/" + strings.Repeat("a", 106), "x", "/" + strings.Repeat("a", 106), "", nil, 0},
		{strings.Repeat("n", 255) + "=:1", strings.Repeat("n", 255), "", "", nil, 1},
	}
	for _, tc := range tests {
		a, err := parseListen(tc.in)
		if err != nil || a.name != tc.name || a.path != tc.path || a.host != tc.host || !slices.Equal(a.ip, tc.ip) || a.port != tc.port {
			t.Errorf("parseListen(%q) = %+v, %v; want name %q path %q host %q ip %v port %d",
				tc.in, a, err, tc.name, tc.path, tc.host, tc.ip, tc.port)
		}
	}
}

// TestParseListenErrors checks the refusals, as the one line manager exits
// 2 with reads them.
func TestParseListenErrors(t *testing.T) {
	const (
		addr = "want [NAME=]HOST:PORT, :PORT, [IPV6]:PORT or /PATH"
		name = "NAME must be 1 to 255 printable ASCII characters, no ':'"
		port = "PORT must be 1 to 65535"
		host = "HOST must be an IP address (an IPv6 one in brackets) or localhost"
	)
	tests := []struct{ in, want string }{
		{"", addr}, {"8080", addr}, {"web=", addr}, {"relative/path.sock", addr}, {"web=8080", addr},
		{"=:80", name}, {"a:b=:80", name}, {"tab\t=:80", name}, {"é=:80", name}, {strings.Repeat("n", 256) + "=:1", name},
		{":0", port}, {":65536", port}, {":", port}, {":http", port}, {":+80", port}, {":080", port}, {":-1", port},
		{"::1:80", host}, {"example.com:80", host}, {"1.2.3:80", host}, {"1.2.3.04:80", host}, {"256.1.1.1:80", host},
		{"[1.2.3.4]:80", host}, {"[::1%eth0]:80", host}, {"[::1:80", host}, {"[:::1]:80", host},
		{"/" + strings.Repeat("a", 107), "a Unix socket's path holds at most 107 bytes"},
	}
	for _, tc := range tests {
		_, err := parseArgs([]string{"-listen", tc.in})
		if want := "-listen " + quoteValue(tc.in) + ": " + tc.want; err == nil || err.Error() != want {
			t.Errorf("parseArgs(-listen %q) error = %v, want %q", tc.in, err, want)
		}
	}
}

// listenProblem says what is wrong with a listenAddr parseListen accepted,
// or returns "": the promises bind builds on.
func listenProblem(a listenAddr) string {
	switch {
	case a.name == "" || len(a.name) > 255 || strings.ContainsAny(a.name, ":="):
		return fmt.Sprintf("listen name %q", a.name)
	case a.path != "" && (a.path[0] != '/' || len(a.path) > unixPathMax || a.host != "" || a.ip != nil || a.port != 0):
		return fmt.Sprintf("listen path %q with host %q ip %v port %d", a.path, a.host, a.ip, a.port)
	case a.path == "" && (a.port < 1 || a.port > 65535):
		return fmt.Sprintf("listen port %d", a.port)
	case a.path == "" && a.host != "" && len(a.ip) != 4 && len(a.ip) != 16, a.host == "" && a.ip != nil:
		return fmt.Sprintf("listen host %q with ip %v", a.host, a.ip)
	}
	for _, c := range []byte(a.name) {
		if c < ' ' || c > '~' {
			return fmt.Sprintf("listen name %q: not printable ASCII", a.name)
		}
	}
	return ""
}

// FuzzParseIPv6 holds the hand-made IPv6 parser to net/netip's: the same
// addresses (zones aside, which manager does not take), the same bytes.
func FuzzParseIPv6(f *testing.F) {
	for _, s := range []string{"::", "::1", "1::", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8",
		"fe80::1", "FE80::ABCD", "::ffff:1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "1::1.2.3.4", ":", ":::", "1:::2",
		"1:2:3:4:5:6:7:8:9", "12345::", "::1.2.3", "1.2.3.4", "::1.2.3.04", "1:2:3:4:5:6:7:8::", "::%eth0",
		"1:2:3:4:5:6:7::8", "g::", "::ffff:256.1.1.1", "1:", ":1", "\x10::", "A::", "\x01::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseIPv6(s)
		want, err := netip.ParseAddr(s)
		wantOK := err == nil && want.Is6() && want.Zone() == ""
		if ok != wantOK || ok && got != want.As16() {
			t.Fatalf("parseIPv6(%q) = %v, %v; netip.ParseAddr = %v, %v", s, got, ok, want, err)
		}
	})
}

// FuzzParseIPv4 holds the IPv4 parser to net/netip's.
func FuzzParseIPv4(f *testing.F) {
	for _, s := range []string{"0.0.0.0", "255.255.255.255", "1.2.3.4", "01.2.3.4", "1.2.3", "1.2.3.4.5",
		"256.1.1.1", "+1.2.3.4", "1..2.3", "", "1.2.3.4 ", "١.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseIPv4(s)
		want, err := netip.ParseAddr(s)
		if wantOK := err == nil && want.Is4(); ok != wantOK || ok && got != want.As4() {
			t.Fatalf("parseIPv4(%q) = %v, %v; netip.ParseAddr = %v, %v", s, got, ok, want, err)
		}
	})
}

// TestInheritSockets checks which LISTEN_ variables are manager's: only
// those whose LISTEN_PID is its pid.
func TestInheritSockets(t *testing.T) {
	tests := []struct {
		name    string
		env     env
		mine    bool
		wantErr string
	}{
		{"none", env{}, false, ""},
		{"another process's", env{"LISTEN_PID": "1", "LISTEN_FDS": "1"}, false, ""},
		{"no pid", env{"LISTEN_FDS": "1"}, false, ""},
		{"no count", env{"LISTEN_PID": "4242"}, true, ""},
		{"zero", env{"LISTEN_PID": "4242", "LISTEN_FDS": "0"}, true, ""},
		{"not a count", env{"LISTEN_PID": "4242", "LISTEN_FDS": "x"}, true, "LISTEN_FDS=x: not that many descriptors open from 3"},
		{"negative", env{"LISTEN_PID": "4242", "LISTEN_FDS": "-1"}, true, "LISTEN_FDS=-1: not that many descriptors open from 3"},
	}
	for _, tc := range tests {
		list, mine, err := inheritSockets(tc.env.lookup, 4242)
		if len(list) != 0 || mine != tc.mine || fmt.Sprint(err) != tc.wantErr && !(err == nil && tc.wantErr == "") {
			t.Errorf("%s: inheritSockets(%v) = %v, %v, %v; want none, %v, %q", tc.name, tc.env, list, mine, err, tc.mine, tc.wantErr)
		}
	}
}

// TestPrepareEnvironment checks the environments of the program and of the
// check: the LISTEN_ variables manager was started with are gone from both,
// the program gets its own, and both keep everything else.
func TestPrepareEnvironment(t *testing.T) {
	env := []string{"A=1", "LISTEN_PID=7", "LISTEN_FDS=2", "LISTEN_FDNAMES=x:y", "LISTEN_OTHER=kept", "LISTEN_FDSX=kept"}
	h := &sockets{list: []socket{{fd: 5, name: "web"}, {fd: 9, name: "unknown"}}, exe: "/proc/self/exe"}
	var spec procSpec
	others := h.prepare(&spec, env)
	if want := []string{"A=1", "LISTEN_OTHER=kept", "LISTEN_FDSX=kept"}; !slices.Equal(others, want) {
		t.Errorf("check's environment = %q, want %q", others, want)
	}
	if want := []string{"A=1", "LISTEN_OTHER=kept", "LISTEN_FDSX=kept", "LISTEN_FDS=2", "LISTEN_FDNAMES=web:unknown"}; !slices.Equal(spec.env, want) {
		t.Errorf("program's environment = %q, want %q", spec.env, want)
	}
	if !slices.Equal(spec.extra, []int{5, 9}) || spec.shim != "/proc/self/exe" {
		t.Errorf("program's extra fds %v, shim %q; want [5 9], /proc/self/exe", spec.extra, spec.shim)
	}
	// Variables manager took as its own, with no socket: gone, and no shim.
	spec = procSpec{}
	(&sockets{}).prepare(&spec, env)
	if want := []string{"A=1", "LISTEN_OTHER=kept", "LISTEN_FDSX=kept"}; !slices.Equal(spec.env, want) || spec.extra != nil || spec.shim != "" {
		t.Errorf("with no socket: environment %q, extra %v, shim %q; want %q, none, none", spec.env, spec.extra, spec.shim, want)
	}
}

// TestSocketBoundAnewBeforeStart proves, on the loop with a fake clock and
// kernel, that a Unix socket whose file the program removed is bound anew
// before the next start, in the same place of the list, with a warning;
// that one still in place is kept; and that one that cannot be bound again
// is kept too, with a warning, and the start goes on.
func TestSocketBoundAnewBeforeStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.sock")
	h := unstartedHarness(t, false, "-config=", "-restart", "always", "-listen", "web="+path, "-listen", "127.0.0.1:1", "/bin/true")
	sk := socket{name: "web", addr: &h.s.cfg.listen[0]}
	if err := sk.bind(); err != nil {
		t.Fatal(err)
	}
	// The TCP socket's place is taken by a socket pair's end: it is never
	// rebound, whatever it is.
	pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	h.s.socks = &sockets{list: []socket{sk, {fd: pair[0], name: "other", addr: &h.s.cfg.listen[1]}}, exe: "/proc/self/exe"}
	t.Cleanup(func() {
		for _, sk := range h.s.socks.list {
			syscall.Close(sk.fd)
		}
		syscall.Close(pair[1])
	})
	h.s.begin()
	// started is the n-th start's spec, as it was: the loop may change the
	// list of sockets for the next start in place.
	started := func(n int) procSpec {
		spec := h.k.started[n]
		spec.extra = slices.Clone(spec.extra)
		return spec
	}
	crash := func() procSpec {
		t.Helper()
		h.k.exit(h.s.child.pid, exitedWith(1))
		h.reap()
		h.advance(h.untilTimer())
		h.wantRunning()
		return started(len(h.k.started) - 1)
	}
	first := started(0)
	if !slices.Equal(first.extra, []int{sk.fd, pair[0]}) || first.shim == "" {
		t.Fatalf("first start: extra %v, shim %q; want [%d %d] and a shim", first.extra, first.shim, sk.fd, pair[0])
	}
	if again := crash(); !slices.Equal(again.extra, first.extra) || strings.Contains(h.logs.String(), "socket file gone") {
		t.Fatalf("with the file in place: extra %v, want %v unchanged; log:\n%s", again.extra, first.extra, h.logs.String())
	}

	os.Remove(path)
	second := crash()
	h.wantLog("level=WARN", `msg="socket file gone; bound anew"`, "path="+path, "fd=3")
	if second.extra[0] == first.extra[0] || second.extra[1] != pair[0] {
		t.Errorf("after the file was removed: extra %v, want a new first socket and %d", second.extra, pair[0])
	}
	if !accepting(t, second.extra[0], path) {
		t.Errorf("the new socket %d does not accept a connection to %s", second.extra[0], path)
	}
	if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(first.extra[0]), syscall.F_GETFD, 0); e != syscall.EBADF {
		t.Errorf("the old socket %d is still open (%v): no path reaches it", first.extra[0], e)
	}

	os.Remove(path)
	os.Remove(dir)
	third := crash()
	h.wantLog("level=WARN", `msg="socket file gone; cannot bind it again"`, "path="+path, "fd=3", "no such file or directory")
	if !slices.Equal(third.extra, second.extra) {
		t.Errorf("when it cannot be bound again: extra %v, want %v kept", third.extra, second.extra)
	}
}

// accepting reports whether a connection to path is accepted on fd.
func accepting(t *testing.T, fd int, path string) bool {
	t.Helper()
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		t.Logf("dial %s: %v", path, err)
		return false
	}
	defer c.Close()
	syscall.SetNonblock(fd, true)
	defer syscall.SetNonblock(fd, false)
	nfd, _, err := syscall.Accept4(fd, syscall.SOCK_CLOEXEC)
	if err != nil {
		t.Logf("accept on %d: %v", fd, err)
		return false
	}
	syscall.Close(nfd)
	return true
}

// serveSockets is the helper "listen NAMES FAMILY... [unlink PATH]", as
// strict a user of socket activation as can be: LISTEN_PID must be its own
// pid, LISTEN_FDS the number of FAMILYs (unix, inet, inet6), LISTEN_FDNAMES
// NAMES, descriptors 3, 4, … listening stream sockets of those families,
// and no other descriptor above 2 open. It says "listen ok pid=N" or
// "listen bad pid=N: WHY" (and exits 1), then answers each connection with
// "pid=N name=NAME" and closes it. With unlink, it removes PATH once
// listening, unless a program did before it. SIGTERM stops it gracefully;
// SIGUSR1 makes it exit 3, as a crash.
func serveSockets(args []string) int {
	fds, err := openFds() // first: nothing else of this process has opened one yet
	var unlink string
	if n := len(args); n >= 3 && args[n-2] == "unlink" {
		unlink, args = args[n-1], args[:n-2]
	}
	if err == nil && len(args) > 0 {
		err = checkSockets(fds, args[0], args[1:])
	}
	if err != nil {
		fmt.Printf("listen bad pid=%d: %v\n", os.Getpid(), err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM)
	var listeners []net.Listener
	done := make(chan struct{})
	for i, name := range strings.Split(args[0], ":") {
		l, err := net.FileListener(os.NewFile(uintptr(3+i), name))
		if err != nil {
			fmt.Printf("listen bad pid=%d: %v\n", os.Getpid(), err)
			return 1
		}
		listeners = append(listeners, l)
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "pid=%d name=%s\n", os.Getpid(), name)
				c.Close()
			}
		}()
	}
	if unlink != "" {
		// Once: the next program finds PATH.removed.
		if f, err := os.OpenFile(unlink+".removed", os.O_CREATE|os.O_EXCL, 0o644); err == nil {
			f.Close()
			os.Remove(unlink)
		}
	}
	fmt.Printf("listen ok pid=%d\n", os.Getpid())
	if <-sigs == syscall.SIGUSR1 {
		return 3
	}
	// TERM: stop accepting, answer what was accepted, exit, as a server
	// that stops gracefully does.
	for _, l := range listeners {
		l.Close()
	}
	for range listeners {
		<-done
	}
	return 0
}

// checkSockets says what is wrong with the sockets a program got.
func checkSockets(fds []int, names string, families []string) error {
	n := len(families)
	switch {
	case os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()):
		return fmt.Errorf("LISTEN_PID=%q, want my pid", os.Getenv("LISTEN_PID"))
	case os.Getenv("LISTEN_FDS") != strconv.Itoa(n):
		return fmt.Errorf("LISTEN_FDS=%q, want %d", os.Getenv("LISTEN_FDS"), n)
	case os.Getenv("LISTEN_FDNAMES") != names:
		return fmt.Errorf("LISTEN_FDNAMES=%q, want %q", os.Getenv("LISTEN_FDNAMES"), names)
	}
	for _, fd := range fds {
		if fd > 2+n {
			return fmt.Errorf("descriptor %d is open; want none above %d (open: %v)", fd, 2+n, fds)
		}
	}
	domains := map[string]int{"unix": syscall.AF_UNIX, "inet": syscall.AF_INET, "inet6": syscall.AF_INET6}
	for i, family := range families {
		fd := 3 + i
		if !slices.Contains(fds, fd) {
			return fmt.Errorf("descriptor %d is not open (open: %v)", fd, fds)
		}
		for _, o := range []struct {
			name      string
			opt, want int
		}{{"SO_ACCEPTCONN", syscall.SO_ACCEPTCONN, 1}, {"SO_TYPE", syscall.SO_TYPE, syscall.SOCK_STREAM}, {"SO_DOMAIN", syscall.SO_DOMAIN, domains[family]}} {
			if v, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, o.opt); err != nil || v != o.want {
				return fmt.Errorf("descriptor %d: %s = %d, %v; want %d (%s)", fd, o.name, v, err, o.want, family)
			}
		}
	}
	return nil
}

// openFds lists this process's open descriptors with raw system calls, so
// that the listing opens nothing but its own directory, left out.
func openFds() ([]int, error) {
	dir, err := syscall.Open("/proc/self/fd", syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(dir)
	var names []string
	buf := make([]byte, 8<<10)
	for {
		n, err := syscall.ReadDirent(dir, buf)
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			break
		}
		_, _, names = syscall.ParseDirent(buf[:n], -1, names)
	}
	var fds []int
	for _, name := range names {
		if fd, err := strconv.Atoi(name); err == nil && fd != dir {
			fds = append(fds, fd)
		}
	}
	slices.Sort(fds)
	return fds, nil
}

// noSockets is the helper "no-sockets", a -check: it fails, saying why,
// if it got a descriptor above 2 or a LISTEN_ variable.
func noSockets() int {
	fds, err := openFds()
	if err != nil || len(fds) == 0 || fds[len(fds)-1] > 2 {
		fmt.Printf("descriptors %v %v\n", fds, err)
		return 1
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "LISTEN_") {
			fmt.Printf("variable %s\n", kv)
			return 1
		}
	}
	return 0
}

// execMasked is the helper "exec-masked BLOCK IGNORE PROGRAM ARG...": it
// execs PROGRAM with the signals of BLOCK blocked and those of IGNORE
// ignored (each a comma-separated list, or -), as a parent may start
// manager.
func execMasked(block, ignore string, argv []string) int {
	runtime.LockOSThread()
	signals := func(list string) (out []syscall.Signal) {
		for _, name := range strings.Split(list, ",") {
			if sig, err := parseSignal(name); err == nil {
				out = append(out, sig)
			}
		}
		return out
	}
	for _, sig := range signals(ignore) {
		signal.Ignore(sig)
	}
	var set uint64
	for _, sig := range signals(block) {
		set |= 1 << (sig - 1)
	}
	const sigBlock = 0
	syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, sigBlock, uintptr(unsafe.Pointer(&set)), 0, 8, 0, 0)
	err := syscall.Exec(argv[0], argv, os.Environ())
	fmt.Fprintln(os.Stderr, "exec:", err)
	return 127
}

// freePort returns a TCP port of 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ask connects to network address and returns the line the program
// answers with.
func ask(network, address string) (string, error) {
	c, err := net.DialTimeout(network, address, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// wantAnswer checks that a connection to address is answered by pid, under
// name.
func wantAnswer(t *testing.T, network, address string, pid int, name string) {
	t.Helper()
	got, err := ask(network, address)
	if want := fmt.Sprintf("pid=%d name=%s", pid, name); got != want || err != nil {
		t.Errorf("%s %s answered %q, %v; want %q", network, address, got, err, want)
	}
}

// listenOK waits for the n-th program to report its sockets, and returns
// its pid; a program that found them wrong fails the test.
func listenOK(t *testing.T, p *proc, n int) int {
	t.Helper()
	all := p.stdout.waitN(t, n, `^listen (ok|bad)`, 20*time.Second)
	for _, line := range all {
		if strings.HasPrefix(line, "listen bad") {
			t.Fatalf("a program got its sockets wrong: %s\nlog:\n%s", line, p.stderr)
		}
	}
	pid, _ := strconv.Atoi(regexp.MustCompile(`pid=(\d+)`).FindStringSubmatch(all[n-1])[1])
	return pid
}

// TestListenEveryStart proves that every program manager starts (the
// first, after a config change, on -restart-signal, after a crash) gets
// the sockets as descriptors 3, 4, … in the order given with LISTEN_FDS,
// LISTEN_FDNAMES and LISTEN_PID its own pid, and nothing else above 2,
// answers on them, and that once manager exits, the port refuses and the
// socket file is gone; as PID 1 too, configured by MANAGER_LISTEN.
func TestListenEveryStart(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	dualFamily := "inet6"
	if _, err := os.Stat("/proc/net/if_inet6"); err != nil {
		dualFamily = "inet" // :PORT falls back to IPv4 where the kernel has no IPv6
	}
	for _, pid1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("pid1=%v", pid1), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			conf, path := filepath.Join(dir, "app.conf"), filepath.Join(dir, "app.sock")
			writeFile(t, conf, "v1")
			waitNotRacy(t, conf)
			port, dual := freePort(t), freePort(t)
			tcp := fmt.Sprintf("127.0.0.1:%d", port)
			listens := []string{"web=" + path, "api=" + tcp, fmt.Sprintf(":%d", dual)}
			args := []string{"-config", conf, "-poll", "100ms", "-debounce", "100ms", "-restart", "always", "-restart-signal", "USR2"}
			opts := runOpts{pid1: pid1}
			if pid1 {
				opts.env = []string{"MANAGER_LISTEN=" + strings.Join(listens, ",")}
			} else {
				for _, l := range listens {
					args = append(args, "-listen", l)
				}
			}
			p := startManager(t, opts, append(args, "--", helper, "listen", "web:api:listen", "unix", "inet", dualFamily)...)
			pid := listenOK(t, p, 1)
			if started := p.childPid(1); started != pid {
				t.Fatalf("LISTEN_PID checked by pid %d, manager started %d", pid, started)
			}
			p.stderr.wait(t, `msg=listening fd=3 name=web address="?`+regexp.QuoteMeta(path)+`"?$`, time.Second)
			p.stderr.wait(t, `msg=listening fd=4 name=api address=`+regexp.QuoteMeta(tcp), time.Second)
			p.stderr.wait(t, fmt.Sprintf(`msg=listening fd=5 name=listen address=(\[::\]|0\.0\.0\.0):%d`, dual), time.Second)
			wantAnswer(t, "unix", path, pid, "web")
			wantAnswer(t, "tcp", tcp, pid, "api")
			wantAnswer(t, "tcp", fmt.Sprintf("127.0.0.1:%d", dual), pid, "listen")

			writeFile(t, conf, "v2") // a config change
			pid = listenOK(t, p, 2)
			wantAnswer(t, "tcp", tcp, pid, "api")
			p.signal(syscall.SIGUSR2) // -restart-signal
			pid = listenOK(t, p, 3)
			wantAnswer(t, "unix", path, pid, "web")
			p.signal(syscall.SIGUSR1) // forwarded: the program exits 3, -restart always
			pid = listenOK(t, p, 4)
			wantAnswer(t, "tcp", tcp, pid, "api")
			if got := p.childPid(4); got != pid {
				t.Errorf("4th start: LISTEN_PID checked by pid %d, manager started %d", pid, got)
			}

			p.signal(syscall.SIGTERM)
			p.wait(15 * time.Second)
			if _, err := net.DialTimeout("tcp", tcp, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("after manager exited, dial %s: %v, want connection refused", tcp, err)
			}
			if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("after manager exited, %s: %v, want it removed", path, err)
			}
		})
	}
}

// TestListenUnixSocketRestarts proves that a Unix socket answers through a
// restart: no connection is refused while one program stops and the next
// starts; and that one whose file the program removed is bound anew, with
// a warning, before the next start, which answers on it.
func TestListenUnixSocketRestarts(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	dir := t.TempDir()
	conf, path := filepath.Join(dir, "app.conf"), filepath.Join(dir, "app.sock")
	writeFile(t, conf, "v1")
	waitNotRacy(t, conf)
	p := startManager(t, runOpts{pid1: true}, "-config", conf, "-poll", "100ms", "-debounce", "100ms", "-listen", "web="+path,
		"--", helper, "listen", "web", "unix")
	first := listenOK(t, p, 1)
	writeFile(t, conf, "v2")
	// Connections during the restart wait for the next program.
	var answers []string
	for deadline := time.Now().Add(20 * time.Second); ; {
		line, err := ask("unix", path)
		if err != nil {
			t.Fatalf("during a restart: %v; after %d answers, the last %q", err, len(answers), answers[max(len(answers)-1, 0):])
		}
		answers = append(answers, line)
		if line != fmt.Sprintf("pid=%d name=web", first) || time.Now().After(deadline) {
			break
		}
	}
	second := listenOK(t, p, 2)
	if last := answers[len(answers)-1]; last != fmt.Sprintf("pid=%d name=web", second) {
		t.Fatalf("last answer %q, want the second program's (%d)", last, second)
	}
	t.Logf("%d connections during the restart, none refused", len(answers))
	p.signal(syscall.SIGTERM)
	p.wait(15 * time.Second)

	// A program that removes the socket's file.
	writeFile(t, conf, "v1")
	waitNotRacy(t, conf)
	p = startManager(t, runOpts{pid1: true}, "-config", conf, "-poll", "100ms", "-debounce", "100ms", "-listen", "web="+path,
		"--", helper, "listen", "web", "unix", "unlink", path)
	listenOK(t, p, 1)
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the program did not remove %s: %v", path, err)
	}
	writeFile(t, conf, "v2")
	p.stderr.wait(t, `level=WARN msg="socket file gone; bound anew" path=`+regexp.QuoteMeta(path)+` fd=3`, 10*time.Second)
	pid := listenOK(t, p, 2) // the strict helper: the new socket is fd 3
	wantAnswer(t, "unix", path, pid, "web")
	p.signal(syscall.SIGTERM)
	p.wait(15 * time.Second)
}

// gunicornApp is the WSGI application of TestListenGunicorn: it answers
// with the pid of gunicorn's master, which manager started.
const gunicornApp = `import os


def app(environ, start_response):
    body = ("pid=%d\n" % os.getppid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
`

// TestListenGunicorn proves, with Debian's gunicorn (which reads
// LISTEN_FDS when LISTEN_PID is its pid), that restarts refuse no request
// when manager holds the socket, and that the same restarts do refuse some
// when gunicorn binds its port itself: three config changes, under clients
// that open a connection per request and clients that keep theirs alive.
func TestListenGunicorn(t *testing.T) {
	integration(t)
	gunicorn := requireTool(t, "gunicorn", "restarts without downtime with a real server")
	held := runGunicorn(t, gunicorn, true)
	own := runGunicorn(t, gunicorn, false)
	t.Logf("-listen: %d requests, %d failed; gunicorn binding its own port: %d requests, %d failed",
		held.total, held.failed, own.total, own.failed)
	if held.failed != 0 {
		t.Errorf("with -listen, %d of %d requests failed during restarts, want none; first error: %v", held.failed, held.total, held.first)
	}
	if own.failed == 0 {
		t.Errorf("gunicorn binding its own port: no request of %d failed during restarts; the test shows no difference", own.total)
	}
}

// loadResult counts the requests of a client loop.
type loadResult struct {
	total, failed int
	first         error // the first failure
}

// runGunicorn runs gunicorn under manager, with -listen or binding its
// port itself, restarts it three times by config changes under a load of
// requests, and counts them.
func runGunicorn(t *testing.T, gunicorn string, listen bool) loadResult {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "app.py"), gunicornApp)
	conf := filepath.Join(dir, "other.conf") // a file the app does not read
	writeFile(t, conf, "v0")
	waitNotRacy(t, conf)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	args := []string{"-config", conf, "-poll", "100ms", "-debounce", "100ms"}
	server := []string{"--", gunicorn, "--chdir", dir, "--workers", "2", "--worker-class", "gthread", "--threads", "4",
		"--keep-alive", "5", "--graceful-timeout", "10"}
	if listen {
		args = append(args, "-listen", addr)
	} else {
		server = append(server, "--bind", addr)
	}
	p := startManager(t, runOpts{}, append(args, append(server, "app:app")...)...)
	url := "http://" + addr + "/"

	// The loop of clients, each noting which master answered.
	seen := make(chan int, 1024)
	stop := make(chan struct{})
	results := make(chan loadResult)
	client := func(keepAlive bool) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: !keepAlive}}
		var r loadResult
		for {
			select {
			case <-stop:
				c.CloseIdleConnections()
				results <- r
				return
			default:
			}
			r.total++
			resp, err := c.Get(url)
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = errors.New(resp.Status)
				}
			}
			if err != nil {
				if r.failed++; r.first == nil {
					r.first = err
				}
				time.Sleep(10 * time.Millisecond) // a refused port must not spin
				continue
			}
			if pid, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(string(body)), "pid=")); err == nil {
				select {
				case seen <- pid:
				default:
				}
			}
		}
	}
	// The first master must answer before the load starts.
	eventually(t, 30*time.Second, func() error {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
	const clients = 4
	for i := range clients {
		go client(i%2 == 0)
	}
	answeredBy := func(pid int) {
		t.Helper()
		deadline := time.After(boundTimeout(t, 30*time.Second))
		for {
			select {
			case got := <-seen:
				if got == pid {
					return
				}
			case <-deadline:
				t.Fatalf("master %d never answered; log:\n%s", pid, p.stderr)
			}
		}
	}
	answeredBy(p.childPid(1))
	for i := 1; i <= 3; i++ {
		writeFile(t, conf, fmt.Sprintf("v%d", i))
		answeredBy(p.childPid(i + 1))
	}
	close(stop)
	var sum loadResult
	for range clients {
		r := <-results
		sum.total += r.total
		sum.failed += r.failed
		if sum.first == nil {
			sum.first = r.first
		}
	}
	p.signal(syscall.SIGTERM)
	p.wait(30 * time.Second)
	return sum
}

// TestListenInherited proves that sockets manager was started with by
// socket activation (LISTEN_PID its pid) are passed on after those of
// -listen, with LISTEN_PID rewritten for each program, named "unknown"
// where LISTEN_FDNAMES names none; and that LISTEN_ variables meant for
// another process reach the program as they are.
func TestListenInherited(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	addr := l.Addr().String()
	// sh's pid is manager's once it execs it.
	activated := func(names string) runOpts {
		return runOpts{files: []*os.File{f}, shell: "export LISTEN_PID=$$ LISTEN_FDS=1" + names}
	}
	t.Run("after those of -listen", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "own.sock")
		p := startManager(t, activated(" LISTEN_FDNAMES=outer"), "-config=", "-listen", "own="+path,
			"--", helper, "listen", "own:outer", "unix", "inet")
		pid := listenOK(t, p, 1)
		p.stderr.wait(t, `msg=listening fd=4 name=outer address=inherited`, time.Second)
		wantAnswer(t, "unix", path, pid, "own")
		wantAnswer(t, "tcp", addr, pid, "outer")
		p.signal(syscall.SIGTERM)
		p.wait(15 * time.Second)
	})
	t.Run("alone, unnamed", func(t *testing.T) {
		p := startManager(t, activated(""), "-config=", "--", helper, "listen", "unknown", "inet")
		wantAnswer(t, "tcp", addr, listenOK(t, p, 1), "unknown")
		p.signal(syscall.SIGTERM)
		p.wait(15 * time.Second)
	})
	t.Run("meant for another process", func(t *testing.T) {
		vars := []string{"LISTEN_PID=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=other"}
		p := startManager(t, runOpts{env: vars}, "-config=", "--", helper, "env")
		if code := p.wait(10 * time.Second); code != 0 {
			t.Fatalf("exit code %d; log:\n%s", code, p.stderr)
		}
		for _, v := range vars {
			if got := p.stdout.matching("^" + v + "$"); len(got) != 1 {
				t.Errorf("the program did not get %s as it was; it printed:\n%s", v, p.stdout)
			}
		}
	})
}

// TestListenRefused proves that a bad -listen or MANAGER_LISTEN exits 2,
// and an address that cannot be bound exits 1, each with one line naming
// it, before anything starts, leaving no socket file behind.
func TestListenRefused(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	plain, sock := filepath.Join(dir, "plain"), filepath.Join(dir, "first.sock")
	writeFile(t, plain, "")
	tests := []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"bad address", nil, []string{"-listen", "web=8080"}, 2, `manager: -listen "web=8080": want [NAME=]HOST:PORT, :PORT, [IPV6]:PORT or /PATH`},
		{"bad host", nil, []string{"-listen", "::1:80"}, 2, `manager: -listen "::1:80": HOST must be an IP address (an IPv6 one in brackets) or localhost`},
		{"bad variable", []string{"MANAGER_LISTEN=:80, a:b=:1"}, nil, 2, `manager: MANAGER_LISTEN "a:b=:1": NAME must be 1 to 255 printable ASCII characters, no ':'`},
		{"port in use", nil, []string{"-listen", sock, "-listen", "web=" + busy.Addr().String()}, 1,
			"manager: cannot listen on " + busy.Addr().String() + ": address already in use"},
		{"no such directory", nil, []string{"-listen", dir + "/none/app.sock"}, 1, "manager: cannot listen on " + dir + "/none/app.sock: no such file or directory"},
		{"not a socket", nil, []string{"-listen", plain}, 1, "manager: cannot listen on " + plain + ": the path exists and is not a socket"},
		{"inherited, not open", nil, []string{"-config="}, 1, "manager: LISTEN_FDS=2: not that many descriptors open from 3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := runOpts{env: tc.env}
			if tc.name == "inherited, not open" {
				opts.shell = "export LISTEN_PID=$$ LISTEN_FDS=2"
			}
			p := startManager(t, opts, append(tc.args, "--", helper, "exit", "0")...)
			if code := p.wait(10 * time.Second); code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			if got := p.stderr.String(); got != tc.want {
				t.Errorf("manager printed %q, want the one line %q", got, tc.want)
			}
			if got := p.stdout.String(); got != "" {
				t.Errorf("the program ran and printed %q", got)
			}
			if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s left behind: %v", sock, err)
			}
		})
	}
}

// TestListenCheckGetsNothing proves that -check gets no socket and no
// LISTEN_ variable, also when manager was started with some meant for
// another process, while the program gets its own.
func TestListenCheckGetsNothing(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	conf := filepath.Join(t.TempDir(), "app.conf")
	writeFile(t, conf, "v1")
	waitNotRacy(t, conf)
	p := startManager(t, runOpts{env: []string{"LISTEN_PID=1", "LISTEN_FDS=3", "LISTEN_FDNAMES=a:b:c"}},
		"-config", conf, "-poll", "100ms", "-debounce", "100ms", "-check", helper+" no-sockets",
		"-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--", helper, "listen", "listen", "inet")
	listenOK(t, p, 1)
	writeFile(t, conf, "v2")
	p.stderr.wait(t, `msg="check (passed|failed)"`, 20*time.Second)
	if got := p.stderr.matching(`check failed|check output`); len(got) > 0 {
		t.Fatalf("the check found sockets or their variables:\n%s", strings.Join(got, "\n"))
	}
	listenOK(t, p, 2)
	p.signal(syscall.SIGTERM)
	p.wait(15 * time.Second)
}

// TestListenSameSignals proves that a program started through the shim
// sees the signals blocked and ignored that it sees without -listen, with
// manager itself started with some blocked and some ignored. (TERM, which
// the Go runtime unblocks on its threads, reaches neither blocked.)
func TestListenSameSignals(t *testing.T) {
	integration(t)
	manager, helper := binaries(t)
	masks := func(listen ...string) string {
		t.Helper()
		args := append([]string{"exec-masked", "USR1,WINCH,ALRM,TERM", "HUP,TSTP,QUIT,USR2,PIPE", manager, "-config="}, listen...)
		cmd := exec.Command(helper, append(args, "--", helper, "env")...)
		cmd.Env = append(os.Environ(), "FLUSH_HELPER=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		p := startCmd(t, cmd, nil)
		if code := p.wait(10 * time.Second); code != 0 {
			t.Fatalf("exit code %d; log:\n%s", code, p.stderr)
		}
		return strings.Join(p.stdout.matching(`^sig(ign|blk)=`), " ")
	}
	without := masks()
	with := masks("-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	t.Logf("without -listen: %s; with: %s", without, with)
	if with != without || !strings.Contains(with, "sigblk=0000000008002200") {
		t.Errorf("with -listen the program starts with %s, without %s; want the same, USR1, WINCH and ALRM blocked", with, without)
	}
}

// TestListenManagerKilledChildDies proves that through the shim the
// parent-death signal still holds: manager killed by SIGKILL, the program
// dies.
func TestListenManagerKilledChildDies(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	p := startManager(t, runOpts{}, "-config=", "-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--", helper, "listen", "listen", "inet")
	child := listenOK(t, p, 1)
	wantDiesWithManager(t, p, child)
}

// TestListenStartFailures proves that an exec that fails in the shim ends
// manager as one that fails without it: the same code, the same line.
func TestListenStartFailures(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	noInterpreter, garbage := filepath.Join(dir, "script"), filepath.Join(dir, "garbage")
	if err := os.WriteFile(noInterpreter, []byte("#!/no/such/interpreter\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(garbage, []byte("\x00\x01\x02 not a program"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		command string
		code    int
	}{{noInterpreter, 127}, {garbage, 126}} {
		var lines []string
		for _, args := range [][]string{{"-config="}, {"-config=", "-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t))}} {
			p := startManager(t, runOpts{}, append(args, "--", tc.command)...)
			if code := p.wait(10 * time.Second); code != tc.code {
				t.Errorf("manager %q -- %s: exit code %d, want %d", args, tc.command, code, tc.code)
			}
			line := p.stderr.wait(t, `level=ERROR (msg=exiting .*)`, time.Second)[1]
			lines = append(lines, line)
		}
		if lines[0] != lines[1] {
			t.Errorf("%s: without -listen %q, with %q; want the same", tc.command, lines[0], lines[1])
		}
	}
}

// TestListenTinyNofile proves that under a tiny RLIMIT_NOFILE, manager
// with sockets either works or exits 2 with one line saying why.
func TestListenTinyNofile(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	for _, n := range []int{5, 8, 12, 16} {
		t.Run(fmt.Sprintf("nofile=%d", n), func(t *testing.T) {
			t.Parallel()
			p := startManager(t, runOpts{shell: fmt.Sprintf("ulimit -n %d", n)}, "-config=",
				"-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "-listen", filepath.Join(t.TempDir(), "s"),
				"--", helper, "listen", "listen:listen", "inet", "unix")
			waitOrEnd(t, p.stdout, `^listen (ok|bad)`, 30*time.Second)
			if len(p.stdout.matching(`^listen`)) == 0 { // manager ended first
				code := p.wait(10 * time.Second)
				if out := p.stderr.String(); code != 2 || strings.Count(out, "\n") != 0 || !strings.Contains(out, "RLIMIT_NOFILE") {
					t.Fatalf("exit code %d, standard error:\n%s\nwant it to work, or exit 2 with one line naming RLIMIT_NOFILE", code, out)
				}
				if n >= 12 { // 0 to 2, the 8 it needs, and one for a descriptor this test may have inherited
					t.Fatalf("refused to run at nofile=%d, which leaves the 8 descriptors it needs: %s", n, p.stderr)
				}
				return
			}
			listenOK(t, p, 1)
			p.signal(syscall.SIGTERM)
			if code := p.wait(10 * time.Second); code != 0 || strings.Contains(p.stderr.String(), "goroutine ") {
				t.Fatalf("exit code %d, want 0; log:\n%s", code, p.stderr)
			}
		})
	}
}

// TestListenWithoutProc proves that where /proc is not mounted, manager
// starts programs with their sockets through the binary it was started as.
func TestListenWithoutProc(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	if os.Getuid() != 0 {
		skipTest(t, "hiding /proc takes a mount namespace, which needs root; this test runs as uid %d", os.Getuid())
	}
	p := startManager(t, runOpts{
		// A tmpfs over /proc, in a mount namespace of manager's own that
		// shares nothing back.
		shell: "mount --make-rprivate / && mount -t tmpfs none /proc",
		attr:  func(a *syscall.SysProcAttr) { a.Cloneflags |= syscall.CLONE_NEWNS },
	}, "-config=", "-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--", helper, "env")
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d; log:\n%s", code, p.stderr)
	}
	want := fmt.Sprintf("LISTEN_PID=%d", p.childPid(1))
	for _, v := range []string{want, "LISTEN_FDS=1", "LISTEN_FDNAMES=listen"} {
		if got := p.stdout.matching("^" + v + "$"); len(got) != 1 {
			t.Errorf("the program's environment lacks %s; it printed:\n%s", v, p.stdout)
		}
	}
}

// TestListenShimRetried proves that a start whose shim dies before it runs
// (in a full pids cgroup its Go runtime cannot make a thread) is retried,
// as a fork refused for want of resources is, and the program starts once
// there is room: manager neither takes the shim's death for the program's
// exit nor ends.
func TestListenShimRetried(t *testing.T) {
	integration(t)
	cg := newPidsCgroup(t)
	p := startManager(t, runOpts{shell: cg.enter()}, "-config=", "-restart-signal", "USR2",
		"-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--", "sleep", "1000")
	p.stderr.wait(t, `msg="child started"`, 10*time.Second)
	// Room for the shim once sleep, single-threaded, is gone, and for
	// no thread of the shim's own.
	cg.setMax(t, strconv.Itoa(cg.current(t)))
	p.signal(syscall.SIGUSR2)
	p.stderr.wait(t, `level=WARN msg="cannot start child; retrying" error="shim ended before it ran: resource temporarily unavailable"`, 10*time.Second)
	cg.setMax(t, "max")
	p.stderr.waitN(t, 2, `msg="child started"`, 30*time.Second)
	if got := p.stderr.matching(`msg="child exited"`); len(got) > 0 || p.exited() {
		t.Fatalf("the shim's death was taken for the program's exit: %q; log:\n%s", got, p.stderr)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(10 * time.Second); code != 143 {
		t.Fatalf("exit code %d, want 143 (sleep ended by SIGTERM); log:\n%s", code, p.stderr)
	}
}
