package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"runtime"
	"strings"
	"syscall"
)

// digest is the SHA-256 of what a watched path holds.
type digest [32]byte

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
	sortStrings(out)
	return out
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

// hashPurpose says what a hash is for.
type hashPurpose int

const (
	baseline hashPurpose = iota // what the child started with
	change                      // what the paths hold after a change settled
)

// String names p in the log's purpose= attribute.
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

// hasher computes SHA-256 (FIPS 180-4). It is written here rather than
// taken from crypto/sha256, which links the whole FIPS 140 module (AES,
// SHA-3, SHA-512, a DRBG and their self-tests): a third of a megabyte of
// binary and resident memory for a hash of configuration files.
type hasher struct {
	h   [8]uint32
	buf [64]byte
	n   int    // bytes waiting in buf
	len uint64 // bytes written
}

// newHasher returns a hasher at SHA-256's initial state.
func newHasher() *hasher {
	return &hasher{h: [8]uint32{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}}
}

// sum256 returns the SHA-256 of b.
func sum256(b []byte) digest {
	h := newHasher()
	h.Write(b)
	return h.sum()
}

// Write adds p to the hash; it never fails.
func (d *hasher) Write(p []byte) (int, error) {
	n := len(p)
	d.len += uint64(n)
	if d.n > 0 {
		c := copy(d.buf[d.n:], p)
		d.n += c
		p = p[c:]
		if d.n < len(d.buf) {
			return n, nil
		}
		d.blocks(d.buf[:])
		d.n = 0
	}
	whole := len(p) &^ 63
	d.blocks(p[:whole])
	d.n = copy(d.buf[:], p[whole:])
	return n, nil
}

// sum returns the hash of what was written, padded as the standard says:
// a 1 bit, zeros, and the length in bits.
func (d *hasher) sum() digest {
	c := *d
	var pad [72]byte
	pad[0] = 0x80
	k := 55 - int(c.len%64)
	if k < 0 {
		k += 64
	}
	binary.BigEndian.PutUint64(pad[1+k:], c.len*8)
	c.Write(pad[:1+k+8])
	var out digest
	for i, v := range c.h {
		binary.BigEndian.PutUint32(out[4*i:], v)
	}
	return out
}

// blocks runs the compression function over whole 64-byte blocks of p.
func (d *hasher) blocks(p []byte) {
	var w [64]uint32
	for ; len(p) >= 64; p = p[64:] {
		for i := range 16 {
			w[i] = binary.BigEndian.Uint32(p[4*i:])
		}
		for i := 16; i < 64; i++ {
			s0 := bits.RotateLeft32(w[i-15], -7) ^ bits.RotateLeft32(w[i-15], -18) ^ w[i-15]>>3
			s1 := bits.RotateLeft32(w[i-2], -17) ^ bits.RotateLeft32(w[i-2], -19) ^ w[i-2]>>10
			w[i] = w[i-16] + s0 + w[i-7] + s1
		}
		a, b, c, e, f, g, h, x := d.h[0], d.h[1], d.h[2], d.h[4], d.h[5], d.h[6], d.h[7], d.h[3]
		for i := range 64 {
			t1 := h + (bits.RotateLeft32(e, -6) ^ bits.RotateLeft32(e, -11) ^ bits.RotateLeft32(e, -25)) + (e&f ^ ^e&g) + roundK[i] + w[i]
			t2 := (bits.RotateLeft32(a, -2) ^ bits.RotateLeft32(a, -13) ^ bits.RotateLeft32(a, -22)) + (a&b ^ a&c ^ b&c)
			h, g, f, e, x, c, b, a = g, f, e, x+t1, c, b, a, t1+t2
		}
		d.h[0] += a
		d.h[1] += b
		d.h[2] += c
		d.h[3] += x
		d.h[4] += e
		d.h[5] += f
		d.h[6] += g
		d.h[7] += h
	}
}

// roundK are SHA-256's round constants: the first 32 bits of the fractional
// parts of the cube roots of the first 64 primes.
var roundK = [64]uint32{
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}
