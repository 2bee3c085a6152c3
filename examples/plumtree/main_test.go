package plumtree_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/troupe-dev/troupe/actors/actortest"
)

// TestMain fails the package if a goroutine outlives its tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, actortest.LeakOptions()...) }
