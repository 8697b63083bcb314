package raftlog

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/cairn-db/cairn/node/durable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// segmentSuffix ends a segment file's name: its sequence number in 16
// hexadecimal digits, then this.
const segmentSuffix = ".log"

func segmentName(seq uint64) string { return fmt.Sprintf("%016x%s", seq, segmentSuffix) }

func parseSegmentName(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, segmentSuffix)
	if !ok || len(hex) != 16 {
		return 0, false
	}
	seq, err := strconv.ParseUint(hex, 16, 64)
	return seq, err == nil && seq > 0
}

func (s *Storage) path(seq uint64) string { return s.fs.PathJoin(s.dir, segmentName(seq)) }

// load reads every segment kept, oldest first, and rebuilds the log from
// their records:
//
//   - only the segments with consecutive numbers up to the newest count:
//     older ones were being deleted when the member stopped, and go now;
//   - a segment that is not the last must hold intact records up to
//     exactly the end its successor's base record names, else the log is
//     corrupt;
//   - the last segment ends at its first record that is torn, zeroed,
//     fails its check or is older than the one before it: a crash left it
//     there, after everything synced (a record is acknowledged only once a
//     sync covers it, and the records a sync covers all precede it). If
//     even its base record is torn, the segment was being made, holds
//     nothing durable, and goes;
//   - every entry of the log, (truncatedIndex, lastIndex], must be found.
//
// The log's next records then go after the last intact one, with an epoch
// above every record read.
func (s *Storage) load() error {
	if _, err := s.fs.Stat(s.dir); err != nil {
		// Made durable in its parent before any segment in it can be.
		if err := s.fs.MkdirAll(s.dir, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", s.dir, err)
		}
		if err := syncDir(s.fs, s.fs.PathDir(s.dir)); err != nil {
			return err
		}
	}
	seqs, err := s.listSegments()
	if err != nil {
		return err
	}
	// A newest segment whose base record is torn was being made when the
	// member stopped: nothing in it is durable.
	for len(seqs) > 0 {
		last := seqs[len(seqs)-1]
		_, err := s.readBase(last)
		if err == nil {
			break
		}
		if !errors.Is(err, errTornBase) {
			return err
		}
		if err := s.fs.Remove(s.path(last)); err != nil {
			return fmt.Errorf("remove torn segment %d: %w", last, err)
		}
		seqs = seqs[:len(seqs)-1]
	}
	var maxEpoch uint32
	if len(seqs) == 0 {
		return nil
	}
	for i, seq := range seqs {
		end := int64(-1) // the last segment: up to its first bad record
		if i+1 < len(seqs) {
			next, err := s.readBase(seqs[i+1])
			if errors.Is(err, errTornBase) {
				err = fmt.Errorf("%w: %w", err, ErrCorrupt) // only the newest may be
			}
			if err != nil {
				return err
			}
			end = int64(next.prevEnd)
		}
		validEnd, epoch, err := s.replay(seq, i == 0, end, maxEpoch)
		if err != nil {
			return err
		}
		maxEpoch = max(maxEpoch, epoch)
		if i+1 == len(seqs) {
			s.activeEnd = validEnd
		}
	}
	for i, p := range s.entries {
		if p.seq == 0 {
			return fmt.Errorf("entry %d is in no segment kept (log (%d, %d]): %w",
				s.truncatedIndex+1+uint64(i), s.truncatedIndex, s.lastIndex, ErrCorrupt)
		}
	}
	f, err := s.fs.OpenReadWrite(s.path(seqs[len(seqs)-1]), vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("open raft log segment: %w", err)
	}
	s.active = f
	s.allocatedEnd = s.activeEnd // what lies beyond may be allocated, or not
	s.epoch = maxEpoch + 1
	return nil
}

