package sim

import (
	crand "crypto/rand"
	"io"
	"math/rand/v2"
	"sync"
)

// seededReader is a deterministic stand-in for crypto/rand.Reader.
type seededReader struct {
	mu sync.Mutex
	// r is guarded by mu: Pebble's goroutines could in principle read too.
	r *rand.ChaCha8
}

func (s *seededReader) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.Read(p)
}

// runMu makes sure only one run replaces crypto/rand.Reader at a time.
var runMu sync.Mutex

// withSeededCryptoRand runs f with crypto/rand.Reader replaced by a stream
// derived from seed. Raft's election jitter reads it; nothing else in the
// node does.
func withSeededCryptoRand(seed uint64, f func()) {
	runMu.Lock()
	defer runMu.Unlock()
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	key[31] = 'c' // a different stream from the run's own PRNG
	previous := crand.Reader
	crand.Reader = io.Reader(&seededReader{r: rand.NewChaCha8(key)})
	defer func() { crand.Reader = previous }()
	f()
}
