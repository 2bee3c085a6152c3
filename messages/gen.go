package messages

// Regenerate the Go code of every .proto file under troupe/ into this
// folder. Needs protoc (Debian: apt-get install protobuf-compiler);
// protoc-gen-go is built from the version of google.golang.org/protobuf
// pinned in go.mod. Each file lives at the path of its proto package
// (troupe/commit/v1/commit.proto for troupe.commit.v1): that path is the
// name it is registered under in the process-wide registry, where a bare
// "commit.proto" or "gossip.proto" collides with a user's or a library's
// file of the same name (protoactor-go's cluster registers gossip.proto).
//go:generate sh -c "go build -o \"${TMPDIR:-/tmp}/troupe-protoc-gen-go\" google.golang.org/protobuf/cmd/protoc-gen-go && protoc --plugin=protoc-gen-go=\"${TMPDIR:-/tmp}/troupe-protoc-gen-go\" --go_out=. --go_opt=module=github.com/troupe-dev/troupe/messages -I . $(find troupe -name '*.proto' | sort)"
