package auth

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"go.etcd.io/etcd/api/v3/authpb"
	"pgregory.net/rapid"
)

// The property test draws keys of one to keyLenMax letters of keyAlphabet.
// Every bound a permission or a query can have is then such a key, the key
// followed by "\x00" (a point's end), or past every key; so any gap in the
// permissions inside a query starts at one of universe's keys, and checking
// those keys alone is exact.
const (
	keyAlphabet = "ab"
	keyLenMax   = 3
)

var universe = func() [][]byte {
	var keys [][]byte
	var grow func(prefix []byte)
	grow = func(prefix []byte) {
		if len(prefix) == keyLenMax {
			return
		}
		for _, c := range []byte(keyAlphabet) {
			k := append(bytes.Clone(prefix), c)
			keys = append(keys, k, append(bytes.Clone(k), 0))
			grow(k)
		}
	}
	grow(nil)
	return keys
}()

// naiveHolds reports whether permission p covers key k, from its
// definition.
func naiveHolds(p *authpb.Permission, k []byte) bool {
	switch {
	case len(p.RangeEnd) == 0:
		return bytes.Equal(k, p.Key)
	case bytes.Equal(p.RangeEnd, []byte{0}):
		return bytes.Compare(k, p.Key) >= 0
	}
	return bytes.Compare(k, p.Key) >= 0 && bytes.Compare(k, p.RangeEnd) < 0
}

// naivePermitted is Permitted written from its specification, key by key.
func naivePermitted(s *Store, user string, key, rangeEnd []byte, op authpb.Permission_Type) bool {
	u, ok := s.users[user]
	if !ok {
		return false
	}
	for _, r := range u.Roles {
		if r == RootRole {
			return true
		}
	}
	allowed := func(k []byte) bool {
		for _, r := range u.Roles {
			role, ok := s.roles[r]
			if !ok {
				continue
			}
			for _, p := range role.KeyPermission {
				if (p.PermType == op || p.PermType == authpb.READWRITE) && naiveHolds(p, k) {
					return true
				}
			}
		}
		return false
	}
	if len(rangeEnd) == 0 {
		return allowed(key)
	}
	for _, k := range universe {
		inQuery := bytes.Compare(k, key) >= 0 && (bytes.Equal(rangeEnd, []byte{0}) || bytes.Compare(k, rangeEnd) < 0)
		if inQuery && !allowed(k) {
			return false
		}
	}
	return true
}

func drawKey(t *rapid.T, label string) []byte {
	return []byte(rapid.StringOfN(rapid.RuneFrom([]rune(keyAlphabet)), 1, keyLenMax, -1).Draw(t, label))
}

// drawRange draws a range end for key: none (the key alone), "\x00"
// (from the key on), or a key after it.
func drawRange(t *rapid.T, key []byte, label string) []byte {
	switch rapid.IntRange(0, 2).Draw(t, label+" kind") {
	case 0:
		return nil
	case 1:
		return []byte{0}
	}
	end := drawKey(t, label)
	if bytes.Compare(end, key) <= 0 {
		return nil
	}
	return end
}

var permTypes = []authpb.Permission_Type{authpb.READ, authpb.WRITE, authpb.READWRITE}

// drawStore draws roles r0..r2 with permissions and a user "u" holding
// some of them, maybe the root role, maybe a role that does not exist.
func drawStore(t *rapid.T) *Store {
	s := New()
	u := &authpb.User{Name: []byte("u")}
	for i := range 3 {
		name := fmt.Sprintf("r%d", i)
		role := &authpb.Role{Name: []byte(name)}
		for j := range rapid.IntRange(0, 4).Draw(t, name+" permissions") {
			label := fmt.Sprintf("%s perm %d", name, j)
			key := drawKey(t, label+" key")
			role.KeyPermission = append(role.KeyPermission, &authpb.Permission{Key: key,
				RangeEnd: drawRange(t, key, label+" end"), PermType: rapid.SampledFrom(permTypes).Draw(t, label+" type")})
		}
		s.roles[name] = role
		if rapid.Bool().Draw(t, "u holds "+name) {
			u.Roles = append(u.Roles, name)
		}
	}
	if rapid.IntRange(0, 9).Draw(t, "u is root") == 0 {
		u.Roles = append(u.Roles, RootRole)
	}
	if rapid.Bool().Draw(t, "u holds a deleted role") {
		u.Roles = append(u.Roles, "deleted")
	}
	slices.Sort(u.Roles) // as UserGrantRole keeps them
	s.users["u"] = u
	return s
}

func TestPermittedMatchesNaiveModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := drawStore(t)
		user := rapid.SampledFrom([]string{"u", "u", "u", "nobody"}).Draw(t, "user")
		key := drawKey(t, "query key")
		rangeEnd := drawRange(t, key, "query end")
		op := rapid.SampledFrom([]authpb.Permission_Type{authpb.READ, authpb.WRITE}).Draw(t, "op")
		got := s.Permitted(user, key, rangeEnd, op)
		want := naivePermitted(s, user, key, rangeEnd, op)
		if got != want {
			t.Fatalf("Permitted(%s, %q, %q, %v) = %v, the naive model says %v", user, key, rangeEnd, op, got, want)
		}
	})
}

// TestPermittedCases pins cases where a plausible checker goes wrong.
func TestPermittedCases(t *testing.T) {
	s := New()
	s.roles["r"] = &authpb.Role{Name: []byte("r"), KeyPermission: []*authpb.Permission{
		{Key: []byte("a"), RangeEnd: []byte("c"), PermType: authpb.READ},
		{Key: []byte("c"), RangeEnd: []byte("e"), PermType: authpb.READWRITE},
		{Key: []byte("k"), PermType: authpb.WRITE},
		{Key: []byte("p/"), RangeEnd: []byte("p0"), PermType: authpb.READ},
		{Key: []byte("x"), RangeEnd: []byte{0}, PermType: authpb.WRITE},
	}}
	s.users["u"] = &authpb.User{Name: []byte("u"), Roles: []string{"r"}}
	s.users["root"] = &authpb.User{Name: []byte("root"), Roles: []string{RootRole}}
	cases := []struct {
		user          string
		key, rangeEnd string
		op            authpb.Permission_Type
		want          bool
	}{
		{"u", "b", "", authpb.READ, true},
		{"u", "b", "", authpb.WRITE, false},
		{"u", "a", "e", authpb.READ, true},      // two touching permissions cover it
		{"u", "a", "e\x00", authpb.READ, false}, // one key past them
		{"u", "c", "e", authpb.WRITE, true},
		{"u", "b", "d", authpb.WRITE, false},    // b is read-only
		{"u", "k", "", authpb.WRITE, true},      // the key alone
		{"u", "k", "k\x00", authpb.WRITE, true}, // the range holding only k
		{"u", "k", "l", authpb.WRITE, false},    // k/... is not k
		{"u", "p/", "p0", authpb.READ, true},    // the prefix p/
		{"u", "p/a", "p/b", authpb.READ, true},
		{"u", "p", "p0", authpb.READ, false},
		{"u", "x", "\x00", authpb.WRITE, true}, // from x on
		{"u", "w", "\x00", authpb.WRITE, false},
		{"u", "y", "z", authpb.WRITE, true},
		{"root", "a", "\x00", authpb.WRITE, true},
		{"nobody", "b", "", authpb.READ, false},
	}
	for _, c := range cases {
		got := s.Permitted(c.user, []byte(c.key), []byte(c.rangeEnd), c.op)
		if got != c.want {
			t.Errorf("Permitted(%s, %q, %q, %v) = %v, want %v", c.user, c.key, c.rangeEnd, c.op, got, c.want)
		}
	}
}