// listSegments returns the numbers of the segments to read, oldest first,
// and removes the segments older than a gap in the numbering.
func (s *Storage) listSegments() ([]uint64, error) {
	names, err := s.fs.List(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", s.dir, err)
	}
	var seqs []uint64
	for _, name := range names {
		if seq, ok := parseSegmentName(name); ok {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	from := len(seqs) - 1
	for from > 0 && seqs[from-1] == seqs[from]-1 {
		from--
	}
	for _, seq := range seqs[:max(from, 0)] {
		if err := s.fs.Remove(s.path(seq)); err != nil {
			return nil, fmt.Errorf("remove old segment %d: %w", seq, err)
		}
	}
	if from < 0 {
		return nil, nil
	}
	return seqs[from:], nil
}

// errTornBase marks a segment whose base record is not intact.
var errTornBase = errors.New("segment's base record is torn")

// readBase reads a segment's base record.
func (s *Storage) readBase(seq uint64) (baseState, error) {
	f, err := s.fs.Open(s.path(seq))
	if err != nil {
		return baseState{}, fmt.Errorf("open raft log segment: %w", err)
	}
	defer f.Close()
	r, err := newRecordReader(f)
	if err != nil {
		return baseState{}, err
	}
	rec, ok, err := r.next()
	if err != nil {
		return baseState{}, err
	}
	if !ok || rec.kind != kindBase {
		return baseState{}, fmt.Errorf("segment %d: %w", seq, errTornBase)
	}
	b, err := decodeBase(rec.payload)
	if err != nil {
		return baseState{}, err
	}
	if b.seq != seq {
		return baseState{}, fmt.Errorf("segment %d names itself %d: %w", seq, b.seq, ErrCorrupt)
	}
	return b, nil
}

// replay applies one segment's records to the log and returns where its
// intact records end and the highest epoch among them. end is where they
// must end, or -1 for the last segment.
func (s *Storage) replay(seq uint64, first bool, end int64, minEpoch uint32) (validEnd int64, epoch uint32, err error) {
	f, err := s.fs.Open(s.path(seq))
	if err != nil {
		return 0, 0, fmt.Errorf("open raft log segment: %w", err)
	}
	defer f.Close()
	r, err := newRecordReader(f)
	if err != nil {
		return 0, 0, err
	}
	epoch = minEpoch
	for {
		if end >= 0 && r.offset == end {
			return end, epoch, nil
		}
		at := r.offset
		rec, ok, err := r.next()
		if err != nil {
			return 0, 0, err
		}
		if ok && rec.epoch < epoch {
			ok = false // written before a crash, beyond what the next Open found
		}
		if !ok || end >= 0 && r.offset > end {
			if end >= 0 {
				return 0, 0, fmt.Errorf("segment %d: record at %d fails its check before the segment's end %d: %w",
					seq, at, end, ErrCorrupt)
			}
			return at, epoch, nil
		}
		epoch = rec.epoch
		if err := s.apply(seq, at, rec, at == 0 && first); err != nil {
			return 0, 0, fmt.Errorf("segment %d at %d: %w", seq, at, err)
		}
	}
}

// apply applies one record read back to the log. The first segment's base
// record sets the log's start; the entries it says the log holds are in
// segments deleted since, and later truncations must drop them.
func (s *Storage) apply(seq uint64, at int64, rec record, firstBase bool) error {
	switch rec.kind {
	case kindBase:
		b, err := decodeBase(rec.payload)
		if err != nil {
			return err
		}
		s.segments = append(s.segments, seq)
		if firstBase {
			s.truncatedIndex, s.truncatedTerm = b.truncIndex, b.truncTerm
			s.lastIndex, s.lastTerm = b.lastIndex, b.lastTerm
			s.entries = make([]entryPos, b.lastIndex-b.truncIndex)
			s.hardState = b.hardState
			return nil
		}
		if at != 0 || b.truncIndex != s.truncatedIndex || b.lastIndex != s.lastIndex || b.lastTerm != s.lastTerm {
			return fmt.Errorf("base record says log (%d, %d] at term %d, the segments before say (%d, %d] at term %d: %w",
				b.truncIndex, b.lastIndex, b.lastTerm, s.truncatedIndex, s.lastIndex, s.lastTerm, ErrCorrupt)
		}
		return nil
	case kindEntry:
		index, term, err := entryIndexTerm(rec.payload)
		if err != nil {
			return err
		}
		if index <= s.truncatedIndex || index > s.lastIndex+1 {
			return fmt.Errorf("entry %d appended to log (%d, %d]: %w", index, s.truncatedIndex, s.lastIndex, ErrCorrupt)
		}
		s.cutAfter(index - 1)
		s.entries = append(s.entries, entryPos{seq: seq, off: at, size: int64(headerBytes + len(rec.payload)), term: term})
		s.lastIndex, s.lastTerm = index, term
		return nil
	case kindHardState:
		hs := &raftpb.HardState{}
		if err := proto.Unmarshal(rec.payload, hs); err != nil {
			return fmt.Errorf("hard state: %v: %w", err, ErrCorrupt)
		}
		s.hardState = hs
		return nil
	case kindTruncate:
		index, term, err := decodePoint(rec.payload)
		if err != nil {
			return err
		}
		if index <= s.truncatedIndex {
			return nil
		}
		if index > s.lastIndex {
			return fmt.Errorf("truncation at %d beyond the last entry %d: %w", index, s.lastIndex, ErrCorrupt)
		}
		if p := s.entries[index-s.truncatedIndex-1]; p.seq != 0 && p.term != term {
			return fmt.Errorf("truncation at %d term %d, entry's term %d: %w", index, term, p.term, ErrCorrupt)
		}
		s.dropThrough(index, term)
		return nil
	case kindReset:
		index, term, err := decodePoint(rec.payload)
		if err != nil {
			return err
		}
		s.entries = s.entries[:0]
		s.truncatedIndex, s.truncatedTerm = index, term
		s.lastIndex, s.lastTerm = index, term
		return nil
	}
	return fmt.Errorf("record of kind %d: %w", rec.kind, ErrCorrupt)
}

// recordReader reads a segment's records in order.
type recordReader struct {
	r *bufio.Reader
	// offset is where the next record starts; fileBytes is the file's size,
	// which no intact record crosses (so a torn length allocates nothing).
	offset, fileBytes int64
	buf               []byte
}

// recordReaderBufferBytes is the read-ahead of a segment being loaded.
const recordReaderBufferBytes = 1 << 20

func newRecordReader(f vfs.File) (*recordReader, error) {
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat raft log segment: %w", err)
	}
	return &recordReader{r: bufio.NewReaderSize(f, recordReaderBufferBytes), fileBytes: info.Size()}, nil
}

// next reads the next record. ok is false at the end of the file or at a
// record that is not intact; the record's payload is valid until the next
// call.
func (r *recordReader) next() (rec record, ok bool, err error) {
	header, err := r.r.Peek(headerBytes)
	if len(header) < headerBytes {
		if err == io.EOF || err == nil {
			return record{}, false, nil
		}
		return record{}, false, fmt.Errorf("read raft log: %w", err)
	}
	size := headerBytes + int64(binary.LittleEndian.Uint32(header[4:]))
	if r.offset+size > r.fileBytes {
		return record{}, false, nil
	}
	if int64(cap(r.buf)) < size {
		r.buf = make([]byte, size)
	}
	r.buf = r.buf[:size]
	if n, err := io.ReadFull(r.r, r.buf); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			r.offset += int64(n)
			return record{}, false, nil
		}
		return record{}, false, fmt.Errorf("read raft log: %w", err)
	}
	rec, _, ok = parseRecord(r.buf)
	if ok {
		r.offset += size
	}
	return rec, ok, nil
}

