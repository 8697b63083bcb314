// Package proxy is a fault-injecting TCP proxy for the chaos tests. Every
// peer URL and client URL a chaos cluster advertises is a Proxy on
// 127.0.0.1, forwarding to the port the member really listens on; a Network
// holds all of them and the faults that apply to their connections.
//
// # Links
//
// A connection is one link: from a source (a member's name, or Client for
// anything that is not a member process) to a destination member, on one
// port kind (peer or client). The source of an accepted connection is found
// by its owner process: the harness knows the members' process IDs, and
// SocketOwner looks the connection's socket up in /proc (Linux only). That is
// what lets a partition cut A→B without cutting C→B, although every member's
// traffic to B arrives at the same proxy.
//
// # Faults
//
// A Rule selects links (sources, destinations, port kind) and says what
// happens to them:
//   - Cut: existing connections are reset; new ones are accepted and then
//     blackholed (nothing is forwarded, nothing answered) until the cut
//     lifts, when they are closed so the dialer retries. A cut of A→B and B→A
//     is a symmetric partition; one direction alone cuts only the
//     connections A opens to B (which messages those carry depends on the
//     transport: cairn sends a member's raft messages on connections it
//     opens; etcd's rafthttp streams also flow over connections the receiver
//     opens).
//   - Latency and Jitter delay every chunk of bytes by Latency plus a
//     uniform random share of Jitter, keeping the bytes in order.
//   - BytesPerSecond caps the throughput of each direction of a connection.
//
// Network.Reset closes the selected connections with a TCP RST.
//
// # Bounds
//
// Each direction of a connection buffers at most chunkQueueMax chunks of at
// most chunkBytesMax bytes; a full queue stops reading, so a slow or delayed
// link pushes back on its sender as a slow network would. Dialing the
// target is bounded by dialTimeout.
//
// A Network is safe for concurrent use. Close stops every proxy and closes
// every connection.
package proxy
