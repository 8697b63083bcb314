package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// echoServer answers every line with the same line, until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return l.Addr().String()
}

// bySourceIP names a connection by its dialer's loopback address, so a test
// can play several members from one process: 127.0.0.2 is "a", 127.0.0.3 "b".
func bySourceIP(remote, _ *net.TCPAddr) string {
	switch remote.IP.String() {
	case "127.0.0.2":
		return "a"
	case "127.0.0.3":
		return "b"
	}
	return Client
}

func dialFrom(t *testing.T, sourceIP, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(sourceIP)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, sourceIP, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes a line and reads it back within timeout.
func roundTrip(c net.Conn, timeout time.Duration) error {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping\n" {
		return errors.New("echo mismatch: " + line)
	}
	return nil
}

func newTestProxy(t *testing.T, source SourceFunc) (*Network, *Proxy) {
	t.Helper()
	n := NewNetwork(source, 1)
	t.Cleanup(n.Close)
	p, err := n.Listen("m1", PeerPort, echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	return n, p
}

func TestForwards(t *testing.T) {
	_, p := newTestProxy(t, nil)
	c := dialFrom(t, "127.0.0.1", p.Addr())
	for range 3 {
		if err := roundTrip(c, 2*time.Second); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCutIsPerLinkAndHeals(t *testing.T) {
	n, p := newTestProxy(t, bySourceIP)
	fromA := dialFrom(t, "127.0.0.2", p.Addr())
	fromB := dialFrom(t, "127.0.0.3", p.Addr())
	if err := roundTrip(fromA, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	n.SetRule("partition", Rule{From: []string{"a"}, To: []string{"m1"}, Cut: true})
	if err := roundTrip(fromA, 2*time.Second); err == nil {
		t.Fatal("a's open connection still forwards after the cut")
	}
	if err := roundTrip(fromB, 2*time.Second); err != nil {
		t.Fatalf("b's connection broken by a cut of a→m1: %v", err)
	}
	// A new connection from a is accepted and blackholed.
	held := dialFrom(t, "127.0.0.2", p.Addr())
	if err := roundTrip(held, 300*time.Millisecond); err == nil {
		t.Fatal("a connection opened during the cut forwarded")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("blackholed connection: %v, want a timeout", err)
	}
	n.RemoveRule("partition")
	if err := roundTrip(dialFrom(t, "127.0.0.2", p.Addr()), 2*time.Second); err != nil {
		t.Fatalf("after heal: %v", err)
	}
	waitNoConn(t, n, Link{From: "a", To: "m1", Port: PeerPort}, 1)
}

// waitNoConn waits until at most want connections of link are open: the
// blackholed one must be closed when its cut lifts.
func waitNoConn(t *testing.T, n *Network, link Link, want int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		count := 0
		for _, l := range n.Conns() {
			if l == link {
				count++
			}
		}
		if count <= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections of %v open, want %d", count, link, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLatencyDelaysEveryChunk(t *testing.T) {
	n, p := newTestProxy(t, nil)
	const latency = 100 * time.Millisecond
	n.SetRule("slow", Rule{Latency: latency, Jitter: 20 * time.Millisecond})
	c := dialFrom(t, "127.0.0.1", p.Addr())
	start := time.Now()
	if err := roundTrip(c, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	// Both directions pass the proxy: at least twice the latency.
	if elapsed := time.Since(start); elapsed < 2*latency {
		t.Fatalf("round trip took %v, want at least %v", elapsed, 2*latency)
	}
}

func TestBandwidthCap(t *testing.T) {
	n, p := newTestProxy(t, nil)
	const bytesPerSecond = 64 << 10
	n.SetRule("thin", Rule{BytesPerSecond: bytesPerSecond})
	c := dialFrom(t, "127.0.0.1", p.Addr())
	payload := make([]byte, 32<<10)
	start := time.Now()
	go func() { _, _ = c.Write(payload) }()
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, len(payload))); err != nil {
		t.Fatal(err)
	}
	// 32 KiB each way at 64 KiB/s: at least a quarter second in total.
	if elapsed := time.Since(start); elapsed < 400*time.Millisecond {
		t.Fatalf("32 KiB through a %d B/s cap took %v", bytesPerSecond, elapsed)
	}
}

func TestResetClosesSelected(t *testing.T) {
	n, p := newTestProxy(t, bySourceIP)
	fromA := dialFrom(t, "127.0.0.2", p.Addr())
	fromB := dialFrom(t, "127.0.0.3", p.Addr())
	for _, c := range []net.Conn{fromA, fromB} {
		if err := roundTrip(c, 2*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if got := n.Reset(Rule{From: []string{"b"}}); got != 1 {
		t.Fatalf("Reset closed %d connections, want 1", got)
	}
	if err := roundTrip(fromB, 2*time.Second); err == nil {
		t.Fatal("reset connection still works")
	}
	if err := roundTrip(fromA, 2*time.Second); err != nil {
		t.Fatalf("unselected connection broken: %v", err)
	}
}

func TestDownTargetRefuses(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := l.Addr().String()
	l.Close()
	n := NewNetwork(nil, 1)
	defer n.Close()
	p, err := n.Listen("m1", ClientPort, target)
	if err != nil {
		t.Fatal(err)
	}
	// The proxy accepts, fails to dial, and resets: the dial or the first
	// exchange fails.
	c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	if err == nil {
		defer c.Close()
		if err := roundTrip(c, 2*time.Second); err == nil {
			t.Fatal("proxy to a closed port forwarded")
		}
	}
}

func TestSocketOwnerFindsThisProcess(t *testing.T) {
	if _, err := os.Stat(procNetTCP); err != nil {
		t.Skipf("no %s: %v", procNetTCP, err)
	}
	named := make(chan string, 1)
	source := ProcessSource(func() map[int]string { return map[int]string{os.Getpid(): "me"} })
	n := NewNetwork(func(remote, local *net.TCPAddr) string {
		name := source(remote, local)
		named <- name
		return name
	}, 1)
	defer n.Close()
	p, err := n.Listen("m1", PeerPort, echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(dialFrom(t, "127.0.0.1", p.Addr()), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := <-named; got != "me" {
		t.Fatalf("source of a connection this process opened = %q, want me", got)
	}
}

func TestRuleSelectsAndCombines(t *testing.T) {
	link := Link{From: "a", To: "b", Port: PeerPort}
	for _, tc := range []struct {
		rule Rule
		want bool
	}{
		{Rule{}, true},
		{Rule{Port: ClientPort}, false},
		{Rule{From: []string{"b"}}, false},
		{Rule{From: []string{"a", "c"}, To: []string{"b"}, Port: PeerPort}, true},
		{Rule{To: []string{"a"}}, false},
	} {
		if got := tc.rule.Selects(link); got != tc.want {
			t.Errorf("%v selects %v = %v, want %v", tc.rule, link, got, tc.want)
		}
	}
	e := combine([]Rule{
		{Latency: 10 * time.Millisecond, BytesPerSecond: 100},
		{Latency: 5 * time.Millisecond, BytesPerSecond: 50, Cut: true},
		{Port: ClientPort, BytesPerSecond: 1},
	}, link)
	if e != (effect{cut: true, latency: 15 * time.Millisecond, bytesPerSecond: 50}) {
		t.Fatalf("combined effect %+v", e)
	}
}
