package member

import (
	"fmt"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/server/etcdapi"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Restore writes a data directory from a backup (etcdctl snapshot save of
// a cairn member), as etcdutl snapshot restore does: the backup's keyspace
// and leases, and a new cluster's identity and membership from cfg's
// --name, --initial-cluster, --initial-cluster-token and
// --initial-advertise-peer-urls. cairn then starts from it like a member
// that was stopped; its bootstrap flags no longer matter. The data
// directory must not hold a member already.
func Restore(cfg Config, backup []byte, skipHashCheck bool) error {
	return RestoreWith(cfg, func(fs vfs.FS, dbDir string) error {
		if err := node.RestoreBackup(backup, fs, dbDir, skipHashCheck); err != nil {
			return err
		}
		return node.PrepareRestoredDB(fs, dbDir)
	})
}

// RestoreWith writes a data directory as Restore does, with the member's
// database written by fill into dbDir (which does not exist yet) on fs:
// Restore fills it from a backup, cairnutl migrate from an etcd store
// (node.Importer). The database must hold only a keyspace and leases.
func RestoreWith(cfg Config, fill func(fs vfs.FS, dbDir string) error) error {
	cfg.ensureDefaults()
	cfg.InitialClusterState = "new"
	budget, err := node.SplitMemoryBudget(cfg.MemoryBudgetBytes)
	if err != nil {
		return err
	}
	m := &Member{cfg: cfg, budget: budget}
	if _, err := cfg.FS.Stat(m.memberDir()); err == nil {
		return fmt.Errorf("data-dir %q exists", cfg.DataDir)
	}
	st, err := m.resolveStart()
	if err != nil {
		return err
	}
	dbDir := cfg.FS.PathJoin(m.memberDir(), "db")
	if err := fill(cfg.FS, dbDir); err != nil {
		return err
	}
	m.Identity = etcdapi.Identity{ClusterID: st.ClusterID, MemberID: st.MemberID}
	if err := m.openNode(st); err != nil {
		return err
	}
	if err := m.saveIdentity(st.identity); err != nil {
		m.node.Close()
		return fmt.Errorf("record member identity: %w", err)
	}
	return m.node.Close()
}
