// Package transport carries raft messages between cairn members over gRPC.
//
// Each member serves the stream method /cairn.peer.v1.Raft/Send on its peer
// URLs, and keeps one outgoing stream per peer, fed by a bounded queue:
// Send never blocks the member's loop. A full queue or a broken stream drops
// messages, which raft tolerates (it retries), and reports the peer
// unreachable so raft probes it instead of streaming. A message is written
// to a stream once and never replayed, so each message arrives at most once
// — raft relies on that for proposals a follower forwards (MsgProp), which it
// would otherwise append twice.
//
// Every stream carries the sender's cluster ID and member ID in its
// metadata; a member refuses streams from another cluster with
// FailedPrecondition, and both sides log why.
//
// A peer URL is http (plain text) or https: TLS configured by Config.TLS
// (--peer-cert-file, --peer-key-file, --peer-trusted-ca-file, ...), built
// afresh per dial so that rotated files are used. The receiving side's TLS
// is the member's peer listener (server/tlsutil).
package transport
