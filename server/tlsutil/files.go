package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
)

// watchedFiles is a value parsed from a few files, parsed again when one of
// them changes on disk. Safe for concurrent use.
type watchedFiles[T any] struct {
	paths  []string
	parse  func(contents [][]byte) (T, error)
	logger *slog.Logger
	what   string // names the value in log lines: "certificate", ...

	mu sync.Mutex
	// stamps are the files' states when value was parsed, one per path;
	// guarded by mu.
	stamps []os.FileInfo
	// value is the last value parsed successfully; guarded by mu.
	value T
}

// loadWatched parses the files once; an error here stops the member from
// starting, as etcd refuses to start on unreadable files.
func loadWatched[T any](what string, logger *slog.Logger, parse func([][]byte) (T, error), paths ...string) (*watchedFiles[T], error) {
	w := &watchedFiles[T]{paths: paths, parse: parse, logger: logger, what: what}
	stamps, err := statAll(paths)
	if err != nil {
		return nil, err
	}
	v, err := readAndParse(paths, parse)
	if err != nil {
		return nil, err
	}
	w.stamps, w.value = stamps, v
	return w, nil
}

// get returns the value, parsed again first if a file changed since. A
// change that cannot be read or parsed (a rotation half written, say) is
// logged and the last good value returned; the next call tries again.
func (w *watchedFiles[T]) get() T {
	w.mu.Lock()
	defer w.mu.Unlock()
	stamps, err := statAll(w.paths)
	if err != nil {
		w.logger.Warn("cannot read TLS file; keeping the last one loaded", "what", w.what, "error", err.Error())
		return w.value
	}
	if sameStamps(stamps, w.stamps) {
		return w.value
	}
	v, err := readAndParse(w.paths, w.parse)
	if err != nil {
		w.logger.Warn("cannot load changed TLS file; keeping the last one loaded", "what", w.what, "files", w.paths, "error", err.Error())
		return w.value
	}
	w.stamps, w.value = stamps, v
	w.logger.Info("reloaded changed TLS file", "what", w.what, "files", w.paths)
	return v
}

func statAll(paths []string) ([]os.FileInfo, error) {
	stamps := make([]os.FileInfo, len(paths))
	for i, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		stamps[i] = st
	}
	return stamps, nil
}

// sameStamps reports whether no file changed: same inode, size and
// modification time.
func sameStamps(a, b []os.FileInfo) bool {
	for i := range a {
		if !os.SameFile(a[i], b[i]) || a[i].Size() != b[i].Size() || !a[i].ModTime().Equal(b[i].ModTime()) {
			return false
		}
	}
	return true
}

func readAndParse[T any](paths []string, parse func([][]byte) (T, error)) (T, error) {
	contents := make([][]byte, len(paths))
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			var zero T
			return zero, err
		}
		contents[i] = b
	}
	return parse(contents)
}

// parseKeyPair reads a PEM certificate chain and its key.
func parseKeyPair(contents [][]byte) (*tls.Certificate, error) {
	cert, err := tls.X509KeyPair(contents[0], contents[1])
	if err != nil {
		return nil, err
	}
	return &cert, nil
}

// parseCertPool reads a PEM bundle of CA certificates.
func parseCertPool(contents [][]byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	rest := contents[0]
	count := 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse trusted CA certificate: %w", err)
		}
		pool.AddCert(cert)
		count++
	}
	if count == 0 {
		return nil, errors.New("no certificate in the trusted CA file")
	}
	return pool, nil
}

// revokedSerials are the serial numbers a CRL revokes, as big-endian bytes.
type revokedSerials map[string]bool

// parseCRL reads a certificate revocation list, DER (what etcd reads) or
// PEM. Like etcd, it does not check the list's signature or dates: the
// file is the operator's.
func parseCRL(contents [][]byte) (revokedSerials, error) {
	der := contents[0]
	if block, _ := pem.Decode(der); block != nil && block.Type == "X509 CRL" {
		der = block.Bytes
	}
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("parse CRL: %w", err)
	}
	revoked := make(revokedSerials, len(list.RevokedCertificateEntries))
	for _, e := range list.RevokedCertificateEntries {
		revoked[string(e.SerialNumber.Bytes())] = true
	}
	return revoked, nil
}

// check refuses a chain that holds a revoked certificate.
func (r revokedSerials) check(chain []*x509.Certificate) error {
	for _, c := range chain {
		if r[string(c.SerialNumber.Bytes())] {
			return fmt.Errorf("certificate serial %x revoked", c.SerialNumber.Bytes())
		}
	}
	return nil
}
