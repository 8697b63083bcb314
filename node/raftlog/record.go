package raftlog

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// A segment is a sequence of records. Each record is a header and a
// payload:
//
//	crc(4) length(4) kind(1) 0(3) epoch(4)   header, headerBytes
//	payload                                  length bytes
//
// crc is the Castagnoli CRC of everything after it: the rest of the header
// and the payload. epoch numbers the Opens of the log: every record
// written after an Open carries an epoch above every record before it, so
// a record a crash left beyond the end the next Open found (its blocks
// kept while an earlier one was lost) can never pass for one written
// after that Open over the same bytes: the epochs of a segment's records
// never decrease.
//
// The payloads, by kind:
//
//	kindBase      seq(8) prevEnd(8) truncIndex(8) truncTerm(8)
//	              lastIndex(8) lastTerm(8) HardState protobuf
//	kindEntry     index(8) term(8) type(1) data; the type's top bits say
//	              whether the entry had a type and data at all (protobuf
//	              presence), so it reads back equal
//	kindHardState HardState protobuf
//	kindTruncate  index(8) term(8): entries up to index are gone
//	kindReset     index(8) term(8): every entry is gone; the log starts
//	              after (index, term), an installed snapshot
//
// The base record starts every segment: the log's state when the segment
// was made, so older segments can be deleted once nothing in them is
// needed, and prevEnd, the length of the previous segment's records (0 in
// the first), so a record that fails its check inside a segment that is
// not the last is corruption, not a torn tail. An entry's data is stored
// as is: reading it back decodes no protobuf, and the data shares the
// buffer it was read into.
const (
	headerBytes = 16

	kindBase      = 1
	kindEntry     = 2
	kindHardState = 3
	kindTruncate  = 4
	kindReset     = 5

	baseFixedBytes  = 6 * 8
	entryFixedBytes = 8 + 8 + 1
	// recordBytesMax bounds one record's length: far above any entry
	// (a request is at most a few MiB), far below what a corrupt length
	// field could claim.
	recordBytesMax = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendHeader appends a record header for a payload of length bytes whose
// crc is filled in by sealRecord.
func appendHeader(dst []byte, kind byte, length int, epoch uint32) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(length))
	dst = append(dst, kind, 0, 0, 0)
	return binary.LittleEndian.AppendUint32(dst, epoch)
}

// sealRecord fills in the crc of the record that starts at rec[0] and
// fills rec.
func sealRecord(rec []byte) {
	binary.LittleEndian.PutUint32(rec, crc32.Checksum(rec[4:], castagnoli))
}

// record is one decoded record header, with its payload.
type record struct {
	kind    byte
	epoch   uint32
	payload []byte
}

// parseRecord reads the record at the start of b. ok is false if b does
// not start with a whole, intact record: a torn or zeroed tail, or
// corruption (the caller knows which).
func parseRecord(b []byte) (r record, size int, ok bool) {
	if len(b) < headerBytes {
		return record{}, 0, false
	}
	length := binary.LittleEndian.Uint32(b[4:])
	if length > recordBytesMax || uint64(len(b)-headerBytes) < uint64(length) {
		return record{}, 0, false
	}
	size = headerBytes + int(length)
	if binary.LittleEndian.Uint32(b) != crc32.Checksum(b[4:size], castagnoli) {
		return record{}, 0, false
	}
	r = record{kind: b[8], epoch: binary.LittleEndian.Uint32(b[12:]), payload: b[headerBytes:size]}
	if r.kind < kindBase || r.kind > kindReset || b[9]|b[10]|b[11] != 0 {
		return record{}, 0, false
	}
	return r, size, true
}

// baseState is what a base record holds.
type baseState struct {
	seq, prevEnd          uint64
	truncIndex, truncTerm uint64
	lastIndex, lastTerm   uint64
	hardState             *raftpb.HardState
}

func appendBase(dst []byte, b baseState, epoch uint32) []byte {
	hs, err := proto.Marshal(b.hardState)
	if err != nil {
		panic(fmt.Sprintf("raftlog: marshal hard state: %v", err))
	}
	start := len(dst)
	dst = appendHeader(dst, kindBase, baseFixedBytes+len(hs), epoch)
	for _, v := range []uint64{b.seq, b.prevEnd, b.truncIndex, b.truncTerm, b.lastIndex, b.lastTerm} {
		dst = binary.LittleEndian.AppendUint64(dst, v)
	}
	dst = append(dst, hs...)
	sealRecord(dst[start:])
	return dst
}

