package mvcc

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Pebble key prefixes. Every key this package writes starts with prefixAll.
const (
	prefixAll     = 'k'
	prefixVersion = 'v' // "kv" + escaped user key + terminator + revision
	prefixMeta    = 'm' // "km" + meta name
)

// Bytes of the user-key escaping. A 0x00 in a user key becomes 0x00 0xff and
// the key ends with 0x00 0x01, so encoded keys sort like the user keys and no
// encoded key is a prefix of another user key's versions.
const (
	escapeByte     = 0x00
	escapedZero    = 0xff
	terminatorByte = 0x01
	// afterVersions follows escapeByte to form a key greater than every
	// version of one user key and smaller than every greater user key.
	afterVersions = 0x02
)

// revisionBytes is the size of an encoded (main, sub) revision.
const revisionBytes = 16

// Value kinds, the first byte of every version value.
const (
	kindPut       = 'p'
	kindTombstone = 't'
)

var (
	metaRevKey     = []byte{prefixAll, prefixMeta, 'r', 'e', 'v'}
	metaCompactKey = []byte{prefixAll, prefixMeta, 'c', 'o', 'm', 'p', 'a', 'c', 't'}
	metaCursorKey  = []byte{prefixAll, prefixMeta, 'c', 'u', 'r', 's', 'o', 'r'}
	// versionsStart is a lower bound of every version key; versionsEnd an
	// exclusive upper bound.
	versionsStart = []byte{prefixAll, prefixVersion}
	versionsEnd   = []byte{prefixAll, prefixVersion + 1}
)

// revision is an etcd revision: main counts write requests, sub counts the
// changes inside one request.
type revision struct {
	main int64
	sub  int64
}

