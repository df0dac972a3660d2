package main

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
	"unsafe"
)

// level is the importance of a log line. Its numbers are log/slog's, so
// that the names of levels between the named ones (INFO+2) are slog's too.
type level int

// The levels manager logs at, numbered as slog.LevelDebug and the others.
const (
	levelDebug level = -4
	levelInfo  level = 0
	levelWarn  level = 4
	levelError level = 8
)

// levelNames are the names of levelDebug and the levels 4, 8 and 12 above.
var levelNames = [...]string{"DEBUG", "INFO", "WARN", "ERROR"}

// String returns the level's name as slog.Level.String does: the name of
// the nearest named level below (DEBUG below that), with the distance from
// it when there is one ("WARN", "INFO+2", "DEBUG-1").
func (l level) String() string {
	i := (min(max(l, levelDebug), levelError) - levelDebug) / 4
	name, d := levelNames[i], l-(levelDebug+4*i)
	switch {
	case d > 0:
		return name + "+" + strconv.Itoa(int(d))
	case d < 0:
		return name + strconv.Itoa(int(d))
	}
	return name
}

// parseLevel parses the level names manager documents, debug, info, warn
// and error, in any ASCII case: unlike slog.Level.UnmarshalText, no offsets
// ("info+2") and no dotless i ("ınfo").
func parseLevel(s string) (level, bool) {
	for i, name := range levelNames {
		if upperASCII(s) == name {
			return levelDebug + 4*level(i), true
		}
	}
	return 0, false
}

// logger writes lines byte for byte as slog's TextHandler or JSONHandler
// with default options would for the values manager logs, without linking
// log/slog and encoding/json. It is safe for concurrent use.
type logger struct {
	w    io.Writer
	json bool
	min  level
	now  func() time.Time // the time of a line; a field so that tests fix it

	open, sep, assign, end string // "", " ", "=", "\n" in text

	mu  sync.Mutex
	buf []byte // reused under mu: w copies what it keeps
}

// newLineLogger returns a logger that writes lines of level min and above
// to w, as JSON objects if json is set and as key=value text otherwise.
func newLineLogger(w io.Writer, json bool, min level) *logger {
	g := &logger{w: w, json: json, min: min, now: time.Now, sep: " ", assign: "=", end: "\n"}
	if json {
		g.open, g.sep, g.assign, g.end = "{", ",", ":", "}\n"
	}
	return g
}

// Debug logs msg and its key-value args at levelDebug.
func (g *logger) Debug(msg string, args ...any) { g.log(levelDebug, msg, args...) }

// Info logs msg and its key-value args at levelInfo.
func (g *logger) Info(msg string, args ...any) { g.log(levelInfo, msg, args...) }

// Warn logs msg and its key-value args at levelWarn.
func (g *logger) Warn(msg string, args ...any) { g.log(levelWarn, msg, args...) }

// Error logs msg and its key-value args at levelError.
func (g *logger) Error(msg string, args ...any) { g.log(levelError, msg, args...) }

// enabled reports whether lines of level l are written.
func (g *logger) enabled(l level) bool { return l >= g.min }

