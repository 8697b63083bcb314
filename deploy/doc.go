// Package deploy holds cairn's deployment files and their tests:
// compose.yaml (a 3-member cluster), kubernetes/ (a StatefulSet behind a
// headless Service), systemd/cairn.service, and image/, which builds the
// container image without a Docker daemon. It is a module of its own so
// that the Kubernetes types it decodes the manifests into stay out of the
// server's dependencies.
//
// The tests check each file against cairn itself: every flag and ETCD_*
// variable a manifest gives cairn is run through a static cairn binary's
// own parser (`cairn ... --check-config` exits 0 only when cairn accepts
// them).
package deploy
