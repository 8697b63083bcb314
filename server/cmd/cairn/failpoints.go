//go:build chaosfailpoints

package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/cairn-db/cairn/server/member"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// failpointsEnv names the planted bugs a chaosfailpoints build switches on,
// comma-separated. The chaos self-tests use it to prove their checks fail.
const failpointsEnv = "CAIRN_FAILPOINTS"

// Failpoint names.
const (
	// failpointStaleRead serves linearizable reads from local state,
	// without ReadIndex.
	failpointStaleRead = "read-without-read-index"
	// failpointAckBeforeDurable acknowledges writes without fsync, on a
	// filesystem that loses unsynced writes at SIGKILL as a machine loses
	// them at power failure (the page cache would otherwise keep them).
	failpointAckBeforeDurable = "ack-before-durable"
	// failpointLeaseClockFast runs the lease clock at four times the speed
	// of time, as a unit mistake in expiry would: leases expire after a
	// quarter of their TTL.
	failpointLeaseClockFast = "lease-clock-fast"
)

// plantFailpoints switches on the bugs $CAIRN_FAILPOINTS names.
func plantFailpoints(cfg *member.Config, logger *slog.Logger) error {
	spec := os.Getenv(failpointsEnv)
	if spec == "" {
		return nil
	}
	for _, name := range strings.Split(spec, ",") {
		switch strings.TrimSpace(name) {
		case failpointStaleRead:
			cfg.Knobs.ReadWithoutReadIndex = true
		case failpointLeaseClockFast:
			cfg.LeaseClock = &fastClock{start: time.Now()}
		case failpointAckBeforeDurable:
			cfg.Knobs.AckBeforeDurable = true
			cfg.FS = newLossyFS(vfs.Default)
		default:
			return fmt.Errorf("$%s: unknown failpoint %q (known: %s, %s, %s)", failpointsEnv, name,
				failpointStaleRead, failpointAckBeforeDurable, failpointLeaseClockFast)
		}
	}
	logger.Warn("FAILPOINTS ON: this member plants bugs on purpose", "failpoints", spec)
	return nil
}

// fastClock runs at four times the speed of time from start.
type fastClock struct{ start time.Time }

func (c *fastClock) Now() time.Time { return c.start.Add(4 * time.Since(c.start)) }
