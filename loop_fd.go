package asyncdispatch

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/asyncdispatch/asyncdispatch/internal/poller"
)

// AsyncFD is a descriptor registered with a dispatcher (Nim's AsyncFD).
type AsyncFD int

// InvalidFD is the descriptor passed to callbacks that have none (AddTimer).
const InvalidFD AsyncFD = -1

// Callback is an fd, timer, event, signal or process callback (Nim's
// Callback): it returns true when it is done and must be removed, false to
// be called again the next time.
type Callback func(fd AsyncFD) bool

// The descriptor table. What must stay true:
//   - a slot exists exactly while the fd is registered; its gen is new for
//     every registration and travels in the epoll token, so an event that
//     was queued for an fd number that has since been closed and reused is
//     recognised and dropped (fdseq in Go's netpoll_epoll.go);
//   - readers/writers hold the waiting callbacks in FIFO order; an fd
//     counts as active (nactive, ActiveDescriptors, HasPendingOperations)
//     while either list is non-empty;
//   - epoll interest is level-triggered and lazily removed: a direction is
//     armed when its list becomes non-empty and disarmed only when an event
//     arrives for a direction that had nobody waiting when it fired. A
//     connection that reads and waits again and again therefore costs no
//     epoll_ctl per message (Nim pays four per echoed message: it arms and
//     disarms interest around every wait).
type fdState struct {
	fd      int
	gen     uint32
	armed   poller.Interest
	readers []waiter
	writers []waiter
	// owned: the package created the descriptor (sockets, events), so
	// Close of the dispatcher closes it.
	owned bool
	// closer runs when the dispatcher closes an owned fd (events use it to
	// release more than the fd).
	closer func()
	// counted: the fd is counted in d.nactive. recount brings it up to
	// date after every change to the lists, except while dispatchEvent
	// has a list detached (busy), which recounts when it is done; so a
	// callback that adds a callback to, or unregisters, its own fd keeps
	// the count right.
	counted, busy bool
	// drained: the last receive on this fd read less than it asked for or
	// hit EAGAIN, so the socket is most likely empty; the next receive
	// waits for readiness instead of trying first (saving the system call
	// that would return EAGAIN — the C echo loop's two syscalls per
	// message instead of three). A read event clears it. A wrong guess
	// only costs one poll round: interest is level-triggered.
	drained bool
	// werr: a send failed after writing part of its data; every later
	// send fails with it, so the peer never sees a stream with a hole in
	// it (a message cut short, then the next one).
	werr error
	// notSock: recv(2) or send(2) on this fd failed with ENOTSOCK; it is
	// a pipe, a FIFO or a terminal, and read(2) and write(2) serve its
	// Recv and Send from then on (fdState.recv, fdState.send).
	notSock bool
	// stale: an operation was dequeued while a list of this fd was
	// detached by runList, so that list may hold its stale entry; runList
	// drops stale entries when it puts the list back.
	stale bool
}

// waiter is a user callback or a pending operation of the package; b is
// the operation's base if it has one (queueOp), by which dequeue finds it,
// and gen the operation's generation when it was queued.
type waiter struct {
	cb  Callback
	op  ioOp
	b   *opBase
	gen uint32
}

// stale reports an entry of an operation that was dequeued or reused
// since it was queued: it must not run, nor be aborted (sock_op.go).
func (w *waiter) stale() bool { return w.b != nil && w.b.gen != w.gen }

// ioOp is a pending operation on a descriptor (a recv, a send, an
// accept...). ready is called with the descriptor's state (so the op
// needs no second lookup in the fd table) when the descriptor is ready in
// the op's direction, and reports whether the op is finished (it completed or failed
// its future); abort fails it without touching the descriptor, and is
// called by CloseSocket, Unregister, Close and cancellation before the fd
// number is released.
type ioOp interface {
	ready(s *fdState) bool
	abort(err error)
}

func (s *fdState) active() bool { return len(s.readers) > 0 || len(s.writers) > 0 }

// recount makes s.counted (and so d.nactive) agree with s.active().
func (d *Dispatcher) recount(s *fdState) {
	if s.busy {
		return
	}
	if a := s.active(); a != s.counted {
		s.counted = a
		if a {
			d.nactive++
		} else {
			d.nactive--
		}
	}
}

func (s *fdState) token() uint64 { return uint64(s.fd) | uint64(s.gen)<<32 }

