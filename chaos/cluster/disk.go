package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

const (
	// ballastFile fills a member's disk; it lives beside the data dir, on
	// the same mount.
	ballastFile = "ballast"
	// ballastChunkBytes is the size of one write of the ballast.
	ballastChunkBytes = 1 << 20
	// diskGrace is how long after the disk is freed an exit still counts
	// as the full disk's doing (a write that failed just before).
	diskGrace = 2 * time.Second
)

// mountDisk mounts a tmpfs of sizeBytes on dir (Linux, root): a disk of its
// own that a fault can fill without touching the machine's disks.
func mountDisk(dir string, sizeBytes int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", sizeBytes)); err != nil {
		return fmt.Errorf("mount a %d-byte tmpfs on %s (needs root): %w", sizeBytes, dir, err)
	}
	return nil
}

// unmountDisk unmounts dir, lazily if it is still busy.
func unmountDisk(dir string) error {
	if err := syscall.Unmount(dir, 0); err != nil {
		return syscall.Unmount(dir, syscall.MNT_DETACH)
	}
	return nil
}

// FillDisk writes a ballast file on the member's own disk (Config.DiskBytes)
// until no space is left, and returns how many bytes it wrote. The member
// may stop by itself on the full disk: that exit counts as the fault's, until
// the member is launched again.
func (m *Member) FillDisk() (int64, error) {
	if m.diskDir == "" {
		return 0, errors.New("fill disk: the cluster has no disks of its own (Config.DiskBytes)")
	}
	m.expectExit()
	f, err := os.Create(filepath.Join(m.diskDir, ballastFile))
	if err != nil {
		return 0, fmt.Errorf("fill disk of %s: %w", m.Name, err)
	}
	defer f.Close()
	chunk := make([]byte, ballastChunkBytes)
	var written int64
	// The mount's size bounds the loop.
	for written <= m.cluster.cfg.DiskBytes {
		n, err := f.Write(chunk)
		written += int64(n)
		if errors.Is(err, syscall.ENOSPC) {
			return written, nil
		}
		if err != nil {
			return written, fmt.Errorf("fill disk of %s: %w", m.Name, err)
		}
	}
	return written, fmt.Errorf("fill disk of %s: wrote %d bytes on a %d-byte disk", m.Name, written, m.cluster.cfg.DiskBytes)
}

// FreeDisk removes the ballast FillDisk wrote. If the member is still
// running diskGrace later, its exits are unexpected again.
func (m *Member) FreeDisk() error {
	if m.diskDir == "" {
		return nil
	}
	err := os.Remove(filepath.Join(m.diskDir, ballastFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	time.Sleep(diskGrace)
	m.mu.Lock()
	if m.mu.proc != nil {
		m.mu.expectExit = false
	}
	m.mu.Unlock()
	return nil
}
