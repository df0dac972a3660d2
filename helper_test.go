package main

// This file holds what integration tests share: the built binaries, the
// helper programs the test binary plays as manager's child, and a handle on
// a running manager whose output lines can be waited for.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// TestMain lets the test binary double as the child program of integration
// tests: started with FLUSH_HELPER=1, it runs the helper named by its first
// argument instead of the tests.
func TestMain(m *testing.M) {
	if os.Getenv("FLUSH_HELPER") == "1" {
		os.Exit(runHelper(os.Args[1:]))
	}
	code := m.Run()
	printSkips()
	removeBinaries()
	os.Exit(code)
}

// integration skips t in -short mode: make test runs the unit tests under
// the race detector with -short, then everything without it.
func integration(t *testing.T) {
	t.Helper()
	if testing.Short() {
		recordSkip(t, "integration test: skipped with -short (make test runs it in its second pass)")
	}
}

// runHelper runs the helper program named by args[0] and returns its exit
// code. Each prints a "ready pid=N" line once it can be acted on.
func runHelper(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "helper: no helper named")
		return 2
	}
	name, args := args[0], args[1:]
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	switch name {
	case "exit": // exit N
		n, _ := strconv.Atoi(arg(0))
		ready()
		return n
	case "kill-self": // kill-self SIG: die by a signal
		sig, _ := parseSignal(arg(0))
		ready()
		syscall.Kill(os.Getpid(), sig)
		block()
	case "sleep":
		ready()
		block()
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		ready()
		block()
	case "signals": // report each signal; TERM or INT end it
		return reportSignals()
	case "group": // signals, plus a grandchild in the same group doing the same
		if _, err := spawnHelper(os.Stdout, "signals"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return reportSignals()
	case "leave": // leave HELPER [ARG...]: exit 0 once that helper, left behind, is ready
		out, err := spawnHelper(nil, args...)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		line, _ := bufio.NewReader(out).ReadString('\n')
		fmt.Printf("ready pid=%d grandchild %s", os.Getpid(), line)
		return 0
	case "trap-term": // trap-term FILE: on TERM, write FILE and exit 0
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		ready()
		<-c
		if err := os.WriteFile(arg(0), []byte(fmt.Sprintf("saved by %d\n", os.Getpid())), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	case "orphans": // orphans N: leave N orphans that all exit at once; USR1 ends it with 3
		n, _ := strconv.Atoi(arg(0))
		return makeOrphans(n)
	case "readline", "readline-on-usr1": // echo one line of standard input (once SIGUSR1 came), then wait for more
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		ready()
		if name == "readline-on-usr1" {
			<-usr1
		}
		r := bufio.NewReader(os.Stdin)
		line, err := r.ReadString('\n')
		fmt.Printf("read: %q %v\n", strings.TrimSpace(line), err)
		io.Copy(io.Discard, r)
		return 0
	case "readtty": // echo each line read from /dev/tty, the controlling terminal, there
		tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintf(tty, "ready pid=%d\n", os.Getpid())
		for sc := bufio.NewScanner(tty); sc.Scan(); {
			fmt.Fprintf(tty, "tty read: %q\n", sc.Text())
		}
		return 0
	case "env": // the environment a child is started with
		cwd, _ := os.Getwd()
		fmt.Printf("FLUSH_TEST_VAR=%s\ncwd=%s\nsigign=%s\nsigblk=%s\n", os.Getenv("FLUSH_TEST_VAR"), cwd,
			statusField("self", "SigIgn"), statusField("self", "SigBlk"))
		for _, kv := range os.Environ() { // manager's own configuration, and the sockets'
			if strings.HasPrefix(kv, "MANAGER_") || strings.HasPrefix(kv, "LISTEN_") {
				fmt.Println(kv)
			}
		}
		return 0
	case "listen": // listen NAMES FAMILY... [unlink PATH]: check the sockets strictly, then answer on each
		return serveSockets(args)
	case "no-sockets": // exit 0 only with no socket and no LISTEN_ variable
		return noSockets()
	case "exec-masked": // exec-masked BLOCK IGNORE PROGRAM ARG...: exec PROGRAM with signals blocked and ignored
		return execMasked(arg(0), arg(1), args[2:])
	case "id":
		fmt.Printf("ready pid=%d uid=%d gid=%d\n", os.Getpid(), os.Getuid(), os.Getgid())
		return 0
	case "app": // app LOCK CONF [ignore-term]: a restartable program
		return runApp(arg(0), arg(1), arg(2))
	case "steady-signals": // signals, after making every thread it will need: it must run on in a full pids cgroup
		runtime.GOMAXPROCS(1)
		reserveThreads(threadReserve)
		return reportSignals()
	case "setuid-ignore-term": // as a set-user-ID root copy: become root through and through, then ignore TERM
		if err := syscall.Setuid(0); err != nil {
			fmt.Fprintln(os.Stderr, "setuid:", err)
			return 1
		}
		signal.Ignore(syscall.SIGTERM)
		fmt.Printf("ready pid=%d uid=%d\n", os.Getpid(), os.Getuid())
		block()
	case "exits": // exits FILE CODE...: the K-th run (counted in FILE) exits with the K-th CODE, the last one repeating
		b, _ := os.ReadFile(arg(0))
		run, _ := strconv.Atoi(string(b))
		if err := os.WriteFile(arg(0), []byte(strconv.Itoa(run+1)), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		code, _ := strconv.Atoi(args[min(1+run, len(args)-1)])
		fmt.Printf("ready pid=%d run=%d\n", os.Getpid(), run+1)
		return code
	case "check-config": // check-config FILE: fail if FILE says "bad", never end if it says "hang"
		b, err := os.ReadFile(arg(0))
		if err != nil || strings.Contains(string(b), "bad") {
			fmt.Fprintf(os.Stderr, "check-config: %s is bad\n", arg(0))
			return 1
		}
		if strings.Contains(string(b), "hang") {
			block()
		}
		return 0
	case "long-line": // long-line N: one line of N bytes on standard output, then exit 0
		n, _ := strconv.Atoi(arg(0))
		os.Stdout.Write([]byte(strings.Repeat("x", n) + "\n"))
		return 0
	case "say-lines": // say-lines N CODE: "reason 1" to "reason N", each after a blank line and one of spaces, then exit CODE
		n, _ := strconv.Atoi(arg(0))
		code, _ := strconv.Atoi(arg(1))
		for i := 1; i <= n; i++ {
			out := []*os.File{os.Stdout, os.Stderr}[i%2]
			fmt.Fprintf(out, "\n   \nreason %d\n", i)
		}
		return code
	}
	fmt.Fprintf(os.Stderr, "helper: unknown helper %q\n", name)
	return 2
}

func ready() { fmt.Printf("ready pid=%d\n", os.Getpid()) }

// block waits forever; signals decide how the helper ends.
func block() {
	for {
		time.Sleep(time.Hour)
	}
}

// spawnHelper starts another helper in the same process group, its output
// going to out, or to a pipe it returns when out is nil.
func spawnHelper(out *os.File, args ...string) (io.Reader, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	var r io.Reader
	if out != nil {
		cmd.Stdout = out
	} else if r, err = cmd.StdoutPipe(); err != nil {
		return nil, err
	}
	return r, cmd.Start()
}

// reportSignals prints each signal it receives until TERM or INT.
func reportSignals() int {
	c := make(chan os.Signal, 64)
	signal.Notify(c, append(forwardedSignals(), syscall.SIGTERM, syscall.SIGINT)...)
	ready()
	for s := range c {
		fmt.Printf("got %s pid=%d\n", signalName(s.(syscall.Signal)), os.Getpid())
		if s == syscall.SIGTERM || s == syscall.SIGINT {
			return 0
		}
	}
	return 1
}

// runApp is a program to restart: it holds an exclusive lock on lock for its
// whole life, so that two of them running at once is caught by the second
// ("overlap"), and prints its config's content at start and on SIGHUP.
func runApp(lock, conf, mode string) int {
	f, err := os.OpenFile(lock, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		fmt.Printf("overlap pid=%d\n", os.Getpid())
		return 99
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	if mode == "ignore-term" {
		signal.Ignore(syscall.SIGTERM)
	}
	b, _ := os.ReadFile(conf)
	fmt.Printf("start pid=%d conf=%q\n", os.Getpid(), b)
	for range hup {
		b, _ := os.ReadFile(conf)
		fmt.Printf("hup pid=%d conf=%q\n", os.Getpid(), b)
	}
	return 0
}

// makeOrphans leaves n processes whose parent has exited, all blocked on one
// pipe, then releases them at once by closing its end, and waits for SIGUSR1
// to exit 3. The orphans are raw fork(2)s of this process: far cheaper than
// n programs, and they run only raw system calls before they exit.
func makeOrphans(n int) int {
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	middle, err := forkOrphans(n, p[0], p[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "fork:", err)
		return 1
	}
	var ws syscall.WaitStatus
	syscall.Wait4(middle, &ws, 0, nil) // the orphans' parent, gone: they are orphans now
	syscall.Close(p[1])
	syscall.Close(p[0])
	fmt.Printf("ready pid=%d released %d orphans\n", os.Getpid(), n)
	<-usr1
	return 3
}

// forkOrphans forks a middle process that forks n children blocked reading
// r, then exits; clone(2) with only SIGCHLD is fork(2). Only raw system
// calls run in the forked processes: the Go runtime's other threads do not
// exist there, so nothing may allocate, lock or grow the stack.
//
//go:norace
func forkOrphans(n, r, w int) (int, error) {
	pid, _, e := syscall.RawSyscall(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0)
	if e != 0 {
		return 0, e
	}
	if pid != 0 {
		return int(pid), nil
	}
	var buf [1]byte
	for i := 0; i < n; i++ {
		c, _, _ := syscall.RawSyscall(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0)
		if c == 0 {
			syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(w), 0, 0)
			syscall.RawSyscall(syscall.SYS_READ, uintptr(r), uintptr(unsafe.Pointer(&buf[0])), 1)
			syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
		}
	}
	syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	return 0, nil
}

// Built binaries, shared by every integration test of this run. They live in
// a world-readable directory so that a manager running as another user can
// execute them.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries returns the paths of manager, built static from this package,
// and of the helper (this test binary).
func binaries(t *testing.T) (manager, helper string) {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "flush-manager-test-"); buildErr != nil {
			return
		}
		if buildErr = os.Chmod(binDir, 0o755); buildErr != nil {
			return
		}
		// FLUSH_TEST_MANAGER runs the tests against another build, such
		// as an older commit's, to show that a test catches its fault.
		if other := os.Getenv("FLUSH_TEST_MANAGER"); other != "" {
			buildErr = copyFile(other, filepath.Join(binDir, "manager"), 0o755)
		} else {
			cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(binDir, "manager"), ".")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build: %v\n%s", err, out)
				return
			}
		}
		exe, err := os.Executable()
		if err != nil {
			buildErr = err
			return
		}
		buildErr = copyFile(exe, filepath.Join(binDir, "helper"), 0o755)
	})
	if buildErr != nil {
		t.Fatalf("building binaries: %v", buildErr)
	}
	return filepath.Join(binDir, "manager"), filepath.Join(binDir, "helper")
}

