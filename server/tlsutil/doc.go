// Package tlsutil builds the TLS side of a cairn member's two ports, the
// client port and the peer port, from etcd's flags (--cert-file,
// --trusted-ca-file, --client-cert-auth, --peer-cert-allowed-cn, ...), with
// etcd's names for cipher suites and versions and etcd's errors.
//
// Contract:
//   - Files are re-read when they change on disk. Every handshake stats the
//     files it needs (certificate, key, trusted CA bundle, CRL) and parses
//     them again only when one changed (size, modification time or inode),
//     so certificates can be rotated without a restart. A file that cannot
//     be parsed after a change is logged and the last good version keeps
//     being served; the next handshake tries again.
//   - A Server hands gRPC a listener whose connections are TLS (the
//     handshake runs in gRPC's per-connection goroutine, not in Accept) and
//     credentials that complete and log every handshake: a refused
//     connection (plain text on a TLS port, no client certificate, a
//     certificate from another CA, a revoked one, a CN or host name outside
//     the allowed lists, a peer whose certificate does not name its address)
//     is logged with the remote address and the reason, and the client sees
//     its connection fail, as with etcd.
//   - The same credentials serve plain connections from http:// listeners
//     on the same gRPC server, so a member can listen on both schemes.
//   - A Client builds a fresh tls.Config per dial (peers dialling peers),
//     with the current trusted CA bundle; its client certificate is re-read
//     per handshake.
//
// The files are operator configuration, not member data, so they are read
// from the operating system's filesystem, not through the member's vfs.FS.
package tlsutil
