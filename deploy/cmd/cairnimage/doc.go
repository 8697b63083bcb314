// Command cairnimage writes cairn's container image as a tarball for
// `docker load -i` or `podman load -i` (make image), with no Docker
// daemon: see package image.
package main