// removeBinaries removes binDir once no process names it on its command
// line any more: podman's conmon and the "podman container cleanup" it
// starts outlive podman run, and would write into a removed storage.
func removeBinaries() {
	if binDir == "" {
		return
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if !commandLineMentions(binDir) {
			break
		}
	}
	os.RemoveAll(binDir)
}

// commandLineMentions reports whether some process's command line has s in it.
func commandLineMentions(s string) bool {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && strings.Contains(string(b), s) {
			return true
		}
	}
	return false
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

// lines collects the lines a process writes, for tests to wait on.
type lines struct {
	mu      sync.Mutex
	all     []string
	eof     bool
	changed chan struct{} // closed and replaced at each new line
}

func readLines(r io.Reader) *lines {
	l := &lines{changed: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			l.add(sc.Text(), false)
		}
		l.add("", true)
	}()
	return l
}

func (l *lines) add(s string, eof bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if eof {
		l.eof = true
	} else {
		l.all = append(l.all, s)
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

// snapshot returns the lines so far, and a channel closed at the next one.
func (l *lines) snapshot() ([]string, <-chan struct{}, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all, l.changed, l.eof
}

// String is every line so far, for failure messages.
func (l *lines) String() string {
	all, _, _ := l.snapshot()
	return strings.Join(all, "\n")
}

// matching returns the lines matching re so far.
func (l *lines) matching(re string) []string {
	rx := regexp.MustCompile(re)
	all, _, _ := l.snapshot()
	var out []string
	for _, s := range all {
		if rx.MatchString(s) {
			out = append(out, s)
		}
	}
	return out
}

// waitN waits until n lines match re and returns them.
func (l *lines) waitN(t *testing.T, n int, re string, timeout time.Duration) []string {
	t.Helper()
	deadline := time.NewTimer(boundTimeout(t, timeout))
	defer deadline.Stop()
	for {
		_, changed, eof := l.snapshot()
		if got := l.matching(re); len(got) >= n {
			return got
		}
		if eof {
			t.Fatalf("output ended without %d lines matching %q; got:\n%s", n, re, l)
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no %d lines matching %q within %v; got:\n%s", n, re, timeout, l)
		}
	}
}

// wait waits for a line matching re and returns its submatches.
func (l *lines) wait(t *testing.T, re string, timeout time.Duration) []string {
	t.Helper()
	got := l.waitN(t, 1, re, timeout)
	return regexp.MustCompile(re).FindStringSubmatch(got[0])
}

// boundTimeout keeps a wait inside the test binary's own deadline, so that a
// hang fails the test with its output rather than killing the whole run.
func boundTimeout(t *testing.T, d time.Duration) time.Duration {
	if dl, ok := t.Deadline(); ok {
		if left := time.Until(dl) - 5*time.Second; left < d {
			return max(left, time.Second)
		}
	}
	return d
}

// runOpts says how to start a manager.
type runOpts struct {
	pid1  bool     // as PID 1 of a new PID namespace
	uid   int      // run as this uid and gid; 0 keeps the test's
	env   []string // added to the environment
	dir   string   // working directory; "" keeps the test's
	stdin *os.File
	attr  func(*syscall.SysProcAttr) // last adjustments, e.g. a terminal

	// stderr, if set, is manager's standard error instead of a pipe the
	// test reads: its log lines are then not waited for.
	stderr *os.File
	// shell, if set, is a sh(1) snippet run just before manager is
	// exec'd in its place (same pid), e.g. "ulimit -n 7".
	shell string
	// files are manager's descriptors 3, 4, …
	files []*os.File
}

// watchedCmd is a started command whose output lines can be waited for.
type watchedCmd struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout *lines
	stderr *lines
	done   chan struct{}
	code   int // exit code, or 128+N if signal N killed it; valid once done is closed
}

// startCmd starts cmd with its standard output and error read into lines.
// Pipes are made here rather than by os/exec, whose Wait would also wait
// for every process holding them open: a leftover must not hang a test.
//
// With stderr given, the command writes there instead, and its stderr lines
// are empty.
func startCmd(t *testing.T, cmd *exec.Cmd, stderr *os.File) *watchedCmd {
	t.Helper()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	if stderr != nil {
		cmd.Stderr = stderr
		errW.Close()
	}
	r := &watchedCmd{t: t, cmd: cmd, stdout: readLines(outR), stderr: readLines(errR), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	outW.Close()
	errW.Close()
	go func() {
		cmd.Wait()
		r.code = exitCode(cmd.ProcessState.Sys().(syscall.WaitStatus))
		close(r.done)
	}()
	return r
}

// wait waits for the command to exit, and for all it wrote to be read, and
// returns its exit code. Output that stays open after the exit means some
// process outlived the command holding its standard streams: a failure too.
func (r *watchedCmd) wait(timeout time.Duration) int {
	r.t.Helper()
	deadline := time.NewTimer(boundTimeout(r.t, timeout))
	defer deadline.Stop()
	select {
	case <-r.done:
	case <-deadline.C:
		r.t.Fatalf("%s did not exit within %v; standard error:\n%s\nstandard output:\n%s", r.cmd.Path, timeout, r.stderr, r.stdout)
	}
	for _, l := range []*lines{r.stdout, r.stderr} {
		for {
			_, changed, eof := l.snapshot()
			if eof {
				break
			}
			select {
			case <-changed:
			case <-deadline.C:
				r.t.Fatalf("%s exited, but its output was still open %v after it started: a process outlived it", r.cmd.Path, timeout)
			}
		}
	}
	return r.code
}

// exited reports whether the command has exited.
func (r *watchedCmd) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// proc is a running manager.
type proc struct {
	*watchedCmd
}

// startManager runs the built manager with args.
func startManager(t *testing.T, o runOpts, args ...string) *proc {
	t.Helper()
	manager, _ := binaries(t)
	if o.pid1 {
		requirePIDNamespace(t)
	}
	cmd := exec.Command(manager, args...)
	if o.shell != "" {
		cmd = exec.Command("/bin/sh", append([]string{"-c", o.shell + ` && exec "$@"`, "sh", manager}, args...)...)
	}
	cmd.Env = append(os.Environ(), "FLUSH_HELPER=1")
	cmd.Env = append(cmd.Env, o.env...)
	cmd.Stdin = o.stdin
	cmd.ExtraFiles = o.files
	cmd.Dir = o.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if o.pid1 {
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWPID
		if os.Getuid() != 0 {
			userNamespace(cmd.SysProcAttr)
		}
	}
	if o.uid != 0 {
		if os.Getuid() != 0 {
			skipTest(t, "running as uid %d needs root; this test runs as uid %d", o.uid, os.Getuid())
		}
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(o.uid), Gid: uint32(o.uid)}
	}
	if o.attr != nil {
		o.attr(cmd.SysProcAttr)
	}
	p := &proc{startCmd(t, cmd, o.stderr)}
	t.Cleanup(func() {
		if !p.exited() {
			if t.Failed() {
				t.Logf("manager still running at the end of the test: killing it; log:\n%s", p.stderr)
			}
			cmd.Process.Kill()
			<-p.done
		}
		if !o.pid1 { // a PID namespace dies with its PID 1
			for _, m := range p.stderr.matching(`child started pid=(\d+)`) {
				pid, _ := strconv.Atoi(regexp.MustCompile(`pid=(\d+)`).FindStringSubmatch(m)[1])
				syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
	})
	return p
}

// pid is the manager's pid, as seen by the test.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// signal sends sig to the manager.
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal manager: %v", err)
	}
}

// childPid waits for the n-th "child started" log line and returns its pid,
// as seen from inside manager's PID namespace.
func (p *proc) childPid(n int) int {
	p.t.Helper()
	got := p.stderr.waitN(p.t, n, `msg="child started" pid=\d+`, 10*time.Second)
	pid, _ := strconv.Atoi(regexp.MustCompile(`pid=(\d+)`).FindStringSubmatch(got[n-1])[1])
	return pid
}

// userNamespace maps the current user to root in a new user namespace, so
// that an unprivileged test may create a PID namespace.
func userNamespace(a *syscall.SysProcAttr) {
	a.Cloneflags |= syscall.CLONE_NEWUSER
	a.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
	a.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
}

var (
	pidNSOnce sync.Once
	pidNSErr  error
)

// requirePIDNamespace skips the test, saying why, where this machine forbids
// new PID namespaces; CI runs as root, where they must work.
func requirePIDNamespace(t *testing.T) {
	t.Helper()
	pidNSOnce.Do(func() {
		_, helper := binaries(t)
		cmd := exec.Command(helper, "exit", "0")
		cmd.Env = append(os.Environ(), "FLUSH_HELPER=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
		if os.Getuid() != 0 {
			userNamespace(cmd.SysProcAttr)
		}
		pidNSErr = cmd.Run()
	})
	if pidNSErr != nil {
		if os.Getuid() == 0 {
			t.Fatalf("cannot create a PID namespace as root: %v", pidNSErr)
		}
		skipTest(t, "this machine forbids new PID namespaces to uid %d (%v); run as root to test manager as PID 1", os.Getuid(), pidNSErr)
	}
}

// procState reads the state letter and parent of a process from /proc; ok is
// false once the process is gone.
func procState(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	s := string(b)
	rest := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ppid, _ = strconv.Atoi(rest[1])
	return rest[0][0], ppid, true
}

// statusField returns the value of key in /proc/PROC/status, where PROC is
// "self" or a pid, or "" if there is no such process or key.
func statusField(proc, key string) string {
	b, err := os.ReadFile("/proc/" + proc + "/status")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	state, _, ok := procState(pid)
	return ok && state != 'Z' && state != 'X'
}

// namespaceProcs counts the processes, and the zombies among them, that
// share the PID namespace of pid.
func namespaceProcs(pid int) (procs, zombies int) {
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		return 0, 0
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", n)); err != nil || l != ns {
			continue
		}
		procs++
		if state, _, ok := procState(n); ok && state == 'Z' {
			zombies++
		}
	}
	return procs, zombies
}

