package sim

import "time"

// Lease checkpoints: in a quarter of the seeds (chosen by the seed, not
// drawn, so other seeds' draws stay as they were) and in the planted-bug
// test that targets them, members checkpoint leases every
// leaseCheckpointIntervalMicros (node.Config.LeaseCheckpointInterval; etcd
// checkpoints every 5 minutes, too long for a run, and the leases here
// live 2 to 5 s). Each time a member's lessor is promoted, every lease with
// an applied checkpoint must be given at most that checkpoint plus one
// election timeout (checkLeaseCheckpoints): a new leader continues a lease
// where the old one left it, never restarting its full TTL. Expiry never
// comes early either way (checkLeaseExpiry).

// leaseCheckpointIntervalMicros is the members' checkpoint interval when
// checkpointing: leases with more than 1 s left are checkpointed.
const leaseCheckpointIntervalMicros = second

// electionSeconds is the election timeout a promoted lessor extends leases
// by, in whole seconds, rounded up.
const electionSeconds = (electionTicks*tickMicros + second - 1) / second

// leaseCheckpointing reports whether the run's members checkpoint leases.
func (o Options) leaseCheckpointing() bool {
	return o.Seed%4 == 3 || o.Knobs.LeaseCheckpointIgnoredAtPromotion
}

// leaseCheckpointInterval is the members' node.Config value: 0 (off) or
// leaseCheckpointIntervalMicros.
func (o Options) leaseCheckpointInterval() time.Duration {
	if !o.leaseCheckpointing() {
		return 0
	}
	return time.Duration(leaseCheckpointIntervalMicros) * time.Microsecond
}

// checkLeaseCheckpoints runs after each Process and Tick of m: when its
// lessor has just been promoted, every lease with a checkpoint must have at
// most the checkpoint and an election timeout left.
func (m *member) checkLeaseCheckpoints() {
	w := m.w
	if !w.opts.leaseCheckpointing() {
		return
	}
	primary := m.node.LeasePrimary()
	was := m.leasePrimary && m.leasePrimaryEpoch == m.epoch
	m.leasePrimary, m.leasePrimaryEpoch = primary, m.epoch
	if !primary || was {
		return
	}
	for _, l := range w.leaseOrder {
		checkpoint, left, ok := m.node.LeaseCheckpointed(l.id)
		if !ok || checkpoint == 0 {
			continue
		}
		w.checkpointedPromotions++
		if left > checkpoint+electionSeconds {
			w.failAs(FailLease, "lease %x (ttl %ds): %s promoted with %ds left, above its checkpoint of %ds plus the %ds election timeout",
				l.id, l.ttlSeconds, m.name(), left, checkpoint, electionSeconds)
		}
	}
}
