package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// etcdFeatureGate is one of etcd 3.7.3's server feature gates, and what
// cairn does with it.
type etcdFeatureGate struct {
	name string
	// accepted are the values cairn takes (it behaves so anyway); any other
	// value is refused.
	accepted []bool
	// reason says why the other value is refused, or why the gate has no
	// effect (logged, and in docs/compatibility.md); empty for a gate
	// cairn implements.
	reason string
	// implemented gates take effect (options.config reads them): no
	// notice is logged.
	implemented bool
}

// etcdFeatureGates are the gates of `etcd --help`, in its order. To
// implement one, give it both values and read it in options.config.
var etcdFeatureGates = []etcdFeatureGate{
	// AllAlpha=true would switch on the alpha gates cairn refuses.
	{name: "AllAlpha", accepted: []bool{false}, reason: "it switches on alpha gates cairn refuses"},
	// The beta gates are performance choices that are on by default and
	// invisible to clients; switching them off changes nothing in cairn.
	{name: "AllBeta", accepted: []bool{false, true}, reason: "cairn's beta gates have no effect"},
	{name: "CompactHashCheck", accepted: []bool{false, true}, implemented: true},
	{name: "FastLeaseKeepAlive", accepted: []bool{false, true}, reason: "cairn renews a lease after a ReadIndex, without waiting for its apply either way"},
	{name: "InitialCorruptCheck", accepted: []bool{false, true}, implemented: true},
	{name: "LeaseCheckpoint", accepted: []bool{false, true}, implemented: true},
	// etcd 3.7.3 persists checkpoints whenever the cluster version is 3.6
	// or later, that is always: the gate changes nothing there either.
	{name: "LeaseCheckpointPersist", accepted: []bool{false, true}, reason: "checkpoints persist either way, as in etcd 3.7.3, whose clusters (version 3.6 and later) always persist them"},
	{name: "PriorityRequest", accepted: []bool{false}, reason: "request priorities are not supported"},
	{name: "SetMemberLocalAddr", accepted: []bool{false}, reason: "cairn dials peers from the address the system chooses"},
	{name: "StopGRPCServiceOnDefrag", accepted: []bool{false}, reason: "cairn does not stop serving to defragment"},
	{name: "TxnModeWriteWithSharedBuffer", accepted: []bool{false, true}, reason: "a bbolt buffer setting; cairn stores its data in Pebble"},
}

// featureGates is the --feature-gates flag: Gate=bool pairs, in the order
// given.
type featureGates struct {
	text  string
	gates map[string]bool
}

func (g *featureGates) String() string {
	if g == nil {
		return ""
	}
	return g.text
}

// Set parses "A=true,B=false". An unknown gate or a value that is not a
// boolean is an error with etcd's wording; a refused value is checked by
// check, once the flags are parsed.
func (g *featureGates) Set(s string) error {
	gates := map[string]bool{}
	for _, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		name, value, ok := strings.Cut(pair, "=")
		if !ok {
			return fmt.Errorf("missing bool value for %s", pair)
		}
		name = strings.TrimSpace(name)
		if findGate(name) == nil {
			return fmt.Errorf("unrecognized feature gate: %s", name)
		}
		on, err := strconv.ParseBool(strings.TrimSpace(value))
		if err != nil {
			return fmt.Errorf("invalid value of %s=%s, err: %v", name, value, err)
		}
		gates[name] = on
	}
	g.text, g.gates = s, gates
	return nil
}

// enabled says whether gate name is set to true (etcd's default for the
// gates cairn implements is false).
func (g *featureGates) enabled(name string) bool { return g.gates[name] }

func findGate(name string) *etcdFeatureGate {
	for i := range etcdFeatureGates {
		if etcdFeatureGates[i].name == name {
			return &etcdFeatureGates[i]
		}
	}
	return nil
}

// check refuses a gate set to a value cairn does not take and returns a
// notice for each accepted gate that has no effect.
func (g *featureGates) check() (notices []string, err error) {
	for _, gate := range etcdFeatureGates { // the table's order, not the map's
		on, set := g.gates[gate.name]
		if !set {
			continue
		}
		if !slices.Contains(gate.accepted, on) {
			return nil, refusedError{setting: fmt.Sprintf("--feature-gates=%s=%t", gate.name, on)}
		}
		if gate.implemented {
			continue
		}
		notices = append(notices, fmt.Sprintf("--feature-gates=%s=%t is accepted and has no effect: %s", gate.name, on, gate.reason))
	}
	return notices, nil
}
