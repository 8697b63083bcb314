package tlstest

import (
	"bytes"
	"sync"
)

// Log is a log sink that servers' goroutines may write to while a test
// reads it: TLS refusals are logged from handshake goroutines, and the
// tests check that each refusal was logged.
type Log struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything written so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
