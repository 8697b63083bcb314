package durable

import (
	"bytes"
	"io"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// liveDisk is a disk in the middle of work: "d/a" has three synced blocks
// and two more written since; "d/b" was written and synced but its
// directory entry was not; "d/gone" was removed without syncing "d".
func liveDisk(t *testing.T, extra bool) *vfs.MemFS {
	t.Helper()
	fs := vfs.NewCrashableMem()
	must(t, fs.MkdirAll("d", 0o755))
	must(t, SyncDir(fs, ""))
	writeFile(t, fs, "d/gone", 1, true)
	writeFile(t, fs, "d/r", 2, true)
	a := writeFile(t, fs, "d/a", 3, true)
	must(t, SyncDir(fs, "d"))
	_, err := a.Write(bytes.Repeat([]byte{'u'}, 2*CrashBlockBytes))
	must(t, err)
	must(t, a.Close())
	must(t, fs.Remove("d/gone"))
	writeFile(t, fs, "d/b", 1, true).Close()
	// "d/r" was renamed over a durable file of that name, and "d" not
	// synced since.
	writeFile(t, fs, "d/r.tmp", 1, true).Close()
	must(t, fs.Rename("d/r.tmp", "d/r"))
	if extra {
		// Another file, as Pebble's goroutines may or may not have left:
		// it must not change the fate of the others.
		writeFile(t, fs, "d/c", 4, false).Close()
	}
	return fs
}

func writeFile(t *testing.T, fs *vfs.MemFS, name string, blocks int, sync bool) vfs.File {
	t.Helper()
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	must(t, err)
	_, err = f.Write(bytes.Repeat([]byte{'s'}, blocks*CrashBlockBytes))
	must(t, err)
	if sync {
		must(t, f.Sync())
	}
	return f
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func crash(t *testing.T, fs *vfs.MemFS, keepPercent int, seed uint64) *vfs.MemFS {
	t.Helper()
	out, err := Crash(fs, keepPercent, seed)
	must(t, err)
	return out
}

func contents(t *testing.T, fs *vfs.MemFS, name string) string {
	t.Helper()
	f, err := fs.Open(name)
	if err != nil {
		return "missing"
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	must(t, err)
	return string(b)
}

func TestCrashKeepsSyncedDataAndASeededPartOfTheRest(t *testing.T) {
	synced := string(bytes.Repeat([]byte{'s'}, 3*CrashBlockBytes))
	all := synced + string(bytes.Repeat([]byte{'u'}, 2*CrashBlockBytes))

	none := crash(t, liveDisk(t, false), 0, 1)
	if got := contents(t, none, "d/a"); got != synced {
		t.Errorf("keeping 0%%: d/a has %d bytes, want the %d synced", len(got), len(synced))
	}
	if got := contents(t, none, "d/b"); got != "missing" {
		t.Errorf("keeping 0%%: d/b, whose entry was never synced, survived")
	}
	if got := contents(t, none, "d/gone"); got == "missing" {
		t.Errorf("keeping 0%%: d/gone, removed without a sync, is gone")
	}

	if got := contents(t, none, "d/r"); len(got) != 2*CrashBlockBytes {
		t.Errorf("keeping 0%%: d/r has %d bytes, want the durable file's %d", len(got), 2*CrashBlockBytes)
	}

	every := crash(t, liveDisk(t, false), 100, 1)
	if got := contents(t, every, "d/r"); len(got) != CrashBlockBytes {
		t.Errorf("keeping 100%%: d/r has %d bytes, want the renamed file's %d", len(got), CrashBlockBytes)
	}
	if got := contents(t, every, "d/a"); got != all {
		t.Errorf("keeping 100%%: d/a has %d bytes, want all %d written", len(got), len(all))
	}
	if got := contents(t, every, "d/b"); got == "missing" {
		t.Errorf("keeping 100%%: d/b is missing")
	}

	// A part: the same seed keeps the same blocks, whatever other files
	// exist; over seeds, some blocks are kept and some lost.
	kept := map[string]bool{}
	for seed := range uint64(40) {
		first := contents(t, crash(t, liveDisk(t, false), 50, seed), "d/a")
		again := contents(t, crash(t, liveDisk(t, true), 50, seed), "d/a")
		if first != again {
			t.Fatalf("seed %d: d/a differs between two crashes of the same disk", seed)
		}
		if first[:len(synced)] != synced {
			t.Fatalf("seed %d: synced data lost", seed)
		}
		kept[first] = true
	}
	if len(kept) < 3 {
		t.Errorf("40 seeds kept only %d different versions of d/a; want a seeded part", len(kept))
	}
}
