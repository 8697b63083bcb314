package node

import (
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Blob file policy for separated values: how many overlapping blob files
// one sstable may reference before a compaction rewrites its values, and
// when a blob file whose values are mostly deleted (old versions, the
// truncated raft log) is rewritten to reclaim its space.
const (
	blobReferenceDepthMax = 10
	blobRewriteAgeMin     = time.Minute
	blobGarbageRatioMax   = 0.3
)

// separateLargeValues makes Pebble store values of at least minBytes in
// blob files beside the sstables. Compactions then move only keys and
// handles; above all, scans that step over old versions (MVCC compaction,
// the latest-version lookup of every put) read no value they do not use,
// so large values neither churn the block cache nor make the C allocator
// hold freed blocks: with 20 KiB values, each keyspace compaction used to
// add about 95 MB of resident memory that was never returned. It ratchets
// the database's format to FormatValueSeparation.
func separateLargeValues(o *pebble.Options, minBytes int) {
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
