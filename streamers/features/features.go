// Package features is the features streamer: it turns each raw ride into its
// realtime feature record with the shared transform — event-time hour, day
// of week and month on Chicago's clock, community areas by point in polygon,
// duration, distance and average speed.
package features

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/geo"
	mlfeatures "github.com/taxi-mlops/taxi-mlops/ml/features"
	"github.com/taxi-mlops/taxi-mlops/rides"
)

// Processor computes features; it holds only read-only lookup data.
type Processor struct {
	Areas    *geo.Areas
	Location *time.Location // America/Chicago
}

// Topics the processor consumes.
func (p *Processor) Topics() []string { return []string{contracts.TopicRidesRaw} }

// Process decodes and validates a raw ride and emits its features, keyed by
// trip id.
func (p *Processor) Process(_ context.Context, in *kgo.Record) ([]*kgo.Record, error) {
	raw, err := contracts.Decode[contracts.RawRide](in.Value)
	if err != nil {
		return nil, err
	}
	row := mlfeatures.Transform(rides.FeatureTrip(raw, p.Areas), p.Location)
	msg := rides.FeaturesMessage(raw.TripID, raw.PickupDatetime, &row)
	b, err := contracts.Encode(&msg)
	if err != nil {
		return nil, err
	}
	return []*kgo.Record{{Topic: contracts.TopicFeaturesRealtime, Key: []byte(raw.TripID), Value: b}}, nil
}
