// Package mvcc is cairn's MVCC keyspace: etcd v3's key-value semantics
// (revisions, create_revision/mod_revision/version, Range, Put,
// DeleteRange, Txn, Compact) stored in Pebble.
//
// # Contract
//
// An empty store is at revision 1. Every write request that changes
// something (a Put, a DeleteRange that deletes a key, a Txn with at least
// one write) takes exactly one main revision; its changes take
// sub-revisions 0, 1, 2... A request that changes nothing keeps the
// revision. Responses and errors are those of etcd 3.7.3: errors a client
// sees are rpctypes values, and a request that fails with one leaves no
// trace, because everything that can fail (lease existence, ignore_value on
// a missing key, range revisions inside a txn) is checked before the first
// write. Validation that etcd does in its gRPC layer is CheckRange,
// CheckPut, CheckDeleteRange and CheckTxn; the server calls them before
// proposing, and the Writer relies on it.
//
// # Concurrency
//
// One apply goroutine owns writing: NewWriter over a Pebble indexed batch,
// any number of requests, the caller commits the batch (with its own
// applied index), then Writer.Publish. Only one Writer is unpublished at a
// time. CompactPending and CompactStep belong to the same goroutine.
//
// Range, ReadTxn, HashKV, Rev and CompactRev are safe from any number of
// goroutines, and take no lock. Publish replaces one immutable published
// state (the revision and the compacted revision) atomically; a reader
// loads it, opens a Pebble iterator (a point-in-time view by itself; a
// reader that needs several iterators takes a snapshot instead), and keeps
// the pair if the state is still the same (else tries again). So a reader
// never sees a half-applied revision: it reads the newest version at or
// below its published revision, and every write of that revision was
// committed before Publish. Writes of later, unpublished revisions may be
// in the view but are above the read revision. Physical compaction removes
// only versions that no read at or above the compacted revision needs, and
// starts only after the compaction is published, so a view taken while an
// older compacted revision was still the published one was taken before
// any of its removals.
//
// A single-key range may be answered from the read cache instead
// (readcache.go), which Publish updates before it publishes the new state
// and readers consult without a lock: an entry is its key's newest
// version at every revision from its mod revision to the published one.
//
// # Layout
//
// Every Pebble key starts with 'k'; the node owns every other prefix.
//
//	"kv" escape(userKey) 0x00 0x01 ^main(8 bytes BE) ^sub(8 bytes BE)
//	    one version of a key: 'p' + mvccpb.KeyValue (without the key) for a
//	    put, 't' for a tombstone.
//	"ki" escape(userKey) 0x00 0x01
//	    the key index: the create revision of the key's newest incarnation
//	    and, once deleted, the deleting revision (keyindex.go). A range's
//	    count reads it instead of every version.
//	"kc" escape(boundary) 0x00 0x01, and "kd"
//	    key index chunks: runs of about 64 index entries with the number of
//	    their keys that exist now, each under the boundary that ends it, the
//	    last under "kd" (keychunks.go), so a count adds up chunks.
//	"kl" lease attachments (lease.go).
//	"kmrev"      current revision (8 bytes BE); absent means 1.
//	"kmcompact"  compacted revision (8 bytes BE); absent means never.
//	"kmkeyindex" present once the key index and its chunks are complete.
//	"kmcursor"   present while a compaction's physical removal is pending:
//	    the key prefix where CompactStep continues (empty: from the start).
//
// escape(userKey) writes 0x00 as 0x00 0xff and every other byte as is, and
// 0x00 0x01 ends it. Encoded keys then sort exactly like user keys (a key
// sorts before its extensions because 0x01 is below both 0xff and every
// unescaped byte), and every version of one key shares one prefix, so a
// range of user keys is a contiguous span of Pebble keys. Revisions are
// stored inverted so the newest version of a key comes first: "the newest
// version at or below rev" is one SeekGE to prefix + ^rev, and moving to
// the next user key is one SeekGE to the prefix with its last byte 0x02.
// No key index is held in memory: data sets larger than RAM work, and
// reads cost one seek per key visited; a count beyond a range's limit
// reads one chunk entry per ~64 keys, and index entries at its ends and
// where keys changed after the read's revision.
//
// The current revision is stored explicitly because compaction may remove
// every version that mentions it.
//
// # Compaction
//
// Writer.Compact records the compacted revision and a fresh cursor in the
// batch; once published, reads below it fail with ErrGRPCCompacted.
// CompactStep then removes, a bounded number of keys at a time, every
// version below each key's newest version at or below the compacted
// revision, and that version too if it is a tombstone. The cursor is
// persisted with each step, so removal resumes after a crash; a newer
// compaction restarts it from the first key, which covers the older one.
package mvcc
