package asyncdispatch_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// One echo server on every loop of a group, behind one port: each loop
// listens with SO_REUSEPORT and serves the connections the kernel gives
// it; Shutdown lets them finish.
func ExampleGroup() {
	g, err := ad.NewGroup(ad.GroupConfig{Loops: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	addr, err := g.Serve("tcp", "127.0.0.1:0", ad.HandleConns(func(co *ad.Coro, conn ad.AsyncFD) error {
		buf := make([]byte, 4096)
		for {
			n, err := co.RecvInto(conn, buf, ad.DefaultFlags)
			if err != nil || n == 0 {
				return err
			}
			if err := co.Send(conn, buf[:n], ad.DefaultFlags); err != nil {
				return err
			}
		}
	}))
	if err != nil {
		fmt.Println(err)
		return
	}
	for i := 0; i < 3; i++ {
		c, _ := net.Dial("tcp", addr)
		fmt.Fprintf(c, "hello %d\n", i)
		line, _ := bufio.NewReader(c).ReadString('\n')
		fmt.Print(line)
		c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println("shutdown:", g.Shutdown(ctx))
	st, _ := g.Stats(context.Background())
	served := uint64(0)
	for _, s := range st {
		served += s.Served
	}
	fmt.Println("served:", served)
	// Output:
	// hello 0
	// hello 1
	// hello 2
	// shutdown: <nil>
	// served: 3
}

// A procedure on one loop awaits a function run on another: the call and
// its result cross through the loops' doors, with no lock.
func ExampleRunOn() {
	g, _ := ad.NewGroup(ad.GroupConfig{Loops: 2})
	defer g.Close()
	home, other := g.Loop(0), g.Loop(1)
	words := []string{"state", "of", "loop", "1"} // belongs to loop 1
	out := make(chan string, 1)
	home.CallSoonThreadSafe(func() {
		f := ad.Async(home, func(co *ad.Coro) (string, error) {
			return ad.Await(co, ad.RunOn(home, other, func(co *ad.Coro) (string, error) {
				return strings.Join(words, " "), nil // runs on loop 1
			}))
		})
		f.AddCallback(func() { v, err := f.Read(); out <- fmt.Sprint(v, " ", err) })
	})
	fmt.Println(<-out)
	// Output: state of loop 1 <nil>
}
