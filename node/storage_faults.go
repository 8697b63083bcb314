package node

import (
	"context"
	"fmt"
)

// Storage maintenance the simulator triggers at moments chosen from its
// seed. Pebble runs memtable flushes and compactions on goroutines of its
// own; the simulator keeps automatic compactions off and calls these
// between driver steps instead, so the moment they happen is part of the
// seed, not of goroutine timing. The production server does not call them:
// there Pebble schedules its own background work.

// FlushStorage writes the state database's memtables to sstables and
// waits until they are durable, as the node's own flushes do.
func (n *Node) FlushStorage() error {
	if n.db == nil {
		return ErrStopped
	}
	if err := n.flushState(); err != nil {
		return fmt.Errorf("flush storage: %w", err)
	}
	return nil
}

// CompactStorage flushes and then compacts the member's whole database
// into its bottom level, and waits until the compaction is done.
func (n *Node) CompactStorage() error {
	if n.db == nil {
		return ErrStopped
	}
	first, last, err := n.keyBounds()
	if err != nil || first == nil {
		return err
	}
	// Compact's end is exclusive: the key just after the last one.
	if err := n.db.Compact(context.Background(), first, append(last, 0), false); err != nil {
		return fmt.Errorf("compact storage: %w", err)
	}
	return nil
}

// keyBounds returns the first and last key of the database, nil when it is
// empty.
func (n *Node) keyBounds() (first, last []byte, err error) {
	it, err := n.db.NewIter(nil)
	if err != nil {
		return nil, nil, fmt.Errorf("compact storage: %w", err)
	}
	if it.First() {
		first = append([]byte(nil), it.Key()...)
	}
	if it.Last() {
		last = append([]byte(nil), it.Key()...)
	}
	if err := it.Error(); err != nil {
		it.Close()
		return nil, nil, fmt.Errorf("compact storage: %w", err)
	}
	if err := it.Close(); err != nil {
		return nil, nil, fmt.Errorf("compact storage: %w", err)
	}
	return first, last, nil
}

// StorageBusy reports whether Pebble has a memtable flush or a compaction
// scheduled or running. A memtable that fills up is flushed by Pebble on
// its own goroutine; the simulator waits for StorageBusy to turn false
// after each step, so that the flush's effect on the disk is complete
// before the next event (a crash, say) looks at it.
func (n *Node) StorageBusy() bool {
	if n.db == nil {
		return false
	}
	m := n.db.Metrics()
	return m.Flush.NumInProgress > 0 || m.Compact.NumInProgress > 0
}
