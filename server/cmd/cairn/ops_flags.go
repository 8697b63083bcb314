package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/cairn-db/cairn/server/member"
	"github.com/cairn-db/cairn/server/metrics"
)

// opsFlags are the operations flags: where HTTP is served and how many
// metrics, as etcd's --listen-client-http-urls and --metrics.
type opsFlags struct {
	clientHTTPURLs *string
	metricsLevel   *string
	// corruptCheckTime and compactHashCheckTime are the intervals of the
	// corruption checks (docs/operations.md, Corruption checks).
	corruptCheckTime     *time.Duration
	compactHashCheckTime *time.Duration
	// enableGateway is --enable-grpc-gateway: the JSON gateway under /v3/.
	enableGateway *bool
}

func addOpsFlags(fs *flag.FlagSet) opsFlags {
	return opsFlags{
		clientHTTPURLs: fs.String("listen-client-http-urls", "", "List of URLs to listen on for HTTP client traffic (/health, /livez, /readyz, /version, /metrics); the client URLs then serve gRPC only."),
		metricsLevel:   fs.String("metrics", string(metrics.Basic), "Set level of detail for exported metrics, specify 'extensive' to include server side grpc histogram metrics."),
		corruptCheckTime: fs.Duration("corrupt-check-time", 0,
			"Duration of time between cluster corruption check passes."),
		compactHashCheckTime: fs.Duration("compact-hash-check-time", time.Minute,
			"Duration of time between leader checks followers compaction hashes."),
		enableGateway: fs.Bool("enable-grpc-gateway", true, "Enable GRPC gateway."),
	}
}

// apply sets the parsed flags, and the corruption checks' feature gates,
// in cfg.
func (f opsFlags) apply(cfg *member.Config, gates *featureGates) error {
	if *f.compactHashCheckTime <= 0 {
		return fmt.Errorf("--compact-hash-check-time must be >0 (set to %v)", *f.compactHashCheckTime)
	}
	if *f.corruptCheckTime < 0 {
		return fmt.Errorf("--corrupt-check-time must not be negative (set to %v)", *f.corruptCheckTime)
	}
	cfg.CorruptCheckTime = *f.corruptCheckTime
	if gates.enabled("CompactHashCheck") {
		cfg.CompactHashCheckTime = *f.compactHashCheckTime
	}
	cfg.InitialCorruptCheck = gates.enabled("InitialCorruptCheck")
	cfg.DisableGRPCGateway = !*f.enableGateway
	level, err := metrics.ParseLevel(*f.metricsLevel)
	if err != nil {
		return err
	}
	cfg.MetricsLevel = level
	cfg.ListenClientHTTPURLs = splitURLs(*f.clientHTTPURLs)
	return nil
}
