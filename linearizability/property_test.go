package linearizability

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// rapidDrawer draws the workload from rapid, so failures shrink, except the
// "lost" decisions: rapid favours small numbers, which would lose most
// operations, so those come from a PCG seeded by one rapid draw.
type rapidDrawer struct {
	t    *rapid.T
	lost *rand.Rand
}

func newRapidDrawer(t *rapid.T) rapidDrawer {
	seed := rapid.Uint64().Draw(t, "lost seed")
	return rapidDrawer{t: t, lost: rand.New(rand.NewPCG(seed, seed))}
}

func (d rapidDrawer) intn(n int, label string) int {
	if strings.HasPrefix(label, "lost") {
		return d.lost.IntN(n)
	}
	return rapid.IntRange(0, n-1).Draw(d.t, label)
}

type randDrawer struct{ r *rand.Rand }

func (d randDrawer) intn(n int, _ string) int { return d.r.IntN(n) }

// propertyTimeout bounds one check in the property tests; a timeout fails
// the test, since these histories are small. Unknown outcomes are capped at
// 10% (twice: before and after effect): the search grows exponentially with
// the unknown writes that could fill a revision gap.
const propertyTimeout = 10 * time.Second

func drawConfig(t *rapid.T) generatorConfig {
	return generatorConfig{
		clients:        rapid.IntRange(1, 4).Draw(t, "clients"),
		keys:           rapid.IntRange(1, 4).Draw(t, "keys"),
		operations:     rapid.IntRange(1, 40).Draw(t, "operations"),
		unknownPercent: rapid.IntRange(0, 10).Draw(t, "unknown percent"),
	}
}

// Histories produced by the reference store are linearizable by
// construction, so the checker must accept them.
func TestGeneratedHistoriesCheck(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := generateHistory(newRapidDrawer(t), drawConfig(t))
		if got, _ := Check(1, h, propertyTimeout); got != ResultOK {
			dumpHistory(t, h)
			t.Fatalf("check = %v, want ok", got)
		}
	})
}

// A planted bug in one acknowledged response must be caught. Every mutation
// here is one no linearization can explain.
func TestPlantedBugIsCaught(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := generateHistory(newRapidDrawer(t), drawConfig(t))
		mutations := candidateMutations(h)
		if len(mutations) == 0 {
			t.Skip("no acknowledged operation to corrupt")
		}
		m := mutations[rapid.IntRange(0, len(mutations)-1).Draw(t, "mutation")]
		h[m.index].Output = m.apply(h[m.index].Output.(Response))
		got, _ := Check(1, h, propertyTimeout)
		if got != ResultIllegal {
			dumpHistory(t, h)
			t.Fatalf("check after %s on op %d = %v, want illegal", m.name, m.index, got)
		}
	})
}

type mutation struct {
	name  string
	index int
	apply func(Response) Response
}

// candidateMutations lists corruptions that make h illegal whatever its
// concurrency: a value never written, a version no key reaches, a revision no
// store reaches, and a put reusing another acknowledged put's revision.
func candidateMutations(h history) []mutation {
	unreachable := int64(1 + len(h) + 1)
	var ms []mutation
	var putRevisions []int64
	for _, op := range h {
		if resp := op.Output.(Response); !resp.Unknown && op.Input.(Request).Kind == OpPut {
			putRevisions = append(putRevisions, resp.HeaderRevision)
		}
	}
	for i, op := range h {
		resp := op.Output.(Response)
		if resp.Unknown {
			continue
		}
		ms = append(ms, mutation{"unreachable header revision", i, func(r Response) Response {
			r.HeaderRevision = unreachable
			return r
		}})
		switch op.Input.(Request).Kind {
		case OpGet:
			ms = append(ms, getMutations(i, resp, unreachable)...)
		case OpPut:
			for _, rev := range putRevisions {
				if rev != resp.HeaderRevision {
					ms = append(ms, mutation{"duplicate put revision", i, func(r Response) Response {
						r.HeaderRevision = rev
						return r
					}})
					break
				}
			}
		}
	}
	return ms
}

func getMutations(i int, resp Response, unreachable int64) []mutation {
	key := resp.KV.Key
	ms := []mutation{{"value never written", i, func(r Response) Response {
		r.Found, r.KV.Value, r.KV.Key = true, "never-written", key
		return r
	}}}
	if resp.Found {
		ms = append(ms, mutation{"unreachable version", i, func(r Response) Response {
			r.KV.Version = unreachable
			return r
		}})
	}
	return ms
}

func dumpHistory(t *rapid.T, h history) {
	for i, op := range h {
		t.Logf("%s", formatOperation(i, op))
	}
}

func TestGeneratorProducesConcurrencyAndUnknowns(t *testing.T) {
	h := generateHistory(randDrawer{rand.New(rand.NewPCG(7, 7))},
		generatorConfig{clients: 5, keys: 20, operations: 500, unknownPercent: 5})
	overlapping, unknown := 0, 0
	for i := 1; i < len(h); i++ {
		if h[i].Call <= h[i-1].Return {
			overlapping++
		}
		if h[i].Output.(Response).Unknown {
			unknown++
		}
	}
	if overlapping < 100 || unknown == 0 {
		t.Fatalf("generator too tame: %d overlapping, %d unknown of %d", overlapping, unknown, len(h))
	}
}

// A 3,000-operation, 5-client, 20-key history must check quickly; the time
// is printed, and only a generous bound is asserted so the test is not flaky.
func TestLargeHistoryChecksQuickly(t *testing.T) {
	for _, unknownPercent := range []int{0, 2} {
		t.Run(fmt.Sprintf("unknown %d%%", unknownPercent), func(t *testing.T) {
			h := generateHistory(randDrawer{rand.New(rand.NewPCG(1, 2))},
				generatorConfig{clients: 5, keys: 20, operations: 3000, unknownPercent: unknownPercent})
			started := time.Now()
			got, _ := Check(1, h, time.Minute)
			elapsed := time.Since(started)
			t.Logf("%d operations checked in %v: %v", len(h), elapsed, got)
			if got != ResultOK {
				t.Fatalf("check = %v, want ok", got)
			}
			if elapsed > 20*time.Second {
				t.Fatalf("check took %v, want well under 20s", elapsed)
			}
		})
	}
}

func BenchmarkCheck3000Operations(b *testing.B) {
	h := generateHistory(randDrawer{rand.New(rand.NewPCG(1, 2))},
		generatorConfig{clients: 5, keys: 20, operations: 3000, unknownPercent: 2})
	for b.Loop() {
		if got, _ := Check(1, h, time.Minute); got != ResultOK {
			b.Fatalf("check = %v", got)
		}
	}
}
