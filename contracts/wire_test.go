package contracts

import (
	"bytes"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestDecodeFramedAndPlain(t *testing.T) {
	m := ModelUpdate{ModelName: "fare", Version: "v1", SHA256: "ab", Timestamp: time.Unix(0, 0).UTC()}
	plain, err := Encode(&m)
	if err != nil {
		t.Fatal(err)
	}
	if plain[0] == WireMagic {
		t.Fatalf("a JSON document starts with the magic byte: %q", plain)
	}
	for _, c := range []struct {
		name   string
		value  []byte
		id     uint32
		framed bool
	}{
		{"plain JSON", plain, 0, false},
		{"framed, id 1", AppendWireHeader(nil, 1), 1, true},
		{"framed, id 0", AppendWireHeader(nil, 0), 0, true},
		{"framed, largest id", AppendWireHeader(nil, math.MaxUint32), math.MaxUint32, true},
		{"framed, id 258 (bytes 0 0 1 2)", AppendWireHeader(nil, 258), 258, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := c.value
			if c.framed {
				if len(v) != WireHeaderSize || v[0] != WireMagic {
					t.Fatalf("header %x", v)
				}
				v = append(v, plain...)
			}
			got, err := Decode[ModelUpdate](v)
			if err != nil {
				t.Fatalf("decode %x: %v", v, err)
			}
			if got.ModelName != m.ModelName || got.Version != m.Version || !got.Timestamp.Equal(m.Timestamp) {
				t.Errorf("decoded %+v, want %+v", got, m)
			}
			id, ok := WireSchemaID(v)
			if ok != c.framed || id != c.id {
				t.Errorf("WireSchemaID = %d, %v; want %d, %v", id, ok, c.id, c.framed)
			}
			p, err := Payload(v)
			if err != nil || !bytes.Equal(p, plain) {
				t.Errorf("Payload = %q, %v; want the JSON", p, err)
			}
		})
	}
}

func TestDecodeBadFrames(t *testing.T) {
	for _, c := range []struct {
		name  string
		value []byte
	}{
		{"magic byte only", []byte{0}},
		{"header cut short", []byte{0, 0, 0, 1}},
		{"header without payload", AppendWireHeader(nil, 7)},
		{"header and invalid JSON", append(AppendWireHeader(nil, 7), `{"model_name":`...)},
		{"header and an invalid message", append(AppendWireHeader(nil, 7), `{"schema_version":1}`...)},
		{"two headers", append(AppendWireHeader(AppendWireHeader(nil, 7), 7), `{"schema_version":1,"model_name":"fare","version":"v","sha256":"s"}`...)},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode[ModelUpdate](c.value)
			if !IsInvalid(err) {
				t.Errorf("Decode(%x) error %v, want an invalid-record error", c.value, err)
			}
		})
	}
	if _, err := Payload([]byte{0, 1}); !IsInvalid(err) {
		t.Errorf("Payload of a short header: %v", err)
	}
	if p, err := Payload(nil); err != nil || p != nil {
		t.Errorf("Payload(nil) = %q, %v", p, err)
	}
}

func TestMessageTypesCoverTheCatalog(t *testing.T) {
	inCatalog := map[string]bool{}
	for _, tp := range Catalog() {
		typ, ok := MessageType(tp.Message)
		switch tp.Message {
		case "original bytes", "state entry":
			if ok {
				t.Errorf("%s: %q is a message type", tp.Name, tp.Message)
			}
			continue
		}
		if !ok {
			t.Errorf("topic %s carries %q, which MessageType does not know", tp.Name, tp.Message)
			continue
		}
		if typ.Name() != tp.Message {
			t.Errorf("MessageType(%q) is %v", tp.Message, typ)
		}
		inCatalog[tp.Message] = true
		// Every message type is a Message with a schema version.
		v := reflect.New(typ).Interface()
		if _, ok := v.(Message); !ok {
			t.Errorf("%s is not a Message", typ)
		}
		if _, ok := v.(versioned); !ok {
			t.Errorf("%s has no schema_version", typ)
		}
	}
	for _, n := range MessageNames() {
		if !inCatalog[n] {
			t.Errorf("message type %s is on no topic", n)
		}
	}
	if !slices.IsSorted(MessageNames()) {
		t.Errorf("MessageNames not sorted: %q", MessageNames())
	}
	seen := map[string]bool{}
	for _, a := range AlertTypes() {
		if a == "" || seen[a] {
			t.Errorf("alert types %q: empty or repeated", AlertTypes())
		}
		seen[a] = true
	}
}
