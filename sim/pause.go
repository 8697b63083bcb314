package sim

import "go.etcd.io/raft/v3/raftpb"

// The pause fault: a member frozen as a stopped process is (SIGSTOP, a
// long garbage-collection pause, a stalled virtual machine). It gets no
// ticks, runs no Process, and sends nothing; messages to it wait, as in
// its sockets' receive buffers, and requests its clients send it wait too.
// When it resumes it has the view it had when it froze: a leader frozen
// past the election timeout resumes believing it still leads.

// heldMessagesMax bounds the messages a paused member holds, as a socket's
// receive buffer is bounded; later ones are dropped (a peer's transport
// gives up on a member that does not read).
const heldMessagesMax = 4096

const (
	// pauseElectionMicros is about when the others have elected a new
	// leader after a leader froze: two election timeouts.
	pauseElectionMicros = 2 * electionTicks * tickMicros
	// pauseLateBurstMicros is how long before the end of a pause its late
	// read burst starts.
	pauseLateBurstMicros = 2 * second
)

type heldMessage struct {
	from *member
	msg  *raftpb.Message
}

// hold keeps a message that reached a paused member, and reports whether
// it did; the network delivers the message when hold says no.
func (m *member) hold(from *member, msg *raftpb.Message) bool {
	if !m.paused {
		return false
	}
	if len(m.held) >= heldMessagesMax {
		m.w.trace.printf("%s→%s drop %s (paused, buffer full)", from.name(), m.name(), describeMessage(msg))
		return true
	}
	m.held = append(m.held, heldMessage{from, msg})
	return true
}

func (m *member) pause() {
	if !m.up() || m.paused {
		return
	}
	m.paused = true
}

// resume unfreezes the member. It first does the work that waited in it
// (requests its clients sent, a tick its timer owed). A resumed process's
// goroutines race: its socket readers may already have queued some of the
// held messages when the loop takes the tick, and the loop steps what is
// queued before it processes (server/driver drains its inbox first), so a
// random number of them, in order, are stepped between the tick and its
// Process. The rest arrive in order once that Process (one fsync) is done,
// each after a network delay.
func (m *member) resume() {
	if !m.paused {
		return
	}
	m.paused = false
	held := m.held
	m.held = nil
	if !m.up() {
		return
	}
	early := m.w.rng.IntN(len(held) + 1)
	m.w.trace.printf("%s resumes, %d messages held, %d read before its tick is processed", m.name(), len(held), early)
	m.tick() // a ticker owes at most one tick, however long the pause
	for _, h := range held[:early] {
		m.w.net.deliver(h.from, m, h.msg)
	}
	held = held[early:]
	m.kick()
	epoch := m.epoch
	at := m.diskMicros
	for _, h := range held {
		at += 20 + m.w.rng.Int64N(100) // in order, as one socket delivers them
		m.w.sched.after(at, func() {
			if m.epoch == epoch {
				m.w.net.deliver(h.from, m, h.msg)
			}
		})
	}
}

// pauseFault freezes the leader (3 times in 4) or a random member for
// the fault's length. Bursts of linearizable reads aim at it twice: late
// in the pause, once the others had time to elect a leader and commit
// writes, so that reads wait in the frozen member and meet its stale view
// when it resumes (a client gives up after 3 s, so the burst starts at
// most 2 s before the end); and when it resumes.
func (n *nemesis) pauseFault(length int64) func() {
	w := n.w
	m := w.pick(1)[0]
	if l := w.leader(); l != nil && w.rng.IntN(4) != 0 {
		m = l
	}
	w.trace.printf("nemesis: pause %s", m.name())
	m.pause()
	if lateMicros := max(pauseElectionMicros, length-pauseLateBurstMicros); lateMicros < length {
		epoch := m.epoch
		w.sched.after(lateMicros, func() {
			if m.paused && m.epoch == epoch {
				w.readBurst(m, burstMicros)
			}
		})
	}
	// No burst after the resume: by then the member either learns within
	// a few messages that it was deposed, or answers as a healthy member,
	// and reads a healthy member answers only slow the linearizability
	// check (a sweep of 400 seeds had a check run out of time on them).
	// The reads sent late in the pause are still waiting in it when it
	// resumes, which is the moment that matters.
	return m.resume
}
