// Subprocess starts a child process with os/exec and watches it from the
// dispatcher: AddProcess calls back when the child exits, AddSignal
// passes Ctrl-C on to the child, and a timer reports while it runs.
//
//	go run ./examples/subprocess                   (a child that works 2 s and exits 3)
//	go run ./examples/subprocess sleep 60          (press Ctrl-C)
//
// AddProcess only reports the exit; cmd.Wait then reaps the child and
// returns at once. (WaitProcess is the awaitable form: it reaps the child
// itself and returns its status; use cmd.Process.Release with it instead
// of cmd.Wait.)
package main

import (
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"syscall"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

func main() {
	args := os.Args[1:]
	if len(args) == 0 {
		args = []string{"sh", "-c", "echo child: working; sleep 2; echo child: done; exit 3"}
	}
	code, err := run(args, time.Second, os.Stdout)
	if err != nil {
		log.Fatal(err)
	}
	os.Exit(code)
}

// run runs the command and returns its exit code (1 if a signal ended it).
func run(args []string, every time.Duration, out io.Writer) (code int, err error) {
	d, err := ad.NewDispatcher()
	if err != nil {
		return 0, err
	}
	defer d.Close()

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = time.Second // should a grandchild keep the output open
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	pid := cmd.Process.Pid

	// Ctrl-C: ask the child to stop; its exit ends the program.
	d.AddSignal(os.Interrupt, func(ad.AsyncFD) bool {
		fmt.Fprintln(out, "interrupted: stopping the child")
		cmd.Process.Signal(syscall.SIGTERM)
		return false
	})
	// A heartbeat while the child runs.
	start := time.Now()
	heartbeat, _ := d.AddTimer(every, false, func(ad.AsyncFD) bool {
		fmt.Fprintf(out, "child %d still running after %v\n", pid, time.Since(start).Round(every))
		return false
	})
	// The exit.
	err = d.AddProcess(pid, func(ad.AsyncFD) bool {
		werr := cmd.Wait() // the child has exited: this only reaps it
		fmt.Fprintf(out, "child %d exited after %v: %v\n", pid, time.Since(start).Round(time.Millisecond), cmd.ProcessState)
		if _, ok := werr.(*exec.ExitError); !ok && werr != nil {
			fmt.Fprintln(out, werr)
		}
		code = cmd.ProcessState.ExitCode()
		if code < 0 {
			code = 1 // killed by a signal
		}
		heartbeat.Stop()
		d.Close()
		return true
	})
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return 0, err
	}
	fmt.Fprintf(out, "started %q as process %d\n", args, pid)
	return code, d.RunForever()
}
