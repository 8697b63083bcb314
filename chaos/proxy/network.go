package proxy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sort"
	"sync"
	"time"
)

const (
	// dialTimeout bounds the proxy's connection to its target.
	dialTimeout = time.Second
	// chunkBytesMax is the most one read forwards as one chunk.
	chunkBytesMax = 32 << 10
	// chunkQueueMax bounds the chunks in flight in one direction of one
	// connection; a full queue stops reading from the sender.
	chunkQueueMax = 64
)

// SourceFunc names the source of an accepted connection from its remote and
// local addresses: a member's name, or Client.
type SourceFunc func(remote, local *net.TCPAddr) string

// Network is a set of proxies and the rules that apply to their connections.
type Network struct {
	source SourceFunc

	mu struct {
		sync.Mutex
		// rules are the faults in force, by name, applied in name order.
		rules map[string]Rule
		// conns are the open connections of every proxy.
		conns map[*conn]struct{}
		// rng draws jitter; guarded by mu because rand.Rand is not safe
		// for concurrent use.
		rng     *rand.Rand
		proxies []*Proxy
		closed  bool
	}
}

// NewNetwork returns a Network without proxies or rules; source names the
// sources of connections (nil: every connection is from Client), seed seeds
// the jitter.
func NewNetwork(source SourceFunc, seed uint64) *Network {
	if source == nil {
		source = func(_, _ *net.TCPAddr) string { return Client }
	}
	n := &Network{source: source}
	n.mu.rules = make(map[string]Rule)
	n.mu.conns = make(map[*conn]struct{})
	n.mu.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return n
}

// Proxy accepts connections on a loopback address and forwards them to
// one member's port.
type Proxy struct {
	network  *Network
	to       string
	port     Port
	target   string
	listener net.Listener
	done     chan struct{}
}

// Listen starts a proxy on a free 127.0.0.1 port that forwards to target
// (host:port), the port of kind port of member to.
func (n *Network) Listen(to string, port Port, target string) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy for %s/%s: %w", to, port, err)
	}
	p := &Proxy{network: n, to: to, port: port, target: target, listener: l, done: make(chan struct{})}
	n.mu.Lock()
	if n.mu.closed {
		n.mu.Unlock()
		l.Close()
		return nil, errors.New("proxy: network closed")
	}
	n.mu.proxies = append(n.mu.proxies, p)
	n.mu.Unlock()
	go p.acceptLoop()
	return p, nil
}

// Addr is the host:port clients and peers dial.
func (p *Proxy) Addr() string { return p.listener.Addr().String() }

// Target is the host:port the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

func (p *Proxy) acceptLoop() {
	defer close(p.done)
	for {
		c, err := p.listener.Accept()
		if err != nil {
			return
		}
		go p.network.serve(p, c.(*net.TCPConn))
	}
}

// SetRule puts rule in force under name, replacing the rule of that name,
// and resets or releases the connections whose state it changes.
func (n *Network) SetRule(name string, rule Rule) {
	n.mu.Lock()
	n.mu.rules[name] = rule
	n.mu.Unlock()
	n.enforce()
}

// RemoveRule lifts the rule named name, if any.
func (n *Network) RemoveRule(name string) {
	n.mu.Lock()
	delete(n.mu.rules, name)
	n.mu.Unlock()
	n.enforce()
}

// ClearRules lifts every rule.
func (n *Network) ClearRules() {
	n.mu.Lock()
	clear(n.mu.rules)
	n.mu.Unlock()
	n.enforce()
}

// Rules returns the rules in force, by name.
func (n *Network) Rules() map[string]Rule {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]Rule, len(n.mu.rules))
	for name, r := range n.mu.rules {
		out[name] = r
	}
	return out
}

// Reset closes with a TCP RST every open connection selected by rule (its
// fault fields are ignored) and returns how many it closed.
func (n *Network) Reset(rule Rule) int {
	n.mu.Lock()
	var victims []*conn
	for c := range n.mu.conns {
		if rule.Selects(c.link) {
			victims = append(victims, c)
		}
	}
	n.mu.Unlock()
	for _, c := range victims {
		c.reset()
	}
	return len(victims)
}

// Conns returns the links of the open connections, sorted, for tests and
// reports.
func (n *Network) Conns() []Link {
	n.mu.Lock()
	defer n.mu.Unlock()
	links := make([]Link, 0, len(n.mu.conns))
	for c := range n.mu.conns {
		links = append(links, c.link)
	}
	sort.Slice(links, func(i, j int) bool { return links[i].String() < links[j].String() })
	return links
}

// Close stops every proxy and closes every connection.
func (n *Network) Close() {
	n.mu.Lock()
	n.mu.closed = true
	proxies := slices.Clone(n.mu.proxies)
	var conns []*conn
	for c := range n.mu.conns {
		conns = append(conns, c)
	}
	n.mu.Unlock()
	for _, p := range proxies {
		p.listener.Close()
		<-p.done
	}
	for _, c := range conns {
		c.reset()
	}
}

// effectLocked combines the rules in force for link.
// REQUIRES: n.mu is held.
func (n *Network) effectLocked(link Link) effect {
	names := make([]string, 0, len(n.mu.rules))
	for name := range n.mu.rules {
		names = append(names, name)
	}
	sort.Strings(names)
	rules := make([]Rule, len(names))
	for i, name := range names {
		rules[i] = n.mu.rules[name]
	}
	return combine(rules, link)
}

func (n *Network) effect(link Link) effect {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.effectLocked(link)
}

// delay draws the delay of one chunk on a link with effect e.
func (n *Network) delay(e effect) time.Duration {
	d := e.latency
	if e.jitter > 0 {
		n.mu.Lock()
		d += time.Duration(n.mu.rng.Int64N(int64(e.jitter)))
		n.mu.Unlock()
	}
	return d
}

// enforce resets forwarding connections that are now cut and releases
// blackholed ones that no longer are.
func (n *Network) enforce() {
	n.mu.Lock()
	var victims []*conn
	for c := range n.mu.conns {
		if n.effectLocked(c.link).cut != c.blackholed {
			victims = append(victims, c)
		}
	}
	n.mu.Unlock()
	for _, c := range victims {
		c.reset()
	}
}

func (n *Network) register(c *conn) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.closed {
		return false
	}
	n.mu.conns[c] = struct{}{}
	return true
}

func (n *Network) unregister(c *conn) {
	n.mu.Lock()
	delete(n.mu.conns, c)
	n.mu.Unlock()
}
