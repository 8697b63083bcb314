package image

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-db/cairn/deploy/internal/cairnbin"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImageTarball builds the image tarball as `make image` does, reads
// it back, checks its configuration and files, and runs the binary it
// holds.
func TestImageTarball(t *testing.T) {
	dir := t.TempDir()
	certs := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(certs, []byte("-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "cairn-image.tar")
	cfg := Config{BinaryFile: cairnbin.Static(t), CACertsFile: certs, Tag: "cairn:test", Version: "0.1.0"}
	if err := Write(cfg, out); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("cairn:test")
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("read the tarball back: %v", err)
	}
	// The tarball is `docker save`'s format, which docker and podman load
	// everywhere; it records no media types.
	file, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := file.Config
	var ports []string
	for p := range c.ExposedPorts {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	if file.OS != "linux" || file.Architecture != runtime.GOARCH || !reflect.DeepEqual(c.Entrypoint, []string{BinaryPath}) ||
		!reflect.DeepEqual(ports, []string{"2379/tcp", "2380/tcp"}) || len(c.Volumes) != 1 || c.WorkingDir != DataVolume ||
		c.Labels["org.opencontainers.image.version"] != "0.1.0" || len(c.Cmd) != 0 {
		t.Fatalf("image config: %+v on %s/%s", c, file.OS, file.Architecture)
	}
	if _, ok := c.Volumes[DataVolume]; !ok {
		t.Fatalf("volumes %v, want %s", c.Volumes, DataVolume)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v", len(layers), err)
	}

	files := extract(t, layers[0], dir)
	if files[EtcdLinkPath] != "-> cairn" || files[CACertsPath] != "file 0644" || files[BinaryPath] != "file 0755" || files[DataVolume] != "dir 0700" {
		t.Fatalf("files in the image: %v", files)
	}
	binary := filepath.Join(dir, "rootfs", BinaryPath)
	outBytes, err := exec.Command(binary, "--version").Output()
	if err != nil || !strings.Contains(string(outBytes), "cairn Version: ") {
		t.Fatalf("the image's cairn --version: %q, %v", outBytes, err)
	}
	if out, err := exec.Command("file", binary).Output(); err == nil && !strings.Contains(string(out), "statically linked") {
		t.Errorf("the image's binary is not static: %s", out)
	}
}

// extract writes the layer's regular files under dir/rootfs and returns
// what each path is.
func extract(t *testing.T, layer interface {
	Uncompressed() (io.ReadCloser, error)
}, dir string) map[string]string {
	t.Helper()
	rc, err := layer.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]string{}
	r := tar.NewReader(rc)
	for {
		h, err := r.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		p := "/" + strings.TrimSuffix(h.Name, "/")
		switch h.Typeflag {
		case tar.TypeDir:
			files[p] = "dir " + modeString(h.Mode)
		case tar.TypeSymlink:
			files[p] = "-> " + h.Linkname
		case tar.TypeReg:
			files[p] = "file " + modeString(h.Mode)
			target := filepath.Join(dir, "rootfs", p)
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, os.FileMode(h.Mode))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, r); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
}

func modeString(mode int64) string { return fmt.Sprintf("%04o", mode) }

// TestImageIsReproducible: the same inputs give the same image digest.
func TestImageIsReproducible(t *testing.T) {
	dir := t.TempDir()
	bin, certs := filepath.Join(dir, "cairn"), filepath.Join(dir, "ca.crt")
	for _, f := range []string{bin, certs} {
		if err := os.WriteFile(f, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{BinaryFile: bin, CACertsFile: certs, Tag: "cairn:x", Architecture: "amd64"}
	a, err := Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Build(cfg)
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatalf("digests differ: %s %s", da, db)
	}
	cfg.Version = "other"
	c, _ := Build(cfg)
	if dc, _ := c.Digest(); dc == da {
		t.Fatal("a different label gave the same digest")
	}
}

// TestDockerfileDescribesTheSameImage: the Dockerfile's final stage sets
// what Build sets.
func TestDockerfileDescribesTheSameImage(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages := strings.Split(string(text), "\nFROM ")
	final := stages[len(stages)-1]
	want := imageConfig(Config{})
	var ports []string
	for p := range want.ExposedPorts {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	for _, line := range []string{
		"scratch\n",
		"\nENV " + want.Env[0] + "\n",
		"\nWORKDIR " + want.WorkingDir + "\n",
		"\nVOLUME " + DataVolume + "\n",
		"\nEXPOSE " + strings.Join(ports, " ") + "\n",
		`ENTRYPOINT ["` + want.Entrypoint[0] + `"]`,
	} {
		if !strings.Contains(final, line) {
			t.Errorf("the Dockerfile's final stage lacks %q", strings.TrimSpace(line))
		}
	}
	build := stages[len(stages)-2]
	for _, path := range []string{BinaryPath, CACertsPath, DataVolume} {
		if !strings.Contains(build, "/rootfs"+path) && !strings.Contains(build, "/rootfs"+filepath.Dir(path)) {
			t.Errorf("the Dockerfile's build stage does not make %s", path)
		}
	}
	if !strings.Contains(build, "ln -s cairn /rootfs"+EtcdLinkPath) {
		t.Errorf("the Dockerfile does not link %s", EtcdLinkPath)
	}
}
