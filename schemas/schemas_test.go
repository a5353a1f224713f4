package schemas_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/schemas"
)

type schemaDoc struct {
	Schema     string                     `json:"$schema"`
	Title      string                     `json:"title"`
	Type       any                        `json:"type"`
	Properties map[string]json.RawMessage `json:"properties"`
	Required   []string                   `json:"required"`
}

func load(t *testing.T, name string) (*schemaDoc, []byte) {
	t.Helper()
	b, err := schemas.For(name)
	if err != nil {
		t.Fatal(err)
	}
	var d schemaDoc
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: the committed schema is not JSON: %v", name, err)
	}
	return &d, b
}

// TestCommittedSchemasAreGenerated fails when a message type changed and
// its schema file was not regenerated.
func TestCommittedSchemasAreGenerated(t *testing.T) {
	for _, name := range contracts.MessageNames() {
		typ, _ := contracts.MessageType(name)
		want, err := schemas.Generate(typ)
		if err != nil {
			t.Fatal(err)
		}
		_, got := load(t, name)
		if !bytes.Equal(got, want) {
			t.Errorf("json/%s is not what %s generates: run go generate ./schemas", schemas.FileName(name), name)
		}
	}
}

// populated returns a value of t with every field set to something
// non-empty, so encoding/json writes omitempty fields too.
func populated(t reflect.Type) reflect.Value {
	v := reflect.New(t).Elem()
	switch {
	case t == reflect.TypeFor[time.Time]():
		v.Set(reflect.ValueOf(time.Date(2015, 3, 8, 8, 30, 0, 0, time.UTC)))
		return v
	}
	switch t.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1.5)
	case reflect.Pointer:
		v.Set(populated(t.Elem()).Addr())
	case reflect.Slice:
		v.Set(reflect.Append(reflect.MakeSlice(t, 0, 1), populated(t.Elem())))
	case reflect.Map:
		m := reflect.MakeMap(t)
		m.SetMapIndex(reflect.ValueOf("k"), populated(t.Elem()))
		v.Set(m)
	case reflect.Interface:
		v.Set(reflect.ValueOf("any"))
	case reflect.Struct:
		for i := range t.NumField() {
			if t.Field(i).IsExported() {
				v.Field(i).Set(populated(t.Field(i).Type))
			}
		}
	}
	return v
}