// appendEscaped appends the order-preserving escape of userKey, without the
// terminator.
func appendEscaped(dst, userKey []byte) []byte {
	for _, c := range userKey {
		if c == escapeByte {
			dst = append(dst, escapeByte, escapedZero)
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// keyPrefix returns "kv" + escape(userKey) + terminator: the common prefix of
// every version of userKey.
func keyPrefix(userKey []byte) []byte {
	return appendPrefix(make([]byte, 0, len(userKey)+4+revisionBytes), userKey)
}

// appendPrefix appends keyPrefix(userKey) to dst.
func appendPrefix(dst, userKey []byte) []byte {
	dst = append(dst, prefixAll, prefixVersion)
	dst = appendEscaped(dst, userKey)
	return append(dst, escapeByte, terminatorByte)
}

// nextKeyBound returns a key after every version of the user key whose
// prefix (from keyPrefix) is given, and before every greater user key.
func nextKeyBound(prefix []byte) []byte {
	out := append([]byte(nil), prefix...)
	out[len(out)-1] = afterVersions
	return out
}

// versionKey encodes the Pebble key of one version. The revision is stored
// inverted big-endian so that newer versions of a key sort first.
func versionKey(userKey []byte, rev revision) []byte {
	return appendRevision(keyPrefix(userKey), rev)
}

func appendRevision(dst []byte, rev revision) []byte {
	dst = binary.BigEndian.AppendUint64(dst, ^uint64(rev.main))
	return binary.BigEndian.AppendUint64(dst, ^uint64(rev.sub))
}

// seekAtOrBelow returns the position of the newest version of the key with
// the given prefix whose main revision is <= main.
func seekAtOrBelow(prefix []byte, main int64) []byte {
	return appendSeekAtOrBelow(append([]byte(nil), prefix...), main)
}

// appendSeekAtOrBelow appends to a key's prefix the revision part of
// seekAtOrBelow: ^main, then the smallest inverted sub-revision.
func appendSeekAtOrBelow(prefix []byte, main int64) []byte {
	dst := binary.BigEndian.AppendUint64(prefix, ^uint64(main))
	return binary.BigEndian.AppendUint64(dst, 0)
}

// checkVersionKey panics unless k has the shape of a version key: the
// "kv" prefix, an escaped key and its terminator, and a revision.
func checkVersionKey(k []byte) {
	n := len(k) - revisionBytes
	if n < 4 || k[0] != prefixAll || k[1] != prefixVersion || k[n-2] != escapeByte || k[n-1] != terminatorByte {
		panic(fmt.Sprintf("mvcc: malformed version key %q", k))
	}
}

// decodeUserKey returns a copy of the user key of a version key.
func decodeUserKey(k []byte) []byte {
	userKey, _, _ := decodeVersionKey(k)
	return userKey
}

// decodeVersionKey splits a version key into the user key, the prefix shared
// by its versions, and the revision, all copied out of k. A malformed key is corruption: panic.
func decodeVersionKey(k []byte) (userKey, prefix []byte, rev revision) {
	if len(k) < 2+2+revisionBytes || k[0] != prefixAll || k[1] != prefixVersion {
		panic(fmt.Sprintf("mvcc: malformed version key %q", k))
	}
	body := k[2 : len(k)-revisionBytes]
	userKey = make([]byte, 0, len(body))
	for i := 0; i < len(body); i++ {
		if body[i] != escapeByte {
			userKey = append(userKey, body[i])
			continue
		}
		i++
		if i == len(body)-1 && body[i] == terminatorByte {
			prefix = append([]byte(nil), k[:len(k)-revisionBytes]...)
			return userKey, prefix, decodeRevision(k[len(k)-revisionBytes:])
		}
		if i >= len(body) || body[i] != escapedZero {
			panic(fmt.Sprintf("mvcc: malformed escape in version key %q", k))
		}
		userKey = append(userKey, escapeByte)
	}
	panic(fmt.Sprintf("mvcc: version key without terminator %q", k))
}

func decodeRevision(b []byte) revision {
	return revision{
		main: int64(^binary.BigEndian.Uint64(b[:8])),
		sub:  int64(^binary.BigEndian.Uint64(b[8:16])),
	}
}

// appendPut appends the encoding of a live version to dst: kindPut, then
// the KeyValue without its key in protobuf wire format, fields in number
// order and zero values omitted, byte for byte what proto.Marshal writes
// (TestAppendPutMatchesProto checks it).
func appendPut(dst []byte, kv *mvccpb.KeyValue) []byte {
	dst = append(dst, kindPut)
	dst = appendVarintField(dst, fieldCreateRevision, kv.CreateRevision)
	dst = appendVarintField(dst, fieldModRevision, kv.ModRevision)
	dst = appendVarintField(dst, fieldVersion, kv.Version)
	if len(kv.Value) > 0 {
		dst = protowire.AppendTag(dst, fieldValue, protowire.BytesType)
		dst = protowire.AppendBytes(dst, kv.Value)
	}
	return appendVarintField(dst, fieldLease, kv.Lease)
}

// putBytes is the length of appendPut's encoding of kv.
func putBytes(kv *mvccpb.KeyValue) int {
	n := 1 + varintFieldBytes(fieldCreateRevision, kv.CreateRevision) + varintFieldBytes(fieldModRevision, kv.ModRevision) +
		varintFieldBytes(fieldVersion, kv.Version) + varintFieldBytes(fieldLease, kv.Lease)
	if len(kv.Value) > 0 {
		n += protowire.SizeTag(fieldValue) + protowire.SizeBytes(len(kv.Value))
	}
	return n
}

func varintFieldBytes(field protowire.Number, v int64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(field) + protowire.SizeVarint(uint64(v))
}

// The field numbers of mvccpb.KeyValue (the key, field 1, is not stored).
const (
	fieldCreateRevision = 2
	fieldModRevision    = 3
	fieldVersion        = 4
	fieldValue          = 5
	fieldLease          = 6
)

func appendVarintField(dst []byte, field protowire.Number, v int64) []byte {
	if v == 0 {
		return dst
	}
	dst = protowire.AppendTag(dst, field, protowire.VarintType)
	return protowire.AppendVarint(dst, uint64(v))
}

// kindOf returns a version value's kind.
func kindOf(userKey, v []byte) byte {
	if len(v) == 0 {
		panic(fmt.Sprintf("mvcc: empty version value for key %q", userKey))
	}
	return v[0]
}

// decodeValue decodes a version value; it returns nil for a tombstone. The
// key-value's Key is userKey itself, not a copy; its Value is a copy.
func decodeValue(userKey, v []byte) *mvccpb.KeyValue {
	switch kindOf(userKey, v) {
	case kindTombstone:
		return nil
	case kindPut:
		kv := &mvccpb.KeyValue{}
		if !decodeKV(v[1:], kv) {
			kv = &mvccpb.KeyValue{}
			if err := proto.Unmarshal(v[1:], kv); err != nil {
				panic(fmt.Sprintf("mvcc: corrupt version value for key %q: %v", userKey, err))
			}
		}
		kv.Key = userKey
		return kv
	}
	panic(fmt.Sprintf("mvcc: unknown version kind %d for key %q", v[0], userKey))
}

// decodeKV decodes what appendPut writes. It returns false for anything
// else (unknown fields, other wire types, malformed data), which the caller
// hands to proto.Unmarshal: it accepts every valid encoding and reports the
// invalid ones.
func decodeKV(b []byte, kv *mvccpb.KeyValue) bool {
	for len(b) > 0 {
		field, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		if field == fieldValue && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			kv.Value, b = append([]byte(nil), v...), b[n:]
			continue
		}
		if typ != protowire.VarintType {
			return false
		}
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch field {
		case fieldCreateRevision:
			kv.CreateRevision = int64(v)
		case fieldModRevision:
			kv.ModRevision = int64(v)
		case fieldVersion:
			kv.Version = int64(v)
		case fieldLease:
			kv.Lease = int64(v)
		default:
			return false
		}
	}
	return true
}

// versionMeta is what a write needs of the version it replaces: whether
// the key exists, and the fields that a new version inherits or that the
// key index and lease attachments need. It holds nothing of the value, so
// reading it neither allocates nor copies a value of any size.
type versionMeta struct {
	exists                                      bool
	createRevision, modRevision, version, lease int64
}

// metaOf is the versionMeta of a decoded version (nil: the key does not
// exist).
func metaOf(kv *mvccpb.KeyValue) versionMeta {
	if kv == nil {
		return versionMeta{}
	}
	return versionMeta{exists: true, createRevision: kv.CreateRevision, modRevision: kv.ModRevision, version: kv.Version, lease: kv.Lease}
}

// decodeMeta decodes a version value's metadata; a tombstone is a key
// that does not exist. It scans the encoding appendPut writes in place,
// stepping over the value by its length; any other encoding goes through
// decodeValue's full decode.
func decodeMeta(userKey, v []byte) versionMeta {
	switch kindOf(userKey, v) {
	case kindTombstone:
		return versionMeta{}
	case kindPut:
		if m, ok := scanMeta(v[1:]); ok {
			return m
		}
		return metaOf(decodeValue(userKey, v))
	}
	panic(fmt.Sprintf("mvcc: unknown version kind %d for key %q", v[0], userKey))
}

// scanMeta is decodeKV without the value: it returns false for what
// decodeKV refuses.
func scanMeta(b []byte) (versionMeta, bool) {
	m := versionMeta{exists: true}
	for len(b) > 0 {
		field, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return versionMeta{}, false
		}
		b = b[n:]
		if field == fieldValue && typ == protowire.BytesType {
			n := protowire.ConsumeFieldValue(field, typ, b)
			if n < 0 {
				return versionMeta{}, false
			}
			b = b[n:]
			continue
		}
		if typ != protowire.VarintType {
			return versionMeta{}, false
		}
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return versionMeta{}, false
		}
		b = b[n:]
		switch field {
		case fieldCreateRevision:
			m.createRevision = int64(v)
		case fieldModRevision:
			m.modRevision = int64(v)
		case fieldVersion:
			m.version = int64(v)
		case fieldLease:
			m.lease = int64(v)
		default:
			return versionMeta{}, false
		}
	}
	return m, true
}

func encodeInt64(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

func decodeInt64(name string, b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("mvcc: meta %s has %d bytes, want 8", name, len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// hasVersionPrefix reports whether k is a version of the key with prefix p.
func hasVersionPrefix(k, p []byte) bool {
	return len(k) == len(p)+revisionBytes && bytes.HasPrefix(k, p)
}
