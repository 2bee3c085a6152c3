package jobs

import (
	"context"
	"crypto/sha256"
	"sync"

	"github.com/troupe-dev/troupe/actors"
)

// pool runs the protocol's long work — loading scripts, splitting, running
// parts, merging — on goroutines of its own, off the mailbox; each task's
// outcome comes back to the protocol as a local message through its Ref.
// The protocol decides how many run at once (Config.Slots); the pool only
// owns the goroutines: stop cancels every task and waits for them.
type pool struct {
	inline bool // run tasks on the caller's goroutine (Config.Inline)
	ref    actors.Ref
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	progs  *programs   // the cache scripts load into now
	old    []*programs // caches of earlier runtimes (use), closed at stop
}

func newPool(ref actors.Ref, rts map[string]Runtime, inline bool) *pool {
	ctx, cancel := context.WithCancel(context.Background())
	return &pool{inline: inline, ref: ref, ctx: ctx, cancel: cancel, progs: &programs{rts: rts, m: map[progKey]*progEntry{}}}
}

// start runs fn on a goroutine (inline: at once) and posts its result to
// the protocol. The returned function cancels fn's context.
func (p *pool) start(fn func(ctx context.Context) any) context.CancelFunc {
	ctx, cancel := context.WithCancel(p.ctx)
	if p.inline {
		defer cancel()
		_ = p.ref.Post(fn(ctx))
		return cancel
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer cancel()
		// Fails only when the protocol stopped; the outcome is moot then.
		_ = p.ref.Post(fn(ctx))
	}()
	return cancel
}

// use makes scripts load into a fresh cache of the runtimes rts from now
// on. Tasks that already took the old cache go on with it; it is closed
// at stop. Called on the protocol's mailbox, as start is.
func (p *pool) use(rts map[string]Runtime) {
	p.old = append(p.old, p.progs)
	p.progs = &programs{rts: rts, m: map[progKey]*progEntry{}}
}

// stop cancels every task and returns when their goroutines have exited.
func (p *pool) stop() {
	p.cancel()
	p.wg.Wait()
	for _, c := range p.old {
		c.closeAll()
	}
	p.progs.closeAll()
}

// programs caches loaded scripts, so that a worker loads a job's script
// once and not for every part. Tasks use it concurrently.
type programs struct {
	rts map[string]Runtime
	mu  sync.Mutex
	m   map[progKey]*progEntry
	use uint64
}

type progKey struct {
	runtime string
	sum     [32]byte
}

type progEntry struct {
	once sync.Once
	prog Program
	err  error
	used uint64
}

// maxPrograms bounds the cache; the least recently used goes first.
const maxPrograms = 32

// get loads (or finds) the program of a script. A load error is cached
// too: scripts are deterministic.
func (c *programs) get(runtime string, script []byte) (Program, error) {
	rt, ok := c.rts[runtime]
	if !ok {
		return nil, unknownRuntime(runtime, c.rts)
	}
	k := progKey{runtime, sha256.Sum256(script)}
	c.mu.Lock()
	e := c.m[k]
	if e == nil {
		e = &progEntry{}
		c.m[k] = e
		c.evictLocked()
	}
	c.use++
	e.used = c.use
	c.mu.Unlock()
	e.once.Do(func() { e.prog, e.err = rt.Load(context.Background(), script) })
	return e.prog, e.err
}

func (c *programs) evictLocked() {
	for len(c.m) > maxPrograms {
		var oldest progKey
		var min uint64 = ^uint64(0)
		for k, e := range c.m {
			if e.used < min {
				oldest, min = k, e.used
			}
		}
		// Dropped, not closed: parts may still run on it. Runtimes
		// whose programs hold resources (exec's files) must not rely on
		// Close alone; closeAll closes what the cache still holds.
		delete(c.m, oldest)
	}
}

func (c *programs) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		e.once.Do(func() {})
		if e.prog != nil {
			_ = e.prog.Close()
		}
		delete(c.m, k)
	}
}
