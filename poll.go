package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
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
	slices.Sort(names)
	return names, nil
}

// hashChunk is how much is hashed between two yields of the processor: a
// huge file is hashed off the supervisor loop, but manager runs with one P,
// so the hasher lets the loop run at least this often (tens of µs).
const hashChunk = 64 << 10

// hash reads a regular file with raw system calls, not os.File: os.File
// registers whatever the kernel lets it poll with the runtime's netpoller,
// and for a pollable regular file such as /proc/kmsg that turns EAGAIN into
// a wait without end. O_NONBLOCK keeps a file that turned into a FIFO since
// it was stat'ed from blocking the open, and a pollable file from blocking
// the read: EAGAIN is then an error, hashed as such.
func (osFS) hash(path string) (digest, error) {
	var d digest
	fd, err := openRaw(path, 0)
	if err != nil {
		return d, err
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return d, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return d, errNotRegular(path)
	}
	h := newHasher()
	// On the heap and no larger than the file needs: a goroutine stack
	// grown for a 64 KiB array would stay resident long after the hash.
	buf := make([]byte, min(max(st.Size+1, 4<<10), hashChunk))
	for {
		var n int
		err := ignoringEINTR(func() (err error) { n, err = syscall.Read(fd, buf); return err })
		if err != nil {
			return d, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			break
		}
		h.Write(buf[:n])
		runtime.Gosched()
	}
	return h.sum(), nil
}

// errNotRegular says why a watched entry's bytes are not read: it is a
// FIFO, a socket or a device, whose open(2) alone would act on it (release
// a FIFO's writer, run a driver's open).
func errNotRegular(path string) error { return fmt.Errorf("%s: not a regular file", path) }

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

