package tlsutil

import (
	"crypto/tls"
	"fmt"
)

// Version names accepted by --tls-min-version and --tls-max-version, as
// etcd spells them. The empty name lets Go choose.
const (
	VersionTLS12 = "TLS1.2"
	VersionTLS13 = "TLS1.3"
)

// DefaultMinVersion is --tls-min-version's default, etcd's.
const DefaultMinVersion = VersionTLS12

// ParseVersion turns a version name into its crypto/tls constant; "" is 0
// (Go's choice).
func ParseVersion(name string) (uint16, error) {
	switch name {
	case "":
		return 0, nil
	case VersionTLS12:
		return tls.VersionTLS12, nil
	case VersionTLS13:
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("unexpected TLS version %q (must be one of: TLS1.2, TLS1.3)", name)
}

// ParseCipherSuites turns the names of --cipher-suites (Go's names, secure
// and insecure, plus the two CHACHA20 aliases etcd accepts) into IDs, in
// order: the order is the server's preference.
func ParseCipherSuites(names []string) ([]uint16, error) {
	ids := make([]uint16, 0, len(names))
	for _, name := range names {
		id, ok := cipherSuiteID(name)
		if !ok {
			return nil, fmt.Errorf("unexpected TLS cipher suite %q", name)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func cipherSuiteID(name string) (uint16, bool) {
	for _, suites := range [][]*tls.CipherSuite{tls.CipherSuites(), tls.InsecureCipherSuites()} {
		for _, s := range suites {
			if s.Name == name {
				return s.ID, true
			}
		}
	}
	switch name {
	case "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305":
		return tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, true
	case "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305":
		return tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, true
	}
	return 0, false
}

// Versions checks --tls-min-version, --tls-max-version and --cipher-suites
// together, as etcd does at start-up, and returns the versions' constants.
func Versions(minName, maxName string, cipherSuites []uint16) (minVersion, maxVersion uint16, err error) {
	if minVersion, err = ParseVersion(minName); err != nil {
		return 0, 0, err
	}
	if maxVersion, err = ParseVersion(maxName); err != nil {
		return 0, 0, err
	}
	if maxVersion != 0 && minVersion > maxVersion {
		return 0, 0, fmt.Errorf("min version (%s) is greater than max version (%s)", minName, maxName)
	}
	// Go does not let TLS 1.3's suites be chosen.
	if minVersion == tls.VersionTLS13 && len(cipherSuites) > 0 {
		return 0, 0, fmt.Errorf("cipher suites cannot be configured when only TLS1.3 is enabled")
	}
	return minVersion, maxVersion, nil
}
