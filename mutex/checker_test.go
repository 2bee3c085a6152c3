package mutex_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/troupe-dev/troupe/actors"
	"github.com/troupe-dev/troupe/cluster"
	"github.com/troupe-dev/troupe/mutex"
)

// checker sees every entry into and exit from the critical section in one
// global order (its lock) and records an overlap when a node enters while
// another holds.
//
// An "instant" is a moment of that order. A holder reports its entry once
// it has the grant (after the protocol's handler sent it), and its exit
// before it tells the protocol to release — so before the protocol sends
// the deferred replies that let anyone else in. The interval the checker
// sees is thus inside the protocol's own: a correct protocol never shows an
// overlap, and two entries the protocol let overlap show one whenever their
// checked intervals meet (TestCheckerCatchesAnUnsafeMutex shows they do).
type checker struct {
	mu       sync.Mutex
	holder   *mutex.Grant
	entries  int
	overlaps []string
}

func (c *checker) enter(g mutex.Grant) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries++
	if c.holder != nil {
		c.overlaps = append(c.overlaps, fmt.Sprintf("%s@%d entered while %s@%d held", g.Node, g.Timestamp, c.holder.Node, c.holder.Timestamp))
	}
	c.holder = &g
}

func (c *checker) exit(g mutex.Grant) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holder != nil && *c.holder == g {
		c.holder = nil
	}
}

func (c *checker) result() (entries int, overlaps []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries, append([]string(nil), c.overlaps...)
}

// exercise has every running node of c enter the critical section of the
// protocol `protocol` perNode times, all nodes at once, each holding it for
// a few scheduling points, and reports to chk. It fails when an entry is
// not granted within `within` (a liveness failure) or a release fails.
func exercise(c *cluster.Cluster, protocol actors.ProtocolName, perNode int, within time.Duration, chk *checker) error {
	nodes := c.Nodes()
	errs := make(chan error, len(nodes))
	deadline := time.Now().Add(within)
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := mutex.NewClient(n, protocol)
			if err != nil {
				errs <- err
				return
			}
			for i := range perNode {
				ctx, cancel := context.WithDeadline(context.Background(), deadline)
				g, err := cl.Lock(ctx)
				if err != nil {
					cancel()
					errs <- fmt.Errorf("%s: entry %d of %d not granted within %v: %w", n.Name(), i+1, perNode, within, err)
					return
				}
				chk.enter(g)
				for range 3 {
					runtime.Gosched() // let the others run while this node holds
				}
				chk.exit(g)
				err = cl.Unlock(ctx, g)
				cancel()
				if err != nil {
					errs <- fmt.Errorf("%s: release %d: %w", n.Name(), i+1, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}
