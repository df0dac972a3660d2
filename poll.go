package main

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// fingerprint is what one stat(2) says of a file: enough to notice a write in
// place (size, mtime, ctime), a rename into place or a symlink swap (device,
// inode). Equal fingerprints mean "probably unchanged"; only content hashes
// decide that something really changed.
type fingerprint struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64  // nanoseconds since the epoch
	mode         uint32 // the file type: syscall.S_IFREG, S_IFDIR, S_IFIFO...
	racy         bool   // taken so soon after a change that a next one may keep the times
	errno        syscall.Errno
}

// isDir reports whether the fingerprint is a directory's.
func (fp fingerprint) isDir() bool { return fp.mode == syscall.S_IFDIR }

// stamp is one watched file's fingerprint: a watched path itself, or one of
// the direct entries of a watched directory. A directory's own stamp holds
// only its type, and the error that kept it from being listed, if any.
type stamp struct {
	path string
	fp   fingerprint
}

// osFS reads the file system for change detection. Stat follows symlinks,
// never lstat: a ConfigMap's visible names are symlinks that never change,
// only what they point to does.
//
// File times come from the kernel's coarse clock, which advances once per
// tick (1 to 10 ms), and some file systems keep even less: whole seconds
// (ext4 with 128-byte inodes, ext3, most network file systems) or two
// seconds (FAT). A second write of the same size within the same unit of
// time as the first leaves every field of the fingerprint as it was, the
// "racy git" problem. A fingerprint taken within racyWindow plus that unit
// of the file's last change is therefore marked racy; the next one, taken
// later, is not, and that difference makes the content be hashed once the
// paths settle.
type osFS struct {
	racyWindow time.Duration // zero: never racy, for tests that fake time
}

// racyWindow is two ticks of the coarsest kernel clock (HZ=100).
const racyWindow = 20 * time.Millisecond

