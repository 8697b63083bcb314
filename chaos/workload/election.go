package workload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"
)

// Elections: clients of etcd's election recipe (concurrency.Election on a
// session lease) that campaign, proclaim new values while they lead, and
// resign; and observers (concurrency.Election.Observe) that follow each
// election's leader through one member each. Their keys are outside
// KeyPrefix, so their revisions are foreign to the KV history; the
// elections check replays them from the store's own history.

// ElectionPrefix is the prefix of the election keys: ElectionPrefix + name
// + "/" + the session's lease ID in hex, as concurrency.Election names them.
const ElectionPrefix = "chaos-election/"

// ElectionConfig shapes the election traffic.
type ElectionConfig struct {
	// Endpoints are the proxied client URLs: campaigners balance over all
	// of them, and each endpoint has one observer per election.
	Endpoints []string
	// Clients campaign on Elections election names.
	Clients   int
	Elections int
	// SessionTTLSeconds is the TTL of each session lease.
	SessionTTLSeconds int
	// ProclaimsMax bounds the proclamations of one term; Pause is the time
	// between two calls.
	ProclaimsMax int
	Pause        time.Duration
	// CampaignTimeout bounds the wait for leadership; RequestTimeout
	// every other call.
	CampaignTimeout, RequestTimeout time.Duration
	Seed                            uint64
}

// ElectionName is the name of the i-th election.
func ElectionName(i int) string { return fmt.Sprintf("e%d", i) }

// Bounds of what one run records, whatever its length.
const (
	campaignsMax          = 100_000
	electionRecordsMax    = 200_000
	observerStreamsMax    = 10_000
	observerReopenPauseMs = 100
)

// Proclamation is a successful Campaign (Value set by it, Revision 0) or
// Proclaim (Revision is the put's) by a campaigner holding Key, created at
// CreateRevision.
type Proclamation struct {
	Client         int
	Election       string
	Key            string
	CreateRevision int64
	Value          string
	Revision       int64
}

// LeaderSeen is one leader an observer was told of: Key, holding Value
// since ModRevision (created at CreateRevision), in a response of revision
// HeaderRevision. Stream counts the observer's Observe calls.
type LeaderSeen struct {
	Observer                                    int
	Stream                                      int
	Election                                    string
	Key, Value                                  string
	CreateRevision, ModRevision, HeaderRevision int64
}

// ElectionStats counts what the election clients did.
type ElectionStats struct {
	// Won counts campaigns won; Proclaimed the proclamations that
	// succeeded; Refused those refused as not the leader; Errors the calls
	// that failed; Seen the leaders the observers were told of.
	Won, Proclaimed, Refused, Errors, Seen int64
}

func (s ElectionStats) String() string {
	return fmt.Sprintf("%d terms won, %d proclamations, %d refused, %d errors, %d leaders observed", s.Won, s.Proclaimed, s.Refused, s.Errors, s.Seen)
}

// ElectionWorkload is a running election traffic generator.
type ElectionWorkload struct {
	cfg                               ElectionConfig
	won, proclaimed, refused, errored atomic.Int64
	campaigns                         atomic.Int64

	mu struct {
		sync.Mutex
		proclamations []Proclamation
		seen          []LeaderSeen
	}
}

// NewElections returns an election workload.
func NewElections(cfg ElectionConfig) *ElectionWorkload { return &ElectionWorkload{cfg: cfg} }

// Stats returns the counts so far.
func (ew *ElectionWorkload) Stats() ElectionStats {
	ew.mu.Lock()
	seen := int64(len(ew.mu.seen))
	ew.mu.Unlock()
	return ElectionStats{Won: ew.won.Load(), Proclaimed: ew.proclaimed.Load(), Refused: ew.refused.Load(), Errors: ew.errored.Load(), Seen: seen}
}

// Proclamations returns the successful campaigns and proclamations so far.
func (ew *ElectionWorkload) Proclamations() []Proclamation {
	ew.mu.Lock()
	defer ew.mu.Unlock()
	return append([]Proclamation(nil), ew.mu.proclamations...)
}

// Seen returns what the observers were told so far.
func (ew *ElectionWorkload) Seen() []LeaderSeen {
	ew.mu.Lock()
	defer ew.mu.Unlock()
	return append([]LeaderSeen(nil), ew.mu.seen...)
}

