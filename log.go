package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// level is a log line's severity.
type level = slog.Level

const (
	levelDebug = slog.LevelDebug
	levelInfo  = slog.LevelInfo
	levelWarn  = slog.LevelWarn
	levelError = slog.LevelError
)

// logger writes manager's log lines.
type logger struct{ l *slog.Logger }

// newLogger builds the logger for cfg. Log lines go to standard error
// only: standard output belongs to the program.
func newLogger(w io.Writer, cfg *config) *logger {
	opts := &slog.HandlerOptions{Level: cfg.logLevel}
	if cfg.logFormat == "json" {
		return &logger{slog.New(slog.NewJSONHandler(w, opts))}
	}
	return &logger{slog.New(slog.NewTextHandler(w, opts))}
}

func (l *logger) Debug(msg string, args ...any)      { l.l.Debug(msg, args...) }
func (l *logger) Info(msg string, args ...any)       { l.l.Info(msg, args...) }
func (l *logger) Warn(msg string, args ...any)       { l.l.Warn(msg, args...) }
func (l *logger) Error(msg string, args ...any)      { l.l.Error(msg, args...) }
func (l *logger) enabled(lv level) bool              { return l.l.Enabled(context.Background(), lv) }
func (l *logger) log(lv level, msg string, a ...any) { l.l.Log(context.Background(), lv, msg, a...) }

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

// newLogWriter starts the writer of fd, and returns once its thread is
// ready: made now, while threads can be made, and with its signals blocked.
func newLogWriter(fd int) *logWriter {
	w := &logWriter{fd: fd, queue: make(chan logEntry, logQueue)}
	ready := make(chan struct{})
	go w.run(ready)
	<-ready
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

// run writes the queued lines, on a thread of its own that blocks SIGPIPE
// and SIGTTOU. The kernel sends SIGPIPE for a write to a pipe without
// reader to the writing thread, where blocked it stays pending and
// harmless: delivered, manager would take it for one sent to it, and
// forward it to the child. A write to a terminal from a background process
// group with "stty tostop" raises SIGTTOU, which manager catches, so the
// write would be restarted forever; the kernel lets it through when the
// writing thread blocks SIGTTOU.
func (w *logWriter) run(ready chan<- struct{}) {
	runtime.LockOSThread() // never unlocked: the mask belongs to this thread
	blockThreadSignals(syscall.SIGPIPE, syscall.SIGTTOU)
	close(ready)
	for e := range w.queue {
		if e.done != nil {
			close(e.done)
			continue
		}
		if n := w.dropped.Load(); n > 0 && writeFull(w.fd, w.dropNotice(n)) == nil {
			w.dropped.Add(-n)
		}
		if writeFull(w.fd, e.line) != nil {
			w.dropped.Add(1)
		}
	}
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
		syscall.Nanosleep(&millisecond, nil)
	}
}

// millisecond is the log writer's polling pause, built once: Timespec's
// fields are 32 bits wide on 32-bit architectures.
var millisecond = syscall.NsecToTimespec(int64(time.Millisecond))
