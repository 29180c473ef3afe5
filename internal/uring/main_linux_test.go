//go:build linux

package uring

import (
	"fmt"
	"os"
	"testing"

	"github.com/asyncdispatch/asyncdispatch/internal/testkit/leakcheck"
)

func TestMain(m *testing.M) {
	if err := Available(); err != nil {
		// The package's tests need io_uring; say why they cannot run
		// rather than failing each one.
		fmt.Fprintln(os.Stderr, "skipping: ", err)
		os.Exit(0)
	}
	leakcheck.Main(m)
}
