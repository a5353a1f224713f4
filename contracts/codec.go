package contracts

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	// Decodes like encoding/json about three times faster, and every
	// streamer decodes each record it reads. Encoding stays with the
	// standard library, whose output the schemas and fixtures pin.
	gojson "github.com/goccy/go-json"
)

// Message is any value of the catalog: it can say whether it is well formed.
type Message interface {
	Validate() error
}

// InvalidError says why a record is not a valid message. Field is empty when
// the bytes could not be decoded at all.
type InvalidError struct {
	Field  string
	Reason string
}

func (e *InvalidError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// IsInvalid reports whether err says a record is malformed (a permanent
// condition: retrying will not help).
func IsInvalid(err error) bool {
	var ie *InvalidError
	return errors.As(err, &ie)
}

// Invalid returns an InvalidError about field, for processors that check
// more than a message's own Validate.
func Invalid(field, format string, args ...any) error { return invalid(field, format, args...) }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Encode marshals a message, stamping the current schema version.
func Encode[T any, PT interface {
	*T
	Message
}](m *T) ([]byte, error) {
	setVersion(any(m))
	if a, ok := any(m).(appender); ok {
		return a.appendJSON(make([]byte, 0, 512))
	}
	return json.Marshal(m)
}

// Decode unmarshals and validates a message, plain JSON or framed in the
// Schema Registry wire format (see Payload).
func Decode[T any, PT interface {
	*T
	Message
}](b []byte) (*T, error) {
	b, err := Payload(b)
	if err != nil {
		return nil, err
	}
	m := new(T)
	if err := gojson.Unmarshal(b, m); err != nil {
		return nil, &InvalidError{Reason: "decode json: " + err.Error()}
	}
	if err := checkVersion(any(m)); err != nil {
		return nil, err
	}
	if err := PT(m).Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// DecodeInto decodes the JSON (plain or framed) of a record into v without
// validating it: for a processor that needs a few fields and forwards the
// bytes to one that decodes them whole.
func DecodeInto(b []byte, v any) error {
	if len(b) >= WireHeaderSize && b[0] == WireMagic {
		b = b[WireHeaderSize:]
	}
	if err := gojson.Unmarshal(b, v); err != nil {
		return &InvalidError{Reason: "decode json: " + err.Error()}
	}
	return nil
}

type versioned interface{ schemaVersion() *int }

func setVersion(m any) {
	if v, ok := m.(versioned); ok {
		*v.schemaVersion() = SchemaVersion
	}
}

func checkVersion(m any) error {
	v, ok := m.(versioned)
	if !ok {
		return nil
	}
	sv := *v.schemaVersion()
	if sv < 1 || sv > SchemaVersion {
		return invalid("schema_version", "unsupported schema version %d (this build reads 1..%d)", sv, SchemaVersion)
	}
	return nil
}

func (m *RawRide) schemaVersion() *int            { return &m.SchemaVersion }
func (m *Actual) schemaVersion() *int             { return &m.SchemaVersion }
func (m *Features) schemaVersion() *int           { return &m.SchemaVersion }
func (m *Prediction) schemaVersion() *int         { return &m.SchemaVersion }
func (m *DataQualityAlert) schemaVersion() *int   { return &m.SchemaVersion }
func (m *ModelMetric) schemaVersion() *int        { return &m.SchemaVersion }
func (m *ModelUpdate) schemaVersion() *int        { return &m.SchemaVersion }
func (m *GPSPing) schemaVersion() *int            { return &m.SchemaVersion }
func (m *AreaAggregate) schemaVersion() *int      { return &m.SchemaVersion }
func (m *Anomaly) schemaVersion() *int            { return &m.SchemaVersion }
func (m *RideRequest) schemaVersion() *int        { return &m.SchemaVersion }
func (m *DemandPrediction) schemaVersion() *int   { return &m.SchemaVersion }
func (m *WeatherObservation) schemaVersion() *int { return &m.SchemaVersion }

// Chicago's rough bounding box, generous enough for airports and suburbs
// served by city taxis.
const (
	minLat, maxLat = 41.3, 42.4
	minLon, maxLon = -88.4, -87.3
)

func required(field, v string) error {
	if v == "" {
		return invalid(field, "required")
	}
	return nil
}

func requiredTime(field string, t time.Time) error {
	if t.IsZero() {
		return invalid(field, "required")
	}
	return nil
}

func finite(field string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return invalid(field, "not a finite number")
	}
	return nil
}

func nonNegative(field string, v float64) error {
	if err := finite(field, v); err != nil {
		return err
	}
	if v < 0 {
		return invalid(field, "negative (%g)", v)
	}
	return nil
}

func optionalCoord(field string, v *float64, lo, hi float64) error {
	if v == nil {
		return nil
	}
	if err := finite(field, *v); err != nil {
		return err
	}
	if *v < lo || *v > hi {
		return invalid(field, "%g is outside the Chicago area [%g, %g]", *v, lo, hi)
	}
	return nil
}

func optionalArea(field string, v *int) error {
	if v != nil && (*v < 1 || *v > 77) {
		return invalid(field, "community area %d is not in 1..77", *v)
	}
	return nil
}

// Validate checks required fields, finiteness and ranges.
func (m *RawRide) Validate() error {
	if err := required("trip_id", m.TripID); err != nil {
		return err
	}
	if err := requiredTime("pickup_datetime", m.PickupDatetime); err != nil {
		return err
	}
	if m.TripDistance == nil {
		return invalid("trip_distance", "required")
	}
	if err := nonNegative("trip_distance", *m.TripDistance); err != nil {
		return err
	}
	if m.FareAmount == nil {
		return invalid("fare_amount", "required")
	}
	if err := nonNegative("fare_amount", *m.FareAmount); err != nil {
		return err
	}
	if m.TripSeconds != nil {
		if err := nonNegative("trip_seconds", *m.TripSeconds); err != nil {
			return err
		}
	}
	if m.PassengerCount != nil && *m.PassengerCount < 0 {
		return invalid("passenger_count", "negative (%d)", *m.PassengerCount)
	}
	for _, c := range []struct {
		f      string
		v      *float64
		lo, hi float64
	}{
		{"pickup_latitude", m.PickupLatitude, minLat, maxLat},
		{"pickup_longitude", m.PickupLongitude, minLon, maxLon},
		{"dropoff_latitude", m.DropoffLatitude, minLat, maxLat},
		{"dropoff_longitude", m.DropoffLongitude, minLon, maxLon},
	} {
		if err := optionalCoord(c.f, c.v, c.lo, c.hi); err != nil {
			return err
		}
	}
	if (m.PickupLatitude == nil) != (m.PickupLongitude == nil) {
		return invalid("pickup_longitude", "latitude and longitude must both be set or both be null")
	}
	if (m.DropoffLatitude == nil) != (m.DropoffLongitude == nil) {
		return invalid("dropoff_longitude", "latitude and longitude must both be set or both be null")
	}
	if err := optionalArea("pickup_community_area", m.PickupCommunityArea); err != nil {
		return err
	}
	return optionalArea("dropoff_community_area", m.DropoffCommunityArea)
}

// Validate checks required fields and amounts.
func (m *Actual) Validate() error {
	if err := required("trip_id", m.TripID); err != nil {
		return err
	}
	if err := requiredTime("dropoff_datetime", m.DropoffDatetime); err != nil {
		return err
	}
	if err := nonNegative("fare", m.Fare); err != nil {
		return err
	}
	return nonNegative("tips", m.Tips)
}

// Validate checks required fields and ranges.
func (m *Features) Validate() error {
	if err := required("trip_id", m.TripID); err != nil {
		return err
	}
	if err := requiredTime("timestamp", m.Timestamp); err != nil {
		return err
	}
	if m.PickupHour < 0 || m.PickupHour > 23 {
		return invalid("pickup_hour", "%d is not in 0..23", m.PickupHour)
	}
	if m.PickupDayOfWeek < 1 || m.PickupDayOfWeek > 7 {
		return invalid("pickup_day_of_week", "%d is not in 1..7", m.PickupDayOfWeek)
	}
	if m.PickupMonth < 1 || m.PickupMonth > 12 {
		return invalid("pickup_month", "%d is not in 1..12", m.PickupMonth)
	}
	if m.PickupCommunityArea < 0 || m.PickupCommunityArea > 77 {
		return invalid("pickup_community_area", "%d is not in 0..77", m.PickupCommunityArea)
	}
	if m.DropoffCommunityArea < 0 || m.DropoffCommunityArea > 77 {
		return invalid("dropoff_community_area", "%d is not in 0..77", m.DropoffCommunityArea)
	}
	if err := nonNegative("trip_distance_miles", m.TripDistanceMiles); err != nil {
		return err
	}
	for _, o := range []struct {
		f string
		v *float64
	}{
		{"trip_duration_seconds", m.TripDurationSeconds},
		{"fare_amount", m.FareAmount},
	} {
		if o.v != nil {
			if err := nonNegative(o.f, *o.v); err != nil {
				return err
			}
		}
	}
	if m.AvgSpeedMph != nil {
		return nonNegative("avg_speed_mph", *m.AvgSpeedMph)
	}
	return nil
}

// Validate checks required fields and that predictions are numbers.
func (m *Prediction) Validate() error {
	if err := required("trip_id", m.TripID); err != nil {
		return err
	}
	if err := required("model_version", m.ModelVersion); err != nil {
		return err
	}
	if err := finite("predicted_fare", m.PredictedFare); err != nil {
		return err
	}
	if m.BigTipperProb != nil && (*m.BigTipperProb < 0 || *m.BigTipperProb > 1 || math.IsNaN(*m.BigTipperProb)) {
		return invalid("big_tipper_probability", "%g is not a probability", *m.BigTipperProb)
	}
	if m.ConfidenceScore < 0 || m.ConfidenceScore > 1 || math.IsNaN(m.ConfidenceScore) {
		return invalid("confidence_score", "%g is not in [0, 1]", m.ConfidenceScore)
	}
	return nil
}

// Validate checks the fields the bridge and the monitor rely on.
func (m *DataQualityAlert) Validate() error {
	if err := required("alert_id", m.AlertID); err != nil {
		return err
	}
	if err := required("model_name", m.ModelName); err != nil {
		return err
	}
	if err := requiredTime("timestamp", m.Timestamp); err != nil {
		return err
	}
	switch m.Severity {
	case SeverityInfo, SeverityWarning, SeverityCritical:
	default:
		return invalid("severity", "%q is not one of info, warning, critical", m.Severity)
	}
	if err := finite("drift_score", m.DriftScore); err != nil {
		return err
	}
	for f, s := range m.Scores {
		if err := finite("scores."+f, s); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the fields the bridge and the monitor rely on.
func (m *ModelMetric) Validate() error {
	if err := required("metric_id", m.MetricID); err != nil {
		return err
	}
	if err := required("model_name", m.ModelName); err != nil {
		return err
	}
	if err := required("metric_name", m.MetricName); err != nil {
		return err
	}
	if err := finite("metric_value", m.MetricValue); err != nil {
		return err
	}
	return finite("threshold", m.Threshold)
}

// Validate checks that the update names a model version and its artifact.
func (m *ModelUpdate) Validate() error {
	if err := required("model_name", m.ModelName); err != nil {
		return err
	}
	if err := required("version", m.Version); err != nil {
		return err
	}
	return required("sha256", m.SHA256)
}

// Validate checks identity, time and coordinates.
func (m *GPSPing) Validate() error {
	if err := required("vehicle_id", m.VehicleID); err != nil {
		return err
	}
	if err := requiredTime("timestamp", m.Timestamp); err != nil {
		return err
	}
	if err := optionalCoord("latitude", &m.Latitude, minLat, maxLat); err != nil {
		return err
	}
	if err := optionalCoord("longitude", &m.Longitude, minLon, maxLon); err != nil {
		return err
	}
	return nonNegative("speed", m.Speed)
}

// Validate checks the area and the window.
func (m *AreaAggregate) Validate() error {
	if m.AreaID < 1 || m.AreaID > 77 {
		return invalid("area_id", "%d is not in 1..77", m.AreaID)
	}
	return required("time_window", m.TimeWindow)
}

// Validate checks identity and type.
func (m *Anomaly) Validate() error {
	if err := required("trip_id", m.TripID); err != nil {
		return err
	}
	return required("anomaly_type", m.AnomalyType)
}

// Validate checks what a prediction needs.
func (m *RideRequest) Validate() error {
	if err := required("request_id", m.RequestID); err != nil {
		return err
	}
	return requiredTime("pickup_datetime", m.PickupDatetime)
}

// Validate checks the area and the forecast.
func (m *DemandPrediction) Validate() error {
	if m.AreaID < 1 || m.AreaID > 77 {
		return invalid("area_id", "%d is not in 1..77", m.AreaID)
	}
	return nonNegative("predicted_trips", m.PredictedTrips)
}

// WeatherConditions are the conditions a WeatherObservation may report.
func WeatherConditions() []string { return []string{"clear", "cloudy", "rain", "snow", "fog", "storm"} }

// Validate checks station, time and condition.
func (m *WeatherObservation) Validate() error {
	if err := required("station", m.Station); err != nil {
		return err
	}
	if err := requiredTime("timestamp", m.Timestamp); err != nil {
		return err
	}
	for _, c := range WeatherConditions() {
		if m.Condition == c {
			return nil
		}
	}
	return invalid("condition", "%q is not one of %v", m.Condition, WeatherConditions())
}
