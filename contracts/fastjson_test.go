package contracts

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func f(v float64) *float64 { return &v }

// The hand-written encoders write exactly what encoding/json writes.
func TestAppendersMatchEncodingJSON(t *testing.T) {
	at := time.Date(2014, 3, 9, 3, 30, 0, 123456789, time.FixedZone("CDT", -5*3600))
	odd := "we\"ird<&>\\é\n\u2028"
	features := []Features{
		{SchemaVersion: 1, TripID: "t1", Timestamp: at, PickupHour: 3, PickupDayOfWeek: 1, PickupMonth: 3, PickupCommunityArea: 8,
			TripDurationSeconds: f(540), TripDistanceMiles: 1.2, AvgSpeedMph: f(8.000000000000002), FareAmount: f(7.25),
			PaymentType: "Cash", Company: "Taxi Affiliation Services", WeatherCondition: "rain", DemandLevel: "high"},
		{TripID: odd, Timestamp: time.Unix(0, 0).UTC(), TripDistanceMiles: 1e-7, PaymentType: odd, RequestID: odd},
		{TripID: "big", Timestamp: at, TripDistanceMiles: 1e21, FareAmount: f(-0.0), AvgSpeedMph: f(123456789.125)},
	}
	for i := range features {
		want, err := json.Marshal(&features[i])
		if err != nil {
			t.Fatal(err)
		}
		got, err := features[i].appendJSON(nil)
		if err != nil || string(got) != string(want) {
			t.Errorf("features %d:\n got %s (%v)\nwant %s", i, got, err, want)
		}
	}
	predictions := []Prediction{
		{SchemaVersion: 1, TripID: "t1", Timestamp: at, PredictedFare: 12.5, PredictedTip: f(2), BigTipperProb: f(0.731),
			ConfidenceScore: 0.42, ModelVersion: "v1", ModelVersions: map[string]string{"tip": "v3", "fare": "v1", "big_tipper": "v2"}},
		{TripID: odd, Timestamp: at, ModelVersion: odd, ModelVersions: map[string]string{odd: odd}, RequestID: "r1"},
		{TripID: "nil-map", Timestamp: at},
		{TripID: "empty-map", Timestamp: at, ModelVersions: map[string]string{}},
	}
	for i := range predictions {
		want, _ := json.Marshal(&predictions[i])
		got, err := predictions[i].appendJSON(nil)
		if err != nil || string(got) != string(want) {
			t.Errorf("prediction %d:\n got %s (%v)\nwant %s", i, got, err, want)
		}
	}
	ping := GPSPing{SchemaVersion: 1, VehicleID: odd, TripID: "t", Timestamp: at, Latitude: 41.88, Longitude: -87.63, Speed: 1e-7, Heading: 359.99999999999994}
	want, _ := json.Marshal(&ping)
	if got, err := AppendGPSPing(nil, &ping); err != nil || string(got) != string(want) {
		t.Errorf("ping:\n got %s (%v)\nwant %s", got, err, want)
	}
}

// Non-finite numbers and out-of-range times are errors, as in encoding/json.
func TestAppendersRefuseWhatJSONCannotSay(t *testing.T) {
	if _, err := Encode(&Features{TripID: "x", Timestamp: time.Unix(0, 0), TripDistanceMiles: math.NaN()}); err == nil {
		t.Error("NaN distance encoded")
	}
	if _, err := Encode(&Prediction{TripID: "x", Timestamp: time.Unix(0, 0), PredictedTip: f(math.Inf(1))}); err == nil {
		t.Error("infinite tip encoded")
	}
	if _, err := Encode(&GPSPing{VehicleID: "v", Timestamp: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
		t.Error("year 10000 encoded")
	}
}
