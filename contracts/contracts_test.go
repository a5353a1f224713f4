package contracts

import (
	"strings"
	"testing"
	"time"
)

func TestCatalog(t *testing.T) {
	want := map[string]int32{
		TopicRidesRaw: 6, TopicGPSStream: 12, TopicFeaturesRealtime: 6, TopicFeaturesAggregated: 3,
		TopicPredictions: 6, TopicAnomalies: 3, TopicModelMetrics: 3, TopicDataQualityAlerts: 3,
	}
	seen := map[string]bool{}
	for _, tp := range Catalog() {
		if seen[tp.Name] {
			t.Errorf("topic %s declared twice", tp.Name)
		}
		seen[tp.Name] = true
		if tp.Partitions < 1 || tp.Key == "" || tp.Message == "" {
			t.Errorf("topic %s is incomplete: %+v", tp.Name, tp)
		}
		if p, ok := want[tp.Name]; ok && p != tp.Partitions {
			t.Errorf("topic %s has %d partitions, want %d", tp.Name, tp.Partitions, p)
		}
	}
	for _, name := range []string{TopicRideRequests, TopicActuals, TopicDemandPredictions, TopicModelUpdates} {
		if !seen[name] {
			t.Errorf("topic %s missing", name)
		}
	}
	for _, c := range Consumers() {
		if !seen[DeadLetterTopic(c)] {
			t.Errorf("consumer %s has no dead-letter topic", c)
		}
	}
	if _, err := Lookup("nope"); err == nil {
		t.Error("Lookup of an unknown topic succeeded")
	}
}

func TestDecodeRawRide(t *testing.T) {
	good := `{"schema_version":1,"trip_id":"t1","pickup_datetime":"2014-05-01T08:15:00-05:00","trip_distance":1.2,"fare_amount":7.5,"pickup_latitude":41.88,"pickup_longitude":-87.63,"payment_type":"Cash"}`
	r, err := Decode[RawRide]([]byte(good))
	if err != nil {
		t.Fatalf("good ride refused: %v", err)
	}
	if r.TripID != "t1" || *r.TripDistance != 1.2 || r.DropoffLatitude != nil {
		t.Fatalf("decoded %+v", r)
	}
	tests := []struct {
		name, json, field string
	}{
		{"not json", `{"trip_id":`, ""},
		{"NaN literal", strings.Replace(good, "1.2", "NaN", 1), ""},
		{"missing trip id", strings.Replace(good, `"trip_id":"t1",`, "", 1), "trip_id"},
		{"missing fare", strings.Replace(good, `"fare_amount":7.5,`, "", 1), "fare_amount"},
		{"missing distance", strings.Replace(good, `"trip_distance":1.2,`, "", 1), "trip_distance"},
		{"missing time", strings.Replace(good, `"pickup_datetime":"2014-05-01T08:15:00-05:00",`, "", 1), "pickup_datetime"},
		{"negative fare", strings.Replace(good, "7.5", "-7.5", 1), "fare_amount"},
		{"outside chicago", strings.Replace(good, "41.88", "48.85", 1), "pickup_latitude"},
		{"half a coordinate", strings.Replace(good, `"pickup_longitude":-87.63,`, "", 1), "pickup_longitude"},
		{"future schema", strings.Replace(good, `"schema_version":1`, `"schema_version":99`, 1), "schema_version"},
		{"string for number", strings.Replace(good, "1.2", `"1.2"`, 1), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode[RawRide]([]byte(tc.json))
			if err == nil {
				t.Fatal("accepted")
			}
			if !IsInvalid(err) {
				t.Fatalf("error %v is not an InvalidError", err)
			}
			ie := err.(*InvalidError)
			if ie.Field != tc.field {
				t.Fatalf("field %q, want %q (%v)", ie.Field, tc.field, err)
			}
		})
	}
}

func TestEncodeStampsVersion(t *testing.T) {
	m := ModelUpdate{ModelName: "fare", Version: "v1", SHA256: "ab", Timestamp: time.Unix(0, 0)}
	b, err := Encode(&m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode[ModelUpdate](b)
	if err != nil {
		t.Fatal(err)
	}
	if got.SchemaVersion != SchemaVersion || got.Version != "v1" {
		t.Fatalf("roundtrip %+v", got)
	}
}

func TestMetricBreached(t *testing.T) {
	for _, tc := range []struct {
		m    ModelMetric
		want bool
	}{
		{ModelMetric{MetricValue: 3, Threshold: 2}, true},
		{ModelMetric{MetricValue: 1, Threshold: 2}, false},
		{ModelMetric{MetricValue: 0.6, Threshold: 0.7, HigherIsBetter: true}, true},
		{ModelMetric{MetricValue: 0.8, Threshold: 0.7, HigherIsBetter: true}, false},
	} {
		if got := tc.m.Breached(); got != tc.want {
			t.Errorf("%+v breached = %v", tc.m, got)
		}
	}
}
