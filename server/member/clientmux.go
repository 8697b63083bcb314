package member

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/cairn-db/cairn/server/tlsutil"
	"golang.org/x/net/http2"
)

// A client URL serves gRPC and HTTP/1.1 on one port, as etcd's does: each
// connection is sorted by its first bytes. gRPC speaks HTTP/2, whose
// connections open with a fixed preface; anything else is HTTP/1.x, for
// the health, version and metrics endpoints. On an https port the TLS
// handshake comes first, and the first bytes sorted are the decrypted ones.

const (
	// sniffTimeout bounds the wait for a new connection's first bytes;
	// one that sends too few in time is closed.
	sniffTimeout = 10 * time.Second
	// splitQueueConns bounds the sorted connections waiting for their
	// server to accept them; the sorting goroutines wait beyond it.
	splitQueueConns = 64
)

var http2Preface = []byte(http2.ClientPreface)

// clientSplitter sorts the connections of one listener between a gRPC
// listener and an HTTP listener. Closing either closes the listener and
// both sides.
type clientSplitter struct {
	l          net.Listener
	tlsLogger  *slog.Logger
	grpc, http *splitListener
	done       chan struct{}
	closeOnce  sync.Once
}

// splitClientListener starts sorting l's connections; tlsLogger logs the
// refused TLS handshakes, wg tracks the accepting goroutine.
func splitClientListener(l net.Listener, tlsLogger *slog.Logger, wg *sync.WaitGroup) (grpcL, httpL net.Listener) {
	s := &clientSplitter{l: l, tlsLogger: tlsLogger, done: make(chan struct{})}
	s.grpc = &splitListener{s: s, conns: make(chan net.Conn, splitQueueConns)}
	s.http = &splitListener{s: s, conns: make(chan net.Conn, splitQueueConns)}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.acceptLoop()
	}()
	return s.grpc, s.http
}

func (s *clientSplitter) close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.done)
		err = s.l.Close()
	})
	return err
}

func (s *clientSplitter) acceptLoop() {
	for {
		c, err := s.l.Accept()
		if err != nil {
			s.close()
			return
		}
		go s.route(c)
	}
}

// route reads a connection's first bytes until they either are HTTP/2's
// preface or cannot be, and hands it, first bytes included, to its side.
func (s *clientSplitter) route(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		if err := tlsutil.Handshake(tc, s.tlsLogger); err != nil {
			c.Close()
			return
		}
	}
	if err := c.SetReadDeadline(time.Now().Add(sniffTimeout)); err != nil {
		c.Close()
		return
	}
	first := make([]byte, 0, len(http2Preface))
	for len(first) < len(http2Preface) && bytes.HasPrefix(http2Preface, first) {
		n, err := c.Read(first[len(first):cap(first)])
		first = first[:len(first)+n]
		if err != nil && n == 0 {
			c.Close()
			return
		}
	}
	// Clear the handshake's write deadline too.
	if err := c.SetDeadline(time.Time{}); err != nil {
		c.Close()
		return
	}
	side := s.http
	if bytes.Equal(first, http2Preface) {
		side = s.grpc
	}
	select {
	case side.conns <- &prefixedConn{Conn: c, prefix: first}:
	case <-s.done:
		c.Close()
	}
}

// splitListener is one side of a clientSplitter.
type splitListener struct {
	s     *clientSplitter
	conns chan net.Conn
}

func (l *splitListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.s.done:
		return nil, net.ErrClosed
	}
}

func (l *splitListener) Close() error   { return l.s.close() }
func (l *splitListener) Addr() net.Addr { return l.s.l.Addr() }

// prefixedConn is a connection whose first bytes were already read.
type prefixedConn struct {
	net.Conn
	prefix []byte
}

// TLSConn lets the client port's gRPC credentials see the TLS connection
// (tlsutil.TLSConnWrapper).
func (c *prefixedConn) TLSConn() (*tls.Conn, bool) {
	tc, ok := c.Conn.(*tls.Conn)
	return tc, ok
}

func (c *prefixedConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
