package asyncdispatch

import (
	"errors"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"

	"github.com/asyncdispatch/asyncdispatch/internal/sockaddr"
)

// The system side of a group: the CPUs it may pin to, pinning, and the
// SO_REUSEPORT listeners of BalanceReusePort and BalanceCPU.

// allowedCPUs lists the CPUs the process may run on (its main thread's
// affinity mask, which taskset and cpusets set), in increasing order.
func allowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(unix.Getpid(), &set); err != nil {
		return nil, os.NewSyscallError("sched_getaffinity", err)
	}
	var cpus []int
	for c := 0; len(cpus) < set.Count(); c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) == 0 {
		return nil, errors.New("asyncdispatch: the affinity mask is empty")
	}
	return cpus, nil
}

// pinThread restricts the calling thread to cpu (the goroutine must be
// locked to it).
func pinThread(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return os.NewSyscallError("sched_setaffinity", err)
	}
	return nil
}

// listenReusePort is Listen for a group's loop: a TCP listener with
// SO_REUSEPORT, so that every loop of the group can bind the same
// address, and — for BalanceCPU — marked with the loop's CPU
// (SO_INCOMING_CPU), set before listen so the kernel counts it in the
// port's group from the start.
func (l *groupLoop) listenReusePort(network, address string) (AsyncFD, error) {
	la, err := parseListenAddr(network, address)
	if err != nil {
		return InvalidFD, err
	}
	if !la.listen || la.domain == unix.AF_UNIX {
		return InvalidFD, errors.New("SO_REUSEPORT balancing needs a TCP address (tcp, tcp4, tcp6); BalanceHandOff serves any stream network")
	}
	cpu := -1
	if l.g.cfg.Balance == BalanceCPU {
		cpu = l.cpu
	}
	fd, err := l.d.bindReusePort(la.domain, la.sa, la.v6only, cpu)
	if err != nil && la.fallback4 && errors.Is(err, unix.EAFNOSUPPORT) {
		// No IPv6 on this machine: the IPv4 wildcard then.
		sa := sockaddr.Inet(netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(la.port)))
		return l.d.bindReusePort(unix.AF_INET, sa, false, cpu)
	}
	return fd, err
}

func (d *Dispatcher) bindReusePort(domain int, sa unix.Sockaddr, v6only bool, cpu int) (AsyncFD, error) {
	fd, err := d.CreateAsyncNativeSocket(domain, unix.SOCK_STREAM, unix.IPPROTO_TCP, false)
	if err != nil {
		return InvalidFD, err
	}
	fail := func(op string, err error) (AsyncFD, error) {
		d.CloseSocket(fd)
		return InvalidFD, os.NewSyscallError(op, err)
	}
	set := func(level, opt, v int) error { return unix.SetsockoptInt(int(fd), level, opt, v) }
	if domain == unix.AF_INET6 {
		v := 0
		if v6only {
			v = 1
		}
		if err := set(unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v); err != nil {
			return fail("setsockopt", err)
		}
	}
	if err := set(unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("setsockopt", err)
	}
	if err := set(unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return fail("setsockopt", err)
	}
	if cpu >= 0 {
		if err := set(unix.SOL_SOCKET, unix.SO_INCOMING_CPU, cpu); err != nil {
			return fail("setsockopt", err)
		}
	}
	if err := unix.Bind(int(fd), sa); err != nil {
		return fail("bind", err)
	}
	if err := unix.Listen(int(fd), listenBacklog); err != nil {
		return fail("listen", err)
	}
	return fd, nil
}
