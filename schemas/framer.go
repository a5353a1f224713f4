package schemas

import (
	"context"
	"fmt"

	"github.com/taxi-mlops/taxi-mlops/contracts"
)

// RegisterFunc registers a JSON Schema under a subject and returns its id.
// Registering a schema the subject already has returns the existing id, as
// the Schema Registry's POST /subjects/{subject}/versions does, so
// registering at every start is idempotent.
type RegisterFunc func(ctx context.Context, subject string, schema []byte) (id int, err error)

// Framer frames the values of some topics in the wire format with their
// registered schema ids. A nil Framer frames nothing, so callers hold a
// *Framer and use it whether a registry is configured or not.
type Framer struct {
	ids map[string]uint32 // by topic
}

// NewFramer registers the schema of each topic under its subject and
// returns a Framer for them. A topic without a message schema (dead-letter
// and changelog topics) is an error.
func NewFramer(ctx context.Context, register RegisterFunc, topics []string) (*Framer, error) {
	f := &Framer{ids: make(map[string]uint32, len(topics))}
	for _, topic := range topics {
		schema, err := ForTopic(topic)
		if err != nil {
			return nil, fmt.Errorf("frame %s: %w", topic, err)
		}
		id, err := register(ctx, Subject(topic), schema)
		if err != nil {
			return nil, fmt.Errorf("register schema of %s under %s: %w", topic, Subject(topic), err)
		}
		if id < 0 || int64(id) > int64(^uint32(0)) {
			return nil, fmt.Errorf("register schema of %s: id %d does not fit the wire format", topic, id)
		}
		f.ids[topic] = uint32(id)
	}
	return f, nil
}

// NewFramerWithIDs returns a Framer for schema ids known already (by
// topic), e.g. looked up by another process.
func NewFramerWithIDs(ids map[string]uint32) *Framer {
	f := &Framer{ids: make(map[string]uint32, len(ids))}
	for t, id := range ids {
		f.ids[t] = id
	}
	return f
}

// SchemaID returns the schema id values of topic are framed with.
func (f *Framer) SchemaID(topic string) (uint32, bool) {
	if f == nil {
		return 0, false
	}
	id, ok := f.ids[topic]
	return id, ok
}

// Frame returns value framed with the schema id of topic: magic byte 0, the
// id as 4 bytes big-endian, then the JSON. Values of topics the Framer
// does not know (dead letters keep their original bytes), tombstones (nil)
// and every value of a nil Framer are returned unchanged. A value framed
// already (forwarded from another topic) gets this topic's header instead
// of a second one. The result never aliases value.
func (f *Framer) Frame(topic string, value []byte) []byte {
	id, ok := f.SchemaID(topic)
	if !ok || value == nil {
		return value
	}
	payload := value
	if len(value) >= contracts.WireHeaderSize && value[0] == contracts.WireMagic {
		payload = value[contracts.WireHeaderSize:]
	}
	out := make([]byte, 0, contracts.WireHeaderSize+len(payload))
	return append(contracts.AppendWireHeader(out, id), payload...)
}
