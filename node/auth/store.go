package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Pebble keys of the auth state. Every key starts with "au"; the node's
// other metadata uses other two-byte prefixes.
var (
	keyEnabled  = []byte("aue")
	keyRevision = []byte("auv")
	userPrefix  = []byte("auu/")
	rolePrefix  = []byte("aur/")
)

// The root user and role: etcd's superuser, required to enable auth and
// protected while it is enabled.
const (
	RootUser = "root"
	RootRole = "root"
)

// initialRevision is the auth revision of a store never written: etcd
// commits revision 1 when it creates its auth store.
const initialRevision = 1

// rootPermission is what RoleGet reports for the root role: read and
// write on every key, though the role stores no permission.
func rootPermission() *authpb.Permission {
	return &authpb.Permission{PermType: authpb.Permission_READWRITE, Key: []byte{}, RangeEnd: []byte{0}}
}

// ErrNoPasswordUser is etcd's error for a password it cannot take (an
// undecodable hash); etcd's gRPC layer does not map it, so a client sees
// it with code Unknown.
var ErrNoPasswordUser = status.Error(codes.Unknown, "auth: authentication failed, password was given for no password user")

// errCorrupt marks stored auth state that cannot be decoded.
var errCorrupt = errors.New("auth: stored state corrupt")

// Store is the auth state of one member.
type Store struct {
	enabled bool
	// revision counts committed changes; every change that can alter a
	// permission decision increments it.
	revision uint64
	users    map[string]*authpb.User
	roles    map[string]*authpb.Role
}

// New returns the empty store of a new cluster.
func New() *Store {
	return &Store{revision: initialRevision, users: map[string]*authpb.User{}, roles: map[string]*authpb.Role{}}
}

