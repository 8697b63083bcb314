package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/cairn-db/cairn/chaos/cluster"
	"github.com/cairn-db/cairn/chaos/proxy"
)

// Fault names, as Config.Faults and the timeline spell them.
const (
	FaultKillOne         = "kill-one"
	FaultKillLeader      = "kill-leader"
	FaultKillMinority    = "kill-minority"
	FaultKillAll         = "kill-all"
	FaultPauseOne        = "pause-one"
	FaultPauseLeader     = "pause-leader"
	FaultPartitionOne    = "partition-one"
	FaultPartitionLeader = "partition-leader"
	FaultPartitionOneWay = "partition-one-way"
	FaultLatency         = "latency"
	FaultBandwidth       = "bandwidth"
	FaultReset           = "reset-connections"
	FaultBlackholeClient = "blackhole-client"
	FaultMoveLeader      = "move-leader"
	FaultReplaceMember   = "replace-member"
	// FaultDiskFull is not in AllFaults: it needs every member's data on a
	// small tmpfs of its own, which ignores fsync.
	FaultDiskFull = "disk-full"
)

// AllFaults lists every fault a schedule draws from by default.
var AllFaults = []string{
	FaultKillOne, FaultKillLeader, FaultKillMinority, FaultKillAll,
	FaultPauseOne, FaultPauseLeader,
	FaultPartitionOne, FaultPartitionLeader, FaultPartitionOneWay,
	FaultLatency, FaultBandwidth, FaultReset, FaultBlackholeClient, FaultMoveLeader,
	FaultReplaceMember,
}

const (
	// faultHoldMin and faultHoldMax bound how long a fault lasts.
	faultHoldMin = time.Second
	faultHoldMax = 4 * time.Second
	// quietMin and quietMax bound the pause between two faults.
	quietMin = 500 * time.Millisecond
	quietMax = 2 * time.Second
	// pauseElectionTimeouts is how many election timeouts a SIGSTOP
	// lasts at least, so the others elect without the paused member.
	pauseElectionTimeouts = 3
	// leaderWait bounds the wait for a leader before a leader fault.
	leaderWait = 5 * time.Second
	// latencyMax and jitterMax bound added peer latency.
	latencyMax = 100 * time.Millisecond
	jitterMax  = 50 * time.Millisecond
	// thinLinkBytesPerSecond is the bandwidth cap of FaultBandwidth.
	thinLinkBytesPerSecond = 64 << 10
	// moveLeaderTimeout bounds a MoveLeader request.
	moveLeaderTimeout = 5 * time.Second
)

// ruleName is the name under which faults put network rules in force;
// every fault heals by clearing them.
const ruleName = "fault"

// injection is one injected fault: what was done, and how to undo it.
type injection struct {
	detail string
	// heal undoes the fault; nil for instantaneous faults.
	heal func() error
	// hold is how long the fault should last before heal.
	hold time.Duration
}

// injector applies the fault of one name.
type injector func(s *scheduler) (injection, error)

var injectors = map[string]injector{
	FaultKillOne:         func(s *scheduler) (injection, error) { return s.kill(s.randomMembers(1)) },
	FaultKillMinority:    func(s *scheduler) (injection, error) { return s.kill(s.randomMembers((len(s.c.Members) - 1) / 2)) },
	FaultKillAll:         func(s *scheduler) (injection, error) { return s.kill(s.c.Members) },
	FaultKillLeader:      func(s *scheduler) (injection, error) { return s.kill([]*cluster.Member{s.leaderOrRandom()}) },
	FaultPauseOne:        func(s *scheduler) (injection, error) { return s.pause(s.randomMembers(1)[0]) },
	FaultPauseLeader:     func(s *scheduler) (injection, error) { return s.pause(s.leaderOrRandom()) },
	FaultPartitionOne:    func(s *scheduler) (injection, error) { return s.isolate(s.randomMembers(1)[0], true) },
	FaultPartitionLeader: func(s *scheduler) (injection, error) { return s.isolate(s.leaderOrRandom(), true) },
	FaultPartitionOneWay: func(s *scheduler) (injection, error) { return s.isolate(s.randomMembers(1)[0], false) },
	FaultLatency:         (*scheduler).latency,
	FaultBandwidth:       (*scheduler).bandwidth,
	FaultReset:           (*scheduler).reset,
	FaultBlackholeClient: (*scheduler).blackholeClient,
	FaultMoveLeader:      (*scheduler).moveLeader,
	FaultReplaceMember:   (*scheduler).replaceMember,
	FaultDiskFull:        (*scheduler).diskFull,
}

