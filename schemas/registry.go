package schemas

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/sr"
)

// Registry registers through a Confluent Schema Registry client: POST
// /subjects/{subject}/versions with schemaType JSON. Registering a schema a
// subject already holds returns its existing id.
func Registry(cl *sr.Client) RegisterFunc {
	return func(ctx context.Context, subject string, schema []byte) (int, error) {
		s, err := cl.CreateSchema(ctx, subject, sr.Schema{Schema: string(schema), Type: sr.TypeJSON})
		if err != nil {
			return 0, fmt.Errorf("schema registry: %w", err)
		}
		return s.ID, nil
	}
}

// Connect registers every catalog topic's schema with the registry at url
// and returns the Framer; an empty url returns a nil Framer (plain JSON).
func Connect(ctx context.Context, url string) (*Framer, error) {
	if url == "" {
		return nil, nil
	}
	cl, err := sr.NewClient(sr.URLs(url))
	if err != nil {
		return nil, fmt.Errorf("schema registry at %s: %w", url, err)
	}
	return NewFramer(ctx, Registry(cl), Topics())
}
