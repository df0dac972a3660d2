package main

// Sockets held across restarts (-listen): manager binds them before it
// starts anything and keeps them open, so that connections wait in the
// kernel's backlog while one program stops and the next starts. Each program
// gets them as systemd's socket activation passes them (sd_listen_fds(3)):
// descriptors 3, 4, … with LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID, the
// program's own pid, which only the program itself can set: manager starts
// it through its own binary (the shim), which sets LISTEN_PID and execs the
// program in its place.
//
// The binary's size is a budget: addresses are read by hand (net/netip
// alone would cost 80 KB) and sockets made with raw system calls (no net).

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// exitSockets is the exit code when a socket cannot be bound or held.
const exitSockets = 1

// listenAddr is one validated -listen value.
type listenAddr struct {
	name string // its entry in LISTEN_FDNAMES
	path string // a Unix socket's path; "" for TCP
	host string // TCP: the host as written, brackets included; "" for every address
	ip   []byte // TCP: host's 4 (IPv4) or 16 (IPv6) bytes; nil for every address
	port int
}

// unixPathMax is the longest path a Unix socket address holds: sun_path is
// 108 bytes, with a NUL at the end.
const unixPathMax = 107

// Why a -listen value is refused; the caller quotes the value.
var (
	errListenName = errors.New("NAME must be 1 to 255 printable ASCII characters, no ':'")
	errListenAddr = errors.New("want [NAME=]HOST:PORT, :PORT, [IPV6]:PORT or /PATH")
	errListenPort = errors.New("PORT must be 1 to 65535")
	errListenHost = errors.New("HOST must be an IP address (an IPv6 one in brackets) or localhost")
	errListenPath = errors.New("a Unix socket's path holds at most 107 bytes")
)

// parseListen reads [NAME=]ADDRESS, ADDRESS being HOST:PORT, :PORT,
// [IPV6]:PORT or an absolute path. A value that starts with a slash is all
// path, so that a path may hold "=". HOST is an IP address, or localhost for
// 127.0.0.1: manager resolves no names. Port 0, a port the kernel picks,
// is refused: no client would know it.
func parseListen(v string) (listenAddr, error) {
	a := listenAddr{name: "listen"}
	addr := v
	if name, rest, ok := strings.Cut(v, "="); ok && v[0] != '/' {
		// As systemd has them (fdname_is_valid): printable ASCII but
		// ':', which separates them, at most 255 bytes; and not empty,
		// which is more likely a slip.
		for _, c := range []byte(name) {
			if c < ' ' || c > '~' || c == ':' {
				return a, errListenName
			}
		}
		if name == "" || len(name) > 255 {
			return a, errListenName
		}
		a.name, addr = name, rest
	}
	if strings.HasPrefix(addr, "/") {
		a.path = addr
		if len(addr) > unixPathMax {
			return a, errListenPath
		}
		return a, nil
	}
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return a, errListenAddr
	}
	a.host = addr[:i]
	a.port = decimal(addr[i+1:], 65535)
	if a.port < 1 {
		return a, errListenPort
	}
	ok := true
	switch h := a.host; {
	case h == "":
	case h == "localhost":
		a.ip = []byte{127, 0, 0, 1}
	case h[0] == '[' && h[len(h)-1] == ']':
		var ip [16]byte
		ip, ok = parseIPv6(h[1 : len(h)-1])
		a.ip = ip[:]
	default:
		var ip [4]byte
		ip, ok = parseIPv4(h)
		a.ip = ip[:]
	}
	if !ok {
		return a, errListenHost
	}
	return a, nil
}

// decimal reads s, digits only without a leading zero, as a number up to
// max; anything else is -1.
func decimal(s string, max int) int {
	n, err := strconv.Atoi(s)
	if err != nil || n > max || s[0] < '0' || s[0] > '9' || len(s) > 1 && s[0] == '0' {
		return -1
	}
	return n
}

// parseIPv4 reads a dotted quad; leading zeros are refused, as some read
// them as octal.
func parseIPv4(s string) (ip [4]byte, ok bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return ip, false
	}
	for i, p := range parts {
		n := decimal(p, 255)
		if n < 0 {
			return ip, false
		}
		ip[i] = byte(n)
	}
	return ip, true
}