// Load reads the auth state stored in r.
func Load(r pebble.Reader) (*Store, error) {
	s := New()
	enabled, err := get(r, keyEnabled)
	if err != nil {
		return nil, err
	}
	s.enabled = len(enabled) == 1 && enabled[0] == 1
	rev, err := get(r, keyRevision)
	if err != nil {
		return nil, err
	}
	if rev != nil {
		if len(rev) != 8 {
			return nil, fmt.Errorf("auth revision of %d bytes: %w", len(rev), errCorrupt)
		}
		s.revision = binary.BigEndian.Uint64(rev)
	}
	err = scan(r, userPrefix, func(v []byte) error {
		u := &authpb.User{}
		if err := proto.Unmarshal(v, u); err != nil {
			return fmt.Errorf("decode user: %v: %w", err, errCorrupt)
		}
		s.users[string(u.Name)] = u
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = scan(r, rolePrefix, func(v []byte) error {
		role := &authpb.Role{}
		if err := proto.Unmarshal(v, role); err != nil {
			return fmt.Errorf("decode role: %v: %w", err, errCorrupt)
		}
		s.roles[string(role.Name)] = role
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func get(r pebble.Reader, key []byte) ([]byte, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", key, err)
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

func scan(r pebble.Reader, prefix []byte, fn func(v []byte) error) error {
	upper := bytes.Clone(prefix)
	upper[len(upper)-1]++
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("scan %s: %w", prefix, err)
	}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err == nil {
			err = fn(v)
		}
		if err != nil {
			it.Close()
			return err
		}
	}
	return it.Close()
}

// Enabled reports whether auth is enabled.
func (s *Store) Enabled() bool { return s.enabled }

// Revision is the auth revision.
func (s *Store) Revision() uint64 { return s.revision }

// IsRequest reports whether ir is an auth request Apply takes.
func IsRequest(ir *pb.InternalRaftRequest) bool {
	return ir.AuthEnable != nil || ir.AuthDisable != nil || ir.AuthStatus != nil ||
		ir.AuthUserAdd != nil || ir.AuthUserDelete != nil || ir.AuthUserChangePassword != nil ||
		ir.AuthUserGrantRole != nil || ir.AuthUserGet != nil || ir.AuthUserRevokeRole != nil ||
		ir.AuthUserList != nil || ir.AuthRoleAdd != nil || ir.AuthRoleDelete != nil ||
		ir.AuthRoleGet != nil || ir.AuthRoleList != nil || ir.AuthRoleGrantPermission != nil ||
		ir.AuthRoleRevokePermission != nil
}

// Apply applies one committed auth request, writing what it changes to w.
// header is the response header to return (the keyspace's revision; the
// caller completes it). reqErr is the request's failure, an rpctypes error
// for the client; err is a failure of the member (a write to w failed).
func (s *Store) Apply(w pebble.Writer, ir *pb.InternalRaftRequest, header *pb.ResponseHeader) (resp proto.Message, reqErr, err error) {
	tx := &change{w: w}
	resp, reqErr = s.dispatch(tx, ir, header)
	if reqErr != nil {
		return nil, reqErr, nil
	}
	return resp, nil, tx.err
}

func (s *Store) dispatch(tx *change, ir *pb.InternalRaftRequest, h *pb.ResponseHeader) (proto.Message, error) {
	switch {
	case ir.AuthEnable != nil:
		return &pb.AuthEnableResponse{Header: h}, s.enable(tx)
	case ir.AuthDisable != nil:
		s.disable(tx)
		return &pb.AuthDisableResponse{Header: h}, nil
	case ir.AuthStatus != nil:
		return &pb.AuthStatusResponse{Header: h, Enabled: s.enabled, AuthRevision: s.revision}, nil
	case ir.AuthUserAdd != nil:
		return &pb.AuthUserAddResponse{Header: h}, s.userAdd(tx, ir.AuthUserAdd)
	case ir.AuthUserDelete != nil:
		return &pb.AuthUserDeleteResponse{Header: h}, s.userDelete(tx, ir.AuthUserDelete.Name)
	case ir.AuthUserChangePassword != nil:
		return &pb.AuthUserChangePasswordResponse{Header: h}, s.userChangePassword(tx, ir.AuthUserChangePassword)
	case ir.AuthUserGrantRole != nil:
		return &pb.AuthUserGrantRoleResponse{Header: h}, s.userGrantRole(tx, ir.AuthUserGrantRole.User, ir.AuthUserGrantRole.Role)
	case ir.AuthUserRevokeRole != nil:
		return &pb.AuthUserRevokeRoleResponse{Header: h}, s.userRevokeRole(tx, ir.AuthUserRevokeRole.Name, ir.AuthUserRevokeRole.Role)
	case ir.AuthUserGet != nil:
		return s.userGet(ir.AuthUserGet.Name, h)
	case ir.AuthUserList != nil:
		return &pb.AuthUserListResponse{Header: h, Users: sortedNames(s.users)}, nil
	case ir.AuthRoleAdd != nil:
		return &pb.AuthRoleAddResponse{Header: h}, s.roleAdd(tx, ir.AuthRoleAdd.Name)
	case ir.AuthRoleDelete != nil:
		return &pb.AuthRoleDeleteResponse{Header: h}, s.roleDelete(tx, ir.AuthRoleDelete.Role)
	case ir.AuthRoleGet != nil:
		return s.roleGet(ir.AuthRoleGet.Role, h)
	case ir.AuthRoleList != nil:
		return &pb.AuthRoleListResponse{Header: h, Roles: sortedNames(s.roles)}, nil
	case ir.AuthRoleGrantPermission != nil:
		return &pb.AuthRoleGrantPermissionResponse{Header: h}, s.roleGrantPermission(tx, ir.AuthRoleGrantPermission)
	case ir.AuthRoleRevokePermission != nil:
		r := ir.AuthRoleRevokePermission
		return &pb.AuthRoleRevokePermissionResponse{Header: h}, s.roleRevokePermission(tx, r.Role, r.Key, r.RangeEnd)
	}
	panic(fmt.Sprintf("auth: Apply of a request that is not an auth request: %v", ir))
}

// change collects the writes of one request; the first failed write is
// kept and fails the member.
type change struct {
	w   pebble.Writer
	err error
}

func (c *change) set(key []byte, m proto.Message) {
	if c.err != nil {
		return
	}
	v, err := proto.Marshal(m)
	if err != nil {
		c.err = fmt.Errorf("encode %T: %w", m, err)
		return
	}
	c.err = c.w.Set(key, v, nil)
}

func (c *change) delete(key []byte) {
	if c.err == nil {
		c.err = c.w.Delete(key, nil)
	}
}

func userKey(name string) []byte { return append(bytes.Clone(userPrefix), name...) }
func roleKey(name string) []byte { return append(bytes.Clone(rolePrefix), name...) }

func (s *Store) putUser(tx *change, u *authpb.User) {
	s.users[string(u.Name)] = u
	tx.set(userKey(string(u.Name)), u)
}

func (s *Store) putRole(tx *change, r *authpb.Role) {
	s.roles[string(r.Name)] = r
	tx.set(roleKey(string(r.Name)), r)
}

// commitRevision counts one change.
func (s *Store) commitRevision(tx *change) {
	s.revision++
	if tx.err == nil {
		tx.err = tx.w.Set(keyRevision, binary.BigEndian.AppendUint64(nil, s.revision), nil)
	}
}

func (s *Store) setEnabled(tx *change, enabled bool) {
	s.enabled = enabled
	v := byte(0)
	if enabled {
		v = 1
	}
	if tx.err == nil {
		tx.err = tx.w.Set(keyEnabled, []byte{v}, nil)
	}
}

// enable needs a root user holding the root role. Like etcd, enabling
// does not change the revision.
func (s *Store) enable(tx *change) error {
	if s.enabled {
		return nil
	}
	root, ok := s.users[RootUser]
	if !ok {
		return rpctypes.ErrGRPCRootUserNotExist
	}
	if !hasRole(root, RootRole) {
		return rpctypes.ErrGRPCRootRoleNotExist
	}
	s.setEnabled(tx, true)
	return nil
}

func (s *Store) disable(tx *change) {
	if !s.enabled {
		return
	}
	s.setEnabled(tx, false)
	s.commitRevision(tx)
}

func hasRole(u *authpb.User, role string) bool {
	_, found := slices.BinarySearch(u.Roles, role)
	return found
}

func (s *Store) userAdd(tx *change, r *pb.AuthUserAddRequest) error {
	if r.Name == "" {
		return rpctypes.ErrGRPCUserEmpty
	}
	if _, ok := s.users[r.Name]; ok {
		return rpctypes.ErrGRPCUserAlreadyExist
	}
	options := r.Options
	if options == nil {
		options = &authpb.UserAddOptions{}
	}
	u := &authpb.User{Name: []byte(r.Name), Options: options}
	if !options.NoPassword {
		hash, err := storedPassword(r.HashedPassword)
		if err != nil {
			return err
		}
		u.Password = hash
	}
	s.putUser(tx, u)
	s.commitRevision(tx)
	return nil
}

func (s *Store) userDelete(tx *change, name string) error {
	if s.enabled && name == RootUser {
		return rpctypes.ErrGRPCInvalidAuthMgmt
	}
	if _, ok := s.users[name]; !ok {
		return rpctypes.ErrGRPCUserNotFound
	}
	delete(s.users, name)
	tx.delete(userKey(name))
	s.commitRevision(tx)
	return nil
}

func (s *Store) userChangePassword(tx *change, r *pb.AuthUserChangePasswordRequest) error {
	u, ok := s.users[r.Name]
	if !ok {
		return rpctypes.ErrGRPCUserNotFound
	}
	updated := &authpb.User{Name: u.Name, Roles: u.Roles, Options: u.Options}
	if u.Options == nil || !u.Options.NoPassword {
		hash, err := storedPassword(r.HashedPassword)
		if err != nil {
			return err
		}
		updated.Password = hash
	}
	s.putUser(tx, updated)
	s.commitRevision(tx)
	return nil
}

// storedPassword decodes the base64 bcrypt hash a request carries.
func storedPassword(hashed string) ([]byte, error) {
	hash, err := base64.StdEncoding.DecodeString(hashed)
	if err != nil {
		return nil, ErrNoPasswordUser
	}
	return hash, nil
}

func (s *Store) userGrantRole(tx *change, user, role string) error {
	u, ok := s.users[user]
	if !ok {
		return rpctypes.ErrGRPCUserNotFound
	}
	if _, ok := s.roles[role]; !ok && role != RootRole {
		return rpctypes.ErrGRPCRoleNotFound
	}
	if hasRole(u, role) {
		return nil // granted already: etcd answers success and changes nothing
	}
	updated := proto.Clone(u).(*authpb.User)
	updated.Roles = append(updated.Roles, role)
	sort.Strings(updated.Roles)
	s.putUser(tx, updated)
	s.commitRevision(tx)
	return nil
}

func (s *Store) userRevokeRole(tx *change, user, role string) error {
	if s.enabled && user == RootUser && role == RootRole {
		return rpctypes.ErrGRPCInvalidAuthMgmt
	}
	u, ok := s.users[user]
	if !ok {
		return rpctypes.ErrGRPCUserNotFound
	}
	if !hasRole(u, role) {
		return rpctypes.ErrGRPCRoleNotGranted
	}
	updated := proto.Clone(u).(*authpb.User)
	updated.Roles = slices.DeleteFunc(updated.Roles, func(r string) bool { return r == role })
	s.putUser(tx, updated)
	s.commitRevision(tx)
	return nil
}

func (s *Store) userGet(name string, h *pb.ResponseHeader) (proto.Message, error) {
	u, ok := s.users[name]
	if !ok {
		return nil, rpctypes.ErrGRPCUserNotFound
	}
	return &pb.AuthUserGetResponse{Header: h, Roles: slices.Clone(u.Roles)}, nil
}

func (s *Store) roleAdd(tx *change, name string) error {
	if name == "" {
		return rpctypes.ErrGRPCRoleEmpty
	}
	if _, ok := s.roles[name]; ok {
		return rpctypes.ErrGRPCRoleAlreadyExist
	}
	s.putRole(tx, &authpb.Role{Name: []byte(name)})
	s.commitRevision(tx)
	return nil
}

// roleDelete removes the role and takes it from every user holding it.
func (s *Store) roleDelete(tx *change, name string) error {
	if s.enabled && name == RootRole {
		return rpctypes.ErrGRPCInvalidAuthMgmt
	}
	if _, ok := s.roles[name]; !ok {
		return rpctypes.ErrGRPCRoleNotFound
	}
	delete(s.roles, name)
	tx.delete(roleKey(name))
	for _, userName := range sortedNames(s.users) {
		u := s.users[userName]
		if !hasRole(u, name) {
			continue
		}
		updated := proto.Clone(u).(*authpb.User)
		updated.Roles = slices.DeleteFunc(updated.Roles, func(r string) bool { return r == name })
		s.putUser(tx, updated)
	}
	s.commitRevision(tx)
	return nil
}

func (s *Store) roleGet(name string, h *pb.ResponseHeader) (proto.Message, error) {
	r, ok := s.roles[name]
	if !ok {
		return nil, rpctypes.ErrGRPCRoleNotFound
	}
	resp := &pb.AuthRoleGetResponse{Header: h}
	if name == RootRole {
		resp.Perm = []*authpb.Permission{rootPermission()}
		return resp, nil
	}
	for _, p := range r.KeyPermission {
		resp.Perm = append(resp.Perm, proto.Clone(p).(*authpb.Permission))
	}
	return resp, nil
}

// roleGrantPermission adds a permission, or changes the type of the one
// with the same key and range end. Permissions stay sorted by key.
func (s *Store) roleGrantPermission(tx *change, r *pb.AuthRoleGrantPermissionRequest) error {
	if r.Perm == nil {
		return rpctypes.ErrGRPCPermissionNotGiven
	}
	if !ValidPermissionRange(r.Perm.Key, r.Perm.RangeEnd) {
		return rpctypes.ErrGRPCInvalidAuthMgmt
	}
	role, ok := s.roles[r.Name]
	if !ok {
		return rpctypes.ErrGRPCRoleNotFound
	}
	updated := proto.Clone(role).(*authpb.Role)
	perms := updated.KeyPermission
	// Like etcd, only the first permission with the key is compared.
	i := sort.Search(len(perms), func(i int) bool { return bytes.Compare(perms[i].Key, r.Perm.Key) >= 0 })
	if i < len(perms) && bytes.Equal(perms[i].Key, r.Perm.Key) && bytes.Equal(perms[i].RangeEnd, r.Perm.RangeEnd) {
		perms[i].PermType = r.Perm.PermType
	} else {
		perms = append(perms, &authpb.Permission{Key: r.Perm.Key, RangeEnd: r.Perm.RangeEnd, PermType: r.Perm.PermType})
		sort.SliceStable(perms, func(a, b int) bool { return bytes.Compare(perms[a].Key, perms[b].Key) < 0 })
		updated.KeyPermission = perms
	}
	s.putRole(tx, updated)
	s.commitRevision(tx)
	return nil
}

func (s *Store) roleRevokePermission(tx *change, name string, key, rangeEnd []byte) error {
	role, ok := s.roles[name]
	if !ok {
		return rpctypes.ErrGRPCRoleNotFound
	}
	updated := &authpb.Role{Name: role.Name}
	for _, p := range role.KeyPermission {
		if !bytes.Equal(p.Key, key) || !bytes.Equal(p.RangeEnd, rangeEnd) {
			updated.KeyPermission = append(updated.KeyPermission, p)
		}
	}
	if len(updated.KeyPermission) == len(role.KeyPermission) {
		return rpctypes.ErrGRPCPermissionNotGranted
	}
	s.putRole(tx, updated)
	s.commitRevision(tx)
	return nil
}

// ValidPermissionRange reports whether a permission may be granted on
// [key, rangeEnd): a non-empty key, and a range end that is empty (the
// key alone), "\x00" (every key from key on), or after key.
func ValidPermissionRange(key, rangeEnd []byte) bool {
	if len(key) == 0 {
		return false
	}
	if len(rangeEnd) == 0 || bytes.Equal(rangeEnd, []byte{0}) {
		return true
	}
	return bytes.Compare(key, rangeEnd) < 0
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