// log writes one line, in one w.Write call, if level l is enabled. args
// alternate keys and values as slog.Logger's do: a value where a key should
// be, or a key without a value, gets the key "!BADKEY".
func (g *logger) log(l level, msg string, args ...any) {
	if !g.enabled(l) {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	t := g.now() // under mu, so that lines are in the order of their times
	b := append(g.buf[:0], g.open...)
	if !t.IsZero() {
		b = g.appendTime(g.appendKey(b, "time"), t)
	}
	b = g.appendString(g.appendKey(b, "level"), l.String())
	b = g.appendString(g.appendKey(b, "msg"), msg)
	for len(args) > 0 {
		key, v := "!BADKEY", args[0]
		if k, ok := v.(string); ok && len(args) > 1 {
			key, v, args = k, args[1], args[1:]
		}
		args = args[1:]
		if key == "" && v == nil {
			continue // slog drops an empty Attr
		}
		b = g.appendValue(g.appendKey(b, key), v)
	}
	b = append(b, g.end...)
	g.w.Write(b) // like slog.Logger, nowhere to report a failure to
	if cap(b) <= 16<<10 {
		g.buf = b // a rare huge line is not kept around
	}
}

// appendKey appends key and what introduces its value, after a separator
// unless it is the line's first key.
func (g *logger) appendKey(b []byte, key string) []byte {
	if len(b) > len(g.open) {
		b = append(b, g.sep...)
	}
	return append(g.appendString(b, key), g.assign...)
}

// appendValue appends v as slog would for a value of its Kind. An error or
// Stringer is written by its method, even where slog would prefer its
// MarshalText (text), its MarshalJSON (JSON) or its Format (text, by fmt).
func (g *logger) appendValue(b []byte, v any) []byte {
	switch v := v.(type) {
	case string:
		return g.appendString(b, v)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case uint64:
		return strconv.AppendUint(b, v, 10)
	case int8, int16, int32, uint, uint8, uint16, uint32, uintptr:
		return fmt.Append(b, v) // rare: digits, as slog writes them
	case bool:
		return strconv.AppendBool(b, v)
	case time.Duration:
		if g.json {
			return strconv.AppendInt(b, int64(v), 10) // as encoding/json does
		}
		return append(b, v.String()...)
	case time.Time:
		return g.appendTime(b, v)
	case nil:
		if g.json {
			return append(b, "null"...)
		}
	case error:
		return g.appendString(b, g.call(v, v.Error))
	case fmt.Stringer:
		// In JSON, slog would write what encoding/json makes of v's type
		// (a number for a named int): String is written as in text.
		return g.appendString(b, g.call(v, v.String))
	}
	// Anything else (nil in text too) is written as the text handler
	// writes it; in JSON slog would use encoding/json, not linked here.
	return g.appendString(b, fmt.Sprintf("%+v", v))
}

// call returns m(), v's Error or String, or if it panics what slog writes:
// what fmt writes in text, and in JSON "<nil>" for a nil pointer, as fmt
// writes it, or else the panic. A bad value must not kill PID 1.
func (g *logger) call(v any, m func() string) (s string) {
	defer func() {
		if r := recover(); r != nil {
			s = fmt.Sprintf("%+v", v)
			if g.json && s != "<nil>" {
				s = fmt.Sprintf("!PANIC: %v", r)
			}
		}
	}()
	return m()
}

// appendTime appends t as slog does: in text RFC 3339 with exactly three
// digits of milliseconds, truncated; in JSON as encoding/json would, which is
// RFC 3339 with nanoseconds, trailing zeros trimmed.
func (g *logger) appendTime(b []byte, t time.Time) []byte {
	if !g.json {
		// As slog: RFC3339Nano keeps 4 digits with 0.1 ms added; drop one.
		const prefix = len("2006-01-02T15:04:05.000")
		n := len(b)
		b = t.Truncate(time.Millisecond).Add(time.Millisecond/10).AppendFormat(b, time.RFC3339Nano)
		return append(b[:n+prefix], b[n+prefix+1:]...)
	}
	if y := t.Year(); y < 0 || y >= 10000 { // slog writes the time anyway
		b = g.appendString(b, "!ERROR:time.Time year outside of range [0,9999]")
	}
	b = append(b, '"')
	return append(t.AppendFormat(b, time.RFC3339Nano), '"')
}

// appendString appends s as slog writes a string: in text bare unless it
// needs quoting, then quoted by strconv; in JSON quoted and escaped.
func (g *logger) appendString(b []byte, s string) []byte {
	if g.json {
		return append(appendJSONString(append(b, '"'), s), '"')
	}
	if needsQuotes(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

// needsQuotes reports whether the text handler quotes s: when it is empty
// or has a space, '=', '"', an ASCII control (not DEL), invalid UTF-8,
// U+FFFD or a rune that is not printable, but not for a backslash alone.
// slog tests unicode.IsSpace too, but no space beyond ASCII is printable.
func needsQuotes(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == '=' || r == '"' || r == utf8.RuneError || r >= utf8.RuneSelf && !strconv.IsPrint(r) {
			return true
		}
	}
	return s == ""
}

// appendJSONString appends s escaped for a JSON string as slog does:
// '"', '\\' and ASCII controls escaped (\n, \r and \t by name, the others
// as \u00XX), invalid UTF-8 as \ufffd, U+2028 and U+2029 as \u2028 and
// \u2029 (for JavaScript), and '<', '>' and '&' left alone.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	start := 0
	for i, r := range s {
		invalid := r == utf8.RuneError && !strings.HasPrefix(s[i:], "\ufffd")
		if r >= ' ' && r != '"' && r != '\\' && r != '\u2028' && r != '\u2029' && !invalid {
			continue
		}
		b, start = append(b, s[start:i]...), i+utf8.RuneLen(r)
		switch j := strings.IndexRune("\"\\\n\r\t", r); {
		case invalid:
			b, start = append(b, `\ufffd`...), i+1
		case j >= 0:
			b = append(b, '\\', `"\nrt`[j])
		default: // an ASCII control, U+2028 or U+2029
			b = append(b, '\\', 'u', hex[r>>12], hex[r>>8&0xF], hex[r>>4&0xF], hex[r&0xF])
		}
	}
	return append(b, s[start:]...)
}

// newLogger returns the logger cfg asks for, writing to w. Log lines go to
// standard error only: standard output belongs to the program.
func newLogger(w io.Writer, cfg *config) *logger {
	return newLineLogger(w, cfg.logFormat == "json", cfg.logLevel)
}

// logWriter is manager's standard error, written so that logging can never
// harm: lines go through a bounded queue to a goroutine of their own, so
// the supervisor loop never waits on a full pipe whose reader stalled, and
// a line that finds the queue full is dropped and counted, as is one the
// descriptor refuses (a broken pipe, a hung-up terminal). The count is
// reported in a line of its own before the next line that gets through.
type logWriter struct {
	fd      int
	queue   chan logEntry
	dropped atomic.Int64
	format  atomic.Pointer[config] // the log format of the count's line; nil: text
}

// logEntry is a line to write, or a flush marker.
type logEntry struct {
	line []byte
	done chan struct{} // closed once every line queued before it is written
}

const (
	logQueue  = 256         // lines: bursts of a few hundred, then drops
	flushWait = time.Second // how long manager's last lines may hold its exit
)

// newLogWriter starts the writer of fd.
func newLogWriter(fd int) *logWriter {
	w := &logWriter{fd: fd, queue: make(chan logEntry, logQueue)}
	go w.run()
	return w
}

// Write queues a copy of p, or drops it if the queue is full.
func (w *logWriter) Write(p []byte) (int, error) {
	select {
	case w.queue <- logEntry{line: bytes.Clone(p)}:
	default:
		w.dropped.Add(1)
	}
	return len(p), nil
}

// run writes the queued lines, and the count of those dropped before each.
func (w *logWriter) run() {
	for e := range w.queue {
		if e.done != nil {
			close(e.done)
			continue
		}
		w.write(e.line)
	}
}

// write writes a line on a thread that blocks SIGPIPE and SIGTTOU while it
// does. The kernel sends SIGPIPE for a write to a pipe without reader to
// the writing thread; blocked, it stays pending there, and is taken back
// before the thread is unblocked: delivered, manager would take it for one
// sent to it, and forward it to the child. A write to a terminal from a
// background process group with "stty tostop" raises SIGTTOU, which
// manager catches, so the write would be restarted forever; the kernel lets
// it through when the writing thread blocks SIGTTOU.
func (w *logWriter) write(line []byte) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	old := blockThreadSignals(syscall.SIGPIPE, syscall.SIGTTOU)
	defer setThreadSignalMask(old)
	if n := w.dropped.Load(); n > 0 && writeLine(w.fd, w.dropNotice(n)) == nil {
		w.dropped.Add(-n)
	}
	if writeLine(w.fd, line) != nil {
		w.dropped.Add(1)
	}
}

