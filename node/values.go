package node

import (
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable/block"
)

// separatedValueBytesMinDefault is Config.SeparatedValueBytesMin unless
// set: a version whose value takes 256 bytes or more, as stored, lives in
// a blob file.
//
// Why so small: the keyspace keeps every version until a keyspace
// compaction, and Pebble's compactions rewrite what they move, so a value
// inline in its sstable is copied at every level it goes down, and a scan
// reads the values of the old versions it steps over. In a blob file the
// value is written once, by the flush, and the compactions move its key
// and a handle of a few bytes. One member, 20 s of 256 B puts over 100,000
// keys, then serializable reads of them (two alternating pairs): puts/s
// 13,277 and 13,887 inline, 15,714 and 16,371 separated; scans of 100 keys
// 1,669 and 1,771/s inline, 2,162 and 2,677/s separated; gets of one key
// the same within the noise. With 128 B values, separating them made scans
// 10-18 % faster and puts no faster: a value that small costs a
// compaction little more than its handle does.
const separatedValueBytesMinDefault = 256

// Blob file policy for separated values: how many overlapping blob files
// one sstable may reference before a compaction rewrites its values, and
// when a blob file whose values are mostly deleted (versions compacted
// away) is rewritten to reclaim its space.
//
// The reference depth trades read amplification (a scan may read values
// from that many blob files) for write amplification. Versions are keyed
// by user key, so every flush overlaps every other, and a compaction whose
// inputs reference more blob files than the depth rewrites every value it
// moves: each rewrite copies all the history the compaction covers, so the
// cost grows with the data, not with the writes. With 40,000 puts of
// 20 KiB over 50 keys, a member wrote 2.63 bytes per byte put at depth 50
// and 2.05 at 200 (etcd: 2.17); in a 90 s soak with compactions every
// 10 s, its put rate went from 0.81x etcd's to 0.98x with 20 KiB values
// and from 0.81x to 1.01x with 100 KiB. Depth 1000 gained nothing more.
// Point reads, the common case, read one blob file whatever the depth.
const (
	blobReferenceDepthMax = 200
	blobRewriteAgeMin     = time.Minute
	blobGarbageRatioMax   = 0.3
)

// valuesUncompressed compresses keys, small values and index blocks with
// Snappy, and stores the values in blob files as they are. Those values
// are what clients stored, often already compressed or random (etcd's
// benchmark tool writes random bytes): Snappy then saves nothing, and
// with 1 MiB values trying cost 8 % of a member's CPU, with a 1 MiB buffer
// allocated per block. etcd's bbolt compresses nothing.
var valuesUncompressed = func() pebble.DBCompressionSettings {
	profile := *block.SnappyCompression
	profile.Name = "SnappyKeysRawValues"
	profile.ValueBlocks = block.NoCompression.ValueBlocks
	return pebble.UniformDBCompressionSettings(&profile)
}()

// separateLargeValues makes Pebble store values of at least minBytes in
// blob files beside the sstables. Compactions then move only keys and
// handles; above all, scans that step over old versions (MVCC compaction,
// the latest-version lookup of every put) read no value they do not use,
// so large values neither churn the block cache nor make the C allocator
// hold freed blocks: with 20 KiB values, each keyspace compaction used to
// add about 95 MB of resident memory that was never returned. It ratchets
// the database's format to FormatValueSeparation.
func separateLargeValues(o *pebble.Options, minBytes int) {
	o.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return valuesUncompressed })
	if o.FormatMajorVersion < pebble.FormatValueSeparation {
		o.FormatMajorVersion = pebble.FormatValueSeparation
	}
	o.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{
			Enabled:               true,
			MinimumSize:           minBytes,
			MaxBlobReferenceDepth: blobReferenceDepthMax,
			RewriteMinimumAge:     blobRewriteAgeMin,
			TargetGarbageRatio:    blobGarbageRatioMax,
		}
	}
}
