package actors

// NodeName names a node: its identity on the network ([Config].Name), the
// address of [Context.Send] and the sender an [OnMessage] handler is given.
// Letters, digits, '.', '_' and '-'.
//
// Node names and protocol names are distinct types so that swapping them
// does not compile: Send takes a NodeName, Tell a ProtocolName. Convert a
// string at the edge where a name comes in (a flag, a configuration file,
// a protobuf field): actors.NodeName(pb.From).
type NodeName string

// ProtocolName names a protocol, the same on every node ([Protocol].Name):
// the address of [Context.Tell], [Node.Tell] and [Call]. Each protocol
// package declares its own as a constant, Name:
//
//	const Name actors.ProtocolName = "raft"
//
// Letters, digits, '.', '_' and '-'.
type ProtocolName string
