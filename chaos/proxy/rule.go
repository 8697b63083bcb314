package proxy

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Port is the kind of URL a proxy stands in front of.
type Port string

// Port kinds. AnyPort in a Rule selects both.
const (
	PeerPort   Port = "peer"
	ClientPort Port = "client"
	AnyPort    Port = ""
)

// Client is the source name of a connection no member process owns: the
// workload's clients, the harness's probes.
const Client = "client"

// Link is one direction of traffic a connection belongs to: opened by From
// to the proxy of To's Port.
type Link struct {
	From string
	To   string
	Port Port
}

func (l Link) String() string { return fmt.Sprintf("%s→%s/%s", l.From, l.To, l.Port) }

// Rule is one fault on the links it selects. Empty From or To select every
// source or destination; Port AnyPort selects both kinds.
type Rule struct {
	From []string
	To   []string
	Port Port
	// Cut resets the selected connections and blackholes new ones.
	Cut bool
	// Latency delays every chunk; Jitter adds a uniform random delay in
	// [0, Jitter) on top. Order is kept.
	Latency time.Duration
	Jitter  time.Duration
	// BytesPerSecond caps each direction's throughput; 0 means no cap.
	BytesPerSecond int
}

// Selects reports whether the rule applies to link.
func (r Rule) Selects(link Link) bool {
	if r.Port != AnyPort && r.Port != link.Port {
		return false
	}
	if len(r.From) > 0 && !slices.Contains(r.From, link.From) {
		return false
	}
	return len(r.To) == 0 || slices.Contains(r.To, link.To)
}

func (r Rule) String() string {
	var parts []string
	side := func(names []string) string {
		if len(names) == 0 {
			return "*"
		}
		return strings.Join(names, ",")
	}
	port := string(r.Port)
	if port == "" {
		port = "*"
	}
	parts = append(parts, fmt.Sprintf("%s→%s/%s", side(r.From), side(r.To), port))
	if r.Cut {
		parts = append(parts, "cut")
	}
	if r.Latency > 0 || r.Jitter > 0 {
		parts = append(parts, fmt.Sprintf("latency %v±%v", r.Latency, r.Jitter))
	}
	if r.BytesPerSecond > 0 {
		parts = append(parts, fmt.Sprintf("%d B/s", r.BytesPerSecond))
	}
	return strings.Join(parts, " ")
}

// effect is what every rule selecting one link adds up to: a cut by any
// rule cuts, delays add up, the lowest bandwidth cap wins.
type effect struct {
	cut            bool
	latency        time.Duration
	jitter         time.Duration
	bytesPerSecond int
}

func combine(rules []Rule, link Link) effect {
	var e effect
	for _, r := range rules {
		if !r.Selects(link) {
			continue
		}
		e.cut = e.cut || r.Cut
		e.latency += r.Latency
		e.jitter += r.Jitter
		if r.BytesPerSecond > 0 && (e.bytesPerSecond == 0 || r.BytesPerSecond < e.bytesPerSecond) {
			e.bytesPerSecond = r.BytesPerSecond
		}
	}
	return e
}
