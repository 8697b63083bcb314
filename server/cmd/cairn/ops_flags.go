package main

import (
	"flag"

	"github.com/cairn-db/cairn/server/member"
	"github.com/cairn-db/cairn/server/metrics"
)

// opsFlags are the operations flags: where HTTP is served and how many
// metrics, as etcd's --listen-client-http-urls and --metrics.
type opsFlags struct {
	clientHTTPURLs *string
	metricsLevel   *string
}

func addOpsFlags(fs *flag.FlagSet) opsFlags {
	return opsFlags{
		clientHTTPURLs: fs.String("listen-client-http-urls", "", "List of URLs to listen on for HTTP client traffic (/health, /livez, /readyz, /version, /metrics); the client URLs then serve gRPC only."),
		metricsLevel:   fs.String("metrics", string(metrics.Basic), "Set level of detail for exported metrics, specify 'extensive' to include server side grpc histogram metrics."),
	}
}

// apply sets the parsed flags in cfg.
func (f opsFlags) apply(cfg *member.Config) error {
	level, err := metrics.ParseLevel(*f.metricsLevel)
	if err != nil {
		return err
	}
	cfg.MetricsLevel = level
	cfg.ListenClientHTTPURLs = splitURLs(*f.clientHTTPURLs)
	return nil
}
