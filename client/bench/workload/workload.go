package workload

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/client/bench/keys"
	"github.com/cairn-db/cairn/client/bench/load"
)

// Names lists the workloads Run knows, in the order a comparison runs them.
var Names = []string{"put", "range", "txn", "watch", "lease", "k8s"}

// notSupportedError marks a workload the server answers with Unimplemented.
type notSupportedError struct{ reason string }

func (e *notSupportedError) Error() string { return "not supported: " + e.reason }

// Options configure a run; the zero value of each field gets the default of EnsureDefaults.
type Options struct {
	Endpoints []string
	// Conns is the number of clientv3 clients, each one gRPC connection (default 10).
	Conns int
	Load  load.Config

	KeySize   int        // bytes per key (default 16)
	ValueSize int        // bytes per value (default 256)
	KeyCount  int        // distinct keys written or preloaded (default 10000)
	Order     keys.Order // put: sequential or random keys
	Prefix    string     // key prefix (default "bench/")
	Seed      uint64     // seeds key order and mixes (default 1)

	Serializable bool // range, k8s reads: serializable instead of linearizable
	Scan         bool // range: scan from a random key with Limit instead of one key
	Limit        int  // range scan and k8s list page size (default 100)

	Watchers int // watch, k8s: number of watchers (default 100 for watch, 10 for k8s)
	// Namespaces divides the k8s objects (default 10).
	Namespaces int
	// LeaseTTLSeconds is the TTL of granted leases (default 60).
	LeaseTTLSeconds int64
	// TLS, when set, makes the clients dial the endpoints over TLS with it.
	TLS *tls.Config
	// Username and Password, when set, make the clients authenticate as
	// this user (the client library's own token handling, as an
	// application's).
	Username, Password string
	// DrainTimeout bounds the wait for watch events after the load (default
	// 30 s: with 1,000 watchers both systems fall seconds behind the puts,
	// and the events/s figure counts the time until the last event).
	DrainTimeout time.Duration
	// Log, when not nil, gets set-up messages.
	Log io.Writer
}

