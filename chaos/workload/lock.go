package workload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Locks: clients of etcd's own lock recipe (concurrency.Mutex on a session
// lease) that, while they hold a lock, write a fenced key with a txn that
// succeeds only if they still own the lock (Mutex.IsOwner: their lock key
// still has the create revision it got). Their keys are outside KeyPrefix:
// the revisions they create are foreign to the KV history (see
// linearizability's Recorder.SetForeign), and the fencing check replays them
// from the store's own history.

const (
	// LockPrefix is the prefix of the lock keys: LockPrefix + name + "/"
	// + the session's lease ID, as concurrency.Mutex names them.
	LockPrefix = "chaos-lock/"
	// FencedPrefix is the prefix of the keys written under a lock:
	// FencedPrefix + name, the value being the writer's lock key, a space,
	// and a tag unique to the write.
	FencedPrefix = "chaos-fenced/"
)

// LockConfig shapes the lock traffic.
type LockConfig struct {
	// Endpoints are the proxied client URLs; every client balances over
	// all of them.
	Endpoints []string
	Clients   int
	// Locks is the number of lock names the clients contend for.
	Locks int
	// SessionTTLSeconds is the TTL of each client's session lease: a client
	// cut off for longer loses its locks, which is what fencing is for.
	SessionTTLSeconds int
	// WritesMax bounds the fenced writes of one acquisition, Pause is the
	// time between two of them.
	WritesMax int
	Pause     time.Duration
	// LockTimeout bounds the wait for a lock; RequestTimeout every other
	// call.
	LockTimeout, RequestTimeout time.Duration
	Seed                        uint64
}

// acquisitionsMax bounds the lock acquisitions of one run, whatever its
// length.
const acquisitionsMax = 100_000

// LockStats counts what the lock clients did.
type LockStats struct {
	// Acquired counts locks taken; Fenced the fenced writes that
	// succeeded; Refused those whose owner check failed (the writer had
	// lost the lock); Errors the calls that failed.
	Acquired, Fenced, Refused, Errors int64
}

func (s LockStats) String() string {
	return fmt.Sprintf("%d acquisitions, %d fenced writes, %d refused, %d errors", s.Acquired, s.Fenced, s.Refused, s.Errors)
}

// LockWorkload is a running lock traffic generator.
type LockWorkload struct {
	cfg                                LockConfig
	acquired, fenced, refused, errored atomic.Int64
}

// NewLocks returns a lock workload.
func NewLocks(cfg LockConfig) *LockWorkload { return &LockWorkload{cfg: cfg} }

// Stats returns the counts so far.
func (lw *LockWorkload) Stats() LockStats {
	return LockStats{Acquired: lw.acquired.Load(), Fenced: lw.fenced.Load(), Refused: lw.refused.Load(), Errors: lw.errored.Load()}
}

// Run takes and releases locks until ctx is done and every client has
// finished its last call. Sessions are then left to expire.
func (lw *LockWorkload) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, lw.cfg.Clients)
	for i := range lw.cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = lw.runClient(ctx, i, rand.New(rand.NewPCG(lw.cfg.Seed, 0x10c4+uint64(i))))
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (lw *LockWorkload) runClient(ctx context.Context, client int, rng *rand.Rand) error {
	cli, err := NewClient(lw.cfg.Endpoints)
	if err != nil {
		return err
	}
	defer cli.Close()
	var session *concurrency.Session
	for seq := 0; ctx.Err() == nil && lw.acquired.Load() < acquisitionsMax; seq++ {
		if session, err = liveSession(ctx, cli, session, lw.cfg.SessionTTLSeconds); err != nil {
			lw.errored.Add(1)
			sleep(ctx, lw.cfg.Pause)
			continue
		}
		name := fmt.Sprintf("l%d", rng.IntN(lw.cfg.Locks))
		m := concurrency.NewMutex(session, LockPrefix+name+"/")
		lockCtx, cancel := context.WithTimeout(ctx, lw.cfg.LockTimeout)
		err := m.Lock(lockCtx)
		cancel()
		if err != nil {
			lw.errored.Add(1)
			if errors.Is(err, concurrency.ErrSessionExpired) {
				session.Orphan()
				session = nil
			}
			continue
		}
		lw.acquired.Add(1)
		writes := 1 + rng.IntN(lw.cfg.WritesMax)
		for w := 0; w < writes && ctx.Err() == nil; w++ {
			if !lw.fencedWrite(ctx, cli, m, FencedPrefix+name, fmt.Sprintf("%s c%d.%d.%d", m.Key(), client, seq, w)) {
				break
			}
			sleep(ctx, lw.cfg.Pause)
		}
		unlockCtx, cancel := context.WithTimeout(context.Background(), lw.cfg.RequestTimeout)
		if err := m.Unlock(unlockCtx); err != nil {
			lw.errored.Add(1)
		}
		cancel()
	}
	return nil
}

// fencedWrite puts value at key if m still owns its lock; it reports
// whether the client should go on writing under this lock.
func (lw *LockWorkload) fencedWrite(ctx context.Context, cli *clientv3.Client, m *concurrency.Mutex, key, value string) bool {
	reqCtx, cancel := context.WithTimeout(ctx, lw.cfg.RequestTimeout)
	defer cancel()
	resp, err := cli.Txn(reqCtx).If(m.IsOwner()).Then(clientv3.OpPut(key, value)).Commit()
	switch {
	case err != nil:
		lw.errored.Add(1)
		return false
	case !resp.Succeeded:
		lw.refused.Add(1)
		return false
	}
	lw.fenced.Add(1)
	return true
}

// liveSession returns session while its lease lives, or else a new one
// (nil and an error if it cannot be made): a session whose lease ended is
// orphaned, as its keys went with the lease.
func liveSession(ctx context.Context, cli *clientv3.Client, session *concurrency.Session, ttlSeconds int) (*concurrency.Session, error) {
	if session != nil && !sessionOver(session) {
		return session, nil
	}
	if session != nil {
		session.Orphan()
	}
	return concurrency.NewSession(cli, concurrency.WithTTL(ttlSeconds), concurrency.WithContext(ctx))
}

// sessionOver reports whether a session's lease is gone or its keep-alive
// stopped.
func sessionOver(s *concurrency.Session) bool {
	select {
	case <-s.Done():
		return true
	default:
		return false
	}
}
