package main

// Tests of change detection: fingerprints of real files before and after
// real changes, content hashes, and the debouncer fed real snapshots at
// fake times.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fsOp changes the files of a test directory.
type fsOp func(tb testing.TB, dir string)

func write(name, content string) fsOp {
	return func(tb testing.TB, dir string) { writeFile(tb, filepath.Join(dir, name), content) }
}

func remove(name string) fsOp {
	return func(tb testing.TB, dir string) {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			tb.Fatal(err)
		}
	}
}

// renameInto writes content to a hidden temporary file and renames it over
// name, as editors and atomic writers do.
func renameInto(name, content string) fsOp {
	return func(tb testing.TB, dir string) {
		tmp := filepath.Join(dir, "."+name+".tmp")
		writeFile(tb, tmp, content)
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			tb.Fatal(err)
		}
	}
}

// fifo makes a named pipe: opening it to read would block without a writer.
func fifo(name string) fsOp {
	return func(tb testing.TB, dir string) {
		if err := syscall.Mkfifo(filepath.Join(dir, name), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// touch sets the modification time of name one hour ahead.
func touch(name string) fsOp {
	return func(tb testing.TB, dir string) {
		t := time.Now().Add(time.Hour)
		if err := os.Chtimes(filepath.Join(dir, name), t, t); err != nil {
			tb.Fatal(err)
		}
	}
}

// chmod changes only the inode's ctime (and mode bits nobody hashes).
func chmod(name string) fsOp {
	return func(tb testing.TB, dir string) {
		if err := os.Chmod(filepath.Join(dir, name), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
}

// configMap lays out a directory the way the kubelet's atomic writer does:
// a timestamped directory with the data, a "..data" symlink to it, and each
// key a symlink through "..data". Each call is one update: a new timestamped
// directory, "..data_tmp" renamed over "..data" (rename(2), atomic), then the
// old directory removed.
func configMap(files map[string]string) fsOp {
	return func(tb testing.TB, dir string) {
		tb.Helper()
		stamp := fmt.Sprintf("..%s.%d", time.Now().UTC().Format("2006_01_02_15_04_05"), time.Now().UnixNano())
		if err := os.Mkdir(filepath.Join(dir, stamp), 0o755); err != nil {
			tb.Fatal(err)
		}
		for name, content := range files {
			writeFile(tb, filepath.Join(dir, stamp, name), content)
		}
		old, _ := os.Readlink(filepath.Join(dir, "..data"))
		if err := os.Symlink(stamp, filepath.Join(dir, "..data_tmp")); err != nil {
			tb.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			tb.Fatal(err)
		}
		for name := range files {
			link := filepath.Join(dir, name)
			if _, err := os.Lstat(link); err != nil {
				if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
					tb.Fatal(err)
				}
			}
		}
		if old != "" {
			if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

// TestChangeDetection proves, on real files, directories and ConfigMaps,
// that any write, touch, chmod, swap or removal changes the fingerprint,
// only new bytes or entries added or removed the content; that a removal is
// seen as vanished, a FIFO hashed without blocking, a swap file ignored.
func TestChangeDetection(t *testing.T) {
	tests := []struct {
		name      string
		watch     string // relative to the test directory; "" is the directory
		setup     []fsOp
		change    []fsOp
		candidate bool // the stat fingerprints differ
		changed   bool // the content hashes differ
		vanished  bool
	}{
		{name: "none", watch: "app.conf", setup: []fsOp{write("app.conf", "a")}},
		{name: "mtime only", watch: "app.conf", setup: []fsOp{write("app.conf", "a")}, change: []fsOp{touch("app.conf")}, candidate: true},
		{name: "ctime only", watch: "app.conf", setup: []fsOp{write("app.conf", "a")}, change: []fsOp{chmod("app.conf")}, candidate: true},
		{name: "size", watch: "app.conf", setup: []fsOp{write("app.conf", "a")}, change: []fsOp{write("app.conf", "ab")}, candidate: true, changed: true},
		{name: "same size, new bytes", watch: "app.conf", setup: []fsOp{write("app.conf", "a")}, change: []fsOp{write("app.conf", "b"), touch("app.conf")}, candidate: true, changed: true},
		{name: "inode swap, same bytes", watch: "app.conf", setup: []fsOp{write("app.conf", "a")}, change: []fsOp{renameInto("app.conf", "a")}, candidate: true},
		{name: "inode swap, new bytes", watch: "app.conf", setup: []fsOp{write("app.conf", "a")}, change: []fsOp{renameInto("app.conf", "b")}, candidate: true, changed: true},
		{name: "appear", watch: "app.conf", change: []fsOp{write("app.conf", "a")}, candidate: true, changed: true},
		{name: "vanish", watch: "app.conf", setup: []fsOp{write("app.conf", "a")}, change: []fsOp{remove("app.conf")}, candidate: true, vanished: true},
		{name: "vanish and reappear, same bytes", watch: "app.conf", setup: []fsOp{write("app.conf", "a")}, change: []fsOp{remove("app.conf"), write("app.conf", "a")}, candidate: true},
		{name: "vanish and reappear, new bytes", watch: "app.conf", setup: []fsOp{write("app.conf", "a")}, change: []fsOp{remove("app.conf"), write("app.conf", "b")}, candidate: true, changed: true},
		{name: "dir: entry added", setup: []fsOp{write("a.conf", "a")}, change: []fsOp{write("b.conf", "b")}, candidate: true, changed: true},
		{name: "dir: entry removed", setup: []fsOp{write("a.conf", "a"), write("b.conf", "b")}, change: []fsOp{remove("b.conf")}, candidate: true, changed: true},
		{name: "dir: entry changed", setup: []fsOp{write("a.conf", "a")}, change: []fsOp{write("a.conf", "b")}, candidate: true, changed: true},
		{name: "dir: entry touched", setup: []fsOp{write("a.conf", "a")}, change: []fsOp{touch("a.conf")}, candidate: true},
		{name: "dir: FIFO added, never opened to block", setup: []fsOp{write("a.conf", "a")}, change: []fsOp{fifo("pipe")}, candidate: true, changed: true},
		{name: "dir: swap file ignored", setup: []fsOp{write("a.conf", "a")}, change: []fsOp{write(".a.conf.swp", "x")}},
		{name: "configmap file: new bytes", watch: "app.conf", setup: []fsOp{configMap(map[string]string{"app.conf": "a"})}, change: []fsOp{configMap(map[string]string{"app.conf": "b"})}, candidate: true, changed: true},
		{name: "configmap file: same bytes", watch: "app.conf", setup: []fsOp{configMap(map[string]string{"app.conf": "a"})}, change: []fsOp{configMap(map[string]string{"app.conf": "a"})}, candidate: true},
		{name: "configmap dir: new bytes", setup: []fsOp{configMap(map[string]string{"app.conf": "a"})}, change: []fsOp{configMap(map[string]string{"app.conf": "b"})}, candidate: true, changed: true},
		{name: "configmap dir: same bytes", setup: []fsOp{configMap(map[string]string{"app.conf": "a"})}, change: []fsOp{configMap(map[string]string{"app.conf": "a"})}, candidate: true},
		{name: "configmap dir: key added", setup: []fsOp{configMap(map[string]string{"app.conf": "a"})}, change: []fsOp{configMap(map[string]string{"app.conf": "a", "b.conf": "b"})}, candidate: true, changed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, paths := watchedDir(t, tc.watch, tc.setup)
			// A change must land in a later tick of the kernel's coarse
			// clock than the setup, or "ctime only" sees no difference on
			// kernels without fine-grained timestamps.
			for _, p := range paths {
				waitNotRacy(t, p)
			}
			content := mustContents(t, paths)
			before := snapshot(osFS{}, paths)
			for _, op := range tc.change {
				op(t, dir)
			}
			after := snapshot(osFS{}, paths)
			if got := !slices.Equal(before, after); got != tc.candidate {
				t.Errorf("fingerprints differ = %v, want %v\nbefore %v\nafter  %v", got, tc.candidate, before, after)
			}
			changed, _ := changedPaths(paths, content, mustContents(t, paths))
			if got := len(changed) > 0; got != tc.changed {
				t.Errorf("content changed = %v (%q), want %v", got, changed, tc.changed)
			}
			if got := len(vanished(paths, before, after)) > 0; got != tc.vanished {
				t.Errorf("vanished = %v, want %v", got, tc.vanished)
			}
		})
	}
}

// TestRacyFingerprint proves that a file whose last change is within the
// racy window is fingerprinted as racy, its times too recent to show a next
// write, and that with a window already past, or no window, it is not.
func TestRacyFingerprint(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "app.conf")
	writeFile(t, conf, "a")
	fsys := osFS{racyWindow: time.Hour}
	if fp, err := fsys.stat(conf); err != nil || !fp.racy {
		t.Errorf("stat of a file written just now = %+v, %v; want racy", fp, err)
	}
	// A negative window ends before now: nothing can be that recent.
	if fp, err := (osFS{racyWindow: -time.Second}).stat(conf); err != nil || fp.racy {
		t.Errorf("stat with a window in the past = %+v, %v; want not racy", fp, err)
	}
	if fp, err := (osFS{}).stat(conf); err != nil || fp.racy {
		t.Errorf("stat with no window = %+v, %v; want not racy", fp, err)
	}
}

// watchedDir makes a directory set up by ops, and returns it and the paths
// to watch: watch in it, or the directory itself when watch is "".
func watchedDir(t *testing.T, watch string, ops []fsOp) (dir string, paths []string) {
	t.Helper()
	dir = t.TempDir()
	paths = []string{filepath.Join(dir, watch)}
	if watch == "" {
		paths = []string{dir}
	}
	for _, op := range ops {
		op(t, dir)
	}
	return dir, paths
}

// timedOp is an fsOp at a moment of a debounce sequence.
type timedOp struct {
	at time.Duration
	op fsOp
}

// every repeats op n times, gap apart, from start.
func every(start, gap time.Duration, n int, op func(i int) fsOp) []timedOp {
	var out []timedOp
	for i := 0; i < n; i++ {
		out = append(out, timedOp{start + time.Duration(i)*gap, op(i)})
	}
	return out
}

// TestDebounce proves that a change is reported settled once the watched
// paths stayed unchanged for the quiet period after the last write: once
// for one write, a burst, a slow writer, a rename, a ConfigMap swap or a
// vanish and return; twice for two changes far apart; never for none.
func TestDebounce(t *testing.T) {
	const poll, quiet = 100 * time.Millisecond, 500 * time.Millisecond
	tests := []struct {
		name  string
		watch string
		setup []fsOp
		ops   []timedOp
		want  int // settled changes
	}{
		{name: "quiet", watch: "app.conf", setup: []fsOp{write("app.conf", "a")}},
		{name: "one write", watch: "app.conf", setup: []fsOp{write("app.conf", "a")},
			ops: []timedOp{{1 * time.Second, write("app.conf", "b")}}, want: 1},
		{name: "burst: 50 writes in 2s", watch: "app.conf", setup: []fsOp{write("app.conf", "a")},
			ops: every(time.Second, 40*time.Millisecond, 50, func(i int) fsOp { return write("app.conf", strings.Repeat("x", i+1)) }), want: 1},
		{name: "slow writer: every 300ms for 3s", watch: "app.conf", setup: []fsOp{write("app.conf", "")},
			ops: every(time.Second, 300*time.Millisecond, 10, func(i int) fsOp { return write("app.conf", strings.Repeat("line\n", i+1)) }), want: 1},
		{name: "rename into place", watch: "app.conf", setup: []fsOp{write("app.conf", "a")},
			ops: []timedOp{{time.Second, renameInto("app.conf", "b")}}, want: 1},
		{name: "configmap swap, file", watch: "app.conf", setup: []fsOp{configMap(map[string]string{"app.conf": "a"})},
			ops: []timedOp{{time.Second, configMap(map[string]string{"app.conf": "b"})}}, want: 1},
		{name: "configmap swap, dir", setup: []fsOp{configMap(map[string]string{"app.conf": "a", "b.conf": "b"})},
			ops: []timedOp{{time.Second, configMap(map[string]string{"app.conf": "b", "b.conf": "c"})}}, want: 1},
		{name: "vanish then reappear", watch: "app.conf", setup: []fsOp{write("app.conf", "a")},
			ops: []timedOp{{time.Second, remove("app.conf")}, {1300 * time.Millisecond, write("app.conf", "b")}}, want: 1},
		{name: "two changes far apart", watch: "app.conf", setup: []fsOp{write("app.conf", "a")},
			ops: []timedOp{{time.Second, write("app.conf", "b")}, {3 * time.Second, write("app.conf", "cc")}}, want: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, paths := watchedDir(t, tc.watch, tc.setup)
			clock := newFakeClock()
			start := clock.now
			d := newDebouncer(quiet, snapshot(osFS{}, paths))
			var settled []time.Duration
			ops := tc.ops
			for at := poll; at <= 6*time.Second; at += poll {
				clock.now = start.Add(at)
				for len(ops) > 0 && ops[0].at <= at {
					ops[0].op(t, dir)
					ops = ops[1:]
				}
				snap := snapshot(osFS{}, paths)
				if d.observe(clock.now, snap, changedStamps(d.last, snap)).settled {
					settled = append(settled, at)
				}
			}
			if len(settled) != tc.want {
				t.Fatalf("settled at %v, want %d times", settled, tc.want)
			}
			if tc.want > 0 {
				last := tc.ops[len(tc.ops)-1].at
				if got := settled[len(settled)-1]; got < last+quiet {
					t.Errorf("settled at %v, before the last write at %v plus the quiet %v", got, last, quiet)
				}
			}
		})
	}
}

// TestHugeDirectoryDoesNotStallLoop proves that a watched directory of
// 50,000 entries delays no forwarded signal (its entries are looked at
// beside the loop), costs little CPU while it does not change (a bounded
// number of entries per poll), and still has a file renamed into it and a
// write in place into one of its entries acted on.
func TestHugeDirectoryDoesNotStallLoop(t *testing.T) {
	integration(t)
	_, helper := binaries(t)
	dir := t.TempDir()
	const entries = 50000
	for i := range entries {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("f%05d", i)))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	waitNotRacy(t, dir)
	p := startManager(t, runOpts{}, "-config", dir, "-poll", "100ms", "-debounce", "0s", "-log-level", "debug", "--", helper, "signals")
	readyPid(t, p)
	p.stderr.wait(t, `msg="config hashed" purpose=baseline`, time.Minute)

	// The same manager watching one small file gives what forwarding
	// costs on this machine now, busy or not.
	small := filepath.Join(t.TempDir(), "app.conf")
	writeFile(t, small, "v1")
	q := startManager(t, runOpts{}, "-config", small, "-poll", "100ms", "--", helper, "signals")
	readyPid(t, q)
	base := forwardLatency(t, q)
	q.signal(syscall.SIGTERM)
	q.wait(30 * time.Second)
	lat := forwardLatency(t, p)
	t.Logf("SIGUSR1 forwarded in %v (median) watching %d entries at -poll 100ms, %v watching one file", lat, entries, base)
	if limit := 50*time.Millisecond + 10*base; lat > limit {
		t.Errorf("median forwarding latency %v, over %v: the loop waits for the directory", lat, limit)
	}

	before := cpuTicks(t, p.pid())
	start := time.Now()
	time.Sleep(3 * time.Second) // the span CPU is measured over, 30 polls; no condition to wait for
	ticks := cpuTicks(t, p.pid()) - before
	share := float64(ticks) / 100 / time.Since(start).Seconds()
	t.Logf("CPU while the directory does not change: %d ticks over %v (%.1f%% of a core)", ticks, time.Since(start).Round(time.Millisecond), 100*share)
	if share > 0.2 {
		t.Errorf("manager took %.0f%% of a core watching an unchanged directory", 100*share)
	}

	tmp := filepath.Join(dir, ".new")
	writeFile(t, tmp, "renamed in")
	if err := os.Rename(tmp, filepath.Join(dir, "zz.conf")); err != nil {
		t.Fatal(err)
	}
	p.stderr.wait(t, `msg="config changed" path=`+regexp.QuoteMeta(filepath.Join(dir, "zz.conf"))+`$`, 30*time.Second)
	writeFile(t, filepath.Join(dir, "f49999"), "written in place")
	// Its turn comes within entries/entriesPerLook polls.
	p.stderr.wait(t, `msg="config changed" path=`+regexp.QuoteMeta(filepath.Join(dir, "f49999"))+`$`, time.Minute)
	p.signal(syscall.SIGTERM)
	p.wait(30 * time.Second)
}

// cpuTicks is the CPU time pid has used, user and system, in clock ticks.
func cpuTicks(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s
}

// TestLookIsBounded proves the looks at a large directory: nothing made
// anew while nothing changes, entriesPerLook entries stat'ed per look, in
// turn, and the whole directory listed and stat'ed again once it changed.
func TestLookIsBounded(t *testing.T) {
	dir := t.TempDir()
	n := 2*entriesPerLook + 500
	for i := range n {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("f%05d", i)), "x")
	}
	waitNotRacy(t, dir)
	paths := []string{dir}
	r := pollNow(osFS{}, pollJob{paths: paths})
	if len(r.snap) != n+1 {
		t.Fatalf("first look: %d stamps, want %d", len(r.snap), n+1)
	}
	look := func() pollResult {
		t.Helper()
		next := pollNow(osFS{}, pollJob{paths: paths, prev: r.snap, dirs: r.dirs})
		r = next
		return next
	}
	if prev := r.snap; look().changed != nil || &r.snap[0] != &prev[0] {
		t.Errorf("a look at an unchanged directory made a new snapshot (%d changed)", len(r.changed))
	}
	// The next look covers entries 1000 to 1999, the one after 2000 to 2499
	// and, in turn again, 0 to 499.
	writeFile(t, filepath.Join(dir, "f00010"), "yy")
	if got := look().changed; got != nil {
		t.Errorf("a look outside f00010's turn saw %q", got)
	}
	if got := look().changed; !slices.Equal(got, []string{filepath.Join(dir, "f00010")}) {
		t.Errorf("the look at f00010's turn saw %q, want it", got)
	}
	writeFile(t, filepath.Join(dir, "f02400"), "yy")
	writeFile(t, filepath.Join(dir, "new"), "z") // the directory changes: all of it is looked at
	got := look().changed
	slices.Sort(got)
	if want := []string{dir, filepath.Join(dir, "f02400"), filepath.Join(dir, "new")}; !slices.Equal(got, want) {
		t.Errorf("the look after an entry was added saw %q, want %q", got, want)
	}
}

// forwardLatency sends p's program 30 SIGUSR1 through manager, one at a
// time, and returns the median time each took to be reported received.
func forwardLatency(t *testing.T, p *proc) time.Duration {
	t.Helper()
	done := len(p.stdout.matching("^got SIGUSR1"))
	var lat []time.Duration
	for i := range 30 {
		sent := time.Now()
		p.signal(syscall.SIGUSR1)
		p.stdout.waitN(t, done+i+1, "^got SIGUSR1", 10*time.Second)
		lat = append(lat, time.Since(sent))
	}
	slices.Sort(lat)
	return lat[len(lat)/2]
}

// TestSortStrings proves that directory entries and changed paths come out
// in the order slices.Sort gives, duplicates and all.
func TestSortStrings(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 200 {
		s := make([]string, n)
		for i := range s {
			s[i] = strconv.Itoa(rng.IntN(n/2 + 1)) // small range: many duplicates
		}
		want := slices.Clone(s)
		slices.Sort(want)
		if sortStrings(s); !slices.Equal(s, want) {
			t.Fatalf("sortStrings gave %q, want %q", s, want)
		}
	}
}

// TestRealPath proves that a watched path is named as mountinfo names mount
// points: absolute, every symlink followed, including a relative one.
func TestRealPath(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir()) // /tmp may itself be a symlink
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "real.conf"), "x")
	os.Mkdir(filepath.Join(dir, "..data"), 0o755)
	os.Symlink("../real.conf", filepath.Join(dir, "..data", "app.conf"))
	os.Symlink("..data/app.conf", filepath.Join(dir, "app.conf"))
	t.Chdir(dir)
	want := filepath.Join(dir, "real.conf")
	for _, path := range []string{filepath.Join(dir, "app.conf"), "app.conf", "./..data/../real.conf"} {
		if got, err := realPath(path); got != want || err != nil {
			t.Errorf("realPath(%q) = %q, %v; want %q", path, got, err, want)
		}
	}
	if _, err := realPath(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("realPath of a missing file: error %v, want one that is fs.ErrNotExist", err)
	}
}

// TestErrnoOf proves that a directory that cannot be listed keeps the
// system's reason however the error that carries it is wrapped.
func TestErrnoOf(t *testing.T) {
	pe := &fs.PathError{Op: "open", Path: "/x", Err: syscall.EACCES}
	for _, tc := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{errors.New("no errno"), 0},
		{syscall.ENOENT, syscall.ENOENT},
		{pe, syscall.EACCES},
		{fmt.Errorf("listing: %w", pe), syscall.EACCES},
	} {
		if got := errnoOf(tc.err); got != tc.want {
			t.Errorf("errnoOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
