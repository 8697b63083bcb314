package keys

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
)

// Order says how a Generator walks the key space.
type Order int

const (
	// Sequential walks indices start, start+stride, ... modulo Count.
	Sequential Order = iota
	// Random draws indices uniformly from [0, Count).
	Random
)

// ParseOrder accepts "seq", "sequential", "random" and "rand".
func ParseOrder(s string) (Order, error) {
	switch s {
	case "seq", "sequential":
		return Sequential, nil
	case "rand", "random":
		return Random, nil
	}
	return 0, fmt.Errorf("key order %q: want seq or random", s)
}

func (o Order) String() string {
	if o == Random {
		return "random"
	}
	return "seq"
}

// Space is a set of Count keys of exactly Size bytes under Prefix.
type Space struct {
	Prefix string
	Size   int // bytes per key, prefix included
	Count  int // number of distinct keys, >= 1
}

// Validate reports whether every index fits in Size bytes.
func (s Space) Validate() error {
	if s.Count < 1 {
		return errors.New("key count must be at least 1")
	}
	digits := len(strconv.Itoa(s.Count - 1))
	if len(s.Prefix)+digits > s.Size {
		return fmt.Errorf("key size %d too small for prefix %q and %d keys (needs %d)", s.Size, s.Prefix, s.Count, len(s.Prefix)+digits)
	}
	return nil
}

// Key returns the key of index i (0 <= i < Count); it appends to dst.
func (s Space) Key(dst []byte, i int) []byte {
	if i < 0 || i >= s.Count {
		panic(fmt.Sprintf("keys: index %d outside [0,%d)", i, s.Count))
	}
	dst = append(dst, s.Prefix...)
	width := s.Size - len(s.Prefix)
	n := strconv.Itoa(i)
	for j := len(n); j < width; j++ {
		dst = append(dst, '0')
	}
	return append(dst, n...)
}

// Generator hands out key indices in an Order.
type Generator struct {
	space  Space
	order  Order
	next   int
	stride int
	rng    *rand.Rand
}

// NewGenerator returns a generator over space. Worker w of workers starts at
// index w and strides by workers when Sequential, so workers together write
// every key once before any key twice. seed fixes the Random order.
func NewGenerator(space Space, order Order, worker, workers int, seed uint64) *Generator {
	if workers < 1 || worker < 0 || worker >= workers {
		panic(fmt.Sprintf("keys: worker %d of %d", worker, workers))
	}
	return &Generator{
		space:  space,
		order:  order,
		next:   worker % space.Count,
		stride: workers,
		rng:    rand.New(rand.NewPCG(seed, uint64(worker))),
	}
}

// Next returns the next index.
func (g *Generator) Next() int {
	if g.order == Random {
		return g.rng.IntN(g.space.Count)
	}
	i := g.next
	g.next = (g.next + g.stride) % g.space.Count
	return i
}

// Intn is the generator's own random source, for workloads that draw other
// choices (operation mix) deterministically.
func (g *Generator) Intn(n int) int { return g.rng.IntN(n) }

// Value returns a value of size bytes (printable, not compressible to nothing).
func Value(size int) []byte {
	v := make([]byte, size)
	for i := range v {
		v[i] = 'a' + byte(i*7%26)
	}
	return v
}
