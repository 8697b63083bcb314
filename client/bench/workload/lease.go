package workload

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-db/cairn/client/bench/load"
)

// leaseWorkload churns leases: each operation grants one, keeps it alive once
// and revokes it. Set-up probes the same three calls once, so a server without
// leases (Unimplemented) yields a NotSupported result rather than errors.
type leaseWorkload struct{ o *Options }

func (w *leaseWorkload) setup(ctx context.Context, clis []*clientv3.Client) error {
	err := leaseCycle(ctx, clis[0], w.o.LeaseTTLSeconds)
	if isUnimplemented(err) {
		return &notSupportedError{reason: fmt.Sprintf("the server answers Unimplemented to the Lease service (%v)", err)}
	}
	return err
}

func leaseCycle(ctx context.Context, cli *clientv3.Client, ttl int64) error {
	g, err := cli.Grant(ctx, ttl)
	if err != nil {
		return fmt.Errorf("grant: %w", err)
	}
	if _, err := cli.KeepAliveOnce(ctx, g.ID); err != nil {
		return fmt.Errorf("keep-alive: %w", err)
	}
	if _, err := cli.Revoke(ctx, g.ID); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	return nil
}

func (w *leaseWorkload) op(_ int, cli *clientv3.Client) load.Op {
	return func(ctx context.Context) error { return leaseCycle(ctx, cli, w.o.LeaseTTLSeconds) }
}

func (w *leaseWorkload) finish(context.Context, *load.Result) {}
func (w *leaseWorkload) close()                               {}
