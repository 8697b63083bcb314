// Package member assembles a running cairn member from its configuration:
// the node on its data directory, the driver loop, and the gRPC services on
// the client URLs. cmd/cairn parses flags into a Config and calls Start.
package member