// snapshot fingerprints every watched path, in order. A missing path has no
// stamp; a directory has a stamp of its own (its type, so that it vanishing
// or turning into a file shows, and why it could not be listed) followed by
// one per visible entry.
func snapshot(fsys osFS, paths []string) []stamp {
	var out []stamp
	for _, p := range paths {
		fp, err := fsys.stat(p)
		if err != nil {
			continue
		}
		if !fp.isDir() {
			out = append(out, stamp{p, fp})
			continue
		}
		names, err := fsys.readDir(p)
		dir := len(out)
		out = append(out, stamp{p, fingerprint{mode: syscall.S_IFDIR}})
		errors.As(err, &out[dir].fp.errno)
		for _, name := range names {
			if hidden(name) {
				continue
			}
			e := p + "/" + name
			if efp, err := fsys.stat(e); err == nil {
				out = append(out, stamp{e, efp})
			}
		}
		out[dir].fp.size = int64(len(out) - dir - 1) // how many entry stamps follow
	}
	return out
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

// observe records the snapshot taken at now.
func (d *debouncer) observe(now time.Time, snap []stamp) observation {
	var o observation
	fresh := false // a change to a non-busy entry in this very snapshot
	for _, p := range changedStamps(d.last, snap) {
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
	slices.Sort(o.busy)
	slices.Sort(o.quiet)
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

// content is what the watched paths hold: a digest per watched path (a
// file's bytes, or for a directory the names and bytes of its visible
// entries) and per directory entry ("dir/name"), so that a change can be
// named down to the entry. Missing paths have no digest, so that a vanished
// file is told apart from an emptied one.
type content map[string]digest

// unreadable collects the files that exist but cannot be read, with why.
type unreadable map[string]error

// contents hashes what a snapshot's files hold, so that the files hashed
// are the ones the loop saw. Only regular files are opened: a FIFO, a
// socket, a device or a directory among a directory's entries is hashed as
// what it is, and a file that cannot be read (no permission) as its error;
// both are as stable as bytes would be, and listed in unreadable. An error
// that is manager's own lack of resources (descriptors, memory) is returned
// instead, for the caller to retry.
func contents(fsys osFS, snap []stamp) (content, unreadable, error) {
	out := make(content, len(snap))
	bad := unreadable{}
	hashFile := func(st stamp) (digest, error) {
		var err error
		if st.fp.mode != syscall.S_IFREG {
			err = errNotRegular(st.path)
		} else if d, err2 := fsys.hash(st.path); err2 == nil {
			return d, nil
		} else if err = err2; lacksResources(err) {
			return d, err
		}
		bad[st.path] = err
		return sum256([]byte(err.Error())), nil
	}
	for i := 0; i < len(snap); i++ {
		st := snap[i]
		if !st.fp.isDir() {
			d, err := hashFile(st)
			if err != nil {
				return nil, nil, err
			}
			out[st.path] = d
			continue
		}
		h := newHasher()
		if st.fp.errno != 0 {
			err := &fs.PathError{Op: "open", Path: st.path, Err: st.fp.errno}
			if lacksResources(err) {
				return nil, nil, err
			}
			bad[st.path] = err
			h.Write([]byte(err.Error()))
		}
		entries := snap[i+1 : i+1+int(st.fp.size)]
		i += len(entries)
		for _, e := range entries {
			d, err := hashFile(e)
			if err != nil {
				return nil, nil, err
			}
			out[e.path] = d
			h.Write([]byte(e.path[len(st.path)+1:]))
			h.Write([]byte{0})
			h.Write(d[:])
		}
		out[st.path] = h.sum()
	}
	return out, bad, nil
}

// lacksResources reports whether err is manager's own lack of resources,
// which goes away by itself (descriptors, memory), as opposed to something
// about the file. EAGAIN is not among them: from a read it is a pollable
// file with nothing to read, a property of the file.
func lacksResources(err error) bool {
	return errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// changedPaths compares the contents now with those the child runs with. A
// path missing now is not a change by itself: it keeps its old content in
// next, so that only its reappearance with other bytes counts.
func changedPaths(paths []string, running, now content) (changed []string, next content) {
	next = make(content, len(now))
	keep := func(from content, p string) {
		next[p] = from[p]
		for k, d := range from {
			if strings.HasPrefix(k, p+"/") {
				next[k] = d
			}
		}
	}
	for _, p := range paths {
		old, had := running[p]
		cur, ok := now[p]
		switch {
		case !ok && had:
			keep(running, p)
		case !ok:
		case !had || cur != old:
			changed = append(changed, p)
			keep(now, p)
		default:
			keep(now, p)
		}
	}
	return changed, next
}

// changedEntries names what changed in the watched path p between two
// contents: p itself for a file, or each entry of a directory that was
// added, removed or rewritten.
func changedEntries(p string, before, after content) []string {
	var out []string
	for k, d := range after {
		if strings.HasPrefix(k, p+"/") && before[k] != d {
			out = append(out, k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok && strings.HasPrefix(k, p+"/") {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return []string{p}
	}
	slices.Sort(out)
	return out
}

// isFileMount reports whether path, a file, symlinks followed, is itself a
// mount point: a bind mount of a single file. A ConfigMap key (a symlink
// into its volume) or a file in a mounted directory is not one.
func isFileMount(path string) bool {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return false
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return false
	}
	points, err := mountPoints()
	return err == nil && points[real]
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

// hashPurpose says what a hash is for.
type hashPurpose int

const (
	baseline hashPurpose = iota // what the child started with
	change                      // what the paths hold after a change settled
)

func (p hashPurpose) String() string {
	if p == baseline {
		return "baseline"
	}
	return "change"
}

// hashJob asks for the contents of the files of a snapshot.
type hashJob struct {
	paths   []string
	purpose hashPurpose
	before  []stamp         // the snapshot the loop acts on: the files to hash, and what they must still look like
	busy    map[string]bool // entries that may change meanwhile without making the hash unstable
	gen     int             // the child it was asked for
}

// hashResult is a hashJob's answer.
type hashResult struct {
	job    hashJob
	sums   content
	bad    unreadable
	stable bool  // no stat of the paths changed while they were hashed
	err    error // manager lacked resources: try again
}

// hashNow does a hashJob, beside the supervisor loop: a huge file or a slow
// read must never delay forwarding, reaping or a timer. The paths are
// stat'ed again after hashing: if they differ from the snapshot the loop
// took (when it started the child, or saw the change settle), the content
// read may be newer than that, or half old, half new. Busy entries do not
// count: they change all the time, and waiting for them to hold still is
// what busy means not to do.
func hashNow(fsys osFS, job hashJob) hashResult {
	sums, bad, err := contents(fsys, job.before)
	return hashResult{job: job, sums: sums, bad: bad, err: err, stable: sameFiles(job.before, snapshot(fsys, job.paths), job.busy)}
}
