package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/cairn-db/cairn/client/bench/keys"
	"github.com/cairn-db/cairn/client/bench/load"
	"github.com/cairn-db/cairn/client/bench/workload"
)

// Exit codes.
const (
	exitOK           = 0
	exitInvalid      = 1 // the run had errors or measured nothing
	exitUsage        = 2
	exitNotSupported = 3
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "bench" {
		fmt.Fprintln(stderr, "usage: cairnctl bench [flags] "+strings.Join(workload.Names, "|"))
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return bench(ctx, args[1:], stdout, stderr)
}

func bench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cairnctl bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o workload.Options
	endpoints := fs.String("endpoints", "127.0.0.1:2379", "comma-separated gRPC endpoints")
	fs.IntVar(&o.Conns, "conns", 10, "number of client connections (clientv3 clients)")
	fs.IntVar(&o.Load.Clients, "clients", 100, "number of concurrent workers")
	fs.DurationVar(&o.Load.Duration, "duration", 0, "run for this long (default 10s unless -total)")
	fs.Uint64Var(&o.Load.Total, "total", 0, "run this many operations instead of a duration")
	fs.Float64Var(&o.Load.Rate, "rate", 0, "operations per second over all clients (0: unlimited)")
	fs.IntVar(&o.KeySize, "key-size", 16, "bytes per key")
	fs.IntVar(&o.ValueSize, "val-size", 256, "bytes per value (at least 8)")
	fs.IntVar(&o.KeyCount, "key-count", 10000, "distinct keys written (put) or preloaded (range, txn, k8s objects)")
	order := fs.String("key-order", "random", "put key order: seq or random")
	fs.StringVar(&o.Prefix, "prefix", "bench/", "key prefix")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of key order and operation mix")
	consistency := fs.String("consistency", "l", "reads: l (linearizable) or s (serializable)")
	fs.BoolVar(&o.Scan, "scan", false, "range: scan from a random key with -limit instead of reading one key")
	fs.IntVar(&o.Limit, "limit", 100, "range scan and k8s list page size")
	fs.IntVar(&o.Watchers, "watchers", 0, "watch: watchers of the key (default 100); k8s: watchers of the prefix (default 10)")
	fs.IntVar(&o.Namespaces, "namespaces", 10, "k8s: namespaces the objects are spread over")
	fs.Int64Var(&o.LeaseTTLSeconds, "lease-ttl", 60, "lease: TTL in seconds of granted leases")
	jsonOut := fs.Bool("json", false, "print the result as one JSON object")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "cairnctl bench: give exactly one workload: "+strings.Join(workload.Names, "|"))
		return exitUsage
	}
	name := fs.Arg(0)
	var err error
	if o.Order, err = keys.ParseOrder(*order); err != nil {
		fmt.Fprintln(stderr, "cairnctl bench:", err)
		return exitUsage
	}
	switch *consistency {
	case "l":
	case "s":
		o.Serializable = true
	default:
		fmt.Fprintf(stderr, "cairnctl bench: -consistency %q: want l or s\n", *consistency)
		return exitUsage
	}
	o.Endpoints = strings.Split(*endpoints, ",")
	if !*quiet {
		o.Load.Progress = stderr
		o.Log = stderr
	}
	res, err := workload.Run(ctx, name, o)
	if err != nil {
		fmt.Fprintln(stderr, "cairnctl bench:", err)
		return exitUsage
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintln(stderr, "cairnctl bench:", err)
			return exitInvalid
		}
	} else {
		printResult(stdout, &res)
	}
	return verdict(stderr, &res)
}

// verdict says whether the figures count, and why not.
func verdict(stderr io.Writer, res *load.Result) int {
	err := res.Valid()
	switch {
	case err == nil:
		return exitOK
	case res.NotSupported != "":
		fmt.Fprintln(stderr, "cairnctl bench:", err)
		return exitNotSupported
	default:
		fmt.Fprintln(stderr, "cairnctl bench: INVALID RUN:", err)
		return exitInvalid
	}
}

func printResult(w io.Writer, r *load.Result) {
	if r.NotSupported != "" {
		fmt.Fprintf(w, "%s: not supported: %s\n", r.Workload, r.NotSupported)
		return
	}
	fmt.Fprintf(w, "workload   %s\n", r.Workload)
	fmt.Fprintf(w, "elapsed    %.2f s\n", r.ElapsedS)
	fmt.Fprintf(w, "ops        %d (%.0f/s)\n", r.Ops, r.Throughput)
	fmt.Fprintf(w, "errors     %d\n", r.Errors)
	for msg, n := range r.ErrorSamples {
		fmt.Fprintf(w, "  %6d× %s\n", n, msg)
	}
	fmt.Fprintln(w, "latency (ms)      count      mean       p50       p90       p99     p99.9       max   per s")
	printLatency(w, "ops", r.Latency, r.Throughput)
	for _, s := range r.Subs {
		printLatency(w, s.Name, s.Latency, s.Rate)
	}
	for k, v := range r.Counters {
		fmt.Fprintf(w, "%-14s %.0f\n", k, v)
	}
	if r.HeadlineUnit != "ops" {
		fmt.Fprintf(w, "headline       %.0f %s/s, p99 %.2f ms\n", r.HeadlineRate, r.HeadlineUnit, r.HeadlineLatency.P99MS)
	}
}

func printLatency(w io.Writer, name string, l load.Latency, rate float64) {
	fmt.Fprintf(w, "  %-14s %8d %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f %7.0f\n", name, l.Count, l.MeanMS, l.P50MS, l.P90MS, l.P99MS, l.P999MS, l.MaxMS, rate)
}
