package simulation

import (
	cryptorand "crypto/rand"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
)

// etcd raft draws its randomized election timeouts from crypto/rand (a
// package-level source, raft.go's globalRand), which no configuration
// reaches. To make them follow the seed, this package replaces
// crypto/rand.Reader, once, when it is initialised, by a reader that
// serves each goroutine running a simulation from that simulation's seeded
// stream, and every other goroutine from the reader it replaced. Only
// binaries that link this package (cmd/sim, the simulation tests) are
// affected. The goroutine is recognised by its id, read from
// runtime.Stack: about a microsecond, paid only by crypto/rand reads
// (raft reads once per term change).
var cryptoStreams = &routedReader{fallback: cryptorand.Reader}

func init() { cryptorand.Reader = cryptoStreams }

type routedReader struct {
	fallback io.Reader
	streams  sync.Map // caller id (callerID) → *rand.ChaCha8
}

func (r *routedReader) Read(p []byte) (int, error) {
	if s, ok := r.streams.Load(callerID()); ok {
		return s.(*rand.ChaCha8).Read(p)
	}
	return r.fallback.Read(p)
}

// bindCryptoRand locks the calling goroutine to its thread and serves its
// crypto/rand reads from a stream seeded by seed until unbind is called
// (on the same goroutine).
func bindCryptoRand(seed uint64) (unbind func()) {
	runtime.LockOSThread()
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	copy(key[8:], "troupe-simulation-crypto")
	id := callerID()
	cryptoStreams.streams.Store(id, rand.NewChaCha8(key))
	return func() {
		cryptoStreams.streams.Delete(id)
		runtime.UnlockOSThread()
	}
}

// goid is the id of the calling goroutine, from the first line of its
// stack trace ("goroutine 42 [running]:").
func goid() uint64 {
	var buf [32]byte
	b := buf[:runtime.Stack(buf[:], false)]
	const prefix = len("goroutine ")
	var id uint64
	for i := prefix; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		id = id*10 + uint64(b[i]-'0')
	}
	return id
}
