// Package driver runs a node.Node in real time: one goroutine owns the node
// and turns wall-clock ticks, client requests and peer messages into the
// node's inputs, and the node's outputs into replies and sent messages.
//
// Requests from many goroutines meet in one channel; the loop drains it
// before each Process call, so every request that arrived while the previous
// batch was being made durable rides the next one: one fsync per batch, not
// per request.
package driver
