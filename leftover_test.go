package main

// Integration tests of what manager waits for and signals once its child
// is gone: processes that entered its PID namespace from outside (docker
// exec), and a process group number that an unrelated process took again.
// Both run manager in a PID namespace with its own /proc, as a container
// runtime does.

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestExecdShellDoesNotHoldStop proves that manager, PID 1 of a container,
// stops at once while a shell that entered the container from outside
// (docker exec, kubectl exec; here nsenter) ignores SIGTERM: the shell
// gets the stop signal but is not waited for, PID 1's exit ends it. A
// leftover of the program's own that ignores SIGTERM is still waited for,
// the whole grace period, and the log names it by pid and command name.
func TestExecdShellDoesNotHoldStop(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	t.Run("a shell entered from outside", func(t *testing.T) {
		t.Parallel()
		p, _ := startInNamespace(t, true, "-config=", "-grace", "30s", "--", helper, "signals")
		readyPid(t, p)
		shell, job := enterShell(t, p.pid(), helper)
		sent := time.Now()
		p.signal(syscall.SIGTERM)
		code := p.wait(20 * time.Second)
		if took := time.Since(sent); took > 10*time.Second {
			t.Errorf("manager exited %v after SIGTERM, with -grace 30s: it waited for the exec'd shell", took.Round(time.Millisecond))
		}
		if code != 0 {
			t.Errorf("exit code %d, want the child's 0", code)
		}
		p.stderr.wait(t, fmt.Sprintf(`msg="stopping leftover processes" pid=-1 signal=SIGTERM outside="bash\[%d\] helper\[%d\]"$`, shell, job), time.Second)
	})
	t.Run("the program's own leftover beside it", func(t *testing.T) {
		t.Parallel()
		p, _ := startInNamespace(t, true, "-config=", "-grace", "2s", "--",
			"/bin/sh", "-c", `"$0" ignore-term & exec "$0" signals`, helper)
		readies := p.stdout.waitN(t, 2, `^ready pid=\d+$`, 10*time.Second)
		child := p.childPid(1)
		left := 0
		for _, r := range readies {
			if pid, _ := strconv.Atoi(strings.TrimPrefix(r, "ready pid=")); pid != child {
				left = pid
			}
		}
		shell, job := enterShell(t, p.pid(), helper)
		sent := time.Now()
		p.signal(syscall.SIGTERM)
		code := p.wait(20 * time.Second)
		if took := time.Since(sent); took < 2*time.Second {
			t.Errorf("manager exited %v after SIGTERM, before the 2s grace ended: the program's leftover was not waited for", took.Round(time.Millisecond))
		}
		if code != 0 {
			t.Errorf("exit code %d, want the child's 0", code)
		}
		p.stderr.wait(t, fmt.Sprintf(`level=INFO msg="stopping leftover processes" pid=-1 signal=SIGTERM leftovers=helper\[%d\] outside="bash\[%d\] helper\[%d\]"$`,
			left, shell, job), time.Second)
		p.stderr.wait(t, fmt.Sprintf(`level=WARN msg="grace period over; killing" pid=-1 grace=2s leftovers=helper\[%d\]$`, left), time.Second)
	})
}

// TestReusedGroupNumberLeftAlone proves that once the exited child's
// process group is gone, manager forgets its number: an unrelated process
// that leads a group with that number during the -restart backoff (pids
// wrap; a container's count from 1) neither holds the restart back nor gets
// a signal, forwarded with -group or sent at shutdown.
func TestReusedGroupNumberLeftAlone(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	for _, pid1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("the restart, pid1=%v", pid1), func(t *testing.T) {
			t.Parallel()
			p, mgr := startInNamespace(t, pid1, "-config=", "-group", "-restart", "on-failure", "-log-level", "debug", "--", helper, "signals")
			squatter, crashes := squatGroup(t, p, mgr, helper)
			syscall.Kill(mgr, syscall.SIGUSR1) // with -group, to the old group's number
			syscall.Kill(mgr, syscall.SIGCONT) // forwarded too
			next := p.childPid(crashes + 1)
			p.stdout.wait(t, fmt.Sprintf(`^ready pid=%d$`, next), 10*time.Second)
			neverSignalled(t, squatter, p.pid())
			syscall.Kill(mgr, syscall.SIGTERM)
			if code := managerExit(t, p, pid1); code != 0 {
				t.Errorf("exit code %d, want the restarted child's 0", code)
			}
		})
	}
	t.Run("shutdown during the backoff, not PID 1", func(t *testing.T) {
		t.Parallel()
		p, mgr := startInNamespace(t, false, "-config=", "-group", "-grace", "1s", "-restart", "on-failure", "-log-level", "debug", "--", helper, "signals")
		squatter, _ := squatGroup(t, p, mgr, helper)
		syscall.Kill(mgr, syscall.SIGTERM)
		syscall.Kill(mgr, syscall.SIGCONT)
		if code := managerExit(t, p, false); code != 137 {
			t.Errorf("exit code %d, want the last child's 137", code)
		}
		neverSignalled(t, squatter, p.pid())
	})
}

