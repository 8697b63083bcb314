package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/server/member"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// cairnutl migrate loads an etcd data set into a new cairn data directory,
// from an etcd database file (migrate_bolt.go) or from a live etcd through
// the client API (migrate_live.go), through node.Importer, and bootstraps
// the member on it as `snapshot restore` does (member.RestoreWith).

// migrateSource feeds an import; it is what the two sources share.
type migrateSource interface {
	// importInto writes the source's keyspace and leases into im and
	// returns the revision and compacted revision (-1: none) to finish at.
	importInto(im *node.Importer) (rev, compactRev int64, err error)
	// describe names the source in messages.
	describe() string
}

func migrate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	boot := bootstrapFlagsOn(fs, "the new cluster")
	skipHash := fs.Bool("skip-hash-check", false, "Ignore the snapshot integrity hash value (an etcdctl snapshot has one; a member's db file has none).")
	live := liveFlags{}
	fs.StringVar(&live.endpoints, "endpoints", "", "Copy from a live etcd through the client API at these comma-separated endpoints instead of a database file.")
	fs.DurationVar(&live.dialTimeout, "dial-timeout", 5*time.Second, "Dial timeout for the client connection.")
	fs.DurationVar(&live.commandTimeout, "command-timeout", 30*time.Second, "Timeout of each request of the copy.")
	fs.StringVar(&live.cacert, "cacert", "", "Verify the servers' certificates with this CA bundle.")
	fs.StringVar(&live.cert, "cert", "", "Client certificate file.")
	fs.StringVar(&live.key, "key", "", "Client key file.")
	fs.StringVar(&live.user, "user", "", "Username[:password] for authentication.")
	fs.StringVar(&live.password, "password", "", "Password for authentication (if --user has none).")
	fs.Int64Var(&live.pageKeys, "page-keys", liveDefaultPageKeys, "Keys per range request of the copy.")
	files, err := parse(fs, args)
	if err != nil {
		return err
	}
	var src migrateSource
	switch {
	case live.endpoints != "" && len(files) == 0:
		src = &liveSource{flags: live}
	case live.endpoints == "" && len(files) == 1:
		src = &boltSource{path: files[0], skipHashCheck: *skipHash}
	default:
		return fmt.Errorf("migrate expects one etcd database file or --endpoints, got files %q and endpoints %q", files, live.endpoints)
	}
	cfg := boot.config(stderr)
	// The member's directory, as the restore creates it: removed again
	// if the migration fails, since a second try needs it gone.
	memberDir := filepath.Join(cfg.DataDir, "member")
	_, statErr := os.Stat(memberDir)
	existed := statErr == nil
	var stats node.ImportStats
	err = member.RestoreWith(cfg, func(fs vfs.FS, dbDir string) error {
		im, err := node.NewImporter(fs, dbDir)
		if err != nil {
			return err
		}
		rev, compactRev, err := src.importInto(im)
		if err != nil {
			im.Close()
			return err
		}
		stats, err = im.Finish(rev, compactRev)
		return err
	})
	if err != nil {
		if !existed {
			err = errors.Join(err, os.RemoveAll(memberDir))
		}
		return fmt.Errorf("migrate %s: %w", src.describe(), err)
	}
	fmt.Fprintf(stdout, "migrated %s into %s: revision %d, compacted at %d, %d puts, %d deletes, %d leases",
		src.describe(), cfg.DataDir, stats.Revision, stats.CompactRevision, stats.Puts, stats.Deletes, stats.Leases)
	if stats.SkippedDeletes > 0 {
		fmt.Fprintf(stdout, ", %d deletes at the compacted revision not carried", stats.SkippedDeletes)
	}
	fmt.Fprintln(stdout)
	return nil
}
