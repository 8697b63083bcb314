package watch

import (
	"unsafe"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// eventOverheadBytes is what an event costs beyond its keys and values: the
// Event and KeyValue structs, a second Event without PrevKv kept beside it
// in the recent window, and the pointers to both.
const eventOverheadBytes = int(2*unsafe.Sizeof(mvccpb.Event{}) + unsafe.Sizeof(mvccpb.KeyValue{}) + 2*unsafe.Sizeof(uintptr(0)))

// keyValueOverheadBytes is what a previous key-value costs beyond its key
// and value.
const keyValueOverheadBytes = int(unsafe.Sizeof(mvccpb.KeyValue{}))

// eventBytes is the memory an event holds, as the hub's byte bounds count
// it: its key and value, its previous key and value, and fixed overheads.
// It depends only on the event, so adding and removing it balance.
func eventBytes(ev *mvccpb.Event) int {
	n := eventOverheadBytes + len(ev.Kv.Key) + len(ev.Kv.Value)
	if p := ev.PrevKv; p != nil {
		n += keyValueOverheadBytes + len(p.Key) + len(p.Value)
	}
	return n
}

// eventsBytes is the sum of eventBytes over evs.
func eventsBytes(evs []*mvccpb.Event) int {
	n := 0
	for _, ev := range evs {
		n += eventBytes(ev)
	}
	return n
}
