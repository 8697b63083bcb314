package chaos

import (
	"slices"
	"testing"

	lin "github.com/cairn-db/cairn/linearizability"
)

func TestHashRevisions(t *testing.T) {
	for _, tc := range []struct {
		final   int64
		sampled int
		want    []int64
	}{
		{1, 8, []int64{1}},
		{2, 8, []int64{2}},
		{5, 8, []int64{2, 3, 4, 5}},
		{82, 8, []int64{2, 12, 22, 32, 42, 52, 62, 72, 82}},
	} {
		if got := hashRevisions(tc.final, tc.sampled); !slices.Equal(got, tc.want) {
			t.Errorf("hashRevisions(%d, %d) = %v, want %v", tc.final, tc.sampled, got, tc.want)
		}
	}
}

func TestReceivedUpTo(t *testing.T) {
	received := []lin.Event{{Revision: 3}, {Revision: 4}, {Revision: 4}, {Revision: 6}}
	got := receivedUpTo(received, 4)
	if len(got) != 3 || got[2].Revision != 4 || len(received) != 4 || received[3].Revision != 6 {
		t.Fatalf("receivedUpTo(.., 4) = %v (input now %v)", got, received)
	}
}