// waitNotRacy waits until path's times are older than manager's racy
// window, so that a change made next is seen by stat alone, and a config
// written just before manager starts causes no re-check of its own.
func waitNotRacy(t *testing.T, path string) {
	t.Helper()
	fsys := osFS{racyWindow: racyWindow}
	eventually(t, 5*time.Second, func() error {
		if fp, err := fsys.stat(path); err == nil && fp.racy {
			return fmt.Errorf("%s: changed less than %v ago", path, racyWindow)
		}
		return nil
	})
}

// eventually polls cond until it returns nil, and fails t with the last
// error cond returned if that does not happen within timeout.
func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(boundTimeout(t, timeout))
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond) // the polling interval
	}
}

// requireTool skips t, saying why, when the command name is not installed.
func requireTool(t *testing.T, name, purpose string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		skipTest(t, "%s is not installed: cannot test %s", name, purpose)
	}
	return path
}

// skipped lists the tests skipped so far with their reasons, for TestMain to
// print: go test shows a skip's reason only under -v, and a test that
// silently never runs proves nothing.
var skipped struct {
	mu      sync.Mutex
	reasons map[string][]string // reason → names of the tests skipped for it
}

// skipTest skips t for a reason that is the machine's (a missing tool, no
// privilege), named in one line of make test's output. CI runs as root with
// every tool installed (.ci/run), so there the skip is a failure.
func skipTest(t *testing.T, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" && os.Getuid() == 0 {
		t.Fatalf("%s; CI runs as root after .ci/run installed every tool, so this test must run", reason)
	}
	recordSkip(t, reason)
}

// recordSkip skips t, and keeps its reason for printSkips.
func recordSkip(t *testing.T, reason string) {
	t.Helper()
	skipped.mu.Lock()
	if skipped.reasons == nil {
		skipped.reasons = map[string][]string{}
	}
	skipped.reasons[reason] = append(skipped.reasons[reason], t.Name())
	skipped.mu.Unlock()
	t.Skip(reason)
}

// printSkips prints one line per reason for skipping, naming every test
// skipped for it, on standard output, which make test shows (it runs the
// package in local directory mode).
func printSkips() {
	skipped.mu.Lock()
	defer skipped.mu.Unlock()
	reasons := make([]string, 0, len(skipped.reasons))
	for r := range skipped.reasons {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		if names := skipped.reasons[r]; len(names) == 1 {
			fmt.Printf("SKIP %s: %s\n", names[0], r)
		} else {
			fmt.Printf("SKIP %d tests: %s: %s\n", len(names), r, strings.Join(names, " "))
		}
	}
}