// CheckFaults rejects unknown fault names.
func CheckFaults(names []string) error {
	for _, name := range names {
		if injectors[name] == nil {
			return fmt.Errorf("unknown fault %q (known: %s, %s)", name, strings.Join(AllFaults, ", "), FaultDiskFull)
		}
	}
	return nil
}

// scheduler draws faults from its seed and injects them into one cluster.
type scheduler struct {
	c      *cluster.Cluster
	rng    *rand.Rand
	faults []string
}

func (s *scheduler) next() string { return s.faults[s.rng.IntN(len(s.faults))] }

// hold draws how long a fault lasts.
func (s *scheduler) hold() time.Duration {
	return faultHoldMin + time.Duration(s.rng.Int64N(int64(faultHoldMax-faultHoldMin)))
}

func (s *scheduler) quiet() time.Duration {
	return quietMin + time.Duration(s.rng.Int64N(int64(quietMax-quietMin)))
}

// randomMembers draws n distinct members, in name order.
func (s *scheduler) randomMembers(n int) []*cluster.Member {
	order := s.rng.Perm(len(s.c.Members))[:max(n, 1)]
	slices.Sort(order)
	out := make([]*cluster.Member, len(order))
	for i, idx := range order {
		out[i] = s.c.Members[idx]
	}
	return out
}

// leaderOrRandom is the current leader, or a random member when there is
// none to agree on. The draw is made either way so the schedule's random
// stream does not depend on the cluster's state.
func (s *scheduler) leaderOrRandom() *cluster.Member {
	fallback := s.randomMembers(1)[0]
	if m, err := s.c.WaitLeader(leaderWait); err == nil {
		return m
	}
	return fallback
}

func names(members []*cluster.Member) string {
	parts := make([]string, len(members))
	for i, m := range members {
		parts[i] = m.Name
	}
	return strings.Join(parts, ",")
}

func (s *scheduler) kill(victims []*cluster.Member) (injection, error) {
	for _, m := range victims {
		if err := m.Kill(); err != nil {
			return injection{}, err
		}
	}
	return injection{
		detail: "SIGKILL " + names(victims),
		hold:   s.hold(),
		heal:   func() error { return s.c.LaunchAndWait(victims) },
	}, nil
}

func (s *scheduler) pause(m *cluster.Member) (injection, error) {
	hold := max(s.hold(), pauseElectionTimeouts*s.c.Config().ElectionTimeout)
	if err := m.Pause(); err != nil {
		return injection{}, err
	}
	return injection{detail: "SIGSTOP " + m.Name, hold: hold, heal: m.Resume}, nil
}

// isolate cuts m's peer links: both directions when symmetric, else only the
// connections m opens to the others.
func (s *scheduler) isolate(m *cluster.Member, symmetric bool) (injection, error) {
	var others []string
	for _, o := range s.c.Members {
		if o != m {
			others = append(others, o.Name)
		}
	}
	s.c.Network.SetRule(ruleName+"-out", proxy.Rule{From: []string{m.Name}, To: others, Port: proxy.PeerPort, Cut: true})
	detail := "cut " + m.Name + "→" + strings.Join(others, ",")
	if symmetric {
		s.c.Network.SetRule(ruleName+"-in", proxy.Rule{From: others, To: []string{m.Name}, Port: proxy.PeerPort, Cut: true})
		detail = "isolate " + m.Name + " from " + strings.Join(others, ",")
	}
	return injection{detail: detail, hold: s.hold(), heal: s.clearRules}, nil
}

func (s *scheduler) clearRules() error {
	s.c.Network.ClearRules()
	return nil
}

