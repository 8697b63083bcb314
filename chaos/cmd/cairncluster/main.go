// Command cairncluster runs a local cluster of cairn (or the reference etcd)
// in the foreground, through the launcher of package chaos/cluster without
// its proxies: each member on its own loopback client port and the next port
// for peers, its log lines echoed to stderr prefixed with its name and kept
// in DIR/NAME.log, its data in DIR/NAME.data for the next start. SIGINT or
// SIGTERM stops every member. `make cluster` (tools/cluster.sh) runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-db/cairn/chaos/cluster"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("cairncluster", flag.ContinueOnError)
	kind := fs.String("kind", "cairn", "program the members run: cairn or etcd")
	bin := fs.String("bin", "", "path of the binary")
	dir := fs.String("dir", "", "folder of the members' data directories and logs (created if missing)")
	clientPorts := fs.String("client-ports", "2379,22379,32379", "comma-separated client ports, one per member; each member's peer port is its client port + 1")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *bin == "" || *dir == "" {
		fmt.Fprintln(os.Stderr, "cairncluster: -bin and -dir are required")
		return 2
	}
	var ports []cluster.MemberPorts
	var names []string
	for i, field := range strings.Split(*clientPorts, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || p <= 0 || p >= 65535 {
			fmt.Fprintf(os.Stderr, "cairncluster: -client-ports: %q is not a port\n", field)
			return 2
		}
		ports = append(ports, cluster.MemberPorts{Client: p, Peer: p + 1})
		names = append(names, fmt.Sprintf("m%d", i+1))
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "cairncluster:", err)
		return 2
	}
	// Stop on a signal that arrives while the members start, too.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	c, err := cluster.Start(cluster.Config{
		Kind: cluster.Kind(*kind), Bin: *bin, Members: len(ports), Dir: *dir, Direct: true,
		Names: names, Ports: ports, Token: "cairn-cluster", Echo: os.Stderr,
		// The programs' own defaults: a cluster for development, not for
		// fast fault detection.
		HeartbeatInterval: 100 * time.Millisecond, ElectionTimeout: time.Second,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairncluster:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "cluster: members %s on %s; logs and data in %s; Ctrl-C stops them\n",
		strings.Join(names, " "), strings.Join(c.Endpoints(), ","), *dir)
	<-signals
	fmt.Fprintln(os.Stderr, "cluster: stopping")
	c.Stop()
	if exits := c.UnexpectedExits(); len(exits) > 0 {
		fmt.Fprintln(os.Stderr, "cluster: members that exited by themselves:", strings.Join(exits, "; "))
		return 1
	}
	return 0
}