// parseIPv6 reads an IPv6 address as RFC 4291 writes them: eight groups of
// up to four hex digits, one "::" for a run of zero groups, an IPv4 address
// for the last two. Zones (%eth0) are not taken.
func parseIPv6(s string) (ip [16]byte, ok bool) {
	ellipsis := -1 // where "::" stands, in bytes of ip
	if strings.HasPrefix(s, "::") {
		ellipsis, s = 0, s[2:]
	}
	i := 0
	for s != "" && i < 16 {
		n, c := 0, 0
		for ; c < len(s) && c < 4; c++ {
			d := strings.IndexByte("0123456789abcdef", s[c]|0x20) // |0x20: lower case
			if d < 0 || s[c] < '0' {
				break
			}
			n = n<<4 | d
		}
		if c < len(s) && s[c] == '.' {
			v4, ok := parseIPv4(s)
			if !ok || i > 12 || ellipsis < 0 && i != 12 {
				return ip, false
			}
			copy(ip[i:], v4[:])
			i, s = i+4, ""
			break
		}
		if c == 0 {
			return ip, false
		}
		ip[i], ip[i+1] = byte(n>>8), byte(n)
		i, s = i+2, s[c:]
		if s == "" {
			break
		}
		if s[0] != ':' || len(s) == 1 {
			return ip, false
		}
		if s = s[1:]; s[0] == ':' {
			if ellipsis >= 0 {
				return ip, false
			}
			ellipsis, s = i, s[1:]
		}
	}
	switch {
	case s != "":
		return ip, false
	case i == 16:
		return ip, ellipsis < 0 // a "::" must stand for a group at least
	case ellipsis < 0:
		return ip, false
	}
	n := 16 - i
	copy(ip[ellipsis+n:], ip[ellipsis:i])
	clear(ip[ellipsis : ellipsis+n])
	return ip, true
}

// socket is a listening socket manager holds for the programs it starts.
type socket struct {
	fd       int
	name     string
	addr     *listenAddr // how it was bound, to bind it again; nil for an inherited socket
	ipv4     bool        // :PORT was bound to every IPv4 address: the kernel has no IPv6
	dev, ino uint64      // a Unix socket's file as bound: while the path names it, it is manager's
}

// sockets are all the sockets manager holds, in the order programs get
// them: those of -listen, then those manager inherited. Nil when manager
// neither holds a socket nor inherited LISTEN_ variables of its own: then
// programs are started as they always are.
type sockets struct {
	list []socket
	exe  string // manager's own binary, which starts each program as the shim
}

// holdSockets binds the sockets of -listen, then adds those inherited
// (mine: the LISTEN_ variables were manager's). It finds the binary that
// will start programs with them first: without it, there is nothing to
// bind them for.
func holdSockets(cfg *config, inherited []socket, mine bool) (*sockets, error) {
	if len(cfg.listen) == 0 && !mine {
		return nil, nil
	}
	h := &sockets{}
	if len(cfg.listen)+len(inherited) > 0 {
		var err error
		if h.exe, err = ownBinary(os.Args[0]); err != nil {
			return nil, err
		}
		// A program given sockets finds nothing else above fd 2: what
		// manager inherited besides them is not passed on. Best effort:
		// close_range(2) with CLOSE_RANGE_CLOEXEC is Linux 5.11's.
		const sysCloseRange, closeRangeCloexec = 436, 4
		syscall.Syscall(sysCloseRange, uintptr(3+len(inherited)), 1<<32-1, closeRangeCloexec)
	}
	for i := range cfg.listen {
		sk := socket{name: cfg.listen[i].name, addr: &cfg.listen[i]}
		if err := sk.bind(); err != nil {
			h.release()
			return nil, errors.New("cannot listen on " + sk.address() + ": " + err.Error())
		}
		h.list = append(h.list, sk)
	}
	h.list = append(h.list, inherited...)
	return h, nil
}

// ownBinary returns manager's own executable: /proc/self/exe, which names
// the running binary even if its file was replaced or removed since, or,
// where /proc is not mounted, arg0, the path manager was started by, or
// what it names in PATH.
func ownBinary(arg0 string) (string, error) {
	const self = "/proc/self/exe"
	if executable(self) == nil {
		return self, nil
	}
	path, err := resolveCommand(arg0)
	if err != nil {
		return "", errors.New("cannot find its own binary, which starts programs with their sockets: neither " + self + " nor " + arg0 + " can be executed")
	}
	return path, nil
}