// startInNamespace runs manager with args in a new PID namespace with its
// own /proc, mounted in a private mount namespace that the machine's does
// not see, as a container runtime does: as PID 1 (pid1), or else as the
// child of a shell that is PID 1 there and outlives manager, so that what
// remains in the namespace can be examined. It returns manager's pid, as
// the test sees it.
func startInNamespace(t *testing.T, pid1 bool, args ...string) (*proc, int) {
	t.Helper()
	if os.Getuid() != 0 {
		skipTest(t, "mounting a /proc for a new PID namespace needs root; this test runs as uid %d", os.Getuid())
	}
	o := runOpts{pid1: true, shell: "mount --make-rprivate / && mount -t proc proc /proc",
		attr: func(a *syscall.SysProcAttr) { a.Cloneflags |= syscall.CLONE_NEWNS }}
	if !pid1 {
		// The shell waits for manager, says how it ended, then for its
		// input to end, which the test's cleanup does. What startManager
		// adds after this snippet, the exec of manager, is a comment.
		o.shell += ` && { "$@"; echo "manager exited code=$?" >&2; read line; exit 0; } #`
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(); w.Close() })
		o.stdin = r
	}
	p := startManager(t, o, args...)
	if pid1 {
		return p, p.pid()
	}
	p.stderr.wait(t, `msg="not PID 1: reaping orphans as a child subreaper"`, 10*time.Second)
	kids := childrenOf(p.pid())
	if len(kids) != 1 {
		t.Fatalf("the namespace's PID 1 has children %v, want manager alone", kids)
	}
	return p, kids[0]
}

// managerExit waits for manager started by startInNamespace to exit and
// returns its exit code.
func managerExit(t *testing.T, p *proc, pid1 bool) int {
	t.Helper()
	if pid1 {
		return p.wait(10 * time.Second)
	}
	code, _ := strconv.Atoi(p.stderr.wait(t, `^manager exited code=(\d+)$`, 10*time.Second)[1])
	return code
}

