package remote

// MaxGRPCMessage is the largest gRPC message a node accepts.
const MaxGRPCMessage = maxGRPCMessage
