package main

import (
	"bufio"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	orphans  = 10000 // orphans released at once
	reapRuns = 5     // runs of each kind per init; the median is reported
)

// stormScript is the init's child in the reap storm. Its subshell starts the
// orphans, each a forked dash blocked reading the harness's pipe, and exits,
// so that they become children of PID 1. The script then waits in sleep: if
// the init's own child exited, the init would exit and the kernel would kill
// the namespace. The harness closes the pipe's only write end to release
// every orphan at once. An asynchronous list reads /dev/null unless told
// otherwise (POSIX), hence the explicit <&3. dash is used for its cheap fork.
const stormScript = `exec 3<&0 </dev/null
echo hello
read go <&3
(
	i=0
	while [ "$i" -lt "$1" ]; do
		read x <&3 &
		i=$((i + 1))
	done
)
echo ready
exec sleep 1000000
`

// reapStorm times, for each init as PID 1 of a new PID namespace, how long
// 10,000 orphans take from their release to the last one reaped; and, with
// the init stopped while they exit, how long it takes to reap the 10,000
// zombies once it continues. The inits take turns, run after run, so that a
// change in the machine's load over the minutes this takes falls on all of
// them alike.
func (b *bench) reapStorm() (section, error) {
	if err := freePids(orphans + 1000); err != nil {
		return section{}, err
	}
	inits := b.peers(true)
	storms := make([][]time.Duration, len(inits))
	backlogs := make([][]time.Duration, len(inits))
	for run := range reapRuns {
		for i, in := range inits {
			// Taken again before each init's turn: the load on the
			// machine changes over the minutes this section takes.
			// A start of dash (fork, exec, exit, wait) is the unit
			// nearest to what the storm does per orphan: a fork,
			// then an exit and a reap.
			p, err := b.measurePace("dash -c :", "/bin/dash", "-c", ":")
			if err != nil {
				return section{}, err
			}
			s, err := storm(in, false, p)
			if err != nil {
				return section{}, fmt.Errorf("%s: %w", in.name, err)
			}
			h, err := storm(in, true, p)
			if err != nil {
				return section{}, fmt.Errorf("%s, stopped: %w", in.name, err)
			}
			progress("run %d of %d, %s: %d orphans reaped %s after their release; %d zombies %s after SIGCONT (%s)",
				run+1, reapRuns, in.name, orphans, ms(s), orphans, ms(h), p)
			storms[i] = append(storms[i], s)
			backlogs[i] = append(backlogs[i], h)
		}
	}

	var md strings.Builder
	fmt.Fprintf(&md, "Each init runs as PID 1 of a new PID namespace (`CLONE_NEWPID`) with the child `dash -c SCRIPT`. Its subshell\n")
	fmt.Fprintf(&md, "forks %d subshells blocked reading a pipe and exits, so that they are orphans of PID 1. The harness closes the\n", orphans)
	fmt.Fprintf(&md, "pipe's only write end and polls `kill(pid, 0)` on each orphan's host pid until every one is gone (a zombie still\n")
	fmt.Fprintf(&md, "answers); then no process of the namespace may be a zombie. *Release → last reaped* is the target's measure; it is\n")
	fmt.Fprintf(&md, "mostly the orphans' own exit on 2 CPUs, hence its spread. *Zombies → last reaped* isolates the init: it is stopped\n")
	fmt.Fprintf(&md, "(SIGSTOP) while the orphans exit, and timed from SIGCONT until the %d zombies are reaped.\n", orphans)
	fmt.Fprintf(&md, "The inits take turns; %d runs of each kind each.\n\n", reapRuns)
	fmt.Fprintf(&md, "| init | release → last reaped: median | min | max | %d zombies → last reaped: median | min | max |\n", orphans)
	fmt.Fprintf(&md, "|---|---|---|---|---|---|---|\n")
	medians, held := map[string]time.Duration{}, map[string]time.Duration{}
	for i, in := range inits {
		s, h := storms[i], backlogs[i]
		medians[in.name] = median(s) // sorts: min first, max last
		held[in.name] = median(h)
		fmt.Fprintf(&md, "| %s | %s | %s | %s | %s | %s | %s |\n", in.name, ms(s[reapRuns/2]), ms(s[0]), ms(s[reapRuns-1]),
			ms(h[reapRuns/2]), ms(h[0]), ms(h[reapRuns-1]))
	}
	m, tini := medians["manager"], medians["tini"]
	return section{md.String(), []verdict{
		{"reap storm, 10,000 orphans ≤ tini's time",
			fmt.Sprintf("%s = %.2f× tini's %s (10,000 zombies alone: %s = %.2f× tini's %s)", ms(m), float64(m)/float64(tini), ms(tini),
				ms(held["manager"]), float64(held["manager"])/float64(held["tini"]), ms(held["tini"])),
			"", m <= tini},
	}}, nil
}

