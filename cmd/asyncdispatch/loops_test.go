package main

import (
	"context"
	"strings"
	"testing"
)

func TestLoopFlags(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"serve", "echo", "--loops", "0"}, "--loops must be between 1 and 4096"},
		{[]string{"serve", "http", "--loops", "-2"}, "--loops must be between 1 and 4096"},
		{[]string{"serve", "echo", "--balance", "random"}, `--balance "random"`},
		{[]string{"serve", "echo", "--balance", "cpu"}, "--balance cpu needs --pin"},
		{[]string{"serve", "echo", "--stats", "-1s"}, "--stats must not be negative"},
		{[]string{"bench", "echo", "--loops", "0"}, "--loops must be between 1 and 4096"},
		{[]string{"demo", "--loops", "0"}, "--loops must be between 1 and 4096"},
	} {
		code, _, stderr := runCmd(tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.stderr)
		}
	}
	for _, args := range [][]string{{"serve", "echo", "--help"}, {"serve", "http", "--help"}, {"demo", "--help"}} {
		_, stdout, _ := runCmd(args...)
		for _, f := range []string{"-loops", "-pin", "-balance"} {
			if !strings.Contains(stdout, f) {
				t.Errorf("%q does not mention %s", args, f)
			}
		}
	}
	_, stdout, _ := runCmd("bench", "echo", "--help")
	if !strings.Contains(stdout, "-loops") || strings.Contains(stdout, "-balance") {
		t.Errorf("bench --help: want -loops and no -balance:\n%s", stdout)
	}
}

// serve on 2 loops, bench from 2 loops: both say so, every connection is
// served, the server reports each loop's counters when it stops.
func TestServeAndBenchOnLoops(t *testing.T) {
	for _, bal := range []string{"reuseport", "handoff"} {
		ctx, cancel := context.WithCancel(context.Background())
		out, _, wait := background(ctx, "serve", "echo", "--addr", "127.0.0.1:0", "--loops", "2", "--balance", bal, "--stats", "50ms")
		line := out.WaitLine(t, "serving echo on")
		addr := strings.Fields(line)[4]
		if !strings.Contains(line, "(2 loops, "+bal+"; Ctrl-C to stop)") {
			t.Errorf("serve: %q", line)
		}
		code, stdout, stderr := runCmd("bench", "echo", "--addr", addr, "--conns", "10", "--pipeline", "4", "--loops", "2",
			"--duration", "1100ms", "--warmup", "0s")
		if code != 0 || !strings.Contains(stdout, "errors 0  mismatches 0") || !strings.HasSuffix(strings.SplitN(stdout, "\n", 2)[0], "on 2 loops") ||
			!strings.Contains(stdout, "  loop 1: connections 5") || !strings.Contains(stdout, "conns 10  msgs") {
			t.Fatalf("bench: exit %d\n%s\n%s", code, stdout, stderr)
		}
		out.WaitLine(t, "[1] conns")
		cancel()
		if code := wait(); code != 0 {
			t.Fatalf("serve exited %d:\n%s", code, out)
		}
		for _, want := range []string{"  loop 0: ", "  loop 1: ", "stopped after 10 connections"} {
			if !strings.Contains(out.String(), want) {
				t.Fatalf("no %q in the serve output:\n%s", want, out)
			}
		}
		if bal == "handoff" && !strings.Contains(out.String(), "loop 1: 5 connections served") {
			t.Fatalf("handoff did not split 10 connections 5/5:\n%s", out)
		}
	}
}

// The demo prints every server loop's counters.
func TestDemoShowsLoopCounters(t *testing.T) {
	code, stdout, stderr := runCmd("demo", "-duration", "1200ms", "-conns", "20", "-loops", "2")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"(2 loops, reuseport)", "       loops  [0] conns ", "  [1] conns ", "server loops:\n  loop 0: ", "  loop 1: "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("no %q in:\n%s", want, stdout)
		}
	}
}
