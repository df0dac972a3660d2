package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"slices"
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
	mtime, ctime int64 // nanoseconds since the epoch
	dir          bool
	racy         bool // taken so soon after a change that a next one may keep the times
}

// stamp is one watched file's fingerprint: a watched path itself, or one of
// the direct entries of a watched directory.
type stamp struct {
	path string
	fp   fingerprint
}

// digest is the SHA-256 of a file's bytes.
type digest [sha256.Size]byte

// fileSystem is all poll.go needs from the file system: the real one is osFS,
// tests use a map. Stat follows symlinks, never lstat: a ConfigMap's visible
// names are symlinks that never change, only what they point to does.
type fileSystem interface {
	stat(path string) (fingerprint, error)
	readDir(path string) ([]string, error) // entry names, sorted
	hash(path string) (digest, error)
}

// osFS is the real file system.
//
// File times come from the kernel's coarse clock, which advances once per
// tick (1 to 10 ms): a second write of the same size within the tick of the
// first leaves every field of the fingerprint as it was, the "racy git"
// problem. A fingerprint taken within racyWindow of the file's last change is
// therefore marked racy; the next one, taken later, is not, and that
// difference makes the content be hashed once the paths settle.
type osFS struct {
	racyWindow time.Duration // zero: never racy, for tests that fake time
}

// racyWindow is two ticks of the coarsest kernel clock (HZ=100).
const racyWindow = 20 * time.Millisecond

func (fsys osFS) stat(path string) (fingerprint, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fingerprint{}, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	fp := fingerprint{
		dev:   st.Dev,
		ino:   st.Ino,
		size:  st.Size,
		mtime: st.Mtim.Nano(),
		ctime: st.Ctim.Nano(),
		dir:   fi.IsDir(),
	}
	fp.racy = time.Since(time.Unix(0, max(fp.mtime, fp.ctime))) < fsys.racyWindow
	return fp, nil
}

func (osFS) readDir(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	slices.Sort(names)
	return names, err
}

func (osFS) hash(path string) (digest, error) {
	var d digest
	// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
	// writer, and with it the whole supervisor loop.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return d, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return d, err
	} else if !fi.Mode().IsRegular() {
		return d, fmt.Errorf("%s: not a regular file (%v)", path, fi.Mode().Type())
	}
	h := sha256.New()
	// Not io.Copy: through os.File's WriteTo it allocates 32 KiB per call,
	// which over thousands of restarts is most of manager's garbage.
	var buf [4096]byte
	for {
		n, err := f.Read(buf[:])
		h.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return d, err
		}
	}
	h.Sum(d[:0])
	return d, nil
}

// hidden reports whether a directory entry is left unwatched: editors' swap
// files, and a ConfigMap's "..data" and "..2026_11_25_…" bookkeeping, whose
// names change on every update while the visible names stay.
func hidden(name string) bool { return strings.HasPrefix(name, ".") }

// snapshot fingerprints every watched path, in order. A missing path has no
// stamp; a directory has a stamp of its own (marked dir, so that it vanishing
// or turning into a file shows) followed by one per visible entry.
func snapshot(fsys fileSystem, paths []string) []stamp {
	var out []stamp
	for _, p := range paths {
		fp, err := fsys.stat(p)
		if err != nil {
			continue
		}
		if !fp.dir {
			out = append(out, stamp{p, fp})
			continue
		}
		out = append(out, stamp{p, fingerprint{dir: true}})
		names, _ := fsys.readDir(p)
		for _, name := range names {
			if hidden(name) {
				continue
			}
			e := p + "/" + name
			if efp, err := fsys.stat(e); err == nil {
				out = append(out, stamp{e, efp})
			}
		}
	}
	return out
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

func has(stamps []stamp, path string) bool {
	return slices.ContainsFunc(stamps, func(s stamp) bool { return s.path == path })
}

// debouncer turns a stream of snapshots into "the paths have settled after a
// change": a burst of writes, a slow writer, a rename into place or a
// ConfigMap's symlink swap each settle once, after the last write.
type debouncer struct {
	quiet   time.Duration // how long the paths must stay unchanged
	last    []stamp       // the latest snapshot
	changed time.Time     // when last changed; zero when nothing is pending
}

// observe records the snapshot taken at now and reports whether a change has
// settled: the paths differ from what was last acted on, and have not changed
// for at least quiet.
func (d *debouncer) observe(now time.Time, snap []stamp) bool {
	if !slices.Equal(snap, d.last) {
		d.last = snap
		d.changed = now
		return false
	}
	if d.changed.IsZero() || now.Sub(d.changed) < d.quiet {
		return false
	}
	d.changed = time.Time{}
	return true
}

// contents hashes what the watched paths hold: a file's bytes, or for a
// directory the names and bytes of its visible entries. Missing paths have no
// entry, so that a vanished file is told apart from an emptied one.
func contents(fsys fileSystem, paths []string) map[string]digest {
	out := make(map[string]digest, len(paths))
	for _, p := range paths {
		fp, err := fsys.stat(p)
		if err != nil {
			continue
		}
		if !fp.dir {
			out[p] = hashOrError(fsys, p)
			continue
		}
		h := sha256.New()
		names, _ := fsys.readDir(p)
		for _, name := range names {
			if hidden(name) {
				continue
			}
			d := hashOrError(fsys, p+"/"+name)
			h.Write([]byte(name))
			h.Write([]byte{0})
			h.Write(d[:])
		}
		var d digest
		h.Sum(d[:0])
		out[p] = d
	}
	return out
}

// hashOrError hashes a file, or if it cannot be read (a directory, no
// permission), the error, which is as stable as the bytes would be.
func hashOrError(fsys fileSystem, path string) digest {
	d, err := fsys.hash(path)
	if err != nil {
		return sha256.Sum256([]byte(err.Error()))
	}
	return d
}

// changedPaths compares the contents now with those the child runs with. A
// path missing now is not a change by itself: it keeps its old content in
// next, so that only its reappearance with other bytes counts.
func changedPaths(paths []string, running, now map[string]digest) (changed []string, next map[string]digest) {
	next = make(map[string]digest, len(paths))
	for _, p := range paths {
		old, had := running[p]
		cur, ok := now[p]
		switch {
		case !ok && had:
			next[p] = old
		case !ok:
		case !had || cur != old:
			changed = append(changed, p)
			next[p] = cur
		default:
			next[p] = cur
		}
	}
	return changed, next
}
