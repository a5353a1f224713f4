package schemas_test

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/schemas"
)

// Against a Schema Registry speaking the Confluent REST API: every topic's
// schema is registered under <topic>-value as JSON Schema, registering again
// is idempotent, and framed values carry the registry's id and decode.
func TestFramerWithSchemaRegistry(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	ctx := context.Background()
	f, err := schemas.Connect(ctx, reg.URL())
	if err != nil {
		t.Fatal(err)
	}
	again, err := schemas.Connect(ctx, reg.URL())
	if err != nil {
		t.Fatal(err)
	}
	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range schemas.Topics() {
		id, ok := f.SchemaID(topic)
		if !ok {
			t.Fatalf("topic %s has no schema id", topic)
		}
		if id2, _ := again.SchemaID(topic); id2 != id {
			t.Fatalf("topic %s: registering again gave id %d, first %d", topic, id2, id)
		}
		s, err := cl.SchemaByVersion(ctx, schemas.Subject(topic), -1)
		if err != nil {
			t.Fatalf("subject %s: %v", schemas.Subject(topic), err)
		}
		if s.Type != sr.TypeJSON || uint32(s.ID) != id {
			t.Fatalf("subject %s holds %v schema id %d, framer uses %d", schemas.Subject(topic), s.Type, s.ID, id)
		}
	}
	m := contracts.ModelUpdate{ModelName: "fare", Version: "v2", SHA256: "ab"}
	plain, _ := contracts.Encode(&m)
	framed := f.Frame(contracts.TopicModelUpdates, plain)
	want, _ := f.SchemaID(contracts.TopicModelUpdates)
	if framed[0] != contracts.WireMagic || binary.BigEndian.Uint32(framed[1:5]) != want {
		t.Fatalf("header % x, want magic 0 and id %d", framed[:5], want)
	}
	got, err := contracts.Decode[contracts.ModelUpdate](framed)
	if err != nil || got.Version != "v2" {
		t.Fatalf("decode framed: %+v %v", got, err)
	}
	if none, err := schemas.Connect(ctx, ""); none != nil || err != nil {
		t.Fatalf("no registry: %v %v, want a nil framer", none, err)
	}
}
