package node

import "github.com/cockroachdb/pebble/v2"

// Level 0 of the applied state's database is compacted into the level
// below it once it holds levelZeroCompactionSublevels sublevels (Pebble's
// default is 4), and writes stop at four times that.
//
// Why later than Pebble's default: a version's key starts with the
// client's key, and puts land all over the keyspace, so every table a
// flush writes to level 0 spans about the whole of the versions' region,
// and so does every table of the level below. Each compaction out of
// level 0 therefore rewrites that whole level, whatever it brings down:
// the more flushes it brings at once, the fewer times that level is
// rewritten per byte put. One member, 256 B puts over 100,000 keys, 30 s,
// alternating: 14,526 and 14,285 puts/s at 4 sublevels, 15,767 and 14,574
// at 8, 16,339 and 16,470 at 12, with p99 26.7-29.0 ms down to 18.6-19.5.
// What it costs is reads: an iterator opens one level per sublevel (a
// point read skips, by its bloom filter, the tables that lack its key).
// Serializable reads of those 100,000 keys right after 20 s of puts ran
// at the same rate with 12 as with 4, within the noise of two pairs.
const (
	levelZeroCompactionSublevels = 12
	levelZeroStopWritesSublevels = 4 * levelZeroCompactionSublevels
)

// compactLevelZeroLater sets the level 0 thresholds above.
func compactLevelZeroLater(o *pebble.Options) {
	o.L0CompactionThreshold = levelZeroCompactionSublevels
	o.L0StopWritesThreshold = levelZeroStopWritesSublevels
}
