package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/cairn-db/cairn/deploy/image"
)

func main() {
	var cfg image.Config
	out := flag.String("out", "cairn-image.tar", "Path of the image tarball to write.")
	flag.StringVar(&cfg.BinaryFile, "binary", "", "A statically linked cairn (CGO_ENABLED=0).")
	flag.StringVar(&cfg.CACertsFile, "ca-certs", "/etc/ssl/certs/ca-certificates.crt", "The CA bundle to put in the image.")
	flag.StringVar(&cfg.Tag, "tag", "cairn:latest", "The image's name and tag in the tarball.")
	flag.StringVar(&cfg.Version, "version", "", "The version label.")
	flag.Parse()
	if cfg.BinaryFile == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: cairnimage -binary PATH [-out PATH] [-tag NAME:TAG] [-ca-certs PATH] [-version V]")
		os.Exit(2)
	}
	if err := image.Write(cfg, *out); err != nil {
		fmt.Fprintln(os.Stderr, "cairnimage:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s (%s)\n", *out, cfg.Tag)
}
