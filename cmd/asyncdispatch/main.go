// Command asyncdispatch shows and measures the asyncdispatch library.
//
//	asyncdispatch demo [-duration 10s] [-conns 200] [-pipeline 4] [-size 64] [-loops N]
//	asyncdispatch serve echo|http [--addr 127.0.0.1:8080] [--idle-timeout 60s] [--loops N] [--balance reuseport|handoff|cpu] [--pin] [--stats 1s] ...
//	asyncdispatch bench echo [--addr 127.0.0.1:8080] [--conns 50] [--pipeline 1] [--size 64] [--duration 10s] [--loops 1]
//
// The servers run on a group of loops (ad.Group: --loops dispatchers, one
// per CPU by default, each on its own thread); the load generator spreads
// its connections over --loops loops (1 by default). Every command keeps
// one dispatcher of its own on its main goroutine, stops cleanly on
// Ctrl-C or SIGTERM (through the library's AddSignal), and answers
// --help. Bad flags exit with status 2, failures with 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"syscall"

	ad "github.com/asyncdispatch/asyncdispatch"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: asyncdispatch <command> [flags]

commands:
  demo         an echo server on one loop per CPU and many clients on
               loopback, with live progress, every loop's counters and a
               summary (about 10 s)
  serve echo   an echo server (one loop per CPU: --loops)
  serve http   an HTTP/1.1 plaintext server ("Hello, World!" to every request)
  bench echo   a load generator against any echo server on loopback

Run "asyncdispatch <command> --help" for the flags of a command.
`

// run is the whole program; ctx ending stops it as Ctrl-C does (tests).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "demo":
		return demo(ctx, args[1:], stdout, stderr)
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "bench":
		return bench(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "asyncdispatch: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// command is a subcommand's flag set and how it reports.
type command struct {
	name           string // "serve http"
	synopsis       string
	fs             *flag.FlagSet
	stdout, stderr io.Writer
}

func newCommand(name, synopsis string, stdout, stderr io.Writer) *command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and help are printed by parse
	return &command{name: name, synopsis: synopsis, fs: fs, stdout: stdout, stderr: stderr}
}

// parse parses args; ok is false when the command must exit with code
// (0 after --help, 2 after a bad flag or argument).
func (c *command) parse(args []string) (code int, ok bool) {
	err := c.fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		c.usage(c.stdout)
		return 0, false
	}
	if err == nil && c.fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", c.fs.Arg(0))
	}
	if err != nil {
		return c.fail(err), false
	}
	return 0, true
}

// fail reports a usage error and returns exit code 2.
func (c *command) fail(err error) int {
	fmt.Fprintf(c.stderr, "asyncdispatch %s: %v\nRun \"asyncdispatch %s --help\" for usage.\n", c.name, err, c.name)
	return 2
}

// failf reports a runtime error and returns exit code 1.
func (c *command) failf(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "asyncdispatch %s: %s\n", c.name, fmt.Sprintf(format, args...))
	return 1
}

func (c *command) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: asyncdispatch %s [flags]\n\n%s\n\nflags:\n", c.name, c.synopsis)
	c.fs.SetOutput(w)
	c.fs.PrintDefaults()
	c.fs.SetOutput(io.Discard)
}

// stopper completes a future on SIGINT or SIGTERM (the library's
// AddSignal: the signal arrives as a callback on the loop) or when ctx
// ends. release removes the handlers, so a second Ctrl-C after it gets
// the default action again.
func stopper(ctx context.Context, d *ad.Dispatcher) (stop *ad.Future[ad.Void], release func(), err error) {
	stop = ad.NewFuture[ad.Void](d, "stop")
	fire := func() {
		if !stop.Finished() {
			stop.Complete(ad.Void{})
		}
	}
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	for _, sig := range sigs {
		if err := d.AddSignal(sig, func(ad.AsyncFD) bool { fire(); return false }); err != nil {
			return nil, nil, err
		}
	}
	var done *ad.Future[ad.Void]
	if ctx.Done() != nil {
		done = ad.FromContext(d, ctx)
		done.AddCallback(func() { done.Err(); fire() })
	}
	release = func() {
		for _, sig := range sigs {
			d.RemoveSignal(sig)
		}
		if done != nil {
			done.Cancel()
		}
	}
	return stop, release, nil
}

// count formats n with thousands separators.
func count[T ~int | ~uint64 | ~int64](n T) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// plural is "1 line", "4 lines".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// pluralCount is plural with thousands separators: "1 message",
// "12,345 messages".
func pluralCount[T ~int | ~uint64 | ~int64](n T, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return count(n) + " " + noun + "s"
}

// startProfile starts a CPU profile written to path; stop ends it.
func startProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
