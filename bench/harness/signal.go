package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	signals      = 1000                   // SIGUSR1 sent per init
	signalRounds = 10                     // the inits take turns, signals/signalRounds at a time
	signalEvery  = time.Millisecond       // from one send to the next
	signalSettle = 200 * time.Millisecond // after "ready", before the first send: not a bound, a pause for the inits' start-up to be over
)

// signalLatency sends SIGUSR1 to each init, 1 ms apart, and times each until
// the child (sigrecv) sees it; the floor is the same child signalled
// directly. Each send waits for the previous signal to arrive, so that two
// SIGUSR1 never merge into one pending signal. All inits run at once and
// take turns, 100 signals at a time, so that a burst of load elsewhere on
// the machine falls on all of them alike.
func (b *bench) signalLatency() (section, error) {
	var md strings.Builder
	fmt.Fprintf(&md, "%d SIGUSR1 sent with `kill(2)` to the init (not PID 1 here), 1 ms apart and each after the previous one arrived,\n", signals)
	fmt.Fprintf(&md, "for the child `harness sigrecv`, which reads them from a signalfd and takes CLOCK_MONOTONIC as its read(2) returns.\n")
	fmt.Fprintf(&md, "Latency is that reading minus the sender's, taken just before `kill(2)`. *direct* signals the child itself: the\n")
	fmt.Fprintf(&md, "floor without an init. *Go floor* is bench/forward, a Go init that only subscribes to every signal with\n")
	fmt.Fprintf(&md, "`signal.Notify`, forwards with `kill(2)` and reaps: the least that os/signal's handler, goroutine and channel add.\n")
	fmt.Fprintf(&md, "All run at once and take turns, %d signals at a time.\n\n", signals/signalRounds)
	fmt.Fprintf(&md, "| init | p50 | p99 | max |\n|---|---|---|---|\n")

	inits := append([]initCmd{
		{"direct (floor)", nil, false},
		{"Go floor: os/signal forwarder (bench/forward)", []string{b.forward}, false},
	}, b.peers(false)...)
	targets := make([]*sigTarget, len(inits))
	defer func() {
		for _, t := range targets {
			if t != nil {
				t.close()
			}
		}
	}()
	for i, in := range inits {
		t, err := startSigTarget(in.name, in.command(b.self, "sigrecv"), b.pace)
		if err != nil {
			return section{}, fmt.Errorf("%s: %w", in.name, err)
		}
		targets[i] = t
	}
	time.Sleep(signalSettle)
	for round := range signalRounds {
		progress("round %d of %d: %d signals to each of %d targets", round+1, signalRounds, signals/signalRounds, len(targets))
		for i, t := range targets {
			if err := t.send(signals / signalRounds); err != nil {
				return section{}, fmt.Errorf("%s: %w", inits[i].name, err)
			}
		}
	}

	type result struct{ p50, p99 time.Duration }
	res := map[string]result{}
	for i, t := range targets {
		lat := t.lat
		r := result{percentile(lat, 50), percentile(lat, 99)} // sorts lat
		res[inits[i].name] = r
		progress("%s: p50 %s, p99 %s", inits[i].name, us(r.p50), us(r.p99))
		fmt.Fprintf(&md, "| %s | %s | %s | %s |\n", inits[i].name, us(r.p50), us(r.p99), us(lat[len(lat)-1]))
	}
	m, tini, gofloor := res["manager"], res["tini"], res["Go floor: os/signal forwarder (bench/forward)"]
	fmt.Fprintf(&md, "\nmanager − Go floor: p50 %+.0f µs, p99 %+.0f µs; Go floor − tini: p50 %+.0f µs.\n",
		float64(m.p50-gofloor.p50)/1e3, float64(m.p99-gofloor.p99)/1e3, float64(gofloor.p50-tini.p50)/1e3)
	return section{md.String(), []verdict{
		{"signal latency p50 ≤ tini's + 30 µs",
			fmt.Sprintf("%s = tini's %s %+.0f µs", us(m.p50), us(tini.p50), float64(m.p50-tini.p50)/1e3),
			fmt.Sprintf("%s = tini's %+.0f µs (bench/forward)", us(gofloor.p50), float64(gofloor.p50-tini.p50)/1e3),
			m.p50 <= tini.p50+30*time.Microsecond},
		{"signal latency p99 ≤ 250 µs", us(m.p99), us(gofloor.p99) + " (bench/forward)", m.p99 <= 250*time.Microsecond},
	}}, nil
}

// sigTarget is a running init (or the bare child) being signalled.
type sigTarget struct {
	name  string
	cmd   *exec.Cmd
	out   *os.File      // the child's standard output
	lines *bufio.Reader // on out
	lat   []time.Duration
	pace  pace
}

// startSigTarget starts cmd, the init called name, and waits for its child
// to be ready: three starts' worth, the init's, sigrecv's and its
// re-execution as sigfd.
func startSigTarget(name string, cmd *exec.Cmd, p pace) (*sigTarget, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = outW
	err = cmd.Start()
	outW.Close()
	if err != nil {
		outR.Close()
		return nil, err
	}
	t := &sigTarget{name: name, cmd: cmd, out: outR, lines: bufio.NewReader(outR), pace: p}
	d := p.deadline(fmt.Sprintf(`"ready" from harness sigrecv under %s`, name), 3, 0)
	if err := expect(outR, t.lines, "ready", d, func() string { return name + " " + describeProc(cmd.Process.Pid) }); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// send sends n signals, 1 ms apart, to the target's process: the init, as a
// container runtime would signal it, or for the floor the child itself.
// Each is bounded by one start's worth: a forward is less work than a start,
// and a signal not seen by then is lost.
func (t *sigTarget) send(n int) error {
	next := time.Now()
	for range n {
		time.Sleep(time.Until(next))
		next = time.Now().Add(signalEvery)
		sent := mono()
		if err := syscall.Kill(t.cmd.Process.Pid, syscall.SIGUSR1); err != nil {
			return err
		}
		// No message is formatted unless the wait expires: the next
		// signal is due in a millisecond.
		d := t.pace.deadline("a SIGUSR1 to reach the child", 1, 0)
		t.out.SetReadDeadline(d.at())
		line, err := t.lines.ReadString('\n')
		if expired(err) {
			return d.err(fmt.Sprintf("signal %d of %d: the child printed %q; %s %s",
				len(t.lat)+1, signals, line, t.name, describeProc(t.cmd.Process.Pid)))
		}
		if err != nil {
			return fmt.Errorf("signal %d: %w", len(t.lat)+1, err)
		}
		got, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
		if err != nil {
			return fmt.Errorf("signal %d: child said %q", len(t.lat)+1, line)
		}
		t.lat = append(t.lat, time.Duration(got-sent))
	}
	return nil
}

// close stops the target.
func (t *sigTarget) close() {
	t.pace.stop(t.cmd)
	t.out.Close()
}
