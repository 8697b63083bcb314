package proxy

import (
	"io"
	"net"
	"sync"
	"time"
)

// conn is one proxied connection: down is the accepted side, up the side
// dialed to the target (nil while blackholed).
type conn struct {
	link Link
	// blackholed is fixed at accept: a connection accepted while its link
	// was cut never forwards; it is closed when the cut lifts.
	blackholed bool
	down       *net.TCPConn
	up         *net.TCPConn
	closeOnce  sync.Once
}

// chunk is bytes read from one side, to be written to the other at deliverAt.
type chunk struct {
	data           []byte
	deliverAt      time.Time
	bytesPerSecond int
}

func (n *Network) serve(p *Proxy, down *net.TCPConn) {
	remote, _ := down.RemoteAddr().(*net.TCPAddr)
	local, _ := down.LocalAddr().(*net.TCPAddr)
	link := Link{From: n.source(remote, local), To: p.to, Port: p.port}
	c := &conn{link: link, down: down, blackholed: n.effect(link).cut}
	if !c.blackholed {
		up, err := net.DialTimeout("tcp", p.target, dialTimeout)
		if err != nil {
			// The member is down: refuse, as its own port would.
			c.reset()
			return
		}
		c.up = up.(*net.TCPConn)
	}
	if !n.register(c) {
		c.reset()
		return
	}
	defer n.unregister(c)
	// A rule set between the check above and register would have missed
	// this connection.
	if n.effect(link).cut != c.blackholed {
		c.reset()
		return
	}
	if c.blackholed {
		// Accept and never answer: read and drop until the cut lifts
		// (enforce resets us) or the dialer gives up.
		_, _ = io.Copy(io.Discard, down)
		c.reset()
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); n.pump(c, c.down, c.up) }()
	go func() { defer wg.Done(); n.pump(c, c.up, c.down) }()
	wg.Wait()
}

// pump forwards src to dst through a bounded queue, applying the link's
// delay and bandwidth cap as each chunk is read. It closes the connection
// when src ends.
func (n *Network) pump(c *conn, src, dst *net.TCPConn) {
	queue := make(chan chunk, chunkQueueMax)
	written := make(chan struct{})
	go func() {
		defer close(written)
		writeChunks(c, dst, queue)
	}()
	buf := make([]byte, chunkBytesMax)
	var lastDelivery time.Time
	for {
		k, err := src.Read(buf)
		if k > 0 {
			e := n.effect(c.link)
			if e.cut {
				c.reset()
				break
			}
			deliverAt := time.Now().Add(n.delay(e))
			if deliverAt.Before(lastDelivery) {
				deliverAt = lastDelivery
			}
			lastDelivery = deliverAt
			queue <- chunk{data: append([]byte(nil), buf[:k]...), deliverAt: deliverAt, bytesPerSecond: e.bytesPerSecond}
		}
		if err != nil {
			break
		}
	}
	close(queue)
	<-written
	c.close()
}

// writeChunks writes each chunk at its delivery time, pacing to its
// bandwidth cap; after a write error it drains the queue.
func writeChunks(c *conn, dst *net.TCPConn, queue <-chan chunk) {
	failed := false
	for ch := range queue {
		if failed {
			continue
		}
		wait := time.Until(ch.deliverAt)
		if ch.bytesPerSecond > 0 {
			// The chunk's bytes take this long to cross the thin link.
			wait = max(wait, 0) + time.Duration(len(ch.data))*time.Second/time.Duration(ch.bytesPerSecond)
		}
		if wait > 0 {
			time.Sleep(wait)
		}
		if _, err := dst.Write(ch.data); err != nil {
			failed = true
			c.reset()
		}
	}
}

// reset closes both sides with a TCP RST.
func (c *conn) reset() {
	c.closeOnce.Do(func() {
		_ = c.down.SetLinger(0)
		c.down.Close()
		if c.up != nil {
			_ = c.up.SetLinger(0)
			c.up.Close()
		}
	})
}

// close closes both sides normally.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.down.Close()
		if c.up != nil {
			c.up.Close()
		}
	})
}
