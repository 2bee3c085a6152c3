package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/troupe-dev/troupe/consensus"
)

// vsEtcd is `bench kv --vs-etcd`: a 3-member etcd and a 3-node Troupe
// group, each as real processes on loopback with fsync, driven in turn by
// one generator; then kill -9 of each side's leader.
type vsEtcd struct {
	*kvBench
	rounds  int
	nodeBin string
	h2c     bool
}

// vsOps are the operations of the side-by-side rows, in table order.
var vsOps = []string{"put", "get"}

// vsRound is what one side did in one round of one row.
type vsRound struct {
	ops, errors int
	elapsed     time.Duration
	lat         []time.Duration
	firstErr    error
}

func (r vsRound) rate() float64 { return float64(r.ops) / r.elapsed.Seconds() }

// vsCell is the rounds of one (op, clients, side).
type vsCell struct {
	rates          []float64
	p50s, p99s     []time.Duration
	errors, rounds int
}

func (c *vsCell) add(r vsRound) {
	c.rates = append(c.rates, r.rate())
	c.p50s = append(c.p50s, quantile(r.lat, 0.5))
	c.p99s = append(c.p99s, quantile(r.lat, 0.99))
	c.errors += r.errors
	c.rounds++
}

func medianF(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianD(ds []time.Duration) time.Duration {
	f := make([]float64, len(ds))
	for i, d := range ds {
		f[i] = float64(d)
	}
	if len(f) == 0 {
		return 0
	}
	return time.Duration(medianF(f))
}

func (b *vsEtcd) validate() error {
	if err := b.kvBench.validate(); err != nil {
		return err
	}
	if b.rounds < 1 {
		return fmt.Errorf("--rounds %d: give at least 1", b.rounds)
	}
	if b.nodes != 3 {
		return fmt.Errorf("--nodes %d: --vs-etcd runs 3 members on each side", b.nodes)
	}
	return nil
}

func (b *vsEtcd) run(parent context.Context) (err error) {
	if err := b.validate(); err != nil {
		return err
	}
	etcdBin, err := findEtcd() // before anything starts
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer func() {
		if err != nil && ctx.Err() != nil && parent.Err() == nil {
			err = fmt.Errorf("bench kv --vs-etcd: interrupted (%v); every process it started is killed and its temporary files removed", err)
		}
	}()
	root := b.dir
	if root == "" {
		d, err := os.MkdirTemp("", "troupe-bench-vs-etcd-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		root = d
	} else if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	nodeBin := b.nodeBin
	if nodeBin == "" {
		fmt.Fprintln(b.out, "# building cmd/node")
		if nodeBin, err = buildNode(root); err != nil {
			return err
		}
	}
	rc := consensus.DefaultConfig()
	t := timers{heartbeat: rc.TickInterval * time.Duration(rc.HeartbeatTicks), election: rc.TickInterval * time.Duration(rc.ElectionTicks)}
	es, err := newEtcdSide(etcdBin, root, t)
	if err != nil {
		return err
	}
	ts, err := newTroupeSide(nodeBin, root, rc.TickInterval, rc.HeartbeatTicks, rc.ElectionTicks)
	if err != nil {
		return err
	}
	ts.h2c = b.h2c
	sides := []side{es, ts}
	for _, s := range sides {
		defer s.Stop()
	}
	fmt.Fprintf(b.out, "# etcd %s and troupe %s, 3 members each on loopback, fsync on, data in %s; heartbeat %v, election timeout %v–%v on both\n",
		etcdBin, nodeBin, root, t.heartbeat, t.election, 2*t.election)
	for _, s := range sides {
		if err := s.Start(ctx); err != nil {
			return fmt.Errorf("starting %s: %w", s.Name(), err)
		}
	}
	value := make([]byte, b.valueSize)
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	for _, s := range sides {
		if err := b.preload(ctx, s, value); err != nil {
			return fmt.Errorf("%s: preloading %d keys: %w", s.Name(), b.keys, err)
		}
	}
	cells := map[string]*vsCell{}
	cellOf := func(op string, c int, s string) *vsCell {
		k := fmt.Sprintf("%s/%d/%s", op, c, s)
		if cells[k] == nil {
			cells[k] = &vsCell{}
		}
		return cells[k]
	}
	for round := range b.rounds {
		for _, op := range vsOps {
			for _, c := range b.clients {
				for _, s := range sides {
					r, err := b.drive(ctx, s, op, c, value)
					if err != nil {
						return err
					}
					cellOf(op, c, s.Name()).add(r)
					msg := ""
					if r.errors > 0 {
						msg = fmt.Sprintf(", %d errors, the first: %v", r.errors, r.firstErr)
					}
					fmt.Fprintf(b.out, "# round %d/%d %s c%d %s: %.0f ops/s, p50 %s ms, p99 %s ms%s\n", round+1, b.rounds, op, c, s.Name(),
						r.rate(), ms(quantile(r.lat, 0.5)), ms(quantile(r.lat, 0.99)), msg)
				}
			}
		}
	}
	failovers := map[string][]time.Duration{}
	for trial := range b.failovers {
		for _, s := range sides {
			took, victim, err := vsFailover(ctx, s)
			if err != nil {
				return fmt.Errorf("%s failover %d: %w", s.Name(), trial+1, err)
			}
			failovers[s.Name()] = append(failovers[s.Name()], took)
			fmt.Fprintf(b.out, "# failover %d/%d %s: leader %s killed (SIGKILL), a write accepted again after %d ms\n",
				trial+1, b.failovers, s.Name(), victim, took.Milliseconds())
		}
	}
	b.vsReport(cellOf, failovers)
	return nil
}

// preload puts every key once, so that every get finds its key.
func (b *vsEtcd) preload(ctx context.Context, s side, value []byte) error {
	lead, err := s.Leader(ctx)
	if err != nil {
		return err
	}
	const conc = 16
	cl, err := s.Client(ctx, []string{lead}, conc)
	if err != nil {
		return err
	}
	defer cl.Close()
	var next atomic.Int64
	errs := make(chan error, conc)
	for range conc {
		go func() {
			for i := int(next.Add(1)) - 1; i < b.keys; i = int(next.Add(1)) - 1 {
				pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := cl.Put(pctx, vsKey(i), value)
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	var first error
	for range conc {
		first = errors.Join(first, <-errs)
	}
	return first
}

func vsKey(i int) string { return fmt.Sprintf("key-%04d", i) }

// drive runs conc client goroutines against s's leader for a warm-up
// (a tenth of --duration, at most 1 s, not counted) and then --duration,
// each issuing op back to back; it counts the operations started in the
// measured window.
func (b *vsEtcd) drive(ctx context.Context, s side, op string, conc int, value []byte) (vsRound, error) {
	var r vsRound
	lead, err := s.Leader(ctx)
	if err != nil {
		return r, fmt.Errorf("%s: %w", s.Name(), err)
	}
	cl, err := s.Client(ctx, []string{lead}, conc)
	if err != nil {
		return r, err
	}
	defer cl.Close()
	warm := min(b.duration/10, time.Second)
	var phase atomic.Int32 // 0 warm-up, 1 measured, 2 stop
	var mu sync.Mutex
	var wg sync.WaitGroup
	for ci := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			ops, errs := 0, 0
			var firstErr error
			for i := 0; ; i++ {
				p := phase.Load()
				if p == 2 || ctx.Err() != nil {
					break
				}
				key := vsKey((ci*7919 + i) % b.keys)
				t0 := time.Now()
				octx, cancel := context.WithTimeout(ctx, 5*time.Second)
				var err error
				if op == "put" {
					err = cl.Put(octx, key, value)
				} else {
					err = cl.Get(octx, key)
				}
				cancel()
				if p != 1 {
					continue
				}
				if err != nil {
					errs++
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				lat = append(lat, time.Since(t0))
				ops++
			}
			mu.Lock()
			r.lat = append(r.lat, lat...)
			r.ops += ops
			r.errors += errs
			if r.firstErr == nil {
				r.firstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	select {
	case <-ctx.Done():
	case <-time.After(warm):
	}
	phase.Store(1)
	start := time.Now()
	select {
	case <-ctx.Done():
	case <-time.After(b.duration):
	}
	r.elapsed = time.Since(start)
	phase.Store(2)
	wg.Wait()
	return r, ctx.Err()
}

// vsFailover kills s's leader with SIGKILL and measures the time until a
// put through the other members is accepted (20 ms per attempt; an error
// that comes back sooner is retried 2 ms later); then restarts the killed
// member from its data dir and waits for a leader every member names.
func vsFailover(ctx context.Context, s side) (time.Duration, string, error) {
	victim, err := s.Leader(ctx)
	if err != nil {
		return 0, "", err
	}
	var others []string
	for _, m := range s.Members() {
		if m != victim {
			others = append(others, m)
		}
	}
	cl, err := s.Client(ctx, others, 1)
	if err != nil {
		return 0, victim, err
	}
	defer cl.Close()
	// One write before the kill: the client's connections are up.
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = cl.Put(pctx, "failover", []byte("before"))
	cancel()
	if err != nil {
		return 0, victim, fmt.Errorf("a write before the kill: %w", err)
	}
	t0 := time.Now()
	s.Kill(victim)
	for i := 0; ; i++ {
		a0 := time.Now()
		actx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		err := cl.Put(actx, "failover", fmt.Appendf(nil, "%d", i))
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return 0, victim, ctx.Err()
		}
		if time.Since(t0) > 30*time.Second {
			return 0, victim, fmt.Errorf("no write accepted 30 s after killing %s: %w", victim, err)
		}
		if time.Since(a0) < 18*time.Millisecond {
			<-time.After(2 * time.Millisecond) // an error that comes back at once: do not spin
		}
	}
	took := time.Since(t0)
	if err := s.Restart(ctx, victim); err != nil {
		return took, victim, fmt.Errorf("restarting %s: %w", victim, err)
	}
	return took, victim, nil
}

// ratio is a/b, NaN when either is missing.
func ratio(a, b float64) float64 {
	if a == 0 || b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return math.NaN()
	}
	return a / b
}

func (b *vsEtcd) vsReport(cellOf func(op string, c int, s string) *vsCell, failovers map[string][]time.Duration) {
	fmt.Fprintf(b.out, "medians over %d rounds of %v (after %v of warm-up), %d-byte values over %d keys; ×: troupe/etcd\n",
		b.rounds, b.duration, min(b.duration/10, time.Second), b.valueSize, b.keys)
	tw := tabwriter.NewWriter(b.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\tclients\tetcd ops/s\ttroupe ops/s\t× ops/s\tetcd p50 ms\ttroupe p50 ms\t× p50\tetcd p99 ms\ttroupe p99 ms\t× p99\terrors e/t\t")
	for _, op := range vsOps {
		for _, c := range b.clients {
			e, t := cellOf(op, c, "etcd"), cellOf(op, c, "troupe")
			er, tr := medianF(e.rates), medianF(t.rates)
			e50, t50, e99, t99 := medianD(e.p50s), medianD(t.p50s), medianD(e.p99s), medianD(t.p99s)
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.2f\t%s\t%s\t%.2f\t%s\t%s\t%.2f\t%d/%d\t\n", op, c, er, tr, ratio(tr, er),
				ms(e50), ms(t50), ratio(float64(t50), float64(e50)), ms(e99), ms(t99), ratio(float64(t99), float64(e99)), e.errors, t.errors)
		}
	}
	_ = tw.Flush()
	for _, s := range []string{"etcd", "troupe"} {
		if f := failovers[s]; len(f) > 0 {
			fmt.Fprintf(b.out, "failover %s (kill -9 of the leader, %d times): p50 %s ms, p99 %s ms, max %s ms\n", s, len(f),
				ms(medianD(f)), ms(quantile(f, 0.99)), ms(quantile(f, 1)))
		}
	}
	put64, get64, put1 := cellOf("put", 64, "troupe"), cellOf("get", 64, "troupe"), cellOf("put", 1, "troupe")
	e64, eg64, e1 := cellOf("put", 64, "etcd"), cellOf("get", 64, "etcd"), cellOf("put", 1, "etcd")
	fmt.Fprintf(b.out, "vs_etcd_put_c64=%.2f vs_etcd_get_c64=%.2f vs_etcd_put_c1_p50=%.2f\n",
		ratio(medianF(put64.rates), medianF(e64.rates)), ratio(medianF(get64.rates), medianF(eg64.rates)),
		ratio(float64(medianD(put1.p50s)), float64(medianD(e1.p50s))))
}
