package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

const (
	// reconfigTimeout bounds the retries of a MemberRemove or MemberAdd
	// the cluster refuses for now (no leader, not enough healthy members).
	reconfigTimeout = 15 * time.Second
	// removedExitTimeout is how long a removed member may take to stop by
	// itself before it is killed.
	removedExitTimeout = 10 * time.Second
)

// Replace removes m from the cluster, deletes its data, adds it back as a
// new member with the same name and peer URL, and starts it with
// --initial-cluster-state existing: a membership change under load. The
// removed process stops by itself; that exit is expected.
func (c *Cluster) Replace(m *Member) error {
	var others []string
	for _, o := range c.Members {
		if o != m && o.Serving() {
			others = append(others, o.DirectClientURL())
		}
	}
	if len(others) == 0 {
		return errors.New("replace: no other member serving")
	}
	cli, err := newClient(c.cfg.TLS, others...)
	if err != nil {
		return err
	}
	defer cli.Close()
	st, err := m.Status()
	if err != nil {
		return fmt.Errorf("replace %s: status: %w", m.Name, err)
	}
	exited := m.expectExit()
	if err := retryReconfig(func(ctx context.Context) error {
		_, err := cli.MemberRemove(ctx, st.Header.MemberId)
		if errors.Is(err, rpctypes.ErrMemberNotFound) {
			return nil // an earlier attempt went through
		}
		return err
	}); err != nil {
		return fmt.Errorf("replace %s: remove: %w", m.Name, err)
	}
	if exited != nil {
		select {
		case <-exited:
		case <-time.After(removedExitTimeout):
			if err := m.Kill(); err != nil {
				return err
			}
		}
	}
	if err := os.RemoveAll(m.DataDir); err != nil {
		return fmt.Errorf("replace %s: wipe data: %w", m.Name, err)
	}
	if err := retryReconfig(func(ctx context.Context) error {
		_, err := cli.MemberAdd(ctx, []string{m.PeerURL()})
		if errors.Is(err, rpctypes.ErrPeerURLExist) {
			return nil // an earlier attempt went through
		}
		return err
	}); err != nil {
		return fmt.Errorf("replace %s: add: %w", m.Name, err)
	}
	m.mu.Lock()
	m.mu.joined = true
	m.mu.Unlock()
	return m.Restart()
}

// retryReconfig retries a membership request until it succeeds or
// reconfigTimeout passes.
func retryReconfig(do func(context.Context) error) error {
	deadline := time.Now().Add(reconfigTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), probeRequestTimeout)
		err := do(ctx)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(readyPollInterval * 5)
	}
}
