package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// DefaultSelfSignedCertValidityYears is --self-signed-cert-validity's
// default, etcd's.
const DefaultSelfSignedCertValidityYears = 1

// selfSignedSerialBits is the size of a generated certificate's random
// serial number.
const selfSignedSerialBits = 128

// SelfCert makes sure dir holds cert.pem and key.pem, a self-signed
// certificate for hosts (host:port strings; the ports are dropped), valid
// for validityYears, and returns their paths. Existing files are reused,
// as etcd reuses them across restarts; --auto-tls keeps them in
// <data-dir>/fixtures/client and --peer-auto-tls in .../peer. The files
// are written through fs, the member's filesystem, and synced with their
// directory.
func SelfCert(fs vfs.FS, dir string, hosts []string, validityYears uint) (certFile, keyFile string, err error) {
	if validityYears == 0 {
		return "", "", errors.New("selfSignedCertValidity is invalid,it should be greater than 0")
	}
	if err := fs.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("create certificate directory: %w", err)
	}
	if certFile, err = filepath.Abs(filepath.Join(dir, "cert.pem")); err != nil {
		return "", "", err
	}
	if keyFile, err = filepath.Abs(filepath.Join(dir, "key.pem")); err != nil {
		return "", "", err
	}
	_, certErr := fs.Stat(certFile)
	_, keyErr := fs.Stat(keyFile)
	if certErr == nil && keyErr == nil {
		return certFile, keyFile, nil
	}
	certPEM, keyPEM, err := selfSigned(hosts, time.Now(), validityYears)
	if err != nil {
		return "", "", err
	}
	if err := writeSynced(fs, keyFile, keyPEM); err != nil {
		return "", "", err
	}
	if err := writeSynced(fs, certFile, certPEM); err != nil {
		return "", "", err
	}
	d, err := fs.OpenDir(dir)
	if err != nil {
		return "", "", err
	}
	if err := errors.Join(d.Sync(), d.Close()); err != nil {
		return "", "", fmt.Errorf("sync certificate directory: %w", err)
	}
	return certFile, keyFile, nil
}

// writeSynced writes data to a new file at path and syncs it.
func writeSynced(fs vfs.FS, path string, data []byte) error {
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return errors.Join(err, f.Close())
	}
	return errors.Join(f.Sync(), f.Close())
}

// selfSigned makes a P-521 ECDSA key (etcd's choice) and a CA certificate
// for it usable by servers and clients.
func selfSigned(hosts []string, notBefore time.Time, validityYears uint) (certPEM, keyPEM []byte, err error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), selfSignedSerialBits))
	if err != nil {
		return nil, nil, err
	}
	tmpl := x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"cairn"}},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(time.Duration(validityYears) * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, hostPort := range hosts {
		host, _, err := net.SplitHostPort(hostPort)
		if err != nil {
			host = hostPort
		}
		if ip := net.ParseIP(host); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if host != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, host)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}
