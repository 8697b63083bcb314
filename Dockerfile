# cairn's container image, for those who build with Docker:
#   docker build -t cairn:latest .
# It is the image `make image` writes as a tarball without a Docker daemon
# (deploy/image, whose test checks this file describes the same image):
# FROM scratch, the static binary (also named etcd, so that commands
# written for etcd's image start cairn), CA certificates, the data volume
# /var/lib/cairn, and the client and peer ports.
FROM golang:1.26 AS build
WORKDIR /src
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /rootfs/usr/local/bin/cairn github.com/cairn-db/cairn/server/cmd/cairn && \
    ln -s cairn /rootfs/usr/local/bin/etcd && \
    mkdir -p /rootfs/etc/ssl/certs /rootfs/var/lib/cairn /rootfs/tmp && \
    cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ && \
    chmod 0700 /rootfs/var/lib/cairn && chmod 1777 /rootfs/tmp

FROM scratch
COPY --from=build /rootfs/ /
ENV PATH=/usr/local/bin
WORKDIR /var/lib/cairn
VOLUME /var/lib/cairn
EXPOSE 2379/tcp 2380/tcp
LABEL org.opencontainers.image.title="cairn" \
      org.opencontainers.image.description="A key-value store that speaks the etcd v3 API"
ENTRYPOINT ["/usr/local/bin/cairn"]