// bind makes sk's socket anew, bound to its address and listening, with
// close-on-exec set: only the programs get it, in their list.
func (sk *socket) bind() error {
	a := sk.addr
	if a.path != "" {
		return sk.bindUnix()
	}
	family, sa := syscall.AF_INET6, syscall.Sockaddr(&syscall.SockaddrInet6{Port: a.port})
	switch len(a.ip) {
	case 4:
		family, sa = syscall.AF_INET, &syscall.SockaddrInet4{Port: a.port, Addr: [4]byte(a.ip)}
	case 16:
		sa = &syscall.SockaddrInet6{Port: a.port, Addr: [16]byte(a.ip)}
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err == syscall.EAFNOSUPPORT && a.ip == nil {
		// :PORT is every address of both families: one IPv6 socket that
		// IPv4 connections reach too (IPV6_V6ONLY off), or, where the
		// kernel has no IPv6, every IPv4 address.
		family, sa, sk.ipv4 = syscall.AF_INET, &syscall.SockaddrInet4{Port: a.port}, true
		fd, err = syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	}
	if err == nil && family == syscall.AF_INET6 {
		// An IPv6 address written out is that address only, as nginx
		// has it; only :PORT takes IPv4 too.
		err = syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, len(a.ip)/16)
	}
	if err == nil {
		// SO_REUSEADDR lets a port whose old connections linger in
		// TIME_WAIT be bound again; SO_REUSEPORT would let a second
		// process bind it too, and steal its connections.
		err = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	}
	return sk.listen(fd, sa, err)
}

// bindUnix binds sk's Unix socket. A socket file already at the path is
// taken as stale (from a manager that was killed, or a program's own) and
// replaced; anything but a socket there is left alone and refused. Whether
// a process still listens on it is not asked (a probe would cost its
// weight in binary size): two managers given one path are a mistake.
func (sk *socket) bindUnix() error {
	path := sk.addr.path
	var st syscall.Stat_t
	if syscall.Lstat(path, &st) == nil {
		if st.Mode&syscall.S_IFMT != syscall.S_IFSOCK {
			return errors.New("the path exists and is not a socket")
		}
		if err := syscall.Unlink(path); err != nil {
			return err
		}
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err = sk.listen(fd, &syscall.SockaddrUnix{Name: path}, err); err != nil {
		return err
	}
	syscall.Lstat(path, &st)
	sk.dev, sk.ino = st.Dev, st.Ino
	return nil
}

// listen binds fd to sa and listens, unless err says fd was not made as
// it should, with the largest backlog the kernel allows: listen(2) caps it
// at net.core.somaxconn. The backlog is where connections wait while no
// program accepts, during a restart.
func (sk *socket) listen(fd int, sa syscall.Sockaddr, err error) error {
	if err == nil {
		err = syscall.Bind(fd, sa)
	}
	if err == nil {
		err = syscall.Listen(fd, 1<<31-1)
	}
	if err != nil {
		syscall.Close(fd)
		return err
	}
	sk.fd = fd
	return nil
}

// address is where sk listens, for the log: the address as -listen gave
// it, with :PORT spelled as the family it got.
func (sk *socket) address() string {
	a, host := sk.addr, sk.addr.host
	switch {
	case a.path != "":
		return a.path
	case host != "":
	case sk.ipv4:
		host = "0.0.0.0"
	default:
		host = "[::]"
	}
	return host + ":" + strconv.Itoa(a.port)
}

// inheritSockets takes the sockets manager was started with by systemd's
// or podman's socket activation: LISTEN_FDS descriptors from 3, named by
// LISTEN_FDNAMES (systemd's name "unknown" where it names none), if
// LISTEN_PID is manager's pid; variables meant for another process are no
// business of manager's. It sets close-on-exec on them, as sd_listen_fds(3)
// does, and reports whether the variables were manager's, which no program
// may then get as they are.
func inheritSockets(lookupEnv func(string) (string, bool), pid int) (list []socket, mine bool, err error) {
	if p, _ := lookupEnv("LISTEN_PID"); p != strconv.Itoa(pid) {
		return nil, false, nil
	}
	count, _ := lookupEnv("LISTEN_FDS")
	n, err := strconv.Atoi(count)
	if count == "" {
		n, err = 0, nil // none, as sd_listen_fds(3) reads it
	}
	bad := errors.New("LISTEN_FDS=" + count + ": not that many descriptors open from 3")
	if err != nil || n < 0 {
		return nil, true, bad
	}
	names, _ := lookupEnv("LISTEN_FDNAMES")
	named := strings.Split(names, ":")
	for i := range n {
		sk := socket{fd: 3 + i, name: "unknown"}
		if i < len(named) && named[i] != "" {
			sk.name = named[i]
		}
		if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(sk.fd), syscall.F_SETFD, syscall.FD_CLOEXEC); e != 0 {
			return nil, true, bad
		}
		list = append(list, sk)
	}
	return list, true, nil
}