// enterNamespace runs args in the PID and mount namespaces of pid as docker
// exec does, through setns(2): the process that enters has its parent
// outside, PPID 0 inside.
func enterNamespace(t *testing.T, pid int, args ...string) *watchedCmd {
	t.Helper()
	nsenter := requireTool(t, "nsenter", "processes that enter a PID namespace from outside")
	cmd := exec.Command(nsenter, append([]string{"--target", strconv.Itoa(pid), "--pid", "--mount", "--"}, args...)...)
	cmd.Env = append(os.Environ(), "FLUSH_HELPER=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c := startCmd(t, cmd, nil)
	t.Cleanup(func() {
		if !c.exited() {
			cmd.Process.Kill() // what it started dies with the namespace
			<-c.done
		}
	})
	return c
}

// enterShell enters pid's namespaces with a shell that ignores SIGTERM, as
// an interactive bash does, running a job that ignores it too, and returns
// both their pids inside the namespace.
func enterShell(t *testing.T, pid int, helper string) (shell, job int) {
	t.Helper()
	c := enterNamespace(t, pid, "/bin/bash", "-c", `echo "shell pid=$$"; trap "" TERM; "$0" ignore-term; :`, helper)
	shell, _ = strconv.Atoi(c.stdout.wait(t, `^shell pid=(\d+)$`, 10*time.Second)[1])
	job, _ = strconv.Atoi(c.stdout.wait(t, `^ready pid=(\d+)$`, 10*time.Second)[1])
	return shell, job
}

// squatGroup makes manager's child crash (SIGKILL) and, during the
// -restart backoff, starts an unrelated process that leads a process group
// numbered as the child's was: the helper "signals", reporting every
// signal it gets. To place it deterministically, manager is first seen
// done with the exit (the loop handles one event at a time: a signal sent
// after the exit was logged is handled after it), then frozen with SIGSTOP
// for the rest of the backoff, and the process is given that pid by
// writing the one before it to the namespace's ns_last_pid (proc(5)). It
// returns the process and how many children crashed: should a slow machine
// let the backoff end before manager is frozen, the next child crashes,
// after a backoff twice as long.
func squatGroup(t *testing.T, p *proc, mgr int, helper string) (*watchedCmd, int) {
	t.Helper()
	for crashes := 1; ; crashes++ {
		child := p.childPid(crashes)
		p.stdout.wait(t, fmt.Sprintf(`^ready pid=%d$`, child), 10*time.Second)
		syscall.Kill(nsHostPid(t, mgr, child), syscall.SIGKILL)
		p.stderr.wait(t, fmt.Sprintf(`msg="child exited; restarting" pid=%d `, child), 10*time.Second)
		syscall.Kill(mgr, syscall.SIGUSR1)
		p.stderr.waitN(t, crashes, `level=DEBUG msg="signal [^"]*" signal=SIGUSR1`, 10*time.Second)
		syscall.Kill(mgr, syscall.SIGSTOP)
		eventually(t, 10*time.Second, func() error { return allStopped(mgr) })
		if len(childrenOf(mgr)) == 0 { // no new child yet: frozen during the backoff
			c := enterNamespace(t, mgr, "/bin/sh", "-c",
				`echo $(($1 - 1)) > /proc/sys/kernel/ns_last_pid || exit 1
				setsid "$0" signals &
				wait`, helper, strconv.Itoa(child))
			got := c.stdout.wait(t, `^ready pid=(\d+)$`, 10*time.Second)[1]
			if got != strconv.Itoa(child) {
				t.Fatalf("the unrelated process got pid %s, want %d (the exited child's group): ns_last_pid did not place it", got, child)
			}
			return c, crashes
		}
		syscall.Kill(mgr, syscall.SIGCONT)
		if crashes == 4 {
			t.Fatalf("the -restart backoff ended before manager was frozen, four times in a row; log:\n%s", p.stderr)
		}
	}
}

// neverSignalled checks that c, the helper "signals" running in pid's
// namespace, got no signal: a marker signal, sent last, arrives after any
// earlier one, which would be reported before it.
func neverSignalled(t *testing.T, c *watchedCmd, pid int) {
	t.Helper()
	if got := c.stdout.matching(`^got `); len(got) > 0 {
		t.Fatalf("the unrelated process leading a group numbered as the old child's was signalled: %q", got)
	}
	nsPid, _ := strconv.Atoi(c.stdout.wait(t, `^ready pid=(\d+)$`, time.Second)[1])
	syscall.Kill(nsHostPid(t, pid, nsPid), syscall.SIGUSR2)
	c.stdout.wait(t, `^got SIGUSR2 `, 5*time.Second)
	if got := c.stdout.matching(`^got `); len(got) != 1 {
		t.Errorf("the unrelated process leading a group numbered as the old child's was signalled: %q", got)
	}
}

// nsHostPid returns the pid, as the test sees it, of the process numbered
// nsPid in the PID namespace of pid.
func nsHostPid(t *testing.T, pid, nsPid int) int {
	t.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if l, err := os.Readlink("/proc/" + e.Name() + "/ns/pid"); err != nil || l != ns {
			continue
		}
		ids := strings.Fields(statusField(e.Name(), "NSpid"))
		if len(ids) > 0 && ids[len(ids)-1] == strconv.Itoa(nsPid) {
			n, _ := strconv.Atoi(e.Name())
			return n
		}
	}
	t.Fatalf("no process %d in the PID namespace of %d: it has exited", nsPid, pid)
	return 0
}

// allStopped reports, as an error, a thread of pid that has not stopped.
func allStopped(pid int) error {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return err
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return err
		}
		s := string(b)
		if state := regexp.MustCompile(`^ (\S)`).FindStringSubmatch(s[strings.LastIndexByte(s, ')')+1:]); state == nil || state[1] != "T" {
			return fmt.Errorf("thread %s of manager %d is not stopped: %q", task.Name(), pid, s)
		}
	}
	return nil
}
