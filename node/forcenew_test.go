package node

import (
	"fmt"
	"testing"
)

// TestForceNewCluster: one member of three, reopened on its data with
// ForceNewCluster, is a one-member cluster with the same ID and every
// committed key, that elects itself and takes writes; reopening it so
// again changes nothing.
func TestForceNewCluster(t *testing.T) {
	h := newHarness(t, []uint64{1, 2, 3}, nil)
	lead := h.leader()
	for i := range 20 {
		h.put(lead, fmt.Sprintf("k%02d", i), "v")
	}
	for range 3 { // followers learn the last commit index
		h.tick()
	}
	// The others' disks are lost; the survivor stops cleanly. (A machine
	// crash may also lose the commit index a follower learned last, and
	// with it, as in etcd, the writes above its stored one.)
	survivor := uint64(2)
	for _, id := range h.ids {
		if id != survivor {
			h.crash(id)
		}
	}
	if err := h.node(survivor).Close(); err != nil {
		t.Fatal(err)
	}
	h.members[survivor].cfg.ForceNewCluster = true
	h.open(survivor)
	for range maxTicks {
		if h.node(survivor).Status().IsLeader {
			break
		}
		h.tick()
	}
	if !h.node(survivor).Status().IsLeader {
		t.Fatal("the forced member did not elect itself")
	}
	if got := h.node(survivor).log.ConfState().GetVoters(); len(got) != 1 || got[0] != survivor {
		t.Fatalf("voters after ForceNewCluster: %v", got)
	}
	for _, m := range h.node(survivor).Members() { // the harness records no metadata; e2e checks the list
		if m.GetID() != survivor {
			t.Fatalf("member %x still listed after ForceNewCluster", m.GetID())
		}
	}
	for i := range 20 {
		if _, found := h.get(survivor, fmt.Sprintf("k%02d", i)); !found {
			t.Fatalf("key k%02d lost", i)
		}
	}
	h.put(survivor, "after", "v")
	h.restart(survivor)
	for range 3 * 10 {
		h.tick()
	}
	if got := h.node(survivor).log.ConfState().GetVoters(); len(got) != 1 || !h.node(survivor).Status().IsLeader {
		t.Fatalf("after a second forced open: voters %v, leader %v", got, h.node(survivor).Status().IsLeader)
	}
	if _, found := h.get(survivor, "after"); !found {
		t.Fatal("write after the forced open lost")
	}
}
