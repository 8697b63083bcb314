package chaos

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cairn-db/cairn/chaos/cluster"
	"github.com/cairn-db/cairn/chaos/workload"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The lease-keys check. When a lease ends (revoked, or expired), etcd
// deletes every key attached to it in one change: one revision holding the
// deletes of exactly those keys. Read from the store's own history once
// every lease of the run is gone (checkLeases waited for that):
//
//   - every attach the cluster acknowledged put its key, with its lease, at
//     the revision the response named;
//   - every key ever attached to a lease is deleted, and all keys of one
//     lease at one revision, after each of their puts, with no change of
//     them afterwards;
//   - that revision holds nothing but the deletes of that lease's keys;
//   - no member serves any attached key any more.

// checkLeaseKeys checks the keys attached to the lease workload's leases.
func (r *runner) checkLeaseKeys() Check {
	check := Check{Name: "lease-keys"}
	history := r.readStoreHistory()
	if history.err != nil {
		check.Detail = history.err.Error()
		return check
	}
	var events []*mvccpb.Event
	for _, k := range history.sortedKeys(workload.LeaseKeyPrefix) {
		events = append(events, history.events[k])
	}
	revisionEvents := map[int64]int{}
	for k := range history.events {
		revisionEvents[k.revision]++
	}
	problems, leases, keys := checkLeaseKeyEvents(events, revisionEvents, r.leases.Observations())
	for _, m := range r.c.Members {
		if !m.Serving() {
			continue
		}
		if left, err := attachedKeysServed(m, history.current); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", m.Name, err))
		} else if len(left) > 0 {
			problems = append(problems, fmt.Sprintf("%s still serves %d attached keys at revision %d, first %q", m.Name, len(left), history.current, left[0]))
		}
	}
	check.OK = len(problems) == 0
	check.Detail = fmt.Sprintf("%d keys on %d leases, each lease's deleted at one revision", keys, leases)
	if !check.OK {
		check.Detail = fmt.Sprintf("%d problems: %s", len(problems), firstFew(problems))
	}
	return check
}

// checkLeaseKeyEvents checks the history of the attached keys (events in
// revision order; revisionEvents counts the events of every revision of the
// whole keyspace) against the attaches the workload observed. It returns
// the problems, and how many leases and keys the history holds.
func checkLeaseKeyEvents(events []*mvccpb.Event, revisionEvents map[int64]int, observations []workload.LeaseObservation) (problems []string, leases, keys int) {
	type keyLife struct {
		puts     []int64 // revisions of the puts
		lease    int64   // the lease of the last put
		deleted  int64   // revision of the delete, 0 if none
		afterDel bool    // a change came after the delete
	}
	lives := map[string]*keyLife{}
	byLease := map[int64][]string{}
	for _, e := range events {
		key := string(e.Kv.Key)
		life := lives[key]
		if life == nil {
			life = &keyLife{}
			lives[key] = life
			lease, ok := leaseOfKey(key)
			if !ok {
				problems = append(problems, fmt.Sprintf("key %q at revision %d is not named by a lease", key, e.Kv.ModRevision))
				continue
			}
			byLease[lease] = append(byLease[lease], key)
		}
		switch {
		case life.deleted != 0:
			life.afterDel = true
		case e.Type == mvccpb.DELETE:
			life.deleted = e.Kv.ModRevision
		default:
			life.puts = append(life.puts, e.Kv.ModRevision)
			life.lease = e.Kv.Lease
		}
	}
	for _, o := range observations {
		if o.Op != workload.LeaseAttach || o.Outcome != workload.LeaseAlive {
			continue
		}
		life := lives[o.Key]
		if life == nil || !slices.Contains(life.puts, o.Revision) {
			problems = append(problems, fmt.Sprintf("attach of %q acknowledged at revision %d is not in the store's history", o.Key, o.Revision))
		}
	}
	leaseIDs := make([]int64, 0, len(byLease))
	for id := range byLease {
		leaseIDs = append(leaseIDs, id)
	}
	slices.Sort(leaseIDs)
	for _, id := range leaseIDs {
		names := byLease[id]
		slices.Sort(names)
		keys += len(names)
		var deleted int64
		for _, key := range names {
			life := lives[key]
			switch {
			case life.lease != id:
				problems = append(problems, fmt.Sprintf("key %q of lease %x was put with lease %x", key, id, life.lease))
			case life.deleted == 0:
				problems = append(problems, fmt.Sprintf("key %q of lease %x was never deleted, though the lease is gone", key, id))
			case life.afterDel:
				problems = append(problems, fmt.Sprintf("key %q of lease %x changed after its delete at revision %d", key, id, life.deleted))
			case len(life.puts) == 0:
				problems = append(problems, fmt.Sprintf("key %q of lease %x deleted at revision %d without a put before", key, id, life.deleted))
			case deleted != 0 && life.deleted != deleted:
				problems = append(problems, fmt.Sprintf("lease %x's keys deleted at revisions %d and %d, not at one", id, deleted, life.deleted))
			default:
				deleted = life.deleted
			}
		}
		if deleted != 0 && revisionEvents[deleted] != len(names) {
			problems = append(problems, fmt.Sprintf("revision %d, which deletes lease %x's %d keys, holds %d changes", deleted, id, len(names), revisionEvents[deleted]))
		}
	}
	return problems, len(byLease), keys
}

// leaseOfKey parses the lease ID out of an attached key's name.
func leaseOfKey(key string) (int64, bool) {
	rest, ok := strings.CutPrefix(key, workload.LeaseKeyPrefix)
	if !ok {
		return 0, false
	}
	hex, _, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(hex, 16, 64)
	return int64(id), err == nil
}

// attachedKeysServed lists the attached keys m serves, read locally once it
// has applied revision.
func attachedKeysServed(m *cluster.Member, revision int64) ([]string, error) {
	if err := waitApplied(m, revision); err != nil {
		return nil, err
	}
	cli, err := m.Client()
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), checkRequestTimeout)
	defer cancel()
	resp, err := cli.Get(ctx, workload.LeaseKeyPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithSerializable())
	if err != nil {
		return nil, err
	}
	if resp.Header.Revision < revision {
		return nil, fmt.Errorf("serves revision %d, behind the history's %d", resp.Header.Revision, revision)
	}
	var keys []string
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key))
	}
	return keys, nil
}
