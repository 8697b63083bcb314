package mvcc

import pb "go.etcd.io/etcd/api/v3/etcdserverpb"

// RangeChunk serves one chunk of a streamed range (etcd 3.7's RangeStream):
// a range like Range, with its revision checks, limit, sort and keys_only,
// but without the range's total count. Its Count is the number of keys the
// chunk looked at (at most limit+1), as etcd's chunk reads count, so a
// chunk costs its own keys, not a walk of the rest of the range. Safe for
// concurrent use.
func (s *Store) RangeChunk(req *pb.RangeRequest) (_ *pb.RangeResponse, err error) {
	src, st, err := s.openSource()
	if err != nil {
		return nil, err
	}
	defer closeSource(src, &err)
	return rangeAtCounting(src, st.rev, st.compactRev, req, false)
}
