package durable

import (
	"errors"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// WriteFile creates (or truncates) path, writes data and syncs it before
// closing. The directory entry is not synced: call SyncDir once the
// directory's files are all written.
func WriteFile(fs vfs.FS, path string, data []byte) error {
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return errors.Join(err, f.Close())
	}
	return errors.Join(f.Sync(), f.Close())
}

// ReplaceFile replaces path's content atomically: data goes to path+".tmp",
// synced, which is renamed over path, and the directory is synced so the
// rename survives a crash. A crash leaves either the old content or the
// new, never a mix.
func ReplaceFile(fs vfs.FS, path string, data []byte) error {
	tmp := path + ".tmp"
	if err := WriteFile(fs, tmp, data); err != nil {
		return err
	}
	if err := fs.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(fs, fs.PathDir(path))
}

// SyncDir syncs dir, making the creation, removal and renaming of its
// entries durable. An empty dir is the filesystem's root.
func SyncDir(fs vfs.FS, dir string) error {
	if dir == "" {
		dir = "/"
	}
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
