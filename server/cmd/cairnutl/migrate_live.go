package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/cairn-db/cairn/node"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A copy from a live etcd reads, through the client API, every key at one
// revision R (ranges of --page-keys keys, all at R, so the copy is
// consistent however long it takes), then the leases. Each key keeps its
// create_revision, mod_revision, version and lease; the store is at R and
// compacted at R, since the history before R is not copied.
//
// Leases are listed after the keys: a lease a key refers to that has ended
// by then (revoked or expired, which deleted the key in etcd after R) is
// recreated with orphanLeaseTTLSeconds, so the key goes soon after the new
// member first leads, as it went in etcd. Remaining TTLs are not copied:
// every lease starts with its full TTL, as after an etcd leader change.

const (
	// liveDefaultPageKeys is the default of --page-keys.
	liveDefaultPageKeys = 1000
	// orphanLeaseTTLSeconds is the TTL of a lease recreated for keys that
	// still referred to it at R (raised to the member's minimum TTL).
	orphanLeaseTTLSeconds = 1
)

type liveFlags struct {
	endpoints                   string
	dialTimeout, commandTimeout time.Duration
	cacert, cert, key           string
	user, password              string
	pageKeys                    int64
}

// liveSource copies from a live etcd (or any server of the etcd v3 API).
type liveSource struct {
	flags liveFlags
}

func (s *liveSource) describe() string { return "etcd at " + s.flags.endpoints }

func (s *liveSource) client() (*clientv3.Client, error) {
	cfg := clientv3.Config{
		Endpoints:          splitList(s.flags.endpoints),
		DialTimeout:        s.flags.dialTimeout,
		MaxCallRecvMsgSize: math.MaxInt32,
	}
	if s.flags.cacert != "" || s.flags.cert != "" {
		info := transport.TLSInfo{TrustedCAFile: s.flags.cacert, CertFile: s.flags.cert, KeyFile: s.flags.key}
		var tlsCfg *tls.Config
		var err error
		if tlsCfg, err = info.ClientConfig(); err != nil {
			return nil, fmt.Errorf("client TLS: %w", err)
		}
		cfg.TLS = tlsCfg
	}
	if s.flags.user != "" {
		user, password, found := strings.Cut(s.flags.user, ":")
		if !found {
			password = s.flags.password
		}
		cfg.Username, cfg.Password = user, password
	}
	return clientv3.New(cfg)
}

func (s *liveSource) importInto(im *node.Importer) (rev, compactRev int64, err error) {
	if s.flags.pageKeys < 1 {
		return 0, 0, fmt.Errorf("--page-keys %d: want at least 1", s.flags.pageKeys)
	}
	cli, err := s.client()
	if err != nil {
		return 0, 0, err
	}
	defer cli.Close()
	rev, referenced, err := s.copyKeys(cli, im)
	if err != nil {
		return 0, 0, err
	}
	if err := s.copyLeases(cli, im, referenced); err != nil {
		return 0, 0, err
	}
	return rev, rev, nil
}

// copyKeys imports every key at one revision, which it returns, with the
// set of leases the keys refer to.
func (s *liveSource) copyKeys(cli *clientv3.Client, im *node.Importer) (rev int64, referenced map[int64]bool, err error) {
	referenced = map[int64]bool{}
	from := []byte{0}
	var sub int64
	for {
		opts := []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithLimit(s.flags.pageKeys)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.get(cli, string(from), opts...)
		if err != nil {
			return 0, nil, err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			if err := im.Change(rev, sub, &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: kv}); err != nil {
				return 0, nil, err
			}
			sub++
			if kv.Lease != 0 {
				referenced[kv.Lease] = true
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, referenced, nil
		}
		from = append(append(from[:0], resp.Kvs[len(resp.Kvs)-1].Key...), 0)
	}
}

func (s *liveSource) get(cli *clientv3.Client, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.flags.commandTimeout)
	defer cancel()
	resp, err := cli.Get(ctx, key, opts...)
	if err != nil {
		return nil, fmt.Errorf("range from %q: %w", key, err)
	}
	return resp, nil
}

// copyLeases imports every lease the server lists, and recreates the ones
// keys referred to that have ended since.
func (s *liveSource) copyLeases(cli *clientv3.Client, im *node.Importer, referenced map[int64]bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.flags.commandTimeout)
	leases, err := cli.Leases(ctx)
	cancel()
	if err != nil {
		return fmt.Errorf("list leases: %w", err)
	}
	for _, l := range leases.Leases {
		ctx, cancel := context.WithTimeout(context.Background(), s.flags.commandTimeout)
		ttl, err := cli.TimeToLive(ctx, l.ID)
		cancel()
		if err != nil {
			return fmt.Errorf("lease %x: %w", l.ID, err)
		}
		if ttl.TTL < 0 { // ended since it was listed: as if not listed
			continue
		}
		if err := im.Lease(int64(l.ID), ttl.GrantedTTL); err != nil {
			return err
		}
		delete(referenced, int64(l.ID))
	}
	for id := range referenced {
		if err := im.Lease(id, orphanLeaseTTLSeconds); err != nil {
			return err
		}
	}
	return nil
}