// EnsureDefaults fills zero fields.
func (o *Options) EnsureDefaults(name string) {
	if o.Conns == 0 {
		o.Conns = 10
	}
	if o.KeySize == 0 {
		o.KeySize = 16
	}
	if o.ValueSize == 0 {
		o.ValueSize = 256
	}
	if o.KeyCount == 0 {
		o.KeyCount = 10000
	}
	if o.Prefix == "" {
		o.Prefix = "bench/"
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Limit == 0 {
		o.Limit = 100
	}
	if o.Watchers == 0 {
		o.Watchers = 100
		if name == "k8s" {
			o.Watchers = 10
		}
	}
	if o.Namespaces == 0 {
		o.Namespaces = 10
	}
	if o.LeaseTTLSeconds == 0 {
		o.LeaseTTLSeconds = 60
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = 30 * time.Second
	}
	o.Load.Name = name
}

// Validate reports options that cannot run.
func (o *Options) Validate() error {
	switch {
	case len(o.Endpoints) == 0:
		return errors.New("no endpoints")
	case o.Conns < 1:
		return fmt.Errorf("conns %d: want at least 1", o.Conns)
	case o.ValueSize < 8:
		return fmt.Errorf("value size %d: want at least 8 (watch latency travels in the value)", o.ValueSize)
	}
	return o.space().Validate()
}

func (o *Options) space() keys.Space {
	return keys.Space{Prefix: o.Prefix, Size: o.KeySize, Count: o.KeyCount}
}

// workload is one kind of load. setup runs once before the load, op once per
// worker, finish once after it (to drain watchers and add figures), close last.
type workload interface {
	setup(ctx context.Context, clis []*clientv3.Client) error
	op(worker int, cli *clientv3.Client) load.Op
	finish(ctx context.Context, res *load.Result)
	close()
}

func newWorkload(name string, o *Options) (workload, error) {
	switch name {
	case "put":
		return &putWorkload{o: o}, nil
	case "range":
		return &rangeWorkload{o: o}, nil
	case "txn":
		return &txnWorkload{o: o}, nil
	case "watch":
		return &watchWorkload{o: o}, nil
	case "lease":
		return &leaseWorkload{o: o}, nil
	case "k8s":
		return &k8sWorkload{o: o}, nil
	}
	return nil, fmt.Errorf("unknown workload %q (want one of %v)", name, Names)
}

// Dial returns n clients to endpoints; close them with CloseAll.
func Dial(endpoints []string, n int) ([]*clientv3.Client, error) {
	return DialTLS(endpoints, n, nil)
}

// DialTLS is Dial over TLS configured by tlsConfig (plain text when nil).
func DialTLS(endpoints []string, n int, tlsConfig *tls.Config) ([]*clientv3.Client, error) {
	return DialAs(endpoints, n, tlsConfig, "", "")
}

// DialAs is DialTLS with clients that authenticate as username with
// password (none when username is empty).
func DialAs(endpoints []string, n int, tlsConfig *tls.Config, username, password string) ([]*clientv3.Client, error) {
	clis := make([]*clientv3.Client, 0, n)
	for i := 0; i < n; i++ {
		cli, err := clientv3.New(clientv3.Config{
			Endpoints:   endpoints,
			TLS:         tlsConfig,
			Username:    username,
			Password:    password,
			DialTimeout: 5 * time.Second,
			Logger:      zap.NewNop(),
		})
		if err != nil {
			CloseAll(clis)
			return nil, fmt.Errorf("dial %v: %w", endpoints, err)
		}
		clis = append(clis, cli)
	}
	return clis, nil
}

// CloseAll closes every client.
func CloseAll(clis []*clientv3.Client) {
	for _, c := range clis {
		_ = c.Close()
	}
}

// Run runs workload name with o and returns what it measured. An error means
// the run could not be made (bad options, no connection, failed set-up);
// failed operations are in the Result, and Result.Valid says whether it counts.
func Run(ctx context.Context, name string, o Options) (load.Result, error) {
	o.EnsureDefaults(name)
	if err := o.Validate(); err != nil {
		return load.Result{}, err
	}
	w, err := newWorkload(name, &o)
	if err != nil {
		return load.Result{}, err
	}
	clis, err := DialAs(o.Endpoints, o.Conns, o.TLS, o.Username, o.Password)
	if err != nil {
		return load.Result{}, err
	}
	defer CloseAll(clis)
	defer w.close()
	if err := w.setup(ctx, clis); err != nil {
		var ns *notSupportedError
		if errors.As(err, &ns) {
			return load.Result{Workload: name, NotSupported: ns.reason}, nil
		}
		return load.Result{}, fmt.Errorf("%s set-up: %w", name, err)
	}
	res, err := load.Run(ctx, o.Load, func(i int) load.Op { return w.op(i, clis[i%len(clis)]) })
	if err != nil {
		return load.Result{}, err
	}
	w.finish(ctx, &res)
	sort.Slice(res.Subs, func(i, j int) bool { return res.Subs[i].Name < res.Subs[j].Name })
	return res, nil
}

// isUnimplemented reports a gRPC Unimplemented answer, however clientv3 wrapped it.
func isUnimplemented(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if s, ok := status.FromError(e); ok && s.Code() == codes.Unimplemented {
			return true
		}
	}
	return false
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

func readOpts(o *Options, extra ...clientv3.OpOption) []clientv3.OpOption {
	if o.Serializable {
		extra = append(extra, clientv3.WithSerializable())
	}
	return extra
}

// ReadOnly runs the range workload over keys that are already there (no
// preload), labelled name: the large-data scenario's reads.
func ReadOnly(ctx context.Context, name string, o Options) (load.Result, error) {
	o.EnsureDefaults(name)
	if err := o.Validate(); err != nil {
		return load.Result{}, err
	}
	clis, err := DialAs(o.Endpoints, o.Conns, o.TLS, o.Username, o.Password)
	if err != nil {
		return load.Result{}, err
	}
	defer CloseAll(clis)
	w := &rangeWorkload{o: &o}
	return load.Run(ctx, o.Load, func(i int) load.Op { return w.op(i, clis[i%len(clis)]) })
}