func (d *Dispatcher) lookup(fd AsyncFD) *fdState {
	if fd < 0 || int(fd) >= len(d.fds) {
		return nil
	}
	return d.fds[fd]
}

// Register registers fd with the dispatcher, with no interest: it does not
// count as pending until an operation or callback waits on it. It makes fd
// non-blocking (O_NONBLOCK), as an event loop needs: a blocking call on a
// registered descriptor would stall every procedure on the loop. It
// returns ErrAlreadyRegistered for a registered fd and ErrInvalidFD for a
// negative one or one that is not open. The fd stays the caller's: Close
// of the dispatcher unregisters it but does not close it.
func (d *Dispatcher) Register(fd AsyncFD) error {
	if fd >= 0 && !d.closed {
		// The fd must be open: a closed or made-up number would only
		// fail later, in epoll_ctl, and a huge one would size the table
		// (gigabytes for 1<<30).
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return fmt.Errorf("%w %d: %w", ErrInvalidFD, fd, os.NewSyscallError("fcntl", err))
		}
		if d.lookup(fd) == nil {
			if err := unix.SetNonblock(int(fd), true); err != nil {
				return os.NewSyscallError("fcntl", err)
			}
		}
	}
	_, err := d.register(fd, false)
	return err
}

func (d *Dispatcher) register(fd AsyncFD, owned bool) (*fdState, error) {
	d.checkOwner()
	if d.closed {
		return nil, ErrClosed
	}
	if fd < 0 {
		return nil, ErrInvalidFD
	}
	if d.lookup(fd) != nil {
		return nil, fmt.Errorf("%w: %d", ErrAlreadyRegistered, fd)
	}
	for int(fd) >= len(d.fds) {
		n := 2 * len(d.fds)
		if n < 64 {
			n = 64
		}
		nf := make([]*fdState, n)
		copy(nf, d.fds)
		d.fds = nf
	}
	d.fdgen++
	s := &fdState{fd: int(fd), gen: d.fdgen, owned: owned}
	d.fds[fd] = s
	d.nfds++
	return s, nil
}

// Unregister removes fd from the dispatcher without closing it. Pending
// operations on it fail with ErrNotRegistered (Nim orphans them forever)
// and its callbacks are dropped. It returns ErrNotRegistered for an fd that
// is not registered.
func (d *Dispatcher) Unregister(fd AsyncFD) error {
	s := d.lookup(fd)
	if s == nil {
		return fmt.Errorf("%w (fd %d)", ErrNotRegistered, fd)
	}
	d.unregister(s, ErrNotRegistered)
	return nil
}

// unregister aborts pending operations with err, removes interest and
// frees the slot. The descriptor is still open when the aborts run.
func (d *Dispatcher) unregister(s *fdState, err error) {
	d.checkOwner()
	if s.counted {
		s.counted = false
		d.nactive--
	}
	rs, ws := s.readers, s.writers
	s.readers, s.writers = nil, nil
	// No interest may outlive the registration: a failure here can only
	// mean the kernel has no entry for the descriptor already.
	d.setInterest(s, 0)
	d.fds[s.fd] = nil
	d.nfds--
	abortAll(rs, err)
	abortAll(ws, err)
}

// abortAll aborts the operations of list with err, but for stale entries.
func abortAll(list []waiter, err error) {
	for i := range list {
		if w := &list[i]; w.op != nil && !w.stale() {
			w.op.abort(err)
		}
	}
}

// Contains reports whether fd is registered with the dispatcher.
func (d *Dispatcher) Contains(fd AsyncFD) bool { return d.lookup(fd) != nil }

// AddRead calls cb each time fd is readable until cb returns true (Nim's
// addRead). Several callbacks on one fd run in the order they were added;
// within one readiness event they run until one returns false, which keeps
// it and every later one for the next event. fd must be registered. A
// callback that panics is removed (the ones after it stay), and the Poll
// that ran it returns the panic as a *PanicError.
func (d *Dispatcher) AddRead(fd AsyncFD, cb Callback) error {
	if cb == nil {
		return ErrNilCallback
	}
	return d.addWaiter(fd, poller.Read, waiter{cb: cb})
}

// AddWrite is AddRead for writability.
func (d *Dispatcher) AddWrite(fd AsyncFD, cb Callback) error {
	if cb == nil {
		return ErrNilCallback
	}
	return d.addWaiter(fd, poller.Write, waiter{cb: cb})
}

