package cluster

import (
	"cmp"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Member is one entry of --initial-cluster.
type Member struct {
	ID       uint64
	Name     string
	PeerURLs []string
}

// Cluster is the founding membership of a cluster.
type Cluster struct {
	ID      uint64
	Token   string
	Members []Member // sorted by ID
}

// Parse reads --initial-cluster ("name=url,name=url,...") with the
// --initial-cluster-token. A name may appear several times, once per peer
// URL.
func Parse(initialCluster, token string) (Cluster, error) {
	urlsByName := map[string][]string{}
	var names []string
	for _, part := range strings.Split(initialCluster, ",") {
		name, rawURL, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || name == "" || rawURL == "" {
			return Cluster{}, fmt.Errorf("--initial-cluster: %q is not name=url", part)
		}
		if err := checkURL(rawURL); err != nil {
			return Cluster{}, fmt.Errorf("--initial-cluster: %w", err)
		}
		if _, seen := urlsByName[name]; !seen {
			names = append(names, name)
		}
		urlsByName[name] = append(urlsByName[name], rawURL)
	}
	c := Cluster{Token: token}
	for _, name := range names {
		c.Members = append(c.Members, Member{ID: MemberID(urlsByName[name], token), Name: name, PeerURLs: urlsByName[name]})
	}
	slices.SortFunc(c.Members, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	c.ID = clusterID(c.Members)
	return c, nil
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("invalid URL %q: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("URL scheme must be http or https: %q", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("URL has no host: %q", raw)
	}
	return nil
}

// MemberID is the ID a member with these peer URLs gets in a cluster with
// this token: the first eight bytes of SHA-1 over the sorted URLs and the
// token.
func MemberID(peerURLs []string, token string) uint64 {
	sorted := slices.Clone(peerURLs)
	slices.Sort(sorted)
	sum := sha1.Sum([]byte(strings.Join(sorted, "") + token))
	return binary.BigEndian.Uint64(sum[:8])
}

// clusterID is the first eight bytes of SHA-1 over the sorted member IDs.
func clusterID(members []Member) uint64 {
	b := make([]byte, 0, 8*len(members))
	for _, m := range members {
		b = binary.BigEndian.AppendUint64(b, m.ID)
	}
	sum := sha1.Sum(b)
	return binary.BigEndian.Uint64(sum[:8])
}

// Find returns the member called name.
func (c Cluster) Find(name string) (Member, bool) {
	i := slices.IndexFunc(c.Members, func(m Member) bool { return m.Name == name })
	if i < 0 {
		return Member{}, false
	}
	return c.Members[i], true
}

// IDs returns the member IDs in ascending order.
func (c Cluster) IDs() []uint64 {
	ids := make([]uint64, len(c.Members))
	for i, m := range c.Members {
		ids[i] = m.ID
	}
	return ids
}

// MemberIDAt is the ID MemberAdd gives a new member: like MemberID, with
// the time added, so re-adding the same peer URLs later gets a new ID (raft
// must never see a removed ID come back).
func MemberIDAt(peerURLs []string, token string, unixSeconds int64) uint64 {
	return MemberID(peerURLs, fmt.Sprintf("%s%d", token, unixSeconds))
}

// CheckPeerURLs validates URLs a client asks to add or update.
func CheckPeerURLs(urls []string) error {
	if len(urls) == 0 {
		return errors.New("no peer URL")
	}
	for _, u := range urls {
		if err := checkURL(u); err != nil {
			return err
		}
	}
	return nil
}
