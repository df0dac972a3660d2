package main

// Tests of -check and the watched files as the built manager sees them:
// special files among the watched entries, a check's output (long lines,
// blank lines, why it failed), the check before the first start, and a
// refused change left on disk.

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSpecialFilesNotOpened proves that a FIFO or a device node among the
// entries of a watched directory is watched without being opened, through
// the hash of what the child started with and the hash of a change: a
// writer blocked in opening the FIFO stays blocked (an open for reading
// would release it into a write that fails), and the device node sees no
// open (its driver's open would run).
func TestSpecialFilesNotOpened(t *testing.T) {
	integration(t)
	// changeHashed runs the app watching dir, then changes its config and
	// waits until manager has hashed both what the first child started
	// with and the change, and acted on the change: every hash there is.
	changeHashed := func(t *testing.T, dir, conf string) *proc {
		t.Helper()
		p := appUnderManager(t, conf, dir, "")
		wantStarts(t, p, "v1")
		p.stderr.wait(t, `msg="config hashed" purpose=baseline`, 10*time.Second)
		writeFile(t, conf, "v2")
		p.stderr.wait(t, `msg="config hashed" purpose=change`, 10*time.Second)
		wantStarts(t, p, "v1", "v2")
		return p
	}
	t.Run("fifo", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		conf, fifo := filepath.Join(dir, "app.conf"), filepath.Join(dir, "fifo")
		writeFile(t, conf, "v1")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		writer := exec.Command("/bin/sh", "-c", "echo hello > "+fifo)
		if err := writer.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { writer.Wait(); close(exited) }()
		t.Cleanup(func() { writer.Process.Kill(); <-exited })
		blocked := func() error {
			select {
			case <-exited:
				return fmt.Errorf("the writer was released from its open of the FIFO: it exited, %v", writer.ProcessState)
			default:
			}
			if w := wchan(writer.Process.Pid); w != "wait_for_partner" {
				return fmt.Errorf("the writer waits in %q, want wait_for_partner (open of a FIFO without a reader)", w)
			}
			return nil
		}
		eventually(t, 5*time.Second, blocked)
		p := changeHashed(t, dir, conf)
		if err := blocked(); err != nil {
			t.Fatalf("after manager hashed the directory: %v; log:\n%s", err, p.stderr)
		}
		r, err := os.Open(fifo) // the reader the writer waits for
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if b, err := io.ReadAll(r); string(b) != "hello\n" || err != nil {
			t.Errorf("read %q, %v from the FIFO; want the writer's \"hello\\n\"", b, err)
		}
		<-exited
		if !writer.ProcessState.Success() {
			t.Errorf("writer: %v, want exit 0", writer.ProcessState)
		}
		stop(t, p)
	})
	t.Run("device", func(t *testing.T) {
		t.Parallel()
		if os.Getuid() != 0 {
			skipTest(t, "making a device node needs root; this test runs as uid %d", os.Getuid())
		}
		dir := t.TempDir()
		conf, node := filepath.Join(dir, "app.conf"), filepath.Join(dir, "null")
		writeFile(t, conf, "v1")
		if err := syscall.Mknod(node, syscall.S_IFCHR|0o666, 1<<8|3); err != nil { // /dev/null's 1, 3
			t.Fatalf("mknod %s: %v", node, err)
		}
		in, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
		if err != nil {
			t.Fatalf("inotify_init1: %v", err)
		}
		defer syscall.Close(in)
		if _, err := syscall.InotifyAddWatch(in, node, syscall.IN_OPEN); err != nil {
			t.Fatalf("inotify_add_watch %s: %v", node, err)
		}
		opens := func() int {
			var buf [4096]byte
			n, _ := syscall.Read(in, buf[:])
			return max(n, 0) / syscall.SizeofInotifyEvent // events on the node itself carry no name
		}
		// An open of the node must be seen, or no open proves nothing.
		f, err := os.Open(node)
		if err != nil {
			skipTest(t, "%s cannot be opened, so an open by manager could not be seen either: %v", node, err)
		}
		f.Close()
		if n := opens(); n == 0 {
			t.Fatalf("inotify saw no open of %s by the test itself", node)
		}
		p := changeHashed(t, dir, conf)
		if n := opens(); n != 0 {
			t.Fatalf("%d opens of the device node %s while manager hashed the directory, want none; log:\n%s", n, node, p.stderr)
		}
		stop(t, p)
	})
}

// wchan is where in the kernel pid waits (/proc/PID/wchan).
func wchan(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid))
	return string(b)
}

