package messages

// Regenerate the Go code of every .proto file in this folder. Needs protoc
// (Debian: apt-get install protobuf-compiler); protoc-gen-go is built from the
// version of google.golang.org/protobuf pinned in go.mod.
//go:generate sh -c "go build -o \"${TMPDIR:-/tmp}/troupe-protoc-gen-go\" google.golang.org/protobuf/cmd/protoc-gen-go && protoc --plugin=protoc-gen-go=\"${TMPDIR:-/tmp}/troupe-protoc-gen-go\" --go_out=. --go_opt=paths=source_relative -I . *.proto"
