package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Every wait of the harness for something a child does is bounded, and the
// bound scales with what is waited for: how many process starts' worth of
// work it is (10,000 forks, one forwarded signal), times how long one start
// of that kind of child takes on this machine right now (its pace, measured
// just before), times a generous slack. A fixed bound is wrong both ways: on
// a loaded machine 60 s was too short for 10,000 forks (issue 11, item 9),
// and on an idle one it leaves a hang unreported for a minute.
const (
	// paceRuns is how many starts a pace is the median of: enough that
	// one start delayed by a burst of other work does not set the pace.
	paceRuns = 5

	// headroom is added to every bound, in starts: a small wait (one
	// signal, two starts) must still outlast a burst of other work on the
	// machine after its pace was measured. 100 starts are 0.1 to 0.3 s on
	// an idle machine, and grow with the load as the pace does.
	headroom = 100

	// defaultSlack multiplies every bound (-slack). What is counted in
	// starts is often less work than a start (a fork without exec, an
	// exit, a forwarded signal), but the pace is taken at one moment of a
	// load that varies, and under load a fork in a storm of 10,000 was
	// seen to take longer than the start of dash timed just before: ten
	// times should fail only what is stuck, never what is slow.
	defaultSlack = 10
)

// pace is how long one start of a child takes on this machine now: the
// unit of every bound on a wait.
type pace struct {
	child string        // the command timed, for messages
	start time.Duration // median time from fork-exec to exit
	slack float64       // -slack
}

// measurePace times paceRuns runs of argv, each from fork-exec to its exit,
// and returns their median; name is argv as messages show it.
func (b *bench) measurePace(name string, argv ...string) (pace, error) {
	var d []time.Duration
	for range paceRuns {
		t := time.Now()
		// The harness is not an init: os/exec may wait for its child.
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			return pace{}, fmt.Errorf("time a start of %s: %w %s", name, err, strings.TrimSpace(string(out)))
		}
		d = append(d, time.Since(t))
	}
	return pace{child: name, start: median(d), slack: b.slack}, nil
}

// String describes the pace for progress lines.
func (p pace) String() string {
	return fmt.Sprintf("one start of %s takes %s now", p.child, ms(p.start))
}

// deadline bounds one wait. It keeps how its length was derived, so that a
// wait that expires can say what it waited for, how long and why that long.
type deadline struct {
	what   string        // what is waited for, after "waited D for"
	starts int           // starts' worth of work waited for, headroom aside
	fixed  time.Duration // what the awaited thing takes by design (a poll period): not scaled by the pace
	pace   pace
	begin  time.Time
	limit  time.Duration
}

// deadline starts a wait for what, which is starts process starts' worth of
// work plus fixed, a time that the awaited program takes by design (its poll
// period and debounce). That time counts twice: a change can just miss a
// poll, and a timer fires late under load; the starts cover the rest.
func (p pace) deadline(what string, starts int, fixed time.Duration) *deadline {
	limit := time.Duration(float64(p.start)*float64(starts+headroom)*p.slack) + 2*fixed
	return &deadline{what: what, starts: starts, fixed: fixed, pace: p, begin: time.Now(), limit: limit}
}

// at is the instant the wait expires.
func (d *deadline) at() time.Time {
	return d.begin.Add(d.limit)
}

// passed reports whether the wait has expired.
func (d *deadline) passed() bool {
	return time.Since(d.begin) > d.limit
}

// err is the error of an expired wait: what it waited for, how long and why
// that long, and what it saw meanwhile.
func (d *deadline) err(saw string) error {
	fixed := ""
	if d.fixed > 0 {
		fixed = fmt.Sprintf(" + 2 × %s by design", d.fixed)
	}
	return fmt.Errorf("waited %s for %s (bound: (%d + %d headroom) starts × %s, one start of %s now, × slack %g%s): %s",
		time.Since(d.begin).Round(time.Millisecond), d.what, d.starts, headroom, ms(d.pace.start), d.pace.child, d.pace.slack, fixed, saw)
}

// until polls cond every millisecond until it holds or d passes; then saw
// says what there was instead.
func until(d *deadline, cond func() bool, saw func() string) error {
	for !cond() {
		if d.passed() {
			return d.err(saw())
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// expired reports whether err is a read deadline's expiry.
func expired(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// stop ends a process started by the harness: SIGTERM, then SIGKILL if it
// has not exited within a bound of three starts' worth: the init forwards
// the signal, its child exits, the init exits. A process started in a group
// of its own has the group killed too: bench/floor forwards no signal, and
// its child would outlive it.
func (p pace) stop(cmd *exec.Cmd) {
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	cmd.Process.Signal(syscall.SIGTERM)
	d := p.deadline(fmt.Sprintf("%s (pid %d) to exit after SIGTERM", cmd.Path, cmd.Process.Pid), 3, 0)
	select {
	case <-done:
	case <-time.After(d.limit):
		state, err := procState(cmd.Process.Pid)
		if err != nil {
			state = err.Error()
		}
		progress("%v; killing it", d.err("still there, state "+state))
		cmd.Process.Kill()
		<-done
	}
	if a := cmd.SysProcAttr; a != nil && a.Setpgid {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
