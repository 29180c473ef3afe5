package sockaddr

import (
	"testing"

	"github.com/asyncdispatch/asyncdispatch/internal/testkit/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }
