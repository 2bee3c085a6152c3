package messages_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/asynkron/protoactor-go/cluster" // registers its own .proto files, gossip.proto among them
	_ "github.com/troupe-dev/troupe/messages"
)

// TestFilesAreRegisteredUnderTheirPackagePath: the registry is
// process-wide and keyed by file path; a bare "gossip.proto" of a user's
// collides with protoactor's and panics at start. Every file of Troupe's
// lives at the path of its package.
func TestFilesAreRegisteredUnderTheirPackagePath(t *testing.T) {
	n := 0
	protoregistry.GlobalFiles.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		pkg := string(f.Package())
		if pkg != "troupe" && !strings.HasPrefix(pkg, "troupe.") {
			return true
		}
		n++
		if dir := strings.ReplaceAll(pkg, ".", "/") + "/"; !strings.HasPrefix(f.Path(), dir) {
			t.Errorf("%s (package %s) is registered as %q; want it under %q", f.Path(), pkg, f.Path(), dir)
		}
		return true
	})
	if n < 9 {
		t.Fatalf("found %d of Troupe's proto files in the registry, want the 9 of package messages", n)
	}
}
