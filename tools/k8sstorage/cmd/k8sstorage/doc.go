// Command k8sstorage runs Kubernetes' etcd3 storage tests
// (k8s.io/apiserver's pkg/storage/etcd3, from the module cache) against
// external servers: it compiles the test package once, with the upstream
// testserver replaced by this module's shim (go test -overlay), then runs
// the test binary once per server and per default of the EtcdRangeStream
// feature gate, and prints the pass and fail counts of each run. `make
// k8s-storage` runs it against bin/cairn and the reference etcd.
//
// Every run's go test -json events go to OUT/<system>-rangestream-<gate>.json
// and the output of its failed tests to ...failures.txt; OUT/summary.json
// has the counts. The exit status is 1 if any test failed in any run.
package main
