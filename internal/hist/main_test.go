package hist

import (
	"testing"

	"github.com/asyncdispatch/asyncdispatch/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }
