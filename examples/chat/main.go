// Chat is the classic chat server: every line a client sends goes to every
// other client. Each client is two async procedures, a reader that splits
// what it receives into lines and a writer that sends it the lines queued
// for it. Nothing a client does can make the server hold much for it:
// lines are at most maxLine bytes, a client's queue at most maxQueue lines
// (a client too slow to keep up is dropped), and a silent client is
// dropped after -idle.
//
//	go run ./examples/chat -addr 127.0.0.1:7001
//	nc 127.0.0.1 7001        (in several terminals)
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

const (
	maxLine  = 1024 // bytes per line, newline included
	maxQueue = 64   // lines waiting to be sent to one client
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7001", "address to listen on (port 0: any free port)")
	idle := flag.Duration("idle", 5*time.Minute, "drop clients silent for this long")
	flag.Parse()
	if err := run(*addr, *idle, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

type client struct {
	fd    ad.AsyncFD
	name  string
	queue *ad.FutureStream[[]byte] // lines to send, at most maxQueue
}

type chat struct {
	d       *ad.Dispatcher
	idle    time.Duration
	log     io.Writer
	clients map[*client]bool
	joined  int
}

// run serves until Ctrl-C.
func run(addr string, idle time.Duration, log io.Writer) error {
	d, err := ad.NewDispatcher()
	if err != nil {
		return err
	}
	defer d.Close()
	ln, err := d.Listen("tcp", addr)
	if err != nil {
		return err
	}
	d.AddSignal(os.Interrupt, func(ad.AsyncFD) bool { d.Close(); return true })
	host, port, _ := ad.GetLocalAddr(ln)
	fmt.Fprintf(log, "chat: listening on %s\n", net.JoinHostPort(host, strconv.Itoa(port)))

	s := &chat{d: d, idle: idle, log: log, clients: map[*client]bool{}}
	ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
		for {
			fd, err := ad.Await(co, d.Accept(ln, ad.DefaultFlags, false))
			if err != nil {
				return ad.Void{}, err
			}
			s.join(fd)
		}
	})
	return d.RunForever()
}

func (s *chat) join(fd ad.AsyncFD) {
	s.joined++
	c := &client{fd: fd, name: fmt.Sprintf("guest%d", s.joined),
		queue: ad.NewBoundedFutureStream[[]byte](s.d, "chat", maxQueue)}
	s.clients[c] = true
	s.deliver(c, []byte("welcome, "+c.name+"\n"))
	s.broadcast(c, []byte(c.name+" joined\n"))
	ad.Async(s.d, func(co *ad.Coro) (ad.Void, error) { return s.reader(co, c) })
	ad.Async(s.d, func(co *ad.Coro) (ad.Void, error) { return s.writer(co, c) })
}

// reader broadcasts every line c sends.
func (s *chat) reader(co *ad.Coro, c *client) (ad.Void, error) {
	buf := make([]byte, maxLine)
	n := 0 // buf[:n] is the start of a line
	for {
		// A client that keeps its socket full cannot keep the loop to
		// itself: the dispatcher's I/O budget makes this procedure yield
		// now and then.
		f := s.d.RecvInto(c.fd, buf[n:], ad.DefaultFlags)
		k, err := ad.Await(co, ad.Timeout(f, s.idle))
		switch {
		case errors.Is(err, ad.ErrTimeout):
			s.leave(c, "was idle too long")
			return ad.Void{}, nil
		case err != nil || k == 0:
			s.leave(c, "left")
			return ad.Void{}, nil
		}
		n += k
		for {
			i := bytes.IndexByte(buf[:n], '\n')
			if i < 0 {
				break
			}
			s.broadcast(c, append([]byte(c.name+": "), buf[:i+1]...))
			n = copy(buf, buf[i+1:n])
		}
		if n == len(buf) {
			s.leave(c, "sent a line too long")
			return ad.Void{}, nil
		}
	}
}

// writer sends c its lines, in order, until its queue is closed.
func (s *chat) writer(co *ad.Coro, c *client) (ad.Void, error) {
	for {
		r, err := ad.Await(co, c.queue.Read())
		if err != nil || !r.OK {
			return ad.Void{}, nil
		}
		if _, err := ad.Await(co, s.d.Send(c.fd, r.Value, ad.DefaultFlags)); err != nil {
			return ad.Void{}, nil
		}
	}
}

// broadcast sends line to every client but from (nil: to everybody).
func (s *chat) broadcast(from *client, line []byte) {
	s.log.Write(line)
	for c := range s.clients {
		if c != from {
			s.deliver(c, line)
		}
	}
}

// deliver queues line for c; a client whose queue is full is dropped.
func (s *chat) deliver(c *client, line []byte) {
	if c.queue.Len() >= maxQueue {
		s.leave(c, "was too slow")
		return
	}
	c.queue.Write(line) // completes at once: there is room
}

// leave drops c, once. Closing its socket fails the receive or send its
// procedures wait for, and closing its queue ends the writer.
func (s *chat) leave(c *client, why string) {
	if !s.clients[c] {
		return
	}
	delete(s.clients, c)
	c.queue.Complete()
	s.d.CloseSocket(c.fd)
	s.broadcast(nil, []byte(c.name+" "+why+"\n"))
}
