//go:build linux

// Package faults makes chosen system calls of the dispatcher fail, for
// tests: EINTR on every call, EAGAIN storms, ENOBUFS, ECONNRESET in the
// middle of a send, EMFILE, short reads and writes. It plays the role of
// Go's net/internal/socktest. Importing the package replaces the function
// variables of internal/sys, once, in its init — before any test or
// dispatcher runs, so no goroutine ever sees them change — with wrappers
// that make the real call unless an Injector is installed; Install puts
// one in force until the test ends.
//
// A Rule selects calls by operation and, optionally, descriptor, and
// decides on which of them it acts (Skip, Every, Limit). Every rule counts
// every call it selects; the first rule, in the order they were added,
// that acts on a call decides what the call does. A call no rule acts on
// is the real system call. Rules may be added and removed while
// dispatchers run on other goroutines.
package faults

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/asyncdispatch/asyncdispatch/internal/sys"
)

// Op names a replaceable system call.
type Op uint8

const (
	Socket    Op = iota // socket(2)
	Recv                // recv(2) and recvfrom(2)
	Send                // send(2) and sendto(2)
	Accept              // accept4(2)
	Connect             // connect(2)
	EpollWait           // epoll_wait(2)
	EpollCtl            // epoll_ctl(2); the descriptor is the target fd
	Read                // read(2) (the poller's waker; non-socket descriptors)
	Write               // write(2) (the poller's waker; non-socket descriptors)
	numOps
)

var opNames = [numOps]string{"socket", "recv", "send", "accept4", "connect", "epoll_wait", "epoll_ctl", "read", "write"}

func (op Op) String() string {
	if op < numOps {
		return opNames[op]
	}
	return fmt.Sprintf("Op(%d)", op)
}

// Ops lists every operation, for reports.
func Ops() []Op {
	ops := make([]Op, numOps)
	for i := range ops {
		ops[i] = Op(i)
	}
	return ops
}

// Rule selects calls and says what they do instead of (or around) the real
// call. The zero Rule of an Op selects every call of it and acts on none.
type Rule struct {
	// Op is the call selected.
	Op Op
	// FDs, if not empty, selects calls on these descriptors only (for
	// Socket, which has none, a rule with FDs never matches).
	FDs []int
	// Skip lets the first Skip selected calls through.
	Skip int
	// Every acts on every Every-th selected call after Skip (0 and 1:
	// every one).
	Every int
	// Limit stops the rule after it acted Limit times (0: no limit).
	Limit int
	// Err is the errno an acted-on call returns without making the real
	// call (for Connect with Real, after it).
	Err unix.Errno
	// Real, for Connect: make the real call first and, if it started or
	// made the connection, return Err instead (a connect interrupted by a
	// signal goes on in the kernel, so EINTR must not stop it).
	Real bool
	// Short, for Recv and Send with Err 0: make the real call with at most
	// Short bytes (a partial transfer).
	Short int
	// Before, if set, runs (outside any lock) before an acted-on call,
	// for tests that must know a call is about to block.
	Before func()

	seen, acted int
}

// Acted is the number of calls the rule acted on.
func (r *Rule) Acted() int {
	mu.Lock()
	defer mu.Unlock()
	return r.acted
}

// Seen is the number of calls the rule selected.
func (r *Rule) Seen() int {
	mu.Lock()
	defer mu.Unlock()
	return r.seen
}

func (r *Rule) selects(op Op, fd int) bool {
	if r.Op != op {
		return false
	}
	if len(r.FDs) == 0 {
		return true
	}
	for _, x := range r.FDs {
		if x == fd && op != Socket {
			return true
		}
	}
	return false
}

// count records a selected call and reports whether the rule acts on it.
func (r *Rule) count() bool {
	r.seen++
	k := r.seen - r.Skip
	if k <= 0 || (r.Limit > 0 && r.acted >= r.Limit) {
		return false
	}
	if r.Every > 1 && k%r.Every != 0 {
		return false
	}
	r.acted++
	return true
}

// Injector is the set of rules in force while a test runs.
type Injector struct {
	rules    []*Rule
	calls    [numOps]int
	injected [numOps]int
	// errnos counts the errors the real calls returned, by op and errno.
	errnos map[opErrno]int
}

type opErrno struct {
	op Op
	e  unix.Errno
}

var (
	// mu guards the rules and counts of every Injector.
	mu sync.Mutex
	// current is the Injector in force, nil when the wrappers pass every
	// call through.
	current atomic.Pointer[Injector]
)

func init() { wrap() }

// Install puts a new Injector in force until tb ends. Only one can be
// installed at a time.
func Install(tb testing.TB) *Injector {
	tb.Helper()
	in := &Injector{errnos: map[opErrno]int{}}
	if !current.CompareAndSwap(nil, in) {
		tb.Fatal("faults: an Injector is installed already")
	}
	tb.Cleanup(func() { current.Store(nil) })
	return in
}

// Add puts r in force (after the rules added before it) and returns it.
func (in *Injector) Add(r *Rule) *Rule {
	mu.Lock()
	defer mu.Unlock()
	in.rules = append(in.rules, r)
	return r
}

// Remove takes r out of force.
func (in *Injector) Remove(r *Rule) {
	mu.Lock()
	defer mu.Unlock()
	for i, x := range in.rules {
		if x == r {
			in.rules = append(in.rules[:i:i], in.rules[i+1:]...)
			return
		}
	}
}

// Reset removes every rule (the counts are kept).
func (in *Injector) Reset() {
	mu.Lock()
	defer mu.Unlock()
	in.rules = nil
}

// Calls is the number of calls of op made since Install.
func (in *Injector) Calls(op Op) int {
	mu.Lock()
	defer mu.Unlock()
	return in.calls[op]
}

