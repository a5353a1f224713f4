package features_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/geo"
	"github.com/taxi-mlops/taxi-mlops/streamers/features"
	"github.com/taxi-mlops/taxi-mlops/streamers/stream"
)

var loadAreas = sync.OnceValues(geo.LoadCommunityAreas)

func processor(t *testing.T) *features.Processor {
	t.Helper()
	areas, err := loadAreas()
	if err != nil {
		t.Fatal(err)
	}
	loc, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	return &features.Processor{Areas: areas, Location: loc}
}

// ride is a valid raw ride as the replayer writes it; fields are replaced
// by the cases with strings.Replace on their JSON text.
const ride = `{
  "schema_version": 1,
  "trip_id": "t0123456789abcdef",
  "pickup_datetime": "2015-03-08T08:30:00Z",
  "pickup_latitude": 41.8810, "pickup_longitude": -87.6298,
  "dropoff_latitude": 41.9742, "dropoff_longitude": -87.9073,
  "passenger_count": null,
  "trip_distance": 3.0,
  "trip_seconds": 600,
  "fare_amount": 12.25,
  "payment_type": "Credit Card",
  "company": "Flash Cab",
  "pickup_community_area": 8,
  "dropoff_community_area": 76
}`

func with(pairs ...string) []byte {
	return []byte(strings.NewReplacer(pairs...).Replace(ride))
}

func ptr(v float64) *float64 { return &v }