func (d *Dispatcher) addWaiter(fd AsyncFD, dir poller.Interest, w waiter) error {
	d.checkOwner()
	if d.closed {
		return ErrClosed
	}
	s := d.lookup(fd)
	if s == nil {
		return fmt.Errorf("%w (fd %d)", ErrNotRegistered, fd)
	}
	if dir == poller.Read {
		s.readers = append(s.readers, w)
	} else {
		s.writers = append(s.writers, w)
	}
	if err := d.setInterest(s, s.armed|dir); err != nil {
		if dir == poller.Read {
			s.readers = s.readers[:len(s.readers)-1]
		} else {
			s.writers = s.writers[:len(s.writers)-1]
		}
		return err
	}
	d.recount(s)
	return nil
}

// setInterest makes the poller report exactly want for s's descriptor.
// Every change of interest goes through it, with one error policy:
// s.armed always says what the kernel has. On success that is want. On
// failure epoll_ctl changed nothing, so armed keeps its value — but for
// ENOENT and EBADF, which say the kernel has no entry for the descriptor
// at all (it was closed behind the dispatcher's back, which removes it),
// where armed becomes 0, so the next arming adds it afresh. The error is
// returned: a caller that adds interest fails what needed it (addWaiter)
// or tries again later (a listener backing off); a caller that removes
// interest (the lazy disarm, a listener starting to back off,
// unregister) goes on, and since armed still shows the interest, a failed
// disarm is tried again the next time it is due.
func (d *Dispatcher) setInterest(s *fdState, want poller.Interest) error {
	if want == s.armed {
		return nil
	}
	err := d.poller.Set(s.fd, s.token(), s.armed, want)
	switch {
	case err == nil:
		s.armed = want
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EBADF):
		s.armed = 0
	}
	return err
}

// queueOp puts op on its descriptor's wait list in its direction.
func (d *Dispatcher) queueOp(op queuedOp) error {
	b := op.base()
	return d.addWaiter(b.fd, b.dir, waiter{op: op, b: b, gen: b.gen})
}

// dequeue takes the operation whose base is b off its wait list
// (cancellation). Its entry may be out of reach — in a list runList has
// detached, while a callback ahead of it cancels it — so first the
// operation's generation moves on: whatever entry it left anywhere is
// stale from now on and never runs (runList and the aborts skip it), even
// if the operation is reused at once on another descriptor.
func (d *Dispatcher) dequeue(b *opBase) {
	b.gen++
	if !d.removeWaiter(b.fd, b.dir, func(w *waiter) bool { return w.b == b }) {
		if s := d.lookup(b.fd); s != nil && s.busy {
			s.stale = true
		}
	}
}

// removeOp takes a pending operation without a base (WaitProcess) off
// fd's list (cancellation).
func (d *Dispatcher) removeOp(fd AsyncFD, dir poller.Interest, op ioOp) {
	d.removeWaiter(fd, dir, func(w *waiter) bool { return w.op == op })
}

// removeWaiter removes the first entry of fd's list in direction dir for
// which is reports true, and reports whether there was one.
func (d *Dispatcher) removeWaiter(fd AsyncFD, dir poller.Interest, is func(*waiter) bool) bool {
	s := d.lookup(fd)
	if s == nil {
		return false
	}
	list := &s.readers
	if dir == poller.Write {
		list = &s.writers
	}
	for i := range *list {
		if is(&(*list)[i]) {
			*list = slices.Delete(*list, i, i+1)
			d.recount(s)
			return true
		}
	}
	return false
}