// writeLine writes b to fd, and takes back the SIGPIPE that a broken pipe
// raised on the calling thread, which blocks it.
func writeLine(fd int, b []byte) error {
	err := writeFull(fd, b)
	if err == syscall.EPIPE {
		set := uint64(1) << (syscall.SIGPIPE - 1)
		var zero syscall.Timespec
		syscall.RawSyscall6(syscall.SYS_RT_SIGTIMEDWAIT, uintptr(unsafe.Pointer(&set)), 0, uintptr(unsafe.Pointer(&zero)), 8, 0, 0)
	}
	return err
}

// dropNotice is the line that reports n dropped lines, in the log's format.
func (w *logWriter) dropNotice(n int64) []byte {
	cfg := w.format.Load()
	if cfg == nil {
		cfg = &config{logFormat: "text"}
	}
	var b bytes.Buffer
	newLogger(&b, cfg).log(max(levelWarn, cfg.logLevel), "log lines dropped", "count", n)
	return b.Bytes()
}

// writeFull writes all of b to fd. A descriptor someone made non-blocking
// is waited for with ppoll rather than spun on.
func writeFull(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		switch err {
		case nil:
			b = b[n:]
		case syscall.EINTR:
		case syscall.EAGAIN:
			pfd := struct {
				fd             int32
				events, revent int16
			}{fd: int32(fd), events: 0x4} // POLLOUT
			syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, 0, 0, 0, 0)
		default:
			return err
		}
	}
	return nil
}

// flush waits up to d for the lines queued so far to be written. It naps
// rather than sets a timer: a timer would start the runtime's netpoller,
// which needs descriptors that may be lacking when manager exits early. It
// yields before each nap: manager runs with one P, which a goroutine keeps
// through a nap, and without the yield the writer would wait for the
// runtime's monitor to take the P back, up to 10 ms at every exit.
func (w *logWriter) flush(d time.Duration) {
	deadline := time.Now().Add(d)
	done := make(chan struct{})
	queued := false
	for time.Now().Before(deadline) {
		if !queued {
			select {
			case w.queue <- logEntry{done: done}:
				queued = true
			default:
			}
		}
		runtime.Gosched()
		if queued {
			select {
			case <-done:
				return
			default:
			}
		}
		syscall.Nanosleep(&flushNap, nil)
	}
}

// flushNap is flush's pause, short against a line's write, built once:
// Timespec's fields are 32 bits wide on 32-bit architectures.
var flushNap = syscall.NsecToTimespec(int64(50 * time.Microsecond))
