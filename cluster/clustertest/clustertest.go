package clustertest

import (
	"testing"

	"github.com/troupe-dev/troupe/cluster"
)

// NewCluster starts n in-process nodes (on the sim network unless
// cluster.Remote is given) and stops them when the test ends.
func NewCluster(t testing.TB, n int, opts ...cluster.Option) *cluster.Cluster {
	t.Helper()
	c, err := cluster.Local(n, opts...)
	if err != nil {
		t.Fatalf("starting a %d-node cluster: %v", n, err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stopping the cluster: %v", err)
		}
	})
	return c
}
