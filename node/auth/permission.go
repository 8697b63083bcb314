package auth

import (
	"bytes"
	"fmt"
	"slices"

	"go.etcd.io/etcd/api/v3/authpb"
)

// keyInterval is a half-open interval of keys [begin, end); an empty end
// is past every key.
type keyInterval struct {
	begin, end []byte
}

// compareBound orders interval bounds: byte order, with the empty bound
// after every key (etcd's "affine" comparison; keys are never empty).
func compareBound(a, b []byte) int {
	switch {
	case len(a) == 0 && len(b) == 0:
		return 0
	case len(a) == 0:
		return 1
	case len(b) == 0:
		return -1
	}
	return bytes.Compare(a, b)
}

// permissionInterval is the keys a permission covers: its key alone when
// it has no range end, every key from it on for "\x00", else [key, end).
func permissionInterval(p *authpb.Permission) keyInterval {
	switch {
	case len(p.RangeEnd) == 0:
		return pointInterval(p.Key)
	case bytes.Equal(p.RangeEnd, []byte{0}):
		return keyInterval{begin: p.Key}
	}
	return keyInterval{begin: p.Key, end: p.RangeEnd}
}

// pointInterval holds exactly key: key+"\x00" is the next key.
func pointInterval(key []byte) keyInterval {
	return keyInterval{begin: key, end: append(bytes.Clone(key), 0)}
}

func (i keyInterval) intersects(o keyInterval) bool {
	return compareBound(i.begin, o.end) < 0 && compareBound(o.begin, i.end) < 0
}

// grants reports whether a permission of type have allows an operation
// of type want (READ or WRITE).
func grants(have, want authpb.Permission_Type) bool {
	return have == want || have == authpb.READWRITE
}

// Permitted reports whether user may do op (authpb.READ or authpb.WRITE)
// on the key, when rangeEnd is empty, or else on every key of
// [key, rangeEnd) ("\x00": every key from key on), by etcd 3.7.3's rule:
// a user holding the root role may do anything; otherwise the union of
// the user's roles' permissions of that type must cover the keys. An
// unknown user may do nothing. key must not be empty (the request checks
// refuse empty keys before permissions are checked).
//
// Whether auth is enabled, and which user a request comes from, are the
// caller's to decide.
func (s *Store) Permitted(user string, key, rangeEnd []byte, op authpb.Permission_Type) bool {
	if op != authpb.READ && op != authpb.WRITE {
		panic(fmt.Sprintf("auth: permission check for %v, not READ or WRITE", op))
	}
	u, ok := s.users[user]
	if !ok {
		return false
	}
	if hasRole(u, RootRole) {
		return true
	}
	held := s.intervals(u, op)
	if len(rangeEnd) == 0 {
		point := pointInterval(key)
		return slices.ContainsFunc(held, point.intersects)
	}
	query := keyInterval{begin: key, end: rangeEnd}
	if bytes.Equal(rangeEnd, []byte{0}) {
		query.end = nil
	}
	return covers(held, query)
}

// intervals are the key intervals of u's permissions of type op; a role
// deleted since it was granted grants nothing.
func (s *Store) intervals(u *authpb.User, op authpb.Permission_Type) []keyInterval {
	var held []keyInterval
	for _, roleName := range u.Roles {
		role, ok := s.roles[roleName]
		if !ok {
			continue
		}
		for _, p := range role.KeyPermission {
			if grants(p.PermType, op) {
				held = append(held, permissionInterval(p))
			}
		}
	}
	return held
}

// covers reports whether the intervals that meet query, taken in order
// of their beginnings, leave no gap and span it from its beginning to its
// end (etcd's interval-tree Contains).
func covers(held []keyInterval, query keyInterval) bool {
	var meeting []keyInterval
	for _, i := range held {
		if i.intersects(query) {
			meeting = append(meeting, i)
		}
	}
	if len(meeting) == 0 {
		return false
	}
	slices.SortFunc(meeting, func(a, b keyInterval) int { return compareBound(a.begin, b.begin) })
	reach := meeting[0].end
	for _, i := range meeting[1:] {
		if compareBound(reach, i.begin) < 0 {
			return false
		}
		if compareBound(i.end, reach) > 0 {
			reach = i.end
		}
	}
	return compareBound(meeting[0].begin, query.begin) <= 0 && compareBound(reach, query.end) >= 0
}
