// Package rides converts between the ride messages of the catalog and the
// shared feature transform, so the replayer, the features streamer, the
// trainer and the evaluator all see a ride the same way.
//
// The one path from a ride to model input is
//
//	contracts.RawRide → FeatureTrip → features.Transform → features.Row
//
// and a Row crosses Kafka as contracts.Features (FeaturesMessage / Row),
// losslessly. Training rows take the same path from the same messages, so
// what the model was trained on is what it is served.
package rides

import (
	"math"
	"strconv"
	"time"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/geo"
	"github.com/taxi-mlops/taxi-mlops/ml/features"
	"github.com/taxi-mlops/taxi-mlops/tripdata"
)

// RawRide is the message the replayer publishes for a trip of the sample.
func RawRide(t *tripdata.Trip) contracts.RawRide {
	r := contracts.RawRide{
		SchemaVersion:    contracts.SchemaVersion,
		TripID:           t.TripID,
		PickupDatetime:   t.Start,
		PickupLatitude:   ptr(t.PickupLat),
		PickupLongitude:  ptr(t.PickupLon),
		DropoffLatitude:  ptr(t.DropoffLat),
		DropoffLongitude: ptr(t.DropoffLon),
		TripDistance:     ptr(t.Miles),
		TripSeconds:      ptr(t.Seconds),
		FareAmount:       ptr(t.Fare),
		PaymentType:      t.PaymentType,
		Company:          t.Company,
	}
	if t.PickupArea > 0 {
		a := t.PickupArea
		r.PickupCommunityArea = &a
	}
	if t.DropoffArea > 0 {
		a := t.DropoffArea
		r.DropoffCommunityArea = &a
	}
	if t.PickupCensusTract > 0 {
		r.PickupCensusTract = strconv.FormatInt(t.PickupCensusTract, 10)
	}
	if t.DropoffCensusTract > 0 {
		r.DropoffCensusTract = strconv.FormatInt(t.DropoffCensusTract, 10)
	}
	return r
}

// Actual is what the trip cost, known at its end.
func Actual(t *tripdata.Trip) contracts.Actual {
	tips := t.Tips
	if math.IsNaN(tips) {
		tips = 0
	}
	fare := t.Fare
	if math.IsNaN(fare) {
		fare = 0
	}
	return contracts.Actual{
		SchemaVersion:   contracts.SchemaVersion,
		TripID:          t.TripID,
		DropoffDatetime: Dropoff(t.Start, t.Seconds),
		Fare:            fare,
		Tips:            tips,
		PaymentType:     t.PaymentType,
	}
}

// Dropoff is the end of a trip that started at start and lasted seconds
// (NaN: unknown, taken as zero).
func Dropoff(start time.Time, seconds float64) time.Time {
	if math.IsNaN(seconds) || seconds < 0 {
		return start
	}
	return start.Add(time.Duration(seconds * float64(time.Second)))
}

// FeatureTrip is the transform input of a ride. Community areas come from the
// coordinates by point in polygon on the official boundaries; where a ride
// has no coordinates (or they fall outside every area) the area the city
// labelled is used.
func FeatureTrip(r *contracts.RawRide, areas *geo.Areas) features.Trip {
	return features.Trip{
		Pickup:      r.PickupDatetime,
		Miles:       val(r.TripDistance),
		Seconds:     val(r.TripSeconds),
		Fare:        val(r.FareAmount),
		PaymentType: r.PaymentType,
		Company:     r.Company,
		PickupArea:  area(areas, r.PickupLatitude, r.PickupLongitude, r.PickupCommunityArea),
		DropoffArea: area(areas, r.DropoffLatitude, r.DropoffLongitude, r.DropoffCommunityArea),
	}
}

func area(areas *geo.Areas, lat, lon *float64, label *int) int {
	if lat != nil && lon != nil && areas != nil {
		if a := areas.Lookup(*lat, *lon); a > 0 {
			return a
		}
	}
	if label != nil {
		return *label
	}
	return 0
}

// FeaturesMessage is the taxi-features-realtime record of a ride's row.
// Weather and demand are filled by the caller when it knows them.
func FeaturesMessage(tripID string, pickup time.Time, row *features.Row) contracts.Features {
	return contracts.Features{
		SchemaVersion:        contracts.SchemaVersion,
		TripID:               tripID,
		Timestamp:            pickup,
		PickupHour:           row.PickupHour,
		PickupDayOfWeek:      row.PickupDayOfWeek,
		PickupMonth:          row.PickupMonth,
		PickupCommunityArea:  row.PickupArea,
		DropoffCommunityArea: row.DropoffArea,
		TripDurationSeconds:  ptr(row.TripSeconds),
		TripDistanceMiles:    row.TripMiles,
		AvgSpeedMph:          ptr(row.AvgSpeedMph),
		FareAmount:           ptr(row.Fare),
		PaymentType:          row.PaymentType,
		Company:              row.Company,
		WeatherCondition:     "unknown",
		DemandLevel:          "unknown",
	}
}

// Row is the feature row a features record carries.
func Row(f *contracts.Features) features.Row {
	return features.Row{
		TripMiles:       f.TripDistanceMiles,
		TripSeconds:     val(f.TripDurationSeconds),
		AvgSpeedMph:     val(f.AvgSpeedMph),
		PickupHour:      f.PickupHour,
		PickupDayOfWeek: f.PickupDayOfWeek,
		PickupMonth:     f.PickupMonth,
		PickupArea:      f.PickupCommunityArea,
		DropoffArea:     f.DropoffCommunityArea,
		PaymentType:     f.PaymentType,
		Company:         f.Company,
		Fare:            val(f.FareAmount),
	}
}

// ptr maps NaN to nil, the JSON null of the catalog.
func ptr(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}

func val(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}
