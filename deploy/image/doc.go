// Package image builds cairn's container image as a tarball that
// `docker load` and `podman load` take, with no Docker daemon: FROM
// scratch, one layer holding the static binary (also under the name etcd,
// so commands written for etcd's image start cairn), the CA certificates,
// and the data volume /var/lib/cairn; ports 2379 and 2380. The Dockerfile
// at the repository's root describes the same image for Docker users.
package image