// stage makes sure a segment takes the next records: the first segment of
// a log never written, or a new one once the active segment has reached
// its size. A new segment's base record is staged first; its file is made
// now and the directory synced with the next synced commit.
func (s *Storage) stage() error {
	if s.err != nil {
		return s.err
	}
	if len(s.segments) > 0 && (s.pending.bytes > 0 || s.activeEnd < s.segmentBytesMax) {
		return nil
	}
	b := baseState{seq: 1, truncIndex: s.truncatedIndex, truncTerm: s.truncatedTerm,
		lastIndex: s.lastIndex, lastTerm: s.lastTerm, hardState: s.hardState}
	if len(s.segments) > 0 {
		// The old segment is synced first: the new one's base says where
		// its records end, and a crash must not lose any of them then.
		if err := s.active.SyncData(); err != nil {
			return s.fail(fmt.Errorf("sync raft log segment %d before starting the next: %w", s.segments[len(s.segments)-1], err))
		}
		// So is its directory entry, if it is new: a crash must not keep
		// the new segment and lose the one before it.
		if err := s.syncDirIfDirty(); err != nil {
			return err
		}
		b.seq, b.prevEnd = s.segments[len(s.segments)-1]+1, uint64(s.activeEnd)
	}
	f, err := s.fs.Create(s.path(b.seq), vfs.WriteCategoryUnspecified)
	if err != nil {
		return s.fail(fmt.Errorf("create raft log segment: %w", err))
	}
	if s.active != nil {
		if err := s.active.Close(); err != nil {
			f.Close()
			return s.fail(fmt.Errorf("close raft log segment: %w", err))
		}
	}
	s.active, s.activeEnd, s.allocatedEnd = f, 0, 0
	s.segments = append(s.segments, b.seq)
	s.dirDirty = true
	s.pending.appendOwned(func(p []byte) []byte { return appendBase(p, b, s.epoch) })
	return nil
}

