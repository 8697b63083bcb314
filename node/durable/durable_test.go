package durable

import (
	"io"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func readAll(t *testing.T, fs vfs.FS, path string) string {
	t.Helper()
	f, err := fs.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A strict MemFS drops everything not synced when it is reset to its
// synced state: what survives is exactly what the functions made durable.
func TestReplaceFileSurvivesCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	if err := fs.MkdirAll("d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(fs, ""); err != nil {
		t.Fatal(err)
	}
	if err := ReplaceFile(fs, "d/f", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := ReplaceFile(fs, "d/f", []byte("two")); err != nil {
		t.Fatal(err)
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	if got := readAll(t, crashed, "d/f"); got != "two" {
		t.Fatalf("after a crash d/f = %q, want %q", got, "two")
	}
	if _, err := crashed.Stat("d/f.tmp"); err == nil {
		t.Fatal("the temporary file outlived the rename")
	}
}

// WriteFile alone does not make the new name durable: the directory sync
// is the caller's. The test pins that contract, so a caller that forgets
// SyncDir is a bug the crash model can show.
func TestWriteFileNeedsSyncDir(t *testing.T) {
	fs := vfs.NewCrashableMem()
	if err := fs.MkdirAll("d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(fs, ""); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(fs, "d/f", []byte("data")); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.CrashClone(vfs.CrashCloneCfg{}).Stat("d/f"); err == nil {
		t.Fatal("a file whose directory was never synced survived a crash")
	}
	if err := SyncDir(fs, "d"); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, fs.CrashClone(vfs.CrashCloneCfg{}), "d/f"); got != "data" {
		t.Fatalf("after SyncDir and a crash d/f = %q, want %q", got, "data")
	}
}