func TestProcessValidRide(t *testing.T) {
	p := processor(t)
	if got, want := p.Topics(), []string{contracts.TopicRidesRaw, contracts.TopicWeather, contracts.TopicFeaturesAggregated}; !slices.Equal(got, want) {
		t.Errorf("Topics = %q, want %q", got, want)
	}
	pickup := time.Date(2015, 3, 8, 8, 30, 0, 0, time.UTC)
	for _, c := range []struct {
		name  string
		value []byte
		want  contracts.Features
	}{
		{
			// The Loop by coordinates although the city labelled the pickup
			// Near North Side (8); O'Hare (76) by coordinates. 08:30 UTC on
			// the day clocks spring forward is 03:30 CDT, a Sunday.
			name: "coordinates", value: with(),
			want: contracts.Features{
				TripID: "t0123456789abcdef", Timestamp: pickup, PickupHour: 3, PickupDayOfWeek: 1, PickupMonth: 3,
				PickupCommunityArea: 32, DropoffCommunityArea: 76,
				TripDurationSeconds: ptr(600), TripDistanceMiles: 3, AvgSpeedMph: ptr(18), FareAmount: ptr(12.25),
				PaymentType: "Credit Card", Company: "Flash Cab",
			},
		},
		{
			name: "no coordinates: the city's labels",
			value: with(`"pickup_latitude": 41.8810, "pickup_longitude": -87.6298`, `"pickup_latitude": null, "pickup_longitude": null`,
				`"dropoff_latitude": 41.9742, "dropoff_longitude": -87.9073`, `"dropoff_latitude": null, "dropoff_longitude": null`),
			want: contracts.Features{
				TripID: "t0123456789abcdef", Timestamp: pickup, PickupHour: 3, PickupDayOfWeek: 1, PickupMonth: 3,
				PickupCommunityArea: 8, DropoffCommunityArea: 76,
				TripDurationSeconds: ptr(600), TripDistanceMiles: 3, AvgSpeedMph: ptr(18), FareAmount: ptr(12.25),
				PaymentType: "Credit Card", Company: "Flash Cab",
			},
		},
		{
			// In Lake Michigan off the Loop: in the Chicago area, in no
			// community area, so the label stands.
			name:  "coordinates outside every area",
			value: with(`"pickup_latitude": 41.8810, "pickup_longitude": -87.6298`, `"pickup_latitude": 41.8827, "pickup_longitude": -87.55`),
			want: contracts.Features{
				TripID: "t0123456789abcdef", Timestamp: pickup, PickupHour: 3, PickupDayOfWeek: 1, PickupMonth: 3,
				PickupCommunityArea: 8, DropoffCommunityArea: 76,
				TripDurationSeconds: ptr(600), TripDistanceMiles: 3, AvgSpeedMph: ptr(18), FareAmount: ptr(12.25),
				PaymentType: "Credit Card", Company: "Flash Cab",
			},
		},
		{
			name: "neither coordinates nor labels",
			value: with(`"pickup_latitude": 41.8810, "pickup_longitude": -87.6298`, `"pickup_latitude": null, "pickup_longitude": null`,
				`"pickup_community_area": 8`, `"pickup_community_area": null`,
				`"dropoff_latitude": 41.9742, "dropoff_longitude": -87.9073`, `"dropoff_latitude": null, "dropoff_longitude": null`,
				`"dropoff_community_area": 76`, `"dropoff_community_area": null`),
			want: contracts.Features{
				TripID: "t0123456789abcdef", Timestamp: pickup, PickupHour: 3, PickupDayOfWeek: 1, PickupMonth: 3,
				TripDurationSeconds: ptr(600), TripDistanceMiles: 3, AvgSpeedMph: ptr(18), FareAmount: ptr(12.25),
				PaymentType: "Credit Card", Company: "Flash Cab",
			},
		},
		{
			// 07:30 UTC is 01:30 CST, before the clocks sprang forward.
			name:  "unknown duration, an hour earlier",
			value: with(`"trip_seconds": 600`, `"trip_seconds": null`, "08:30:00Z", "07:30:00Z"),
			want: contracts.Features{
				TripID: "t0123456789abcdef", Timestamp: pickup.Add(-time.Hour), PickupHour: 1, PickupDayOfWeek: 1, PickupMonth: 3,
				PickupCommunityArea: 32, DropoffCommunityArea: 76,
				TripDistanceMiles: 3, FareAmount: ptr(12.25), PaymentType: "Credit Card", Company: "Flash Cab",
			},
		},
		{
			// Late on New Year's Eve in Chicago, already 2016 in UTC.
			name:  "zero duration, year boundary",
			value: with(`"trip_seconds": 600`, `"trip_seconds": 0`, "2015-03-08T08:30:00Z", "2016-01-01T05:45:00Z", `"company": "Flash Cab"`, `"company": ""`),
			want: contracts.Features{
				TripID: "t0123456789abcdef", Timestamp: time.Date(2016, 1, 1, 5, 45, 0, 0, time.UTC),
				PickupHour: 23, PickupDayOfWeek: 5, PickupMonth: 12,
				PickupCommunityArea: 32, DropoffCommunityArea: 76,
				TripDurationSeconds: ptr(0), TripDistanceMiles: 3, FareAmount: ptr(12.25), PaymentType: "Credit Card",
			},
		},
		{
			name:  "an offset in the timestamp is the same instant",
			value: with("2015-03-08T08:30:00Z", "2015-03-08T03:30:00-05:00", `"trip_distance": 3.0`, `"trip_distance": 0.5`, `"trip_seconds": 600`, `"trip_seconds": 90`),
			want: contracts.Features{
				TripID: "t0123456789abcdef", Timestamp: pickup, PickupHour: 3, PickupDayOfWeek: 1, PickupMonth: 3,
				PickupCommunityArea: 32, DropoffCommunityArea: 76,
				TripDurationSeconds: ptr(90), TripDistanceMiles: 0.5, AvgSpeedMph: ptr(20), FareAmount: ptr(12.25),
				PaymentType: "Credit Card", Company: "Flash Cab",
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := p.Process(context.Background(), &kgo.Record{Topic: contracts.TopicRidesRaw, Value: c.value})
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != 1 {
				t.Fatalf("%d records, want 1", len(out))
			}
			r := out[0]
			if r.Topic != contracts.TopicFeaturesRealtime || string(r.Key) != c.want.TripID {
				t.Errorf("record to %s with key %q, want %s with key %q", r.Topic, r.Key, contracts.TopicFeaturesRealtime, c.want.TripID)
			}
			got, err := contracts.Decode[contracts.Features](r.Value)
			if err != nil {
				t.Fatalf("the output is not a valid features record: %v\n%s", err, r.Value)
			}
			checkFeatures(t, got, &c.want)
		})
	}
}