// readSpan reads [from, to) of a segment: from what is staged if it is
// not written yet.
func (s *Storage) readSpan(seq uint64, from, to int64) ([]byte, error) {
	buf := make([]byte, to-from)
	active := s.segments[len(s.segments)-1]
	if seq == active && from >= s.activeEnd {
		s.pending.copyAt(buf, from-s.activeEnd)
		return buf, nil
	}
	f := s.active
	if seq != active {
		if s.reader == nil || s.readerSeq != seq {
			if s.reader != nil {
				s.reader.Close()
				s.reader = nil
			}
			r, err := s.fs.Open(s.path(seq))
			if err != nil {
				return nil, err
			}
			s.reader, s.readerSeq = r, seq
		}
		f = s.reader
	}
	if _, err := f.ReadAt(buf, from); err != nil {
		return nil, err
	}
	return buf, nil
}

// deleteObsolete deletes, oldest first, the segments before the one that
// holds the log's first entry (or before the active one if the log has
// none). It runs after a synced commit, so the truncation that made them
// obsolete is durable.
func (s *Storage) deleteObsolete() error {
	keep := s.segments[len(s.segments)-1]
	if len(s.entries) > 0 {
		keep = s.entries[0].seq
	}
	for len(s.segments) > 1 && s.segments[0] < keep {
		seq := s.segments[0]
		if s.reader != nil && s.readerSeq == seq {
			s.reader.Close()
			s.reader = nil
		}
		if err := s.fs.Remove(s.path(seq)); err != nil {
			return s.fail(fmt.Errorf("remove raft log segment %d: %w", seq, err))
		}
		s.segments = s.segments[1:]
	}
	return nil
}

// syncDirIfDirty syncs the log's directory if a segment was made in it
// since it was last synced.
func (s *Storage) syncDirIfDirty() error {
	if !s.dirDirty {
		return nil
	}
	if err := syncDir(s.fs, s.dir); err != nil {
		return s.fail(err)
	}
	s.dirDirty = false
	return nil
}

// syncDir makes the segments made in dir durable.
func syncDir(fs vfs.FS, dir string) error {
	if err := durable.SyncDir(fs, dir); err != nil {
		return fmt.Errorf("sync raft log directory: %w", err)
	}
	return nil
}