// dispatchEvent runs the callbacks of one ready descriptor.
func (d *Dispatcher) dispatchEvent(ev poller.Event) {
	fd := int(uint32(ev.Token))
	if fd >= len(d.fds) {
		return
	}
	s := d.fds[fd]
	if s == nil || s.gen != uint32(ev.Token>>32) {
		return // stale: closed, or closed and reused since
	}
	s.busy = true
	hadR, hadW := len(s.readers) > 0, len(s.writers) > 0
	if ev.Ready&poller.Read != 0 {
		s.drained = false
		if hadR {
			d.runList(s, &s.readers)
		}
	}
	// The read callbacks may have unregistered (closed) the fd.
	if d.fds[fd] != s {
		return
	}
	if ev.Ready&poller.Write != 0 {
		if hadW {
			d.runList(s, &s.writers)
		}
	}
	if d.fds[fd] != s {
		return
	}
	// Lazy disarm: a direction that fired while nobody was waiting on it
	// is removed; an error/hang-up with nobody waiting at all removes
	// everything (epoll keeps reporting it otherwise). A direction whose
	// waiters just ran stays armed even if its list is empty now: the
	// procedure they resume usually waits again at once (a connection
	// reading message after message), and keeping the interest saves two
	// epoll_ctl calls per message. If nobody comes back, the next event
	// finds the list empty and disarms.
	want := s.armed
	if ev.Err && !hadR && !hadW && !s.active() {
		want = 0
	} else {
		if ev.Ready&poller.Read != 0 && !hadR && len(s.readers) == 0 {
			want &^= poller.Read
		}
		if ev.Ready&poller.Write != 0 && !hadW && len(s.writers) == 0 {
			want &^= poller.Write
		}
	}
	// A failed disarm leaves the interest armed, and armed saying so:
	// the next event with nobody waiting tries again.
	d.setInterest(s, want)
	s.busy = false
	s.stale = false
	d.recount(s)
}

// runList runs the callbacks in *list in order until one is not done; it
// and the rest are kept, followed by callbacks added meanwhile. Stale
// entries (an operation dequeued or reused while the list was detached)
// are skipped and dropped.
func (d *Dispatcher) runList(s *fdState, list *[]waiter) {
	cur := *list
	*list = nil
	i := 0
	defer func() {
		p := recover()
		if p != nil {
			d.checkErr = append(d.checkErr, d.recovered(p))
			i++ // drop the callback that panicked
		}
		if d.fds[s.fd] != s {
			// Unregistered meanwhile: abort what was not run.
			abortAll(cur[i:], ErrNotRegistered)
			return
		}
		if i < len(cur) {
			rest := cur[i:len(cur):len(cur)]
			if s.stale {
				rest = slices.DeleteFunc(rest, func(w waiter) bool { return w.stale() })
			}
			*list = append(rest, *list...)
		} else if *list == nil {
			// All ran and none was added: keep the array for the next
			// wait, so a wait costs no allocation of the list.
			clear(cur)
			*list = cur[:0]
		}
	}()
	for i < len(cur) {
		w := &cur[i]
		var done bool
		switch {
		case w.op == nil:
			done = w.cb(AsyncFD(s.fd))
		case w.stale():
			done = true
		default:
			done = w.op.ready(s)
		}
		if !done {
			return
		}
		cur[i] = waiter{}
		i++
		if d.fds[s.fd] != s {
			return
		}
	}
}

// closeFDs is Close's part for descriptors: abort, unregister, and close
// the ones the package created.
func (d *Dispatcher) closeFDs() {
	for _, s := range d.fds {
		if s == nil {
			continue
		}
		d.unregister(s, ErrClosed)
		if s.owned {
			if s.closer != nil {
				s.closer()
			} else {
				unix.Close(s.fd)
			}
		}
	}
	d.fds = nil
}

// ActiveDescriptors is the number of registered descriptors with a pending
// operation or callback (Nim's activeDescriptors; it makes no system call).
// Idle registered sockets do not count; neither do timers (they use no
// descriptor here).
func (d *Dispatcher) ActiveDescriptors() int { return d.nactive }

// RegisteredDescriptors is the number of descriptors registered with the
// dispatcher, idle or not (what Nim's activeDescriptors is often mistaken
// for, issue #16603).
func (d *Dispatcher) RegisteredDescriptors() int { return d.nfds }

// MaxDescriptors returns the process's descriptor limit (the RLIMIT_NOFILE
// soft limit) minus one, as Nim does.
func MaxDescriptors() (int, error) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0, os.NewSyscallError("getrlimit", err)
	}
	if rl.Cur > 1<<31 {
		return 1<<31 - 1, nil
	}
	return int(rl.Cur) - 1, nil
}

// SetInheritable sets or clears close-on-exec on fd: inheritable
// descriptors are passed to child processes. Every descriptor this package
// creates is close-on-exec unless asked otherwise.
func SetInheritable(fd AsyncFD, inheritable bool) error {
	if fd < 0 {
		return ErrInvalidFD
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		return os.NewSyscallError("fcntl", err)
	}
	if inheritable {
		flags &^= unix.FD_CLOEXEC
	} else {
		flags |= unix.FD_CLOEXEC
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags); err != nil {
		return os.NewSyscallError("fcntl", err)
	}
	return nil
}
