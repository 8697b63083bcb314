package auth

import (
	"maps"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"golang.org/x/crypto/bcrypt"
)

// Info is who a request comes from, as its credentials were resolved:
// the user, and the auth revision they were resolved at. The zero Info
// means no credentials were presented. Writes carry it in their raft
// entry's header (Username, AuthRevision), so apply checks them against
// the auth state of that entry's index.
type Info struct {
	User     string
	Revision uint64
}

// Clone returns a copy of the store that later changes to s do not
// touch. Users and roles are replaced, never changed in place, when a
// request changes them, so the maps are copied and their values shared.
func (s *Store) Clone() *Store {
	return &Store{enabled: s.enabled, revision: s.revision, users: maps.Clone(s.users), roles: maps.Clone(s.roles)}
}

// CheckOp is etcd's permission check of one operation (READ or WRITE) on
// key, or on [key, rangeEnd): nothing to check while auth is disabled;
// otherwise a request without credentials fails with "user name is
// empty", one whose credentials were resolved before the last change of
// the auth state with "revision of auth store is old", an unknown user
// or a missing permission with "permission denied".
func (s *Store) CheckOp(info Info, key, rangeEnd []byte, op authpb.Permission_Type) error {
	if !s.enabled {
		return nil
	}
	if info.Revision == 0 {
		return rpctypes.ErrGRPCUserEmpty
	}
	if info.Revision < s.revision {
		return rpctypes.ErrGRPCAuthOldRevision
	}
	if len(key) == 0 {
		// A watch of every key from the start; the request checks refuse
		// empty keys elsewhere. Only a root user may read everything.
		key = []byte{0}
	}
	if !s.Permitted(info.User, key, rangeEnd, op) {
		return rpctypes.ErrGRPCPermissionDenied
	}
	return nil
}

// CheckAdmin is etcd's check of an operation only a root user may do
// (compaction, member changes, maintenance, auth management).
func (s *Store) CheckAdmin(info Info) error {
	if !s.enabled {
		return nil
	}
	if info.User == "" {
		return rpctypes.ErrGRPCUserEmpty
	}
	u, ok := s.users[info.User]
	if !ok {
		return rpctypes.ErrGRPCUserNotFound
	}
	if !hasRole(u, RootRole) {
		return rpctypes.ErrGRPCPermissionDenied
	}
	return nil
}

// HasRole reports whether user holds role.
func (s *Store) HasRole(user, role string) bool {
	u, ok := s.users[user]
	return ok && hasRole(u, role)
}

// CheckManagement is etcd's check of an auth management request by the
// user info, made when it applies: the requests that change the auth
// state, and the lists, are for root users only; a user may get itself
// and the roles it holds; AuthStatus is for anyone.
func (s *Store) CheckManagement(info Info, ir *pb.InternalRaftRequest) error {
	switch {
	case ir.AuthUserGet != nil:
		if err := s.CheckAdmin(info); err != nil && ir.AuthUserGet.Name != info.User {
			return err
		}
		return nil
	case ir.AuthRoleGet != nil:
		if err := s.CheckAdmin(info); err != nil && !s.HasRole(info.User, ir.AuthRoleGet.Role) {
			return err
		}
		return nil
	case ir.AuthStatus != nil:
		return nil
	}
	return s.CheckAdmin(info)
}

// CheckPassword checks name's password against its stored bcrypt hash
// and returns the auth revision it checked at. It is etcd's check
// before an Authenticate is proposed: costly (bcrypt), so it runs on the
// caller's goroutine against a published copy of the store, never in
// apply; apply then issues a token only if the revision is unchanged.
func (s *Store) CheckPassword(name, password string) (uint64, error) {
	if !s.enabled {
		return 0, rpctypes.ErrGRPCAuthNotEnabled
	}
	u, ok := s.users[name]
	if !ok {
		return 0, rpctypes.ErrGRPCAuthFailed
	}
	if u.Options != nil && u.Options.NoPassword {
		return 0, ErrNoPasswordUser
	}
	if bcrypt.CompareHashAndPassword(u.Password, []byte(password)) != nil {
		return 0, rpctypes.ErrGRPCAuthFailed
	}
	return s.revision, nil
}

// CheckAuthenticate decides, when an Authenticate entry applies, whether
// it may issue a token to name: auth must be enabled, the user must exist
// with a password, and the auth state must be the one the password was
// checked against (checkedRevision), or the check is stale and must be
// made again ("revision of auth store is old").
func (s *Store) CheckAuthenticate(name string, checkedRevision uint64) error {
	if !s.enabled {
		return rpctypes.ErrGRPCAuthNotEnabled
	}
	u, ok := s.users[name]
	if !ok || (u.Options != nil && u.Options.NoPassword) {
		return rpctypes.ErrGRPCAuthFailed
	}
	if checkedRevision != s.revision {
		return rpctypes.ErrGRPCAuthOldRevision
	}
	return nil
}

// InvalidatesTokens reports the user whose tokens an applied request
// invalidates (its deletion or a change of its password), as etcd does.
func InvalidatesTokens(ir *pb.InternalRaftRequest) (user string, ok bool) {
	switch {
	case ir.AuthUserDelete != nil:
		return ir.AuthUserDelete.Name, true
	case ir.AuthUserChangePassword != nil:
		return ir.AuthUserChangePassword.Name, true
	}
	return "", false
}