func checkFeatures(t *testing.T, got, want *contracts.Features) {
	t.Helper()
	if got.SchemaVersion != contracts.SchemaVersion {
		t.Errorf("schema_version %d", got.SchemaVersion)
	}
	if got.TripID != want.TripID || !got.Timestamp.Equal(want.Timestamp) {
		t.Errorf("trip %q at %v, want %q at %v", got.TripID, got.Timestamp, want.TripID, want.Timestamp)
	}
	if got.PickupHour != want.PickupHour || got.PickupDayOfWeek != want.PickupDayOfWeek || got.PickupMonth != want.PickupMonth {
		t.Errorf("hour, day, month = %d, %d, %d; want %d, %d, %d", got.PickupHour, got.PickupDayOfWeek, got.PickupMonth,
			want.PickupHour, want.PickupDayOfWeek, want.PickupMonth)
	}
	if got.PickupCommunityArea != want.PickupCommunityArea || got.DropoffCommunityArea != want.DropoffCommunityArea {
		t.Errorf("areas %d → %d, want %d → %d", got.PickupCommunityArea, got.DropoffCommunityArea,
			want.PickupCommunityArea, want.DropoffCommunityArea)
	}
	if got.TripDistanceMiles != want.TripDistanceMiles {
		t.Errorf("trip_distance_miles %v, want %v", got.TripDistanceMiles, want.TripDistanceMiles)
	}
	for _, f := range []struct {
		name      string
		got, want *float64
	}{
		{"trip_duration_seconds", got.TripDurationSeconds, want.TripDurationSeconds},
		{"avg_speed_mph", got.AvgSpeedMph, want.AvgSpeedMph},
		{"fare_amount", got.FareAmount, want.FareAmount},
	} {
		switch {
		case f.want == nil && f.got != nil:
			t.Errorf("%s = %v, want null", f.name, *f.got)
		case f.want != nil && f.got == nil:
			t.Errorf("%s = null, want %v", f.name, *f.want)
		case f.want != nil && math.Abs(*f.got-*f.want) > 1e-9:
			t.Errorf("%s = %v, want %v", f.name, *f.got, *f.want)
		}
	}
	if got.PaymentType != want.PaymentType || got.Company != want.Company {
		t.Errorf("payment %q, company %q; want %q, %q", got.PaymentType, got.Company, want.PaymentType, want.Company)
	}
	if got.WeatherCondition != features.Unknown || got.DemandLevel != features.Unknown {
		t.Errorf("weather %q, demand %q without tables; want %q", got.WeatherCondition, got.DemandLevel, features.Unknown)
	}
	if got.RequestID != "" {
		t.Errorf("request_id %q on a ride", got.RequestID)
	}
}

func TestProcessInvalidRides(t *testing.T) {
	p := processor(t)
	for _, c := range []struct {
		name  string
		value []byte
		field string // the field the error names; "" when the bytes are not JSON
	}{
		{"not JSON", []byte("trip t1 cost $12"), ""},
		{"empty", nil, ""},
		{"truncated", with()[:40], ""},
		{"NaN is not JSON", with(`"trip_distance": 3.0`, `"trip_distance": NaN`), ""},
		{"distance as a string", with(`"trip_distance": 3.0`, `"trip_distance": "3.0"`), ""},
		{"missing trip_id", with(`"trip_id": "t0123456789abcdef",`, ""), "trip_id"},
		{"empty trip_id", with(`"trip_id": "t0123456789abcdef"`, `"trip_id": ""`), "trip_id"},
		{"missing pickup time", with(`"pickup_datetime": "2015-03-08T08:30:00Z",`, ""), "pickup_datetime"},
		{"missing distance", with(`"trip_distance": 3.0,`, ""), "trip_distance"},
		{"negative distance", with(`"trip_distance": 3.0`, `"trip_distance": -3.0`), "trip_distance"},
		{"missing fare", with(`"fare_amount": 12.25,`, ""), "fare_amount"},
		{"negative fare", with(`"fare_amount": 12.25`, `"fare_amount": -12.25`), "fare_amount"},
		{"negative duration", with(`"trip_seconds": 600`, `"trip_seconds": -1`), "trip_seconds"},
		{"latitude without longitude", with(`"pickup_longitude": -87.6298`, `"pickup_longitude": null`), "pickup_longitude"},
		{"coordinates far from Chicago", with(`"pickup_latitude": 41.8810`, `"pickup_latitude": 40.7128`), "pickup_latitude"},
		{"community area 78", with(`"dropoff_community_area": 76`, `"dropoff_community_area": 78`), "dropoff_community_area"},
		{"no schema version", with(`"schema_version": 1,`, ""), "schema_version"},
		{"a future schema version", with(`"schema_version": 1,`, `"schema_version": 2,`), "schema_version"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := p.Process(context.Background(), &kgo.Record{Topic: contracts.TopicRidesRaw, Value: c.value})
			if err == nil {
				t.Fatalf("no error; output %d records", len(out))
			}
			if !contracts.IsInvalid(err) || !stream.IsPermanent(err) {
				t.Errorf("error %v is not invalid: it would be retried forever instead of dead-lettered", err)
			}
			if len(out) != 0 {
				t.Errorf("%d records with an error", len(out))
			}
			var ie *contracts.InvalidError
			if errors.As(err, &ie) && ie.Field != c.field {
				t.Errorf("error %q names field %q, want %q", err, ie.Field, c.field)
			}
		})
	}
}