// release removes the files of the Unix sockets that are still manager's:
// manager is exiting, and a file left behind would refuse connections.
func (h *sockets) release() {
	if h == nil {
		return
	}
	for _, sk := range h.list {
		if sk.addr != nil && sk.addr.path != "" && sk.present() {
			syscall.Unlink(sk.addr.path)
		}
	}
}

// present reports whether the path of sk, a Unix socket, still names it.
func (sk *socket) present() bool {
	var st syscall.Stat_t
	err := syscall.Lstat(sk.addr.path, &st)
	return err == nil && st.Dev == sk.dev && st.Ino == sk.ino
}

// prepare makes spec start a program with the sockets, and returns the
// environment of the other processes (-check): env without the LISTEN_
// variables manager inherited, which describe other descriptors or another
// process. The program's has its own LISTEN_FDS and LISTEN_FDNAMES; the
// shim adds LISTEN_PID.
func (h *sockets) prepare(spec *procSpec, env []string) []string {
	others := make([]string, 0, len(env))
	for _, kv := range env {
		switch name, _, _ := strings.Cut(kv, "="); name {
		case "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES":
		default:
			others = append(others, kv)
		}
	}
	spec.env = others
	if n := len(h.list); n > 0 {
		fds, names := make([]int, n), make([]string, n)
		for i, sk := range h.list {
			fds[i], names[i] = sk.fd, sk.name
		}
		spec.env = append(others[:len(others):len(others)], "LISTEN_FDS="+strconv.Itoa(n), "LISTEN_FDNAMES="+strings.Join(names, ":"))
		spec.extra, spec.shim = fds, h.exe
	}
	return others
}

// refreshSockets readies the sockets for the next start: a Unix socket
// whose file a program removed (or replaced) is bound anew, as a new socket
// in the same place of the list, so that the path reaches the program
// again; the old one, which no path reaches, is closed. And each socket
// manager made is made blocking again, as it was made: O_NONBLOCK belongs
// to the socket, shared by every descriptor of it, and the last program
// may have set it (Go's net.FileListener does), which a program that
// accepts in blocking mode would not survive.
func (s *supervisor) refreshSockets() {
	if s.socks == nil {
		return
	}
	for i := range s.socks.list {
		sk := &s.socks.list[i]
		if sk.addr == nil {
			continue // inherited: as it was given
		}
		if sk.addr.path != "" && !sk.present() {
			old, attrs := sk.fd, []any{"path", sk.addr.path, "fd", 3 + i}
			if err := sk.bindUnix(); err != nil {
				s.log.Warn("socket file gone; cannot bind it again", append(attrs, "error", err)...)
			} else {
				syscall.Close(old)
				s.spec.extra[i] = sk.fd
				s.log.Warn("socket file gone; bound anew", attrs...)
			}
		}
		syscall.SetNonblock(sk.fd, false)
	}
}

// logSockets says which socket each program gets as which descriptor.
func (s *supervisor) logSockets() {
	if s.socks == nil {
		return
	}
	for i, sk := range s.socks.list {
		where := "inherited"
		if sk.addr != nil {
			where = sk.address()
		}
		s.log.Info("listening", "fd", 3+i, "name", sk.name, "address", where)
	}
}

// shimArg0 is argv[0] of manager's binary started as the shim. No user
// starts manager by that name: it begins with a control character.
const shimArg0 = "\x01manager:exec-with-sockets"

// init runs the shim, when manager's binary is started as one, before
// anything else of manager can: no signal is subscribed to, no thread made,
// nothing logged. Package initialization runs on the main thread, which is
// the one the parent-death signal was set on (prctl(2) sets it per thread;
// an exec from another thread would lose it).
func init() {
	if len(os.Args) >= 4 && os.Args[0] == shimArg0 {
		os.Exit(shim(os.Args[1], os.Args[2], os.Args[3:]))
	}
}

