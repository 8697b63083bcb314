package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Paths inside the image.
const (
	BinaryPath   = "/usr/local/bin/cairn"
	EtcdLinkPath = "/usr/local/bin/etcd"
	CACertsPath  = "/etc/ssl/certs/ca-certificates.crt"
	DataVolume   = "/var/lib/cairn"
)

// Ports are the ports the image exposes: clients and peers, as etcd's.
var Ports = []string{"2379/tcp", "2380/tcp"}

// Config says what goes into the image.
type Config struct {
	// BinaryFile is a statically linked cairn for the image's platform.
	BinaryFile string
	// CACertsFile is the CA bundle to copy (the build machine's).
	CACertsFile string
	// Tag names the image in the tarball, "cairn:0.1.0" say.
	Tag string
	// Version labels the image.
	Version string
	// Created is the image's creation time and every file's; a fixed time
	// makes the tarball reproducible. Default: the Unix epoch.
	Created time.Time
	// Architecture is the image's platform. Default: runtime.GOARCH.
	Architecture string
}

// Write builds the image and writes it to the tarball at out.
func Write(cfg Config, out string) error {
	img, err := Build(cfg)
	if err != nil {
		return err
	}
	tag, err := name.NewTag(cfg.Tag)
	if err != nil {
		return fmt.Errorf("image tag %q: %w", cfg.Tag, err)
	}
	return tarball.WriteToFile(out, tag, img)
}

// Build assembles the image.
func Build(cfg Config) (v1.Image, error) {
	if cfg.Architecture == "" {
		cfg.Architecture = runtime.GOARCH
	}
	if cfg.Created.IsZero() {
		cfg.Created = time.Unix(0, 0).UTC()
	}
	layerTar, err := rootFS(cfg)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("image layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		return nil, fmt.Errorf("image layer: %w", err)
	}
	file, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	file = file.DeepCopy()
	file.OS, file.Architecture = "linux", cfg.Architecture
	file.Created = v1.Time{Time: cfg.Created}
	file.Config = imageConfig(cfg)
	return mutate.ConfigFile(img, file)
}

// imageConfig is how a container of the image runs.
func imageConfig(cfg Config) v1.Config {
	ports := map[string]struct{}{}
	for _, p := range Ports {
		ports[p] = struct{}{}
	}
	return v1.Config{
		Entrypoint: []string{BinaryPath},
		// The default --data-dir, ${name}.cairn, lands in the volume.
		WorkingDir:   DataVolume,
		Env:          []string{"PATH=/usr/local/bin"},
		ExposedPorts: ports,
		Volumes:      map[string]struct{}{DataVolume: {}},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "cairn",
			"org.opencontainers.image.description": "A key-value store that speaks the etcd v3 API",
			"org.opencontainers.image.version":     cfg.Version,
		},
	}
}

// rootFS is the image's one layer, as a tar archive.
func rootFS(cfg Config) ([]byte, error) {
	binary, err := os.ReadFile(cfg.BinaryFile)
	if err != nil {
		return nil, fmt.Errorf("cairn binary: %w", err)
	}
	certs, err := os.ReadFile(cfg.CACertsFile)
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w", err)
	}
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	entries := []*tar.Header{
		dir("usr/"), dir("usr/local/"), dir("usr/local/bin/"),
		file(BinaryPath, 0o755, len(binary)),
		{Typeflag: tar.TypeSymlink, Name: EtcdLinkPath[1:], Linkname: path.Base(BinaryPath), Mode: 0o777},
		dir("etc/"), dir("etc/ssl/"), dir("etc/ssl/certs/"),
		file(CACertsPath, 0o644, len(certs)),
		dir("var/"), dir("var/lib/"), {Typeflag: tar.TypeDir, Name: DataVolume[1:] + "/", Mode: 0o700},
		{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777},
	}
	contents := map[string][]byte{BinaryPath[1:]: binary, CACertsPath[1:]: certs}
	for _, h := range entries {
		h.ModTime, h.Format = cfg.Created, tar.FormatPAX
		if err := w.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := w.Write(contents[h.Name]); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func dir(name string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}
}

func file(absPath string, mode int64, size int) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: absPath[1:], Mode: mode, Size: int64(size)}
}
