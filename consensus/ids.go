package consensus

import "github.com/troupe-dev/troupe/actors"

// ID is the raft id of a node: the 64-bit FNV-1a hash of its name (1 if the
// hash is 0, which raft reserves for "none"). Every node computes the same id
// for a name with no coordination, and a node keeps its id across restarts
// and addresses because its name does. Config.Validate refuses Peers whose
// ids collide; a message whose sender's id is not the hash of the sending
// node's name is dropped, except a proposal or read-index request a
// follower forwards on behalf of another member (inbound.go).
func ID(name actors.NodeName) uint64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(name); i++ {
		h = (h ^ uint64(name[i])) * 1099511628211
	}
	if h == 0 {
		h = 1
	}
	return h
}
