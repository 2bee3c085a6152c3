package remote

// MaxGRPCMessage is the largest gRPC message a node accepts.
const MaxGRPCMessage = maxGRPCMessage

// WriterBatch is how many batches protoactor puts in one gRPC message.
const WriterBatch = writerBatch