func (s *scheduler) latency() (injection, error) {
	rule := proxy.Rule{Port: proxy.PeerPort,
		Latency: time.Duration(s.rng.Int64N(int64(latencyMax))),
		Jitter:  time.Duration(s.rng.Int64N(int64(jitterMax)))}
	s.c.Network.SetRule(ruleName, rule)
	return injection{detail: rule.String(), hold: s.hold(), heal: s.clearRules}, nil
}

func (s *scheduler) bandwidth() (injection, error) {
	rule := proxy.Rule{Port: proxy.PeerPort, BytesPerSecond: thinLinkBytesPerSecond}
	s.c.Network.SetRule(ruleName, rule)
	return injection{detail: rule.String(), hold: s.hold(), heal: s.clearRules}, nil
}

func (s *scheduler) reset() (injection, error) {
	n := s.c.Network.Reset(proxy.Rule{})
	return injection{detail: fmt.Sprintf("RST %d connections", n)}, nil
}

// blackholeClient makes one member's client proxy accept the workload's
// connections and never answer.
func (s *scheduler) blackholeClient() (injection, error) {
	m := s.randomMembers(1)[0]
	rule := proxy.Rule{From: []string{proxy.Client}, To: []string{m.Name}, Port: proxy.ClientPort, Cut: true}
	s.c.Network.SetRule(ruleName, rule)
	return injection{detail: "blackhole clients of " + m.Name, hold: s.hold(), heal: s.clearRules}, nil
}

// moveLeader asks the leader to hand leadership to another member.
func (s *scheduler) moveLeader() (injection, error) {
	target := s.randomMembers(len(s.c.Members))
	leader, err := s.c.WaitLeader(leaderWait)
	if err != nil {
		return injection{detail: "no leader to move"}, nil
	}
	var to *cluster.Member
	for _, m := range target {
		if m != leader {
			to = m
			break
		}
	}
	if to == nil {
		return injection{detail: "single member: no leader transfer"}, nil
	}
	st, err := to.Status()
	if err != nil {
		return injection{detail: fmt.Sprintf("move leader to %s: status: %v", to.Name, err)}, nil
	}
	cli, err := leader.Client()
	if err != nil {
		return injection{}, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), moveLeaderTimeout)
	defer cancel()
	if _, err := cli.MoveLeader(ctx, st.Header.MemberId); err != nil {
		// A transfer can fail under load (the target lags); the fault
		// was still attempted, and the cluster must stay correct.
		return injection{detail: fmt.Sprintf("move leader %s→%s failed: %v", leader.Name, to.Name, err)}, nil
	}
	return injection{detail: fmt.Sprintf("move leader %s→%s", leader.Name, to.Name)}, nil
}

// healAll undoes whatever may still be in force: rules, pauses, killed
// members. It is the end-of-run cleanup.
func healAll(c *cluster.Cluster) error {
	c.Network.ClearRules()
	var errs []error
	var down []*cluster.Member
	for _, m := range c.Members {
		if !m.Running() {
			down = append(down, m)
			continue
		}
		if !m.Serving() {
			if err := m.Resume(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(down) > 0 {
		errs = append(errs, c.LaunchAndWait(down))
	}
	return errors.Join(errs...)
}

// replaceMember removes a member, wipes it and adds it back as a new
// member, under load. A single-member cluster cannot do without its member.
func (s *scheduler) replaceMember() (injection, error) {
	m := s.randomMembers(1)[0]
	if len(s.c.Members) < 3 {
		return injection{detail: "too few members to replace one"}, nil
	}
	if err := s.c.Replace(m); err != nil {
		return injection{detail: "replace " + m.Name}, err
	}
	return injection{detail: "remove, wipe and re-add " + m.Name}, nil
}

// diskFull fills one member's disk; the member may stop on it (fail-stop),
// which the heal undoes by freeing the disk and restarting it.
func (s *scheduler) diskFull() (injection, error) {
	m := s.randomMembers(1)[0]
	filled, err := m.FillDisk()
	inj := injection{detail: fmt.Sprintf("fill the disk of %s (%d MiB of ballast)", m.Name, filled>>20), hold: s.hold()}
	inj.heal = func() error {
		if err := m.FreeDisk(); err != nil {
			return err
		}
		if !m.Running() {
			return s.c.LaunchAndWait([]*cluster.Member{m})
		}
		return nil
	}
	return inj, err
}
