package raftlog

import "github.com/cockroachdb/pebble/v2/vfs"

// staged are the records staged since the last Commit, in the order they
// are written: small records copied into buf, and the data of large
// entries left where the caller holds it (raft does not change an entry
// once made), so a 1 MiB entry is not copied once more before it is
// written.
type staged struct {
	// buf holds the staged bytes the log owns; buf[:sealed] are in chunks.
	buf    []byte
	sealed int
	// chunks are what Commit writes, in order.
	chunks [][]byte
	// bytes is the length of everything staged.
	bytes int64
}

// borrowDataBytesMin is the size from which an entry's data is written
// from where the caller holds it rather than copied.
const borrowDataBytesMin = 32 << 10

// stagedBytesKept bounds the capacity of buf kept between commits.
const stagedBytesKept = 4 << 20

// appendOwned stages the bytes appendFn appends.
func (p *staged) appendOwned(appendFn func([]byte) []byte) {
	n := len(p.buf)
	p.buf = appendFn(p.buf)
	p.bytes += int64(len(p.buf) - n)
}

// borrow stages b as it is.
func (p *staged) borrow(b []byte) {
	p.seal()
	p.chunks = append(p.chunks, b)
	p.bytes += int64(len(b))
}

func (p *staged) seal() {
	if len(p.buf) > p.sealed {
		p.chunks = append(p.chunks, p.buf[p.sealed:len(p.buf):len(p.buf)])
		p.sealed = len(p.buf)
	}
}

// writeAt writes everything staged at off in f.
func (p *staged) writeAt(f vfs.File, off int64) error {
	p.seal()
	for _, c := range p.chunks {
		if _, err := f.WriteAt(c, off); err != nil {
			return err
		}
		off += int64(len(c))
	}
	return nil
}

// copyAt copies the staged bytes from off (relative to the first staged
// byte) into dst.
func (p *staged) copyAt(dst []byte, off int64) {
	p.seal()
	for _, c := range p.chunks {
		if off >= int64(len(c)) {
			off -= int64(len(c))
			continue
		}
		n := copy(dst, c[off:])
		dst, off = dst[n:], 0
		if len(dst) == 0 {
			return
		}
	}
}

// reset forgets what was staged (written by now).
func (p *staged) reset() {
	clear(p.chunks)
	p.chunks, p.sealed, p.bytes = p.chunks[:0], 0, 0
	p.buf = p.buf[:0]
	if cap(p.buf) > stagedBytesKept {
		p.buf = nil
	}
}
