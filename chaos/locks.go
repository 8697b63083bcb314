package chaos

import (
	"fmt"
	"strings"

	"github.com/cairn-db/cairn/chaos/workload"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// checkLocks replays the lock traffic from the store's own history and
// checks fencing: every fenced write was made while its writer's lock key
// existed and was the oldest of its lock (the owner, by etcd's lock recipe),
// and the owners of one lock's fenced writes hold keys of non-decreasing
// create revision.
func (r *runner) checkLocks(history storeHistoryRead) Check {
	check := Check{Name: "locks"}
	if history.err != nil {
		check.Detail = history.err.Error()
		return check
	}
	var events []*mvccpb.Event
	for _, k := range history.sortedKeys("") {
		if strings.HasPrefix(k.key, workload.LockPrefix) || strings.HasPrefix(k.key, workload.FencedPrefix) {
			events = append(events, history.events[k])
		}
	}
	problems, fenced := checkFencing(events)
	check.OK = len(problems) == 0
	check.Detail = fmt.Sprintf("%s; %d fenced writes in the store", r.locks.Stats(), fenced)
	if !check.OK {
		check.Detail = fmt.Sprintf("%d problems: %s", len(problems), firstFew(problems))
	}
	return check
}

// checkFencing checks a history of lock and fenced keys, in revision order,
// and counts the fenced writes.
func checkFencing(events []*mvccpb.Event) (problems []string, fenced int) {
	// holders[lock][lockKey] is the create revision of a live lock key.
	holders := map[string]map[string]int64{}
	lastFence := map[string]int64{}
	for _, e := range events {
		key := string(e.Kv.Key)
		if rest, ok := strings.CutPrefix(key, workload.LockPrefix); ok {
			lock, _, _ := strings.Cut(rest, "/")
			if holders[lock] == nil {
				holders[lock] = map[string]int64{}
			}
			if e.Type == mvccpb.DELETE {
				delete(holders[lock], key)
			} else {
				holders[lock][key] = e.Kv.CreateRevision
			}
			continue
		}
		lock := strings.TrimPrefix(key, workload.FencedPrefix)
		if e.Type == mvccpb.DELETE {
			problems = append(problems, fmt.Sprintf("fenced key %q deleted at revision %d", key, e.Kv.ModRevision))
			continue
		}
		fenced++
		writer, _, _ := strings.Cut(string(e.Kv.Value), " ")
		fence, held := holders[lock][writer]
		owner, ownerFence := oldest(holders[lock])
		switch {
		case !held:
			problems = append(problems, fmt.Sprintf("fenced write of %q at revision %d by %s, which held no lock key then", lock, e.Kv.ModRevision, writer))
		case owner != writer:
			problems = append(problems, fmt.Sprintf("fenced write of %q at revision %d by %s (created at %d), but %s (created at %d) owned the lock", lock, e.Kv.ModRevision, writer, fence, owner, ownerFence))
		case fence < lastFence[lock]:
			problems = append(problems, fmt.Sprintf("fenced write of %q at revision %d by an owner created at %d, after one created at %d", lock, e.Kv.ModRevision, fence, lastFence[lock]))
		default:
			lastFence[lock] = fence
		}
	}
	return problems, fenced
}

// oldest returns the lock key with the smallest create revision.
func oldest(keys map[string]int64) (string, int64) {
	var owner string
	var fence int64
	for key, created := range keys {
		if owner == "" || created < fence {
			owner, fence = key, created
		}
	}
	return owner, fence
}
