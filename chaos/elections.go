package chaos

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/cairn-db/cairn/chaos/workload"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// The elections check replays the election traffic from the store's own
// history. In etcd's recipe the leader of an election at a revision is its
// oldest key (smallest create revision) then, so at most one key leads at
// any revision; a key leads from the revision at which every older key is
// gone until it is deleted. The check proves the clients and observers
// agree with that:
//
//   - every proclamation that succeeded put its value on its key at the
//     revision its response named, and that key led the election then (a
//     proclamation by a key that did not lead is a second leader);
//   - every leader an observer was told of was the leader, holding the
//     value it was told, at some revision between the value's put and the
//     response's revision;
//   - each observer is told of leaders in order: (create revision, mod
//     revision) never goes back, and strictly increases within one
//     Observe call.

// keyLife is one life of an election key, from its create revision to its
// delete (math.MaxInt64 while it exists), with the values it held.
type keyLife struct {
	key              string
	created, deleted int64
	// puts are the revisions and values of the key's puts, in order.
	puts []keyPut
	// leads is the revision from which the key is the election's oldest.
	leads int64
}

type keyPut struct {
	revision int64
	value    string
}

// electionLives rebuilds every election key's lives from events in
// revision order, by election name.
func electionLives(events []*mvccpb.Event) (map[string][]*keyLife, []string) {
	var problems []string
	lives := map[string][]*keyLife{}
	current := map[string]*keyLife{}
	for _, e := range events {
		key := string(e.Kv.Key)
		name, _, ok := strings.Cut(strings.TrimPrefix(key, workload.ElectionPrefix), "/")
		if !ok {
			problems = append(problems, fmt.Sprintf("election key %q has no election name", key))
			continue
		}
		life := current[key]
		if e.Type == mvccpb.DELETE {
			if life != nil {
				life.deleted = e.Kv.ModRevision
				delete(current, key)
			}
			continue
		}
		if life == nil {
			life = &keyLife{key: key, created: e.Kv.CreateRevision, deleted: math.MaxInt64}
			current[key] = life
			lives[name] = append(lives[name], life)
		}
		life.puts = append(life.puts, keyPut{e.Kv.ModRevision, string(e.Kv.Value)})
	}
	for _, ls := range lives {
		// A key leads once every older key is deleted.
		slices.SortFunc(ls, func(a, b *keyLife) int { return cmp.Compare(a.created, b.created) })
		var olderGone int64
		for _, l := range ls {
			l.leads = max(l.created, olderGone)
			olderGone = max(olderGone, l.deleted)
		}
	}
	return lives, problems
}

// findLife returns the life of key created at created, or nil.
func findLife(lives []*keyLife, key string, created int64) *keyLife {
	for _, l := range lives {
		if l.key == key && l.created == created {
			return l
		}
	}
	return nil
}

// valueSpan is the revisions [from, to) during which the life held the
// value put at revision, or ok false if it has no such put with value.
func (l *keyLife) valueSpan(revision int64, value string) (from, to int64, ok bool) {
	for i, p := range l.puts {
		if p.revision != revision {
			continue
		}
		if p.value != value {
			return 0, 0, false
		}
		to = l.deleted
		if i+1 < len(l.puts) {
			to = l.puts[i+1].revision
		}
		return revision, to, true
	}
	return 0, 0, false
}

// checkElectionHistory checks proclamations and observations against the
// election keys' history (events in revision order).
func checkElectionHistory(events []*mvccpb.Event, proclamations []workload.Proclamation, seen []workload.LeaderSeen) []string {
	lives, problems := electionLives(events)
	for _, p := range proclamations {
		if p.Revision == 0 {
			continue // a campaign won: its key need not outlive its session
		}
		life := findLife(lives[p.Election], p.Key, p.CreateRevision)
		if life == nil {
			problems = append(problems, fmt.Sprintf("proclamation %q at revision %d: key %q created at %d is not in the store's history", p.Value, p.Revision, p.Key, p.CreateRevision))
			continue
		}
		if _, _, ok := life.valueSpan(p.Revision, p.Value); !ok {
			problems = append(problems, fmt.Sprintf("proclamation %q of %q acknowledged at revision %d is not in the store's history", p.Value, p.Key, p.Revision))
			continue
		}
		if p.Revision < life.leads {
			problems = append(problems, fmt.Sprintf("proclamation %q of %q at revision %d while an older key still led %s (until %d)", p.Value, p.Key, p.Revision, p.Election, life.leads))
		}
	}
	last := map[int]workload.LeaderSeen{}
	for _, s := range seen {
		life := findLife(lives[s.Election], s.Key, s.CreateRevision)
		if life == nil {
			problems = append(problems, fmt.Sprintf("observer %d told of leader %q created at %d, which is not in the store's history", s.Observer, s.Key, s.CreateRevision))
			continue
		}
		from, to, ok := life.valueSpan(s.ModRevision, s.Value)
		if !ok {
			problems = append(problems, fmt.Sprintf("observer %d told that %q held %q at revision %d, which the store's history does not say", s.Observer, s.Key, s.Value, s.ModRevision))
			continue
		}
		if max(from, life.leads) >= min(to, life.deleted, s.HeaderRevision+1) {
			problems = append(problems, fmt.Sprintf("observer %d told of leader %q (value %q since %d, response at %d), which led %s only from revision %d to %d",
				s.Observer, s.Key, s.Value, s.ModRevision, s.HeaderRevision, s.Election, life.leads, life.deleted))
		}
		if prev, ok := last[s.Observer]; ok {
			order := cmp.Compare(s.CreateRevision, prev.CreateRevision)
			if order == 0 {
				order = cmp.Compare(s.ModRevision, prev.ModRevision)
			}
			if order < 0 || (order == 0 && prev.Stream == s.Stream) {
				problems = append(problems, fmt.Sprintf("observer %d told of %q (created %d, value since %d) after %q (created %d, value since %d)",
					s.Observer, s.Key, s.CreateRevision, s.ModRevision, prev.Key, prev.CreateRevision, prev.ModRevision))
			}
		}
		last[s.Observer] = s
	}
	return problems
}

// checkElections replays the election traffic from the store's history.
func (r *runner) checkElections(history storeHistoryRead) Check {
	check := Check{Name: "elections"}
	if history.err != nil {
		check.Detail = history.err.Error()
		return check
	}
	var events []*mvccpb.Event
	for _, k := range history.sortedKeys(workload.ElectionPrefix) {
		events = append(events, history.events[k])
	}
	problems := checkElectionHistory(events, r.elections.Proclamations(), r.elections.Seen())
	check.OK = len(problems) == 0
	check.Detail = r.elections.Stats().String()
	if !check.OK {
		check.Detail = fmt.Sprintf("%d problems: %s", len(problems), firstFew(problems))
	}
	return check
}