// shim execs path with argv, the environment it was started with and
// LISTEN_PID, its own pid, which becomes the program's. Its process group,
// terminal, parent-death signal, descriptors and signal dispositions carry
// over, as they do through any exec. It first writes shimReady on errFd, a
// pipe that the exec closes (close-on-exec), then, if the exec fails, the
// errno; manager's launcher reads them as syscall.ForkExec reads its own
// child's. The exit code is a shell's, for a manager that stopped waiting.
func shim(errFd, path string, argv []string) int {
	fd, _ := strconv.Atoi(errFd)
	syscall.CloseOnExec(fd)
	syscall.Write(fd, []byte{shimReady})
	err := syscall.Exec(path, argv, append(os.Environ(), "LISTEN_PID="+strconv.Itoa(os.Getpid())))
	errno, _ := err.(syscall.Errno)
	syscall.Write(fd, []byte(strconv.Itoa(int(errno))))
	if errno == syscall.ENOENT {
		return exitNotFound
	}
	return exitNotExecutable
}

// shimReady is the byte the shim writes first, once its Go runtime runs: a
// pipe that ends without it means the shim died before, most likely of a
// thread its runtime could not make (a full pids cgroup) or of memory: a
// start that lacked resources, retried as a fork's EAGAIN is.
const shimReady = '+'

// errShimDied is why a start failed when the shim died before it ran.
var errShimDied = &os.SyscallError{Syscall: "shim ended before it ran", Err: syscall.EAGAIN}

// shimWait bounds the loop's wait for the shim's exec, which takes a few
// milliseconds: a shim stopped before it (Ctrl-Z at that instant, SIGSTOP)
// must not hold forwarding and reaping. Past it, the program counts as
// started; an exec that fails later shows as its exit (127, 126), as a
// shell's would.
const shimWait = time.Second

// startShimmed starts spec through the shim: manager's own binary, run with
// argv[0] shimArg0, the descriptor of the pipe for exec's errors, spec.path
// and spec.argv. It returns once the program runs, or with why its exec
// failed, which then means what a failed exec of syscall.ForkExec means.
// A shim that fails leaves a zombie, which the reaper collects as an
// orphan, since nothing else may wait.
func startShimmed(spec procSpec) (int, error) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return 0, os.NewSyscallError("pipe2", err)
	}
	argv := make([]string, 0, 3+len(spec.argv))
	argv = append(argv, shimArg0, strconv.Itoa(len(spec.files)+len(spec.extra)), spec.path)
	spec.argv = append(argv, spec.argv...)
	spec.extra = append(spec.extra[:len(spec.extra):len(spec.extra)], p[1])
	spec.path = spec.shim
	pid, err := forkExec(spec)
	syscall.Close(p[1])
	if err != nil {
		syscall.Close(p[0])
		return 0, err
	}
	said, err := readShim(p[0], time.Now().Add(shimWait))
	syscall.Close(p[0])
	switch {
	case err != nil:
		return pid, nil // see shimWait
	case len(said) == 0:
		return 0, errShimDied
	case len(said) > 1:
		errno, _ := strconv.Atoi(string(said[1:]))
		return 0, syscall.Errno(errno)
	}
	return pid, nil
}

// readShim reads what the shim says on fd until the pipe ends, or until
// deadline, when it returns ETIMEDOUT with what it got by then.
func readShim(fd int, deadline time.Time) ([]byte, error) {
	var buf [16]byte
	n := 0
	for n < len(buf) {
		left := time.Until(deadline)
		if left <= 0 {
			return buf[:n], syscall.ETIMEDOUT
		}
		ts := syscall.NsecToTimespec(int64(left))
		pfd := struct {
			fd             int32
			events, revent int16
		}{fd: int32(fd), events: 1} // POLLIN
		_, _, e := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		if e == syscall.EINTR || (e == 0 && pfd.revent == 0) {
			continue
		}
		if e != 0 {
			return buf[:n], e
		}
		m, err := syscall.Read(fd, buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil || m == 0 {
			return buf[:n], err
		}
		n += m
	}
	return buf[:n], nil
}
