package sim

import (
	"strings"
	"testing"

	lin "github.com/cairn-db/cairn/linearizability"
)

// TestSerializableReadCheck pins the two ways a serializable read fails its
// check: data that is not the committed keyspace at its header revision,
// and a header revision ahead of what its member had applied.
func TestSerializableReadCheck(t *testing.T) {
	committed := []lin.Event{
		{Revision: 2, Type: lin.EventPut, Key: "k0", Value: "a"},
		{Revision: 3, Type: lin.EventPut, Key: "k0", Value: "b"},
	}
	req := lin.Serializable(lin.Get("k0"))
	at := func(rev int64, value string, mod, version int64) lin.Response {
		return lin.Response{HeaderRevision: rev, Found: true, KV: lin.KeyValue{Key: "k0", Value: value, CreateRevision: 2, ModRevision: mod, Version: version}}
	}
	cases := []struct {
		name    string
		read    serializableRead
		wantErr string
	}{
		{"stale but whole", serializableRead{req: req, resp: at(2, "a", 2, 1), appliedRev: 2}, ""},
		{"current", serializableRead{req: req, resp: at(3, "b", 3, 2), appliedRev: 3}, ""},
		{"torn", serializableRead{req: req, resp: at(3, "a", 2, 1), appliedRev: 3}, "at revision 3 the store returned"},
		{"ahead of applied", serializableRead{req: req, resp: at(3, "b", 3, 2), appliedRev: 2}, "ahead of the member's applied revision"},
	}
	for _, tc := range cases {
		err := checkSerializableRead(committed, tc.read)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: %v; want an error with %q", tc.name, err, tc.wantErr)
		}
	}
}