// Run campaigns and observes until ctx is done and every client and
// observer has finished. Sessions are then left to expire.
func (ew *ElectionWorkload) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, ew.cfg.Clients+len(ew.cfg.Endpoints)*ew.cfg.Elections)
	for i := range ew.cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = ew.campaigner(ctx, i, rand.New(rand.NewPCG(ew.cfg.Seed, 0xe1ec+uint64(i))))
		}()
	}
	observer := 0
	for _, endpoint := range ew.cfg.Endpoints {
		for e := range ew.cfg.Elections {
			wg.Add(1)
			slot := ew.cfg.Clients + observer
			go func(observer int) {
				defer wg.Done()
				errs[slot] = ew.observer(ctx, observer, endpoint, ElectionName(e))
			}(observer)
			observer++
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (ew *ElectionWorkload) record(p *Proclamation, s *LeaderSeen) {
	ew.mu.Lock()
	defer ew.mu.Unlock()
	if len(ew.mu.proclamations)+len(ew.mu.seen) >= electionRecordsMax {
		return
	}
	if p != nil {
		ew.mu.proclamations = append(ew.mu.proclamations, *p)
	}
	if s != nil {
		ew.mu.seen = append(ew.mu.seen, *s)
	}
}

// campaigner wins, leads and resigns one election after another.
func (ew *ElectionWorkload) campaigner(ctx context.Context, client int, rng *rand.Rand) error {
	cli, err := NewClient(ew.cfg.Endpoints)
	if err != nil {
		return err
	}
	defer cli.Close()
	var session *concurrency.Session
	for seq := 0; ctx.Err() == nil && ew.campaigns.Add(1) <= campaignsMax; seq++ {
		if session, err = liveSession(ctx, cli, session, ew.cfg.SessionTTLSeconds); err != nil {
			ew.errored.Add(1)
			sleep(ctx, ew.cfg.Pause)
			continue
		}
		name := ElectionName(rng.IntN(ew.cfg.Elections))
		e := concurrency.NewElection(session, ElectionPrefix+name)
		value := fmt.Sprintf("c%d.%d.0", client, seq)
		campaignCtx, cancel := context.WithTimeout(ctx, ew.cfg.CampaignTimeout)
		err := e.Campaign(campaignCtx, value)
		cancel()
		if err != nil {
			ew.errored.Add(1)
			continue
		}
		ew.won.Add(1)
		ew.record(&Proclamation{Client: client, Election: name, Key: e.Key(), CreateRevision: e.Rev(), Value: value}, nil)
		proclaims := 1 + rng.IntN(ew.cfg.ProclaimsMax)
		for k := 1; k <= proclaims && ctx.Err() == nil; k++ {
			sleep(ctx, ew.cfg.Pause)
			if !ew.proclaim(ctx, client, name, e, fmt.Sprintf("c%d.%d.%d", client, seq, k)) {
				break
			}
		}
		resignCtx, cancel := context.WithTimeout(context.Background(), ew.cfg.RequestTimeout)
		if err := e.Resign(resignCtx); err != nil {
			ew.errored.Add(1)
		}
		cancel()
	}
	return nil
}

// proclaim announces value as e's leader and records it if it succeeded;
// it reports whether the client should go on proclaiming.
func (ew *ElectionWorkload) proclaim(ctx context.Context, client int, name string, e *concurrency.Election, value string) bool {
	key, created := e.Key(), e.Rev()
	reqCtx, cancel := context.WithTimeout(ctx, ew.cfg.RequestTimeout)
	defer cancel()
	switch err := e.Proclaim(reqCtx, value); {
	case errors.Is(err, concurrency.ErrElectionNotLeader):
		ew.refused.Add(1)
		return false
	case err != nil:
		ew.errored.Add(1)
		return false
	}
	ew.proclaimed.Add(1)
	ew.record(&Proclamation{Client: client, Election: name, Key: key, CreateRevision: created, Value: value, Revision: e.Header().Revision}, nil)
	return true
}

// observer follows one election's leader through one endpoint, calling
// Observe again whenever its channel closes (an error or a lost watch).
func (ew *ElectionWorkload) observer(ctx context.Context, observer int, endpoint, name string) error {
	cli, err := NewClient([]string{endpoint})
	if err != nil {
		return err
	}
	defer cli.Close()
	pause := time.Duration(observerReopenPauseMs) * time.Millisecond
	var session *concurrency.Session
	defer func() {
		if session != nil {
			session.Orphan()
		}
	}()
	for stream := 0; ctx.Err() == nil && stream < observerStreamsMax; stream++ {
		if session == nil || sessionOver(session) {
			// Observe reads only; it needs a session for its client.
			if session, err = concurrency.NewSession(cli, concurrency.WithTTL(ew.cfg.SessionTTLSeconds), concurrency.WithContext(ctx)); err != nil {
				session = nil
				sleep(ctx, pause)
				continue
			}
		}
		e := concurrency.NewElection(session, ElectionPrefix+name)
		observeCtx, cancel := context.WithCancel(ctx)
		for resp := range e.Observe(observeCtx) {
			if len(resp.Kvs) != 1 || resp.Header == nil {
				continue
			}
			kv := resp.Kvs[0]
			ew.record(nil, &LeaderSeen{Observer: observer, Stream: stream, Election: name, Key: string(kv.Key), Value: string(kv.Value),
				CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, HeaderRevision: resp.Header.Revision})
		}
		cancel()
		sleep(ctx, pause)
	}
	return nil
}
