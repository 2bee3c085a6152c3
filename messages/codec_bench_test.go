package messages

import (
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"
)

type benchPing struct{ N uint64 }

// BenchmarkCodec encodes and decodes Ping{N: 1} as protobuf and as a
// registered struct (CBOR), one message at a time.
func BenchmarkCodec(b *testing.B) {
	var r registry
	if err := r.register(reflect.TypeFor[benchPing](), "test.BenchPing"); err != nil {
		b.Fatal(err)
	}
	st, _ := r.byNameLookup("test.BenchPing")
	b.Run("protobuf", func(b *testing.B) {
		b.ReportAllocs()
		m := &Ping{N: 1}
		for range b.N {
			buf, _ := proto.Marshal(m)
			var out Ping
			if err := proto.Unmarshal(buf, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("struct", func(b *testing.B) {
		b.ReportAllocs()
		m := &benchPing{N: 1}
		for range b.N {
			buf, _ := st.Marshal(m)
			if _, err := st.Unmarshal(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("struct-decode", func(b *testing.B) {
		b.ReportAllocs()
		buf, _ := st.Marshal(&benchPing{N: 1})
		for range b.N {
			if _, err := st.Unmarshal(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("struct-encode", func(b *testing.B) {
		b.ReportAllocs()
		m := &benchPing{N: 1}
		for range b.N {
			if _, err := st.Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