func decodeBase(p []byte) (baseState, error) {
	if len(p) < baseFixedBytes {
		return baseState{}, fmt.Errorf("base record of %d bytes: %w", len(p), ErrCorrupt)
	}
	u := func(i int) uint64 { return binary.LittleEndian.Uint64(p[8*i:]) }
	b := baseState{seq: u(0), prevEnd: u(1), truncIndex: u(2), truncTerm: u(3), lastIndex: u(4), lastTerm: u(5),
		hardState: &raftpb.HardState{}}
	if err := proto.Unmarshal(p[baseFixedBytes:], b.hardState); err != nil {
		return baseState{}, fmt.Errorf("base record's hard state: %v: %w", err, ErrCorrupt)
	}
	if b.truncIndex > b.lastIndex {
		return baseState{}, fmt.Errorf("base record truncated at %d beyond its last index %d: %w", b.truncIndex, b.lastIndex, ErrCorrupt)
	}
	return b, nil
}

// entryHasType and entryHasData mark an entry record's type byte.
const (
	entryHasType = 0x40
	entryHasData = 0x80
)

// entryRecordBytes is the size of e's record.
func entryRecordBytes(e *raftpb.Entry) int { return headerBytes + entryFixedBytes + len(e.GetData()) }

func appendEntry(dst []byte, e *raftpb.Entry, epoch uint32) []byte {
	return append(appendEntryHead(dst, e, epoch), e.GetData()...)
}

// appendEntryHead appends e's record but for its data, which must follow
// it: the crc covers the data too.
func appendEntryHead(dst []byte, e *raftpb.Entry, epoch uint32) []byte {
	start := len(dst)
	dst = appendHeader(dst, kindEntry, entryFixedBytes+len(e.GetData()), epoch)
	dst = binary.LittleEndian.AppendUint64(dst, e.GetIndex())
	dst = binary.LittleEndian.AppendUint64(dst, e.GetTerm())
	typ := byte(e.GetType())
	if e.Type != nil {
		typ |= entryHasType
	}
	if e.Data != nil {
		typ |= entryHasData
	}
	dst = append(dst, typ)
	crc := crc32.Update(crc32.Checksum(dst[start+4:], castagnoli), castagnoli, e.GetData())
	binary.LittleEndian.PutUint32(dst[start:], crc)
	return dst
}

// entryIndexTerm reads an entry record's index and term.
func entryIndexTerm(p []byte) (index, term uint64, err error) {
	if len(p) < entryFixedBytes {
		return 0, 0, fmt.Errorf("entry record of %d bytes: %w", len(p), ErrCorrupt)
	}
	return binary.LittleEndian.Uint64(p), binary.LittleEndian.Uint64(p[8:]), nil
}

// decodeEntry rebuilds the entry of an entry record's payload; its data
// shares p.
func decodeEntry(p []byte) (*raftpb.Entry, error) {
	index, term, err := entryIndexTerm(p)
	if err != nil {
		return nil, err
	}
	flags := p[16]
	typ := raftpb.EntryType(flags &^ (entryHasType | entryHasData))
	if _, known := raftpb.EntryType_name[int32(typ)]; !known {
		return nil, fmt.Errorf("entry %d of unknown type %d: %w", index, typ, ErrCorrupt)
	}
	e := &raftpb.Entry{Index: proto.Uint64(index), Term: proto.Uint64(term)}
	if flags&entryHasType != 0 {
		e.Type = typ.Enum()
	}
	if flags&entryHasData != 0 {
		e.Data = p[entryFixedBytes:len(p):len(p)]
	}
	return e, nil
}

func appendHardState(dst []byte, hs *raftpb.HardState, epoch uint32) []byte {
	v, err := proto.Marshal(hs)
	if err != nil {
		panic(fmt.Sprintf("raftlog: marshal hard state: %v", err))
	}
	start := len(dst)
	dst = appendHeader(dst, kindHardState, len(v), epoch)
	dst = append(dst, v...)
	sealRecord(dst[start:])
	return dst
}

// appendPoint appends a truncate or reset record of (index, term).
func appendPoint(dst []byte, kind byte, index, term uint64, epoch uint32) []byte {
	start := len(dst)
	dst = appendHeader(dst, kind, 16, epoch)
	dst = binary.LittleEndian.AppendUint64(dst, index)
	dst = binary.LittleEndian.AppendUint64(dst, term)
	sealRecord(dst[start:])
	return dst
}

func decodePoint(p []byte) (index, term uint64, err error) {
	if len(p) != 16 {
		return 0, 0, fmt.Errorf("truncation record of %d bytes: %w", len(p), ErrCorrupt)
	}
	return binary.LittleEndian.Uint64(p), binary.LittleEndian.Uint64(p[8:]), nil
}