// TestCheckOutputLongLine proves that a check printing one line longer
// than any buffer (a minified configuration, 300 KB) is read to its end:
// it passes, the change is applied, and the line is logged cut, with its
// length.
func TestCheckOutputLongLine(t *testing.T) {
	integration(t)
	t.Parallel()
	_, helper := binaries(t)
	p, _, conf := watchedApp(t, "", "-check", helper+" long-line 300000")
	wantStarts(t, p, "v1")
	writeFile(t, conf, "v2")
	wantStarts(t, p, "v1", "v2")
	p.stderr.waitN(t, 2, `^time=\S+ level=INFO msg="check output" line=`+strings.Repeat("x", relayLineMax)+` length=300000$`, time.Second)
	if got := p.stderr.matching(`msg="check failed`); len(got) > 0 {
		t.Errorf("the check failed: %q", got)
	}
	stop(t, p)
}

// TestCheckFailureSaysWhy proves that a failed check's warning carries the
// last lines of its output, so that the reason is seen at -log-level warn
// too, and that blank lines of the output are not logged.
func TestCheckFailureSaysWhy(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	check := helper + " say-lines 7 1"
	t.Run("at warn, the last five lines", func(t *testing.T) {
		t.Parallel()
		p, _, conf := watchedApp(t, "", "-check", check, "-log-level", "warn")
		wantStarts(t, p, "v1")
		writeFile(t, conf, "v2")
		p.stderr.wait(t, `^time=\S+ level=WARN msg="check failed; keeping the running child" command="`+regexp.QuoteMeta(check)+
			`" code=1 output="reason 3\\nreason 4\\nreason 5\\nreason 6\\nreason 7"$`, 10*time.Second)
		if got := p.stderr.matching(`level=INFO`); len(got) > 0 {
			t.Errorf("INFO lines at -log-level warn: %q", got)
		}
		stop(t, p)
	})
	t.Run("at info, no blank lines", func(t *testing.T) {
		t.Parallel()
		p, _, conf := watchedApp(t, "", "-check", check)
		wantStarts(t, p, "v1")
		writeFile(t, conf, "v2")
		p.stderr.wait(t, `msg="check failed; keeping the running child"`, 10*time.Second)
		var said []string
		for _, l := range p.stderr.matching(`msg="check output"`) {
			said = append(said, l[strings.Index(l, "line="):])
		}
		var want []string
		for range 2 { // the first start's check, then the change's
			for i := 1; i <= 7; i++ {
				want = append(want, fmt.Sprintf(`line="reason %d"`, i))
			}
		}
		if strings.Join(said, " ") != strings.Join(want, " ") {
			t.Errorf("check output logged as %q, want %q", said, want)
		}
		stop(t, p)
	})
}

// TestRefusedConfigNamed proves that a configuration the check refuses is
// not forgotten: refused before the first start, it is named at WARN (and
// the program starts with it, as it would without manager); refused as a
// change, it is named again when manager exits, since the next start will
// read it, unless the files on disk are again what the child runs with.
func TestRefusedConfigNamed(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	refusedAtExit := func(conf string) string {
		return `^time=\S+ level=WARN msg="the configuration on disk was refused by the check; the next start will use it" path=` +
			regexp.QuoteMeta(conf) + ` for=\d`
	}
	t.Run("before the first start", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		conf := filepath.Join(dir, "app.conf")
		writeFile(t, conf, "bad")
		check := helper + " check-config " + conf
		p := appUnderManager(t, conf, conf, "", "-check", check)
		wantStarts(t, p, "bad")
		p.stderr.wait(t, `^time=\S+ level=WARN msg="check failed; starting the child anyway" command="`+regexp.QuoteMeta(check)+
			`" code=1 output="check-config: `+regexp.QuoteMeta(conf)+` is bad"$`, time.Second)
		stop(t, p)
		if got := p.stderr.matching(refusedAtExit(conf)); len(got) > 0 {
			t.Errorf("the configuration the child runs with named as refused: %q", got)
		}
	})
	// refusedChange runs the app with the check, and has it refuse a change.
	refusedChange := func(t *testing.T) (*proc, string) {
		conf := filepath.Join(t.TempDir(), "app.conf")
		writeFile(t, conf, "v1")
		p := appUnderManager(t, conf, conf, "", "-check", helper+" check-config "+conf)
		wantStarts(t, p, "v1")
		writeFile(t, conf, "bad")
		p.stderr.wait(t, `level=WARN msg="check failed; keeping the running child"`, 10*time.Second)
		return p, conf
	}
	t.Run("a change, named at exit", func(t *testing.T) {
		t.Parallel()
		p, conf := refusedChange(t)
		stop(t, p)
		p.stderr.wait(t, refusedAtExit(conf), time.Second)
	})
	t.Run("a change undone", func(t *testing.T) {
		t.Parallel()
		p, conf := refusedChange(t)
		writeFile(t, conf, "v1")
		p.stderr.wait(t, `level=INFO msg="config on disk is again what the child runs with" path=`+regexp.QuoteMeta(conf)+`$`, 10*time.Second)
		stop(t, p)
		if got := p.stderr.matching(refusedAtExit(conf)); len(got) > 0 {
			t.Errorf("named as refused after it was undone: %q", got)
		}
		wantStarts(t, p, "v1")
	})
}