// freePids checks that n more processes fit under kernel.pid_max: zombies
// that something else on the machine left behind would make the orphans'
// forks fail.
func freePids(n int) error {
	data, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		return err
	}
	limit, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return fmt.Errorf("kernel.pid_max: %w", err)
	}
	data, err = os.ReadFile("/proc/loadavg") // fourth field: running/total tasks
	if err != nil {
		return err
	}
	f := strings.Fields(string(data))
	_, total, _ := strings.Cut(f[3], "/")
	used, err := strconv.Atoi(total)
	if err != nil {
		return fmt.Errorf("/proc/loadavg: %q", data)
	}
	if limit-used < n {
		return fmt.Errorf("%d tasks exist and kernel.pid_max is %d: no room for %d orphans", used, limit, n)
	}
	return nil
}

// storm runs one reap storm under in as PID 1 and returns the time from the
// orphans' release to the last one reaped. If stopped, the init is stopped
// while the orphans exit, and the time runs from its SIGCONT instead. Each
// wait is bounded by p: as many starts' worth as there are processes to
// start, or orphans to exit and be reaped.
func storm(in initCmd, stopped bool, p pace) (time.Duration, error) {
	release, hold, err := os.Pipe() // the orphans read release; the harness holds the write end
	if err != nil {
		return 0, err
	}
	defer hold.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer outR.Close()

	cmd := in.command("/bin/dash", "-c", stormScript, "storm", strconv.Itoa(orphans))
	cmd.Stdin, cmd.Stdout = release, outW
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	err = cmd.Start()
	release.Close()
	outW.Close()
	if err != nil {
		return 0, err
	}
	// SIGKILL of a namespace's PID 1 kills everything in the namespace.
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	lines := bufio.NewReader(outR)
	initState := func() string { return in.name + " " + describeProc(cmd.Process.Pid) }

	// Before the storm the namespace holds the init and the script, whose
	// "hello" proves it exists; whatever appears after are the orphans.
	// Two starts: the init's and the script's.
	d := p.deadline(fmt.Sprintf(`"hello" from the script under %s as PID 1`, in.name), 2, 0)
	if err := expect(outR, lines, "hello", d, initState); err != nil {
		return 0, err
	}
	before, err := nsProcs(ns)
	if err != nil {
		return 0, err
	}
	if _, err := hold.WriteString("go\n"); err != nil {
		return 0, err
	}
	// One fork per orphan, and one for the subshell that starts them.
	d = p.deadline(fmt.Sprintf(`"ready" from the script once it has forked %d orphans`, orphans), orphans+1, 0)
	// On a loaded machine the forks alone take minutes: say so as they start and end.
	kind := ""
	if stopped {
		kind = ", stopped while they exit"
	}
	progress("  %s%s: forking %d orphans, for up to %s", in.name, kind, orphans, d.limit.Round(time.Second))
	if err := expect(outR, lines, "ready", d, func() string {
		now, err := nsProcs(ns)
		if err != nil {
			return err.Error()
		}
		return fmt.Sprintf("%d processes in the namespace, %d before the forks; %s", len(now), len(before), initState())
	}); err != nil {
		return 0, err
	}
	after, err := nsProcs(ns)
	if err != nil {
		return 0, err
	}
	var orphaned []int
	for pid := range after {
		if _, ok := before[pid]; !ok {
			orphaned = append(orphaned, pid)
		}
	}
	if len(orphaned) != orphans {
		return 0, fmt.Errorf("%d orphans in the namespace, want %d", len(orphaned), orphans)
	}
	progress("  %s%s: %d orphans forked in %s; releasing them", in.name, kind, orphans, time.Since(d.begin).Round(time.Millisecond))

	if stopped {
		syscall.Kill(cmd.Process.Pid, syscall.SIGSTOP)
		d := p.deadline(fmt.Sprintf("%s to stop on SIGSTOP", in.name), 1, 0)
		if err := until(d, func() bool { s, _ := procState(cmd.Process.Pid); return s == "T" }, initState); err != nil {
			return 0, err
		}
	}
	t0 := time.Now()
	hold.Close()
	// Each orphan exits and is reaped: a start's worth each, at most.
	d = p.deadline(fmt.Sprintf("%d orphans to exit and be reaped by %s", orphans, in.name), orphans, 0)
	if stopped {
		d.what = fmt.Sprintf("%d orphans to exit while %s is stopped", orphans, in.name)
		for i := range orphaned {
			left := func() string { return orphanStates(orphaned[i:]) }
			if err := until(d, func() bool { return hasExited(orphaned[i]) }, left); err != nil {
				return 0, err
			}
		}
		t0 = time.Now()
		syscall.Kill(cmd.Process.Pid, syscall.SIGCONT)
		d = p.deadline(fmt.Sprintf("%s to reap %d zombies after SIGCONT", in.name, orphans), orphans, 0)
	}
	// Checked in order, each pid only until it is gone: a pass costs one
	// kill(2) per orphan newly reaped, which keeps the harness off the CPUs
	// that the init and the exiting orphans need.
	for i := 0; i < len(orphaned); {
		if syscall.Kill(orphaned[i], 0) == syscall.ESRCH {
			i++
			continue
		}
		if d.passed() {
			return 0, d.err(orphanStates(orphaned[i:]) + "; " + initState())
		}
		time.Sleep(100 * time.Microsecond)
	}
	took := time.Since(t0)

	left, err := nsProcs(ns)
	if err != nil {
		return 0, err
	}
	for pid, zombie := range left {
		if zombie {
			return 0, fmt.Errorf("pid %d is a zombie after the storm", pid)
		}
	}
	return took, nil
}

