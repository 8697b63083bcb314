package node

import (
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable/block"
)

// Blob file policy for separated values: how many overlapping blob files
// one sstable may reference before a compaction rewrites its values, and
// when a blob file whose values are mostly deleted (old versions, the
// truncated raft log) is rewritten to reclaim its space.
//
// The reference depth trades read amplification (a scan may read values
// from that many blob files) for write amplification. Versions are keyed
// by user key, so every flush overlaps every other and a small depth makes
// each compaction rewrite the values it moves: with 20,000 puts of 20 KiB
// over 50 keys, one member wrote 2.47 GB and read 1.16 GB at depth 10,
// 1.81 GB and 0.51 GB at 50, 1.72 GB and 0.42 GB at 200 (etcd: about
// 0.9 GB written).
const (
	blobReferenceDepthMax = 50
	blobRewriteAgeMin     = time.Minute
	blobGarbageRatioMax   = 0.3
)

// valuesUncompressed compresses keys, small values and index blocks with
// Snappy, and stores the values in blob files as they are. Large values
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