// Injected is the number of calls of op a rule acted on.
func (in *Injector) Injected(op Op) int {
	mu.Lock()
	defer mu.Unlock()
	return in.injected[op]
}

// TotalInjected is the number of calls any rule acted on.
func (in *Injector) TotalInjected() int {
	mu.Lock()
	defer mu.Unlock()
	n := 0
	for _, k := range in.injected {
		n += k
	}
	return n
}

// Returned is the number of real calls of op that returned e.
func (in *Injector) Returned(op Op, e unix.Errno) int {
	mu.Lock()
	defer mu.Unlock()
	return in.errnos[opErrno{op, e}]
}

// Summary describes the calls and injections per op, for test logs.
func (in *Injector) Summary() string {
	mu.Lock()
	defer mu.Unlock()
	s := ""
	for op := Op(0); op < numOps; op++ {
		if in.calls[op] == 0 {
			continue
		}
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("%v %d calls/%d injected", op, in.calls[op], in.injected[op])
	}
	return s
}

// decide finds the rule acting on a call, if any.
func (in *Injector) decide(op Op, fd int) *Rule {
	mu.Lock()
	defer mu.Unlock()
	in.calls[op]++
	var act *Rule
	for _, r := range in.rules {
		if r.selects(op, fd) && r.count() && act == nil {
			act = r
		}
	}
	if act != nil && (act.Err != 0 || act.Short > 0) {
		in.injected[op]++
	}
	return act
}

// observe counts an error of a real call (in may be nil: no Injector).
func (in *Injector) observe(op Op, err error) {
	if in == nil || err == nil {
		return
	}
	if e, ok := err.(unix.Errno); ok && e != 0 {
		mu.Lock()
		in.errnos[opErrno{op, e}]++
		mu.Unlock()
	}
}

// wrap replaces internal/sys's calls with wrappers that consult the
// Injector in force.
func wrap() {
	var (
		socket    = sys.Socket
		recvFrom  = sys.RecvFrom
		sendTo    = sys.SendTo
		accept4   = sys.Accept4
		connect   = sys.Connect
		epollWait = sys.EpollWait
		epollCtl  = sys.EpollCtl
		read      = sys.Read
		write     = sys.Write
	)
	// pre finds the rule acting on a call (nil: the real call) and runs
	// its Before.
	pre := func(op Op, fd int) (*Injector, *Rule) {
		in := current.Load()
		if in == nil {
			return nil, nil
		}
		r := in.decide(op, fd)
		if r != nil && r.Before != nil {
			r.Before()
		}
		return in, r
	}
	sys.Socket = func(domain, typ, proto int) (int, error) {
		in, r := pre(Socket, -1)
		if r != nil && r.Err != 0 {
			return -1, r.Err
		}
		fd, err := socket(domain, typ, proto)
		in.observe(Socket, err)
		return fd, err
	}
	sys.RecvFrom = func(fd int, p []byte, flags int, rsa *unix.RawSockaddrAny, alen *uint32) (int, error) {
		in, r := pre(Recv, fd)
		if r != nil && r.Err != 0 {
			return 0, r.Err
		}
		if r != nil && r.Short > 0 && len(p) > r.Short {
			p = p[:r.Short]
		}
		n, err := recvFrom(fd, p, flags, rsa, alen)
		in.observe(Recv, err)
		return n, err
	}
	sys.SendTo = func(fd int, p []byte, flags int, sa unsafe.Pointer, salen uint32) (int, error) {
		in, r := pre(Send, fd)
		if r != nil && r.Err != 0 {
			return 0, r.Err
		}
		if r != nil && r.Short > 0 && len(p) > r.Short {
			p = p[:r.Short]
		}
		n, err := sendTo(fd, p, flags, sa, salen)
		in.observe(Send, err)
		return n, err
	}
	sys.Accept4 = func(fd int, rsa *unix.RawSockaddrAny, alen *uint32, flags int) (int, error) {
		in, r := pre(Accept, fd)
		if r != nil && r.Err != 0 {
			return -1, r.Err
		}
		nfd, err := accept4(fd, rsa, alen, flags)
		in.observe(Accept, err)
		return nfd, err
	}
	sys.Connect = func(fd int, sa unix.Sockaddr) error {
		in, r := pre(Connect, fd)
		if r != nil && r.Err != 0 && !r.Real {
			return r.Err
		}
		err := connect(fd, sa)
		in.observe(Connect, err)
		if r != nil && r.Err != 0 && (err == nil || err == unix.EINPROGRESS) {
			return r.Err
		}
		return err
	}
	sys.EpollWait = func(epfd int, events []unix.EpollEvent, msec int) (int, error) {
		in, r := pre(EpollWait, epfd)
		if r != nil && r.Err != 0 {
			return 0, r.Err
		}
		n, err := epollWait(epfd, events, msec)
		in.observe(EpollWait, err)
		return n, err
	}
	sys.EpollCtl = func(epfd, op, fd int, ev *unix.EpollEvent) error {
		in, r := pre(EpollCtl, fd)
		if r != nil && r.Err != 0 {
			return r.Err
		}
		err := epollCtl(epfd, op, fd, ev)
		in.observe(EpollCtl, err)
		return err
	}
	sys.Read = func(fd int, p []byte) (int, error) {
		in, r := pre(Read, fd)
		if r != nil && r.Err != 0 {
			return -1, r.Err
		}
		n, err := read(fd, p)
		in.observe(Read, err)
		return n, err
	}
	sys.Write = func(fd int, p []byte) (int, error) {
		in, r := pre(Write, fd)
		if r != nil && r.Err != 0 {
			return -1, r.Err
		}
		n, err := write(fd, p)
		in.observe(Write, err)
		return n, err
	}
}
