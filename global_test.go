package asyncdispatch_test

import (
	"testing"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// The package-level socket functions act on the global dispatcher.
func TestSocketGlobalWrappers(t *testing.T) {
	checkLeaks(t, func() {
		g := ad.GetGlobalDispatcher()
		defer g.Close()
		ln, err := ad.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if !g.Contains(ln) || ad.RegisteredDescriptors() != 1 {
			t.Fatal("Listen did not use the global dispatcher")
		}
		_, port, _ := ad.GetLocalAddr(ln)
		acc := ad.AcceptAddr(ln, ad.DefaultFlags, false)
		c := wait(t, ad.Dial("127.0.0.1", port, unix.IPPROTO_TCP))
		s := wait(t, acc).Client
		wait(t, ad.SendString(c, "one", ad.DefaultFlags))
		wait(t, ad.Send(c, []byte("two"), ad.DefaultFlags))
		if got := wait(t, ad.RecvString(s, 3, ad.DefaultFlags)); got != "one" {
			t.Fatalf("RecvString: %q", got)
		}
		buf := make([]byte, 3)
		if n := wait(t, ad.RecvInto(s, buf, ad.DefaultFlags)); string(buf[:n]) != "two" {
			t.Fatalf("RecvInto: %q", buf[:n])
		}
		ad.SendString(s, "three", ad.DefaultFlags)
		if got := wait(t, ad.Recv(c, 10, ad.DefaultFlags)); string(got) != "three" {
			t.Fatalf("Recv: %q", got)
		}
		fd, err := ad.CreateAsyncNativeSocket(unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_TCP, false)
		if err != nil {
			t.Fatal(err)
		}
		acc2 := ad.Accept(ln, ad.DefaultFlags, false)
		wait(t, ad.Connect(fd, "127.0.0.1", port, unix.AF_INET))
		s2 := wait(t, acc2)

		u, err := ad.Listen("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, uport, _ := ad.GetLocalAddr(u)
		rf := ad.RecvFromInto(u, buf, 0)
		uc, _ := ad.Listen("udp4", "127.0.0.1:0")
		wait(t, ad.SendTo(uc, []byte("dg"), mustAddrPort("127.0.0.1", uport), 0))
		if r := wait(t, rf); r.N != 2 {
			t.Fatalf("RecvFromInto: %v", r)
		}
		ad.SetAcceptErrorHandler(nil)
		for _, x := range []ad.AsyncFD{ln, c, s, fd, s2, u, uc} {
			if err := ad.CloseSocket(x); err != nil {
				t.Fatal(err)
			}
		}
	})
}
