package workload

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestMixSharesSumTo100AndPickCoversThem(t *testing.T) {
	sum := 0
	for _, p := range k8sMixPercent {
		sum += p
	}
	if sum != 100 {
		t.Fatalf("mix sums to %d", sum)
	}
	var got [k8sKinds]int
	for n := 0; n < 100; n++ {
		got[pickKind(n)]++
	}
	if got != k8sMixPercent {
		t.Fatalf("pickKind over 0..99 gives %v, want %v", got, k8sMixPercent)
	}
}

func TestStampRoundTrip(t *testing.T) {
	base := time.Now().Add(-time.Second)
	v := stampValue(base, make([]byte, 32))
	if len(v) != 32 {
		t.Fatalf("stamped value has %d bytes", len(v))
	}
	time.Sleep(5 * time.Millisecond)
	age, ok := stampAge(base, []byte(v))
	if !ok || age < 5*time.Millisecond || age > time.Second {
		t.Fatalf("age %v ok %v", age, ok)
	}
	if _, ok := stampAge(base, []byte("short")); ok {
		t.Fatal("a 5-byte value has a stamp")
	}
}

func TestIsUnimplemented(t *testing.T) {
	unimpl := status.Error(codes.Unimplemented, "unknown service etcdserverpb.Lease")
	if !isUnimplemented(unimpl) || !isUnimplemented(fmt.Errorf("grant: %w", unimpl)) {
		t.Fatal("Unimplemented not recognised")
	}
	if isUnimplemented(status.Error(codes.Unavailable, "x")) || isUnimplemented(nil) {
		t.Fatal("other codes recognised as Unimplemented")
	}
}

func TestOptionsDefaultsAndValidation(t *testing.T) {
	o := Options{Endpoints: []string{"127.0.0.1:1"}}
	o.EnsureDefaults("k8s")
	if o.Watchers != 10 || o.KeySize != 16 || o.Load.Name != "k8s" {
		t.Fatalf("defaults %+v", o)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := o
	bad.KeySize = 4
	if bad.Validate() == nil {
		t.Error("4-byte keys for 10000 keys under bench/ accepted")
	}
	bad = o
	bad.ValueSize = 4
	if bad.Validate() == nil {
		t.Error("4-byte values accepted")
	}
	if _, err := Run(context.Background(), "nosuch", o); err == nil || !strings.Contains(err.Error(), "unknown workload") {
		t.Errorf("unknown workload: %v", err)
	}
}

func TestK8sKeysSortByNamespace(t *testing.T) {
	w := &k8sWorkload{o: &Options{Prefix: "/registry/", Namespaces: 3}}
	if got := w.key(4); got != "/registry/pods/ns-0001/pod-00000004" {
		t.Fatalf("key(4) = %q", got)
	}
	if !strings.HasPrefix(w.key(5), w.namespace(2)) {
		t.Fatalf("key(5) %q not in namespace 2", w.key(5))
	}
}