// stat fingerprints path, symlinks followed, as the program opening it
// would find it; nothing is opened, so a FIFO or a device counts as present
// without its open(2) being run.
func (fsys osFS) stat(path string) (fingerprint, error) {
	var st syscall.Stat_t
	if err := ignoringEINTR(func() error { return syscall.Stat(path, &st) }); err != nil {
		return fingerprint{}, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	fp := fingerprint{
		dev:   uint64(st.Dev),
		ino:   st.Ino,
		size:  st.Size,
		mtime: st.Mtim.Nano(),
		ctime: st.Ctim.Nano(),
		mode:  st.Mode & syscall.S_IFMT,
	}
	if fsys.racyWindow != 0 {
		last := max(fp.mtime, fp.ctime)
		fp.racy = time.Since(time.Unix(0, last)) < fsys.racyWindow+timeUnit(fp.mtime, fp.ctime)
	}
	return fp, nil
}

// timeUnit guesses the timestamp resolution of the file system that gave
// mtime and ctime from the largest unit both are whole multiples of. On a
// file system with nanosecond times that is a nanosecond or so, except with
// a chance of one in a million per unit, which costs one needless hash.
// Whole seconds may be FAT's two seconds.
func timeUnit(mtime, ctime int64) time.Duration {
	for _, u := range []time.Duration{time.Second, 100 * time.Millisecond, 10 * time.Millisecond, time.Millisecond} {
		if mtime%int64(u) == 0 && ctime%int64(u) == 0 {
			if u == time.Second {
				return 2 * time.Second
			}
			return u
		}
	}
	return 0
}

// readDir lists a directory with raw system calls. O_DIRECTORY fails rather
// than blocks if a FIFO has taken the directory's place since it was
// stat'ed; os.Open would wait for the FIFO's writer.
func (osFS) readDir(path string) ([]string, error) {
	fd, err := openRaw(path, syscall.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	var names []string
	var buf [8 << 10]byte
	for {
		var n int
		err := ignoringEINTR(func() (err error) { n, err = syscall.ReadDirent(fd, buf[:]); return err })
		if err != nil {
			return names, &fs.PathError{Op: "readdirent", Path: path, Err: err}
		}
		if n <= 0 {
			break
		}
		_, _, names = syscall.ParseDirent(buf[:n], -1, names)
	}
	sortStrings(names)
	return names, nil
}

// errnoOf returns the system call error that err wraps, or 0.
func errnoOf(err error) syscall.Errno {
	for ; err != nil; err = errors.Unwrap(err) {
		if errno, ok := err.(syscall.Errno); ok {
			return errno
		}
	}
	return 0
}

// sortStrings sorts s as slices.Sort would, by heap sort: written out
// because the generic sort's instance for strings costs the binary 10 KB.
func sortStrings(s []string) {
	for i := len(s)/2 - 1; i >= 0; i-- {
		siftDown(s, i, len(s))
	}
	for end := len(s) - 1; end > 0; end-- {
		s[0], s[end] = s[end], s[0]
		siftDown(s, 0, end)
	}
}

// siftDown moves s[root] down the heap s[:n] to where it belongs.
func siftDown(s []string, root, n int) {
	for {
		child := 2*root + 1
		if child >= n {
			return
		}
		if child+1 < n && s[child] < s[child+1] {
			child++
		}
		if s[root] >= s[child] {
			return
		}
		s[root], s[child] = s[child], s[root]
		root = child
	}
}

// oPath is O_PATH, which package syscall leaves out; it has this value on
// every architecture manager is built for. Such a descriptor opens nothing:
// no FIFO blocks, no device runs its open.
const oPath = 0x200000

// realPath is path with every symlink followed, absolute, as the kernel
// names the file it opens: what mountinfo's mount points are written as.
func realPath(path string) (string, error) {
	fd, err := openRaw(path, oPath) // O_PATH ignores openRaw's other flags
	if err != nil {
		return "", err
	}
	defer syscall.Close(fd)
	return os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
}

// openRaw opens path for reading without blocking and without the netpoller.
func openRaw(path string, flags int) (int, error) {
	var fd int
	err := ignoringEINTR(func() (err error) {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC|syscall.O_NOCTTY|flags, 0)
		return err
	})
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// ignoringEINTR retries f while a signal interrupts it; os does the same
// for its own calls, which manager bypasses here.
func ignoringEINTR(f func() error) error {
	for {
		if err := f(); err != syscall.EINTR {
			return err
		}
	}
}

// hidden reports whether a directory entry is left unwatched: editors' swap
// files, and a ConfigMap's "..data" and "..2026_11_25_…" bookkeeping, whose
// names change on every update while the visible names stay.
func hidden(name string) bool { return strings.HasPrefix(name, ".") }

// snapshot fingerprints every watched path, in order, and every entry of
// each watched directory. A missing path has no stamp; a directory has a
// stamp of its own (its type, so that it vanishing or turning into a file
// shows, how many entry stamps follow, and why it could not be listed)
// followed by one per visible entry, in name order.
func snapshot(fsys osFS, paths []string) []stamp {
	return pollNow(fsys, pollJob{paths: paths}).snap
}

// entriesPerLook bounds how many entries of one watched directory a poll
// stats while the directory itself is unchanged: a stat costs some µs, and
// a directory of 100,000 entries stat'ed whole at every poll would take a
// core. An entry added, removed or renamed changes the directory (a
// ConfigMap update and an editor's save do that), and a changed directory
// is listed and stat'ed whole; a write in place into one of its entries is
// seen when the entry's turn comes, within entries/entriesPerLook polls.
const entriesPerLook = 1000

// dirLook is what a look at a watched directory leaves for the next.
type dirLook struct {
	listed fingerprint // the directory's own stat when it was listed; zero: list it again
	next   int         // where the next look at its entries starts
}

// pollJob asks for a look at the watched paths, done beside the loop.
type pollJob struct {
	paths  []string
	prev   []stamp   // the last snapshot, read only: unchanged directories keep its entries
	dirs   []dirLook // per path of paths; nil the first time
	mounts bool      // asks which of paths appeared as single-file mounts
}

// pollResult is a pollJob's answer.
type pollResult struct {
	snap    []stamp   // prev itself when nothing changed
	changed []string  // the paths whose stamps differ from prev's
	dirs    []dirLook // for the next job
	mounts  []string  // paths that appeared since prev as files, and are single-file mounts
}

// pollNow looks at the watched paths, as snapshot describes, reusing what
// prev holds: nothing is allocated when nothing changed.
func pollNow(fsys osFS, job pollJob) pollResult {
	dirs := make([]dirLook, len(job.paths))
	copy(dirs, job.dirs)
	b := snapBuilder{prev: job.prev}
	var mounts []string
	k := 0 // where the next path's stamps are in prev
	for i, p := range job.paths {
		var own *stamp
		var entries []stamp // prev's entries of p
		if k < len(job.prev) && job.prev[k].path == p {
			own = &job.prev[k]
			n := 0
			if own.fp.isDir() {
				n = int(own.fp.size)
			}
			entries = job.prev[k+1 : k+1+n]
			k += 1 + n
		}
		fp, err := fsys.stat(p)
		switch {
		case err != nil:
			dirs[i] = dirLook{}
			continue
		case !fp.isDir():
			dirs[i] = dirLook{}
			b.add(stamp{p, fp})
			if job.mounts && (own == nil || own.fp.isDir()) {
				mounts = append(mounts, p) // appeared as a file: a candidate
			}
			continue
		}
		dir := stamp{p, fingerprint{mode: syscall.S_IFDIR}}
		if own == nil || !own.fp.isDir() || own.fp.errno != 0 || dirs[i].listed != fp {
			var names []string
			names, err = fsys.readDir(p)
			dir.fp.errno = errnoOf(err)
			entries = statEntries(fsys, p, names, entries)
			dirs[i] = dirLook{listed: fp}
			if fp.racy || err != nil {
				dirs[i].listed = fingerprint{} // a change in the same tick would keep the times
			}
			dir.fp.size = int64(len(entries))
			b.add(dir)
			for _, e := range entries {
				b.add(e)
			}
			continue
		}
		// Unchanged: the same names, some of them stat'ed again.
		b.mark()
		dir.fp.size = int64(restatSome(fsys, &b, entries, &dirs[i]))
		b.insert(dir)
	}
	r := pollResult{snap: b.result(), dirs: dirs, mounts: fileMounts(mounts)}
	if !b.same() {
		r.changed = changedStamps(job.prev, r.snap)
	}
	return r
}

// restatSome adds entries, those of a directory whose names did not
// change, to b, with entriesPerLook of them stat'ed again, from where the
// last look at it stopped (look.next), and returns how many it added: an
// entry that can no longer be stat'ed (a symlink whose target is gone) is
// left out.
func restatSome(fsys osFS, b *snapBuilder, entries []stamp, look *dirLook) int {
	from, n := look.next%max(len(entries), 1), min(len(entries), entriesPerLook)
	look.next = from + n
	kept := 0
	for j, e := range entries {
		if (j-from+len(entries))%len(entries) < n {
			fp, err := fsys.stat(e.path)
			if err != nil {
				continue
			}
			e.fp = fp
		}
		b.add(e)
		kept++
	}
	return kept
}

// statEntries stats the visible entries of directory p named names, and
// returns their stamps; prev, p's entries in the last snapshot, lend their
// paths, so that an unchanged entry's path is not made again.
func statEntries(fsys osFS, p string, names []string, prev []stamp) []stamp {
	var out []stamp
	for _, name := range names {
		if hidden(name) {
			continue
		}
		for len(prev) > 0 && prev[0].path[len(p)+1:] < name {
			prev = prev[1:]
		}
		e := p + "/" + name
		if len(prev) > 0 && prev[0].path[len(p)+1:] == name {
			e = prev[0].path
		}
		if efp, err := fsys.stat(e); err == nil {
			out = append(out, stamp{e, efp})
		}
	}
	return out
}

// snapBuilder builds a snapshot stamp by stamp, sharing prev's array for as
// long as the stamps are prev's own.
type snapBuilder struct {
	prev     []stamp
	out      []stamp
	n        int  // stamps added
	diverged bool // out holds the snapshot; otherwise it is prev[:n]
	marked   int  // where insert puts a stamp
}

// add appends st, without a copy while st is prev's next stamp.
func (b *snapBuilder) add(st stamp) {
	if !b.diverged && b.n < len(b.prev) && b.prev[b.n] == st {
		b.n++
		return
	}
	b.diverge()
	b.out = append(b.out, st)
	b.n++
}

// mark remembers where the stamp the next insert adds goes: a directory's
// own stamp, which holds how many of the stamps added after it are its.
func (b *snapBuilder) mark() {
	b.marked = b.n
	b.n++ // its place
	if b.diverged {
		b.out = append(b.out, stamp{})
	}
}

// insert puts st at the place mark kept.
func (b *snapBuilder) insert(st stamp) {
	if !b.diverged && b.marked < len(b.prev) && b.prev[b.marked] == st {
		return
	}
	b.diverge()
	b.out[b.marked] = st
}

// diverge copies what was added so far out of prev.
func (b *snapBuilder) diverge() {
	if !b.diverged {
		b.out = append(make([]stamp, 0, len(b.prev)+8), b.prev[:min(b.n, len(b.prev))]...)
		for len(b.out) < b.n {
			b.out = append(b.out, stamp{}) // a marked place past prev's end
		}
		b.diverged = true
	}
}

// same reports whether what was added is prev, stamp for stamp.
func (b *snapBuilder) same() bool { return !b.diverged && b.n == len(b.prev) }

// result is the snapshot built: prev's own array when it is the same.
func (b *snapBuilder) result() []stamp {
	if b.diverged {
		return b.out
	}
	return b.prev[:b.n]
}

// sameFiles reports whether two snapshots show the same files, except
// those in ignore, whatever their racy marks: the marks depend on when a
// snapshot was taken, not on the files.
func sameFiles(a, b []stamp, ignore map[string]bool) bool {
	kept := func(st []stamp) []stamp {
		return slices.DeleteFunc(slices.Clone(st), func(x stamp) bool { return ignore[x.path] })
	}
	return slices.EqualFunc(kept(a), kept(b), func(x, y stamp) bool {
		x.fp.racy, y.fp.racy = false, false
		return x == y
	})
}

// vanished returns the watched paths present in before and missing in after.
func vanished(paths []string, before, after []stamp) []string {
	var out []string
	for _, p := range paths {
		if has(before, p) && !has(after, p) {
			out = append(out, p)
		}
	}
	return out
}

// has reports whether stamps has one for path.
func has(stamps []stamp, path string) bool { return stampOf(stamps, path) >= 0 }

// stampOf returns the index of path's stamp in stamps, or -1.
func stampOf(stamps []stamp, path string) int {
	return slices.IndexFunc(stamps, func(s stamp) bool { return s.path == path })
}

// busyFloor is the least time an entry must keep changing to be called
// busy, whatever -debounce is.
const busyFloor = 10 * time.Second

// debouncer turns a stream of snapshots into "the paths have settled after a
// change": a burst of writes, a slow writer, a rename into place or a
// ConfigMap's symlink swap each settle once, after the last write. Files
// changed together settle together, except that an entry that has kept
// changing for longer than busyAfter (a state file a program rewrites every
// few hundred ms) is busy: it no longer holds the others back until it has
// been quiet for quiet.
type debouncer struct {
	quiet     time.Duration        // how long the paths must stay unchanged
	busyAfter time.Duration        // how long an entry may keep changing before it is busy
	last      []stamp              // the latest snapshot
	runs      map[string]*activity // entries changed since the last settle, or busy
}

// activity is one entry's recent changes.
type activity struct {
	since   time.Time // first change of the current run of changes less than quiet apart
	changed time.Time // latest change
	dirty   bool      // changed since the last settle
	busy    bool      // changing for longer than busyAfter; reported once
}

// newDebouncer starts from the snapshot the child was started with.
func newDebouncer(quiet time.Duration, first []stamp) debouncer {
	return debouncer{quiet: quiet, busyAfter: max(10*quiet, busyFloor), last: first, runs: map[string]*activity{}}
}

// observation is what one snapshot told the debouncer.
type observation struct {
	settled bool     // changes have settled: time to act
	fresh   bool     // an entry that is not busy changed in this very snapshot
	busy    []string // entries that just became busy
	quiet   []string // busy entries that just became quiet
}

// observe records the snapshot taken at now, whose stamps of changed
// differ from the last one's.
func (d *debouncer) observe(now time.Time, snap []stamp, changed []string) observation {
	var o observation
	fresh := false // a change to a non-busy entry in this very snapshot
	for _, p := range changed {
		a := d.runs[p]
		if a == nil {
			a = &activity{since: now}
			d.runs[p] = a
		} else if now.Sub(a.changed) >= d.quiet {
			a.since = now
		}
		a.changed, a.dirty = now, true
		if !a.busy {
			fresh = true
		}
	}
	d.last = snap
	o.fresh = fresh
	settled, pending := !fresh, false
	for p, a := range d.runs {
		busy := now.Sub(a.changed) < d.quiet && now.Sub(a.since) >= d.busyAfter
		switch {
		case busy && !a.busy:
			o.busy = append(o.busy, p)
		case !busy && a.busy:
			o.quiet = append(o.quiet, p)
		}
		a.busy = busy
		if busy || !a.dirty {
			continue
		}
		pending = true
		if now.Sub(a.changed) < d.quiet {
			settled = false
		}
	}
	sortStrings(o.busy)
	sortStrings(o.quiet)
	if !pending || !settled {
		return o
	}
	o.settled = true
	for p, a := range d.runs {
		a.dirty = false
		if !a.busy && now.Sub(a.changed) >= d.quiet {
			delete(d.runs, p)
		}
	}
	return o
}

// busyNow returns the entries that are busy now.
func (d *debouncer) busyNow() map[string]bool {
	out := map[string]bool{}
	for p, a := range d.runs {
		if a.busy {
			out[p] = true
		}
	}
	return out
}

// changedStamps returns the paths whose stamps differ between two snapshots,
// including those in only one of them.
func changedStamps(before, after []stamp) []string {
	old := make(map[string]fingerprint, len(before))
	for _, s := range before {
		old[s.path] = s.fp
	}
	var out []string
	for _, s := range after {
		if fp, ok := old[s.path]; !ok || fp != s.fp {
			out = append(out, s.path)
		}
		delete(old, s.path)
	}
	for p := range old {
		out = append(out, p)
	}
	return out
}

// fileMounts returns those of paths, files, that are, symlinks followed,
// themselves mount points: bind mounts of a single file. A ConfigMap key (a
// symlink into its volume) or a file in a mounted directory is not one.
// Mountinfo is read once, and only when there is a path to look up.
func fileMounts(paths []string) []string {
	if len(paths) == 0 {
		return nil
	}
	points, err := mountPoints()
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range paths {
		if real, err := realPath(p); err == nil && points[real] {
			out = append(out, p)
		}
	}
	return out
}

// mountPoints reads the mount points of manager's mount namespace from
// /proc/self/mountinfo, whose fifth field is one, with space, tab, newline
// and backslash escaped in octal.
func mountPoints() (map[string]bool, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			out[unescapeMountPath(f[4])] = true
		}
	}
	return out, nil
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
