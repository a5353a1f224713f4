// Package schemas holds the JSON Schema of every message of the catalog and
// frames record values in the Confluent Schema Registry wire format.
//
// The schemas are files in json/, one per message type, generated from the
// Go types of contracts by Generate (go generate ./schemas); a test fails
// when a type gains or loses a JSON field its committed schema does not
// list. They describe what Encode writes: every field without omitempty is
// required, pointers, slices and maps may be null, and the content model is
// open (no additionalProperties: false), so a consumer built against an
// older schema keeps reading messages with new optional fields.
//
// With a Schema Registry, each topic's schema is registered under the
// subject "<topic>-value" and values are framed as magic byte 0, the 4-byte
// schema id and the JSON (Framer). contracts.Decode reads framed and plain
// values alike, so producers can switch to framing topic by topic.
package schemas

//go:generate go run ./gen

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/taxi-mlops/taxi-mlops/contracts"
)

//go:embed json/*.schema.json
var files embed.FS

// Draft is the JSON Schema dialect of the schemas: draft-07, which every
// Schema Registry version with JSON Schema support accepts.
const Draft = "http://json-schema.org/draft-07/schema#"

// FileName is the file of a message type's schema in json/.
func FileName(message string) string { return message + ".schema.json" }

// For returns the committed JSON Schema of a catalog message type
// ("RawRide", "Features", …).
func For(message string) ([]byte, error) {
	if _, ok := contracts.MessageType(message); !ok {
		return nil, fmt.Errorf("schema of %q: not a message type of the catalog", message)
	}
	b, err := files.ReadFile("json/" + FileName(message))
	if err != nil {
		return nil, fmt.Errorf("schema of %s: %w", message, err)
	}
	return b, nil
}

// ForTopic returns the JSON Schema of the values of a catalog topic.
func ForTopic(topic string) ([]byte, error) {
	t, err := contracts.Lookup(topic)
	if err != nil {
		return nil, err
	}
	if _, ok := contracts.MessageType(t.Message); !ok {
		return nil, fmt.Errorf("schema of topic %s: it carries %s, not a message type", topic, t.Message)
	}
	return For(t.Message)
}

// Subject is the Schema Registry subject of a topic's values (the
// TopicNameStrategy of Confluent's serializers).
func Subject(topic string) string { return topic + "-value" }

// Topics lists the catalog topics whose values are messages with a schema:
// every topic but dead-letter topics (the original bytes) and changelogs.
func Topics() []string {
	var out []string
	for _, t := range contracts.Catalog() {
		if _, ok := contracts.MessageType(t.Message); ok {
			out = append(out, t.Name)
		}
	}
	return out
}

// Generate returns the JSON Schema of a message type, indented, with a
// final newline: what the files in json/ hold.
func Generate(t reflect.Type) ([]byte, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("generate schema: %v is not a struct", t)
	}
	body, err := schemaOf(t, false)
	if err != nil {
		return nil, fmt.Errorf("generate schema of %s: %w", t.Name(), err)
	}
	doc := append(object{{"$schema", Draft}, {"title", t.Name()}}, body...)
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// Field is one JSON field of a message type.
type Field struct {
	Name      string
	OmitEmpty bool
	Type      reflect.Type
}

// Fields lists the JSON fields of a struct type in order, as encoding/json
// sees them: exported fields, renamed by their tags, "-" skipped.
func Fields(t reflect.Type) ([]Field, error) {
	var fs []Field
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		if sf.Anonymous {
			return nil, fmt.Errorf("field %s: embedded structs are not supported", sf.Name)
		}
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = sf.Name
		}
		f := Field{Name: name, Type: sf.Type}
		for _, o := range strings.Split(opts, ",") {
			f.OmitEmpty = f.OmitEmpty || o == "omitempty" || o == "omitzero"
		}
		fs = append(fs, f)
	}
	return fs, nil
}

var timeType = reflect.TypeFor[time.Time]()

// schemaOf describes values of t; nullable adds "null" to the type.
func schemaOf(t reflect.Type, nullable bool) (object, error) {
	typ := func(name string) any {
		if nullable {
			return []string{name, "null"}
		}
		return name
	}
	switch {
	case t == timeType:
		return object{{"type", typ("string")}, {"format", "date-time"}}, nil
	case t.Kind() == reflect.Pointer:
		return schemaOf(t.Elem(), true)
	}
	switch t.Kind() {
	case reflect.String:
		return object{{"type", typ("string")}}, nil
	case reflect.Bool:
		return object{{"type", typ("boolean")}}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return object{{"type", typ("integer")}}, nil
	case reflect.Float32, reflect.Float64:
		return object{{"type", typ("number")}}, nil
	case reflect.Interface:
		return object{}, nil // any JSON value
	case reflect.Slice:
		items, err := schemaOf(t.Elem(), false)
		if err != nil {
			return nil, err
		}
		return object{{"type", []string{"array", "null"}}, {"items", items}}, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map key %v is not a string", t.Key())
		}
		vals, err := schemaOf(t.Elem(), false)
		if err != nil {
			return nil, err
		}
		return object{{"type", []string{"object", "null"}}, {"additionalProperties", vals}}, nil
	case reflect.Struct:
		fs, err := Fields(t)
		if err != nil {
			return nil, err
		}
		props := make(object, 0, len(fs))
		required := []string{}
		for _, f := range fs {
			s, err := schemaOf(f.Type, false)
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", f.Name, err)
			}
			props = append(props, member{f.Name, s})
			if !f.OmitEmpty {
				required = append(required, f.Name)
			}
		}
		return object{{"type", typ("object")}, {"properties", props}, {"required", required}}, nil
	}
	return nil, fmt.Errorf("type %v is not supported", t)
}

// object is a JSON object that keeps its members in order.
type object []member

type member struct {
	key string
	val any
}

// MarshalJSON writes the members in order.
func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(m.key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(m.val)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
