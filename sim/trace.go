package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"
)

// tracer hashes every trace line and optionally prints or keeps it. The
// hash is the run's fingerprint: equal seeds must give equal hashes.
type tracer struct {
	clock func() int64
	hash  hash.Hash
	out   io.Writer
	kept  *strings.Builder
	lines int
}

func newTracer(clock func() int64, out io.Writer, keep bool) *tracer {
	t := &tracer{clock: clock, hash: sha256.New(), out: out}
	if keep {
		t.kept = &strings.Builder{}
	}
	return t
}

// printf records one line, prefixed with the virtual time.
func (t *tracer) printf(format string, args ...any) {
	now := t.clock()
	line := fmt.Sprintf("%7d.%03d ", now/second, (now%second)/millisecond) + fmt.Sprintf(format, args...) + "\n"
	t.hash.Write([]byte(line))
	t.lines++
	if t.out != nil {
		io.WriteString(t.out, line)
	}
	if t.kept != nil {
		t.kept.WriteString(line)
	}
}

func (t *tracer) sum() string { return hex.EncodeToString(t.hash.Sum(nil)) }