func topKeys(t *testing.T, v reflect.Value) []string {
	t.Helper()
	b, err := json.Marshal(v.Addr().Interface())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestSchemasListEveryJSONField compares each committed schema with what
// encoding/json writes for its Go type: a field gained or lost fails here.
func TestSchemasListEveryJSONField(t *testing.T) {
	for _, name := range contracts.MessageNames() {
		t.Run(name, func(t *testing.T) {
			typ, _ := contracts.MessageType(name)
			d, _ := load(t, name)
			if d.Schema != schemas.Draft || d.Title != name || d.Type != "object" {
				t.Errorf("header: $schema %q, title %q, type %v", d.Schema, d.Title, d.Type)
			}
			props := make([]string, 0, len(d.Properties))
			for k := range d.Properties {
				props = append(props, k)
			}
			sort.Strings(props)
			all := topKeys(t, populated(typ))
			if !slices.Equal(props, all) {
				t.Errorf("schema properties %q, the Go type writes %q: run go generate ./schemas", props, all)
			}
			// Required: what the zero value still writes (no omitempty).
			always := topKeys(t, reflect.New(typ).Elem())
			req := slices.Sorted(slices.Values(d.Required))
			if !slices.Equal(req, always) {
				t.Errorf("schema requires %q, the Go type always writes %q", req, always)
			}
		})
	}
}

// validate checks v against the subset of JSON Schema the generator uses.
func validate(schema map[string]any, v any, path string) error {
	if types, ok := schema["type"]; ok {
		var names []string
		switch ts := types.(type) {
		case string:
			names = []string{ts}
		case []any:
			for _, n := range ts {
				names = append(names, n.(string))
			}
		}
		if !slices.Contains(names, jsonType(v)) && !(jsonType(v) == "integer" && slices.Contains(names, "number")) {
			return fmt.Errorf("%s: %s, want %v", path, jsonType(v), names)
		}
	}
	switch x := v.(type) {
	case map[string]any:
		props, _ := schema["properties"].(map[string]any)
		for _, r := range asSlice(schema["required"]) {
			if _, ok := x[r.(string)]; !ok {
				return fmt.Errorf("%s: required %s missing", path, r)
			}
		}
		for k, val := range x {
			sub, ok := props[k].(map[string]any)
			if !ok {
				sub, ok = schema["additionalProperties"].(map[string]any)
			}
			if !ok {
				return fmt.Errorf("%s: %s is not in the schema", path, k)
			}
			if err := validate(sub, val, path+"."+k); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := validate(schema["items"].(map[string]any), e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case string:
		if schema["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, x); err != nil {
				return fmt.Errorf("%s: %q is not a date-time", path, x)
			}
		}
	}
	return nil
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		if x == math.Trunc(x) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func TestEncodedMessagesMatchTheirSchemas(t *testing.T) {
	for _, name := range contracts.MessageNames() {
		typ, _ := contracts.MessageType(name)
		_, raw := load(t, name)
		var schema map[string]any
		if err := json.Unmarshal(raw, &schema); err != nil {
			t.Fatal(err)
		}
		for _, v := range []reflect.Value{reflect.New(typ).Elem(), populated(typ)} {
			b, err := json.Marshal(v.Addr().Interface())
			if err != nil {
				t.Fatal(err)
			}
			var doc any
			if err := json.Unmarshal(b, &doc); err != nil {
				t.Fatal(err)
			}
			if err := validate(schema, doc, name); err != nil {
				t.Errorf("%s does not match its schema: %v\n%s", name, err, b)
			}
		}
	}
	// The validator is not vacuous.
	var schema map[string]any
	raw, _ := schemas.For("Actual")
	_ = json.Unmarshal(raw, &schema)
	for _, bad := range []string{
		`{"schema_version":1,"trip_id":"t","dropoff_datetime":"2015-01-01T00:00:00Z","fare":"7","tips":0,"payment_type":"Cash"}`,
		`{"schema_version":1,"trip_id":"t","dropoff_datetime":"2015-01-01T00:00:00Z","fare":7,"payment_type":"Cash"}`,
		`{"schema_version":1,"trip_id":"t","dropoff_datetime":"yesterday","fare":7,"tips":0,"payment_type":"Cash"}`,
	} {
		var doc any
		_ = json.Unmarshal([]byte(bad), &doc)
		if validate(schema, doc, "Actual") == nil {
			t.Errorf("validator accepted %s", bad)
		}
	}
}

func TestTopics(t *testing.T) {
	topics := schemas.Topics()
	for _, tp := range contracts.Catalog() {
		_, isMessage := contracts.MessageType(tp.Message)
		if slices.Contains(topics, tp.Name) != isMessage {
			t.Errorf("topic %s (%s): in Topics %v", tp.Name, tp.Message, !isMessage)
		}
		s, err := schemas.ForTopic(tp.Name)
		if isMessage && (err != nil || len(s) == 0) {
			t.Errorf("topic %s: no schema: %v", tp.Name, err)
		}
		if !isMessage && err == nil {
			t.Errorf("topic %s carries %s but has a schema", tp.Name, tp.Message)
		}
	}
	if schemas.Subject(contracts.TopicRidesRaw) != "taxi-rides-raw-value" {
		t.Errorf("subject %s", schemas.Subject(contracts.TopicRidesRaw))
	}
	if _, err := schemas.For("Nope"); err == nil {
		t.Error("a schema for an unknown message")
	}
}

// registry keeps schemas as the Schema Registry does for what the Framer
// uses: one id per distinct schema text, shared across subjects; a subject
// registering a schema it has gets the same id back.
type registry struct {
	ids      map[string]int
	subjects map[string][]int
	calls    int
	fail     error
}

func (r *registry) register(_ context.Context, subject string, schema []byte) (int, error) {
	r.calls++
	if r.fail != nil {
		return 0, r.fail
	}
	id, ok := r.ids[string(schema)]
	if !ok {
		id = len(r.ids) + 1
		r.ids[string(schema)] = id
	}
	if !slices.Contains(r.subjects[subject], id) {
		r.subjects[subject] = append(r.subjects[subject], id)
	}
	return id, nil
}

func TestFramer(t *testing.T) {
	ctx := context.Background()
	reg := &registry{ids: map[string]int{}, subjects: map[string][]int{}}
	topics := []string{contracts.TopicRidesRaw, contracts.TopicFeaturesRealtime, contracts.TopicFeaturesByArea, contracts.TopicDataQualityAlerts}
	f, err := schemas.NewFramer(ctx, reg.register, topics)
	if err != nil {
		t.Fatal(err)
	}
	// Registering again (a restart) gives the same ids and no new versions.
	again, err := schemas.NewFramer(ctx, reg.register, topics)
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range topics {
		id, ok := f.SchemaID(tp)
		id2, _ := again.SchemaID(tp)
		if !ok || id == 0 || id != id2 {
			t.Errorf("%s: ids %d and %d", tp, id, id2)
		}
		if got := reg.subjects[schemas.Subject(tp)]; len(got) != 1 {
			t.Errorf("subject %s has versions %v, want one", schemas.Subject(tp), got)
		}
	}
	// Two topics of one message share its schema id.
	a, _ := f.SchemaID(contracts.TopicFeaturesRealtime)
	b, _ := f.SchemaID(contracts.TopicFeaturesByArea)
	if a != b {
		t.Errorf("Features has ids %d and %d", a, b)
	}

	ride := contracts.RawRide{TripID: "t1", PickupDatetime: time.Date(2015, 3, 8, 8, 30, 0, 0, time.UTC),
		TripDistance: ptr(1.5), FareAmount: ptr(7.25), PaymentType: "Cash"}
	plain, err := contracts.Encode(&ride)
	if err != nil {
		t.Fatal(err)
	}
	framed := f.Frame(contracts.TopicRidesRaw, plain)
	id, _ := f.SchemaID(contracts.TopicRidesRaw)
	if got, ok := contracts.WireSchemaID(framed); !ok || got != id || !bytes.Equal(framed[contracts.WireHeaderSize:], plain) {
		t.Fatalf("framed %x, want header with id %d then the JSON", framed[:min(len(framed), 8)], id)
	}
	decoded, err := contracts.Decode[contracts.RawRide](framed)
	if err != nil || decoded.TripID != "t1" || *decoded.FareAmount != 7.25 {
		t.Fatalf("decode framed: %+v, %v", decoded, err)
	}
	// Forwarded to another topic: one header, the new topic's.
	forwarded := f.Frame(contracts.TopicFeaturesByArea, f.Frame(contracts.TopicFeaturesRealtime, []byte(`{}`)))
	if !bytes.Equal(forwarded[contracts.WireHeaderSize:], []byte(`{}`)) {
		t.Errorf("re-framed value %x", forwarded)
	}
	// Unknown topics (dead letters), tombstones and a nil Framer: unchanged.
	var none *schemas.Framer
	for _, c := range []struct {
		f     *schemas.Framer
		topic string
		value []byte
	}{
		{f, contracts.DeadLetterTopic("features"), plain},
		{f, contracts.TopicActuals, plain},
		{f, contracts.TopicRidesRaw, nil},
		{none, contracts.TopicRidesRaw, plain},
	} {
		if got := c.f.Frame(c.topic, c.value); !bytes.Equal(got, c.value) || (c.value == nil) != (got == nil) {
			t.Errorf("Frame(%s) changed the value: %q", c.topic, got)
		}
	}
	if _, ok := none.SchemaID(contracts.TopicRidesRaw); ok {
		t.Error("a nil Framer has ids")
	}

	// Errors: a topic without a message schema, a failing registry.
	if _, err := schemas.NewFramer(ctx, reg.register, []string{contracts.DeadLetterTopic("features")}); err == nil {
		t.Error("framer for a dead-letter topic")
	}
	boom := errors.New("registry down")
	down := &registry{fail: boom}
	if _, err := schemas.NewFramer(ctx, down.register, topics); !errors.Is(err, boom) || !strings.Contains(err.Error(), "taxi-rides-raw-value") {
		t.Errorf("error %v, want the registry's, naming the subject", err)
	}

	known := schemas.NewFramerWithIDs(map[string]uint32{contracts.TopicActuals: 42})
	if id, _ := contracts.WireSchemaID(known.Frame(contracts.TopicActuals, []byte(`{}`))); id != 42 {
		t.Errorf("framed with id %d, want 42", id)
	}
}

func ptr(v float64) *float64 { return &v }

func BenchmarkFrame(b *testing.B) {
	f := schemas.NewFramerWithIDs(map[string]uint32{contracts.TopicFeaturesRealtime: 7})
	v := bytes.Repeat([]byte("x"), 400)
	b.ReportAllocs()
	for b.Loop() {
		_ = f.Frame(contracts.TopicFeaturesRealtime, v)
	}
}
