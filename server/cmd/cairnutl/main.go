// Command cairnutl is cairn's offline tool, like etcdutl: it restores a
// backup (etcdctl snapshot save of a cairn member) into a new data
// directory, describes a backup, defragments a stopped member's database,
// and migrates an etcd data set (an etcd snapshot or database file, or a
// live etcd through the client API) into a new data directory. It takes
// etcdutl's commands and flags.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/server/member"
	"github.com/cockroachdb/pebble/v2/vfs"
)

const usage = `usage:
  cairnutl snapshot restore FILE --data-dir DIR --name NAME --initial-cluster NAME=URL,...
                             [--initial-cluster-token TOKEN] [--initial-advertise-peer-urls URLS] [--skip-hash-check]
  cairnutl snapshot status FILE [-w table|json]
  cairnutl defrag --data-dir DIR
  cairnutl migrate (ETCD_DB_FILE [--skip-hash-check] | --endpoints URLS [--cacert F --cert F --key F --user U[:P]])
                   --data-dir DIR [--name NAME --initial-cluster NAME=URL,... --initial-cluster-token TOKEN
                   --initial-advertise-peer-urls URLS]
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	var err error
	switch {
	case len(args) >= 2 && args[0] == "snapshot" && args[1] == "restore":
		err = restore(args[2:], stderr)
	case len(args) >= 2 && args[0] == "snapshot" && args[1] == "status":
		err = status(args[2:], stdout)
	case len(args) >= 1 && args[0] == "defrag":
		err = defrag(args[1:], stdout)
	case len(args) >= 1 && args[0] == "migrate":
		err = migrate(args[1:], stdout, stderr)
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "Error:", err)
		return 1
	}
	return 0
}

// parse parses flags that may come before or after the one positional
// argument (etcdutl accepts both), and returns the positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func restore(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("snapshot restore", flag.ContinueOnError)
	boot := bootstrapFlagsOn(fs, "restore bootstrap")
	skipHash := fs.Bool("skip-hash-check", false, "Ignore snapshot integrity hash value.")
	files, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return fmt.Errorf("snapshot restore expects one snapshot file, got %q", files)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		return err
	}
	cfg := boot.config(stderr)
	if err := member.Restore(cfg, data, *skipHash); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "restored snapshot %s into %s\n", files[0], cfg.DataDir)
	return nil
}

func status(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("snapshot status", flag.ContinueOnError)
	format := fs.String("w", "table", "Output format: table or json.")
	fs.StringVar(format, "write-out", "table", "Output format: table or json.")
	files, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return fmt.Errorf("snapshot status expects one snapshot file, got %q", files)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		return err
	}
	st, err := node.StatBackup(data, false)
	if err != nil {
		return err
	}
	switch *format {
	case "json":
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(b))
	case "table":
		printTable(stdout, []string{"HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE", "VERSION"},
			[]string{fmt.Sprintf("%x", st.Hash), fmt.Sprint(st.Revision), fmt.Sprint(st.TotalKey), humanBytes(st.TotalSize), st.Version})
	default:
		return fmt.Errorf("-w %q: want table or json", *format)
	}
	return nil
}

func defrag(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("defrag", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "Data directory of a stopped member.")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *dataDir == "" {
		return fmt.Errorf("--data-dir is required")
	}
	if err := node.DefragmentOffline(vfs.Default, vfs.Default.PathJoin(*dataDir, "member")); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "finished defragmenting directory: %s\n", *dataDir)
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// printTable prints one row under a header, boxed as etcdutl prints.
func printTable(w io.Writer, header, row []string) {
	widths := make([]int, len(header))
	for i := range header {
		widths[i] = max(len(header[i]), len(row[i]))
	}
	line := "+"
	for _, n := range widths {
		line += strings.Repeat("-", n+2) + "+"
	}
	cells := func(vals []string) string {
		s := "|"
		for i, v := range vals {
			s += fmt.Sprintf(" %*s |", widths[i], v)
		}
		return s
	}
	fmt.Fprintf(w, "%s\n%s\n%s\n%s\n%s\n", line, cells(header), line, cells(row), line)
}

// humanBytes writes a size as etcdutl does (SI units).
func humanBytes(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB"}
	v, i := float64(n), 0
	for v >= 1000 && i < len(units)-1 {
		v, i = v/1000, i+1
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.0f %s", v, units[i])
}

// bootstrapFlags are etcdutl's flags for the member a restored or migrated
// data directory bootstraps.
type bootstrapFlags struct {
	dataDir, name, initialCluster, token, peerURLs *string
}

// bootstrapFlagsOn defines the bootstrap flags on fs; what names the
// cluster being bootstrapped in their help ("restore bootstrap").
func bootstrapFlagsOn(fs *flag.FlagSet, what string) bootstrapFlags {
	return bootstrapFlags{
		dataDir:        fs.String("data-dir", "", "Path to the output data directory (default \"${name}.cairn\")."),
		name:           fs.String("name", "default", "Human-readable name for this member."),
		initialCluster: fs.String("initial-cluster", "", "Initial cluster configuration for "+what+" (default \"${name}=${initial-advertise-peer-urls}\")."),
		token:          fs.String("initial-cluster-token", "etcd-cluster", "Initial cluster token for the cluster during "+what+"."),
		peerURLs:       fs.String("initial-advertise-peer-urls", "http://localhost:2380", "List of this member's peer URLs to advertise to the rest of the cluster."),
	}
}

// config is the member configuration the flags describe, logging warnings
// and worse to stderr; the data directory defaults to <name>.cairn.
func (b bootstrapFlags) config(stderr io.Writer) member.Config {
	if *b.dataDir == "" {
		*b.dataDir = *b.name + ".cairn"
	}
	return member.Config{
		Name:                     *b.name,
		DataDir:                  *b.dataDir,
		InitialCluster:           *b.initialCluster,
		InitialClusterToken:      *b.token,
		InitialAdvertisePeerURLs: splitList(*b.peerURLs),
		Logger:                   slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}
