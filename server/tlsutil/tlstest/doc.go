// Package tlstest makes throw-away certificate authorities, certificates
// and revocation lists for tests, so that no key is ever committed. Keys
// are ECDSA P-256, certificates valid from an hour ago for a day.
package tlstest