// orphanStates says how many of pids, the orphans not reaped yet, still run
// and how many are zombies: whether a storm that took too long waited for
// the orphans' exit or for the init.
func orphanStates(pids []int) string {
	states := map[string]int{}
	for _, pid := range pids {
		s, err := procState(pid)
		if err != nil {
			s = "gone"
		}
		states[stateName(s)]++
	}
	var counts []string
	for _, s := range slices.Sorted(maps.Keys(states)) {
		counts = append(counts, fmt.Sprintf("%d %s", states[s], s))
	}
	return fmt.Sprintf("%d of %d orphans not reaped yet (%s)", len(pids), orphans, strings.Join(counts, ", "))
}

// describeProc says what state pid is in, for a wait that expired.
func describeProc(pid int) string {
	s, err := procState(pid)
	if err != nil {
		return fmt.Sprintf("(pid %d) has exited", pid)
	}
	return fmt.Sprintf("(pid %d) is %s", pid, stateName(s))
}

// stateName spells out a state letter of /proc/PID/stat.
func stateName(s string) string {
	switch s {
	case "R":
		return "running"
	case "S":
		return "sleeping"
	case "D":
		return "in disk sleep"
	case "T", "t":
		return "stopped"
	case "Z":
		return "zombie"
	case "gone":
		return "gone"
	}
	return "in state " + s
}

// hasExited reports whether pid is a zombie or gone.
func hasExited(pid int) bool {
	state, err := procState(pid)
	return err != nil || state == "Z" || state == "X"
}

// expect reads one line from r, which reads f, and checks that it is want.
// If d passes first, saw says what there was instead.
func expect(f *os.File, r *bufio.Reader, want string, d *deadline, saw func() string) error {
	f.SetReadDeadline(d.at())
	line, err := r.ReadString('\n')
	switch {
	case expired(err) && line == "":
		return d.err("no line yet; " + saw())
	case expired(err):
		return d.err(fmt.Sprintf("%q and no end of line; %s", line, saw()))
	case err != nil:
		return fmt.Errorf("waiting for %q: output ended after %q (%w); %s", want, line, err, saw())
	}
	if got := strings.TrimSpace(line); got != want {
		return fmt.Errorf("child said %q, want %q", got, want)
	}
	return nil
}

// nsProcs lists the processes of the PID namespace ns (a /proc/PID/ns/pid
// link) by their host pids, each mapped to whether it is a zombie.
func nsProcs(ns string) (map[int]bool, error) {
	names, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	procs := map[int]bool{}
	for _, e := range names {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		link, err := os.Readlink("/proc/" + e.Name() + "/ns/pid")
		if err != nil || link != ns {
			continue // gone already, or another namespace
		}
		state, err := procState(pid)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		procs[pid] = state == "Z"
	}
	return procs, nil
}

// procState is the state letter of /proc/PID/stat (R, S, Z, ...).
func procState(pid int) (string, error) {
	f, err := statFields(pid)
	if err != nil {
		return "", err
	}
	return f[0], nil
}

// statFields are the fields of /proc/PID/stat after the command name, which
// may hold spaces: field 3 of proc(5), the state, is element 0.
func statFields(pid int) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	return strings.Fields(s[i+1:]), nil
}
