package contracts

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"time"
)

// appender is implemented by the messages every record of a stream
// carries (features, predictions, GPS pings). They write their own JSON,
// byte for byte what encoding/json writes (tested), without reflection:
// encoding is on every streamer's hot path.
type appender interface {
	appendJSON(b []byte) ([]byte, error)
}

var errNotFinite = errors.New("json: unsupported value: a number is NaN or infinite")

// AppendJSONString writes s as encoding/json does.
func AppendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			// Escaping is rare in the catalog's values; let encoding/json
			// do it exactly.
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// AppendJSONFloat writes f as encoding/json does; NaN and infinities are
// an error there, and here.
func AppendJSONFloat(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, errNotFinite
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

func appendOptFloat(b []byte, f *float64) ([]byte, error) {
	if f == nil {
		return append(b, "null"...), nil
	}
	return AppendJSONFloat(b, *f)
}

// AppendJSONTime writes t as time.Time's MarshalJSON does.
func AppendJSONTime(b []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 0 || y > 9999 {
		return b, errors.New("json: time year outside of range [0,9999]")
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}

func appendInt(b []byte, name string, v int) []byte {
	b = append(b, name...)
	return strconv.AppendInt(b, int64(v), 10)
}

// writer chains appends, keeping the first error.
type writer struct {
	b   []byte
	err error
}

func (w *writer) raw(s string)           { w.b = append(w.b, s...) }
func (w *writer) str(s string)           { w.b = AppendJSONString(w.b, s) }
func (w *writer) int(name string, v int) { w.b = appendInt(w.b, name, v) }
func (w *writer) float(name string, f float64) {
	w.b = append(w.b, name...)
	if w.err == nil {
		w.b, w.err = AppendJSONFloat(w.b, f)
	}
}
func (w *writer) optFloat(name string, f *float64) {
	w.b = append(w.b, name...)
	if w.err == nil {
		w.b, w.err = appendOptFloat(w.b, f)
	}
}
func (w *writer) time(name string, t time.Time) {
	w.b = append(w.b, name...)
	if w.err == nil {
		w.b, w.err = AppendJSONTime(w.b, t)
	}
}

func (m *Features) appendJSON(b []byte) ([]byte, error) {
	w := writer{b: b}
	w.int(`{"schema_version":`, m.SchemaVersion)
	w.raw(`,"trip_id":`)
	w.str(m.TripID)
	w.time(`,"timestamp":`, m.Timestamp)
	w.int(`,"pickup_hour":`, m.PickupHour)
	w.int(`,"pickup_day_of_week":`, m.PickupDayOfWeek)
	w.int(`,"pickup_month":`, m.PickupMonth)
	w.int(`,"pickup_community_area":`, m.PickupCommunityArea)
	w.int(`,"dropoff_community_area":`, m.DropoffCommunityArea)
	w.optFloat(`,"trip_duration_seconds":`, m.TripDurationSeconds)
	w.float(`,"trip_distance_miles":`, m.TripDistanceMiles)
	w.optFloat(`,"avg_speed_mph":`, m.AvgSpeedMph)
	w.optFloat(`,"fare_amount":`, m.FareAmount)
	w.raw(`,"payment_type":`)
	w.str(m.PaymentType)
	w.raw(`,"company":`)
	w.str(m.Company)
	w.raw(`,"weather_condition":`)
	w.str(m.WeatherCondition)
	w.raw(`,"demand_level":`)
	w.str(m.DemandLevel)
	if m.RequestID != "" {
		w.raw(`,"request_id":`)
		w.str(m.RequestID)
	}
	w.raw(`}`)
	return w.b, w.err
}

func (m *Prediction) appendJSON(b []byte) ([]byte, error) {
	w := writer{b: b}
	w.int(`{"schema_version":`, m.SchemaVersion)
	w.raw(`,"trip_id":`)
	w.str(m.TripID)
	w.time(`,"timestamp":`, m.Timestamp)
	w.float(`,"predicted_fare":`, m.PredictedFare)
	w.optFloat(`,"predicted_tip":`, m.PredictedTip)
	w.optFloat(`,"big_tipper_probability":`, m.BigTipperProb)
	w.float(`,"confidence_score":`, m.ConfidenceScore)
	w.raw(`,"model_version":`)
	w.str(m.ModelVersion)
	w.raw(`,"model_versions":`)
	if m.ModelVersions == nil {
		w.raw("null")
	} else {
		keys := make([]string, 0, len(m.ModelVersions))
		for k := range m.ModelVersions {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		w.raw("{")
		for i, k := range keys {
			if i > 0 {
				w.raw(",")
			}
			w.str(k)
			w.raw(":")
			w.str(m.ModelVersions[k])
		}
		w.raw("}")
	}
	if m.RequestID != "" {
		w.raw(`,"request_id":`)
		w.str(m.RequestID)
	}
	w.raw(`}`)
	return w.b, w.err
}

func (m *GPSPing) appendJSON(b []byte) ([]byte, error) {
	w := writer{b: b}
	w.int(`{"schema_version":`, m.SchemaVersion)
	w.raw(`,"vehicle_id":`)
	w.str(m.VehicleID)
	if m.TripID != "" {
		w.raw(`,"trip_id":`)
		w.str(m.TripID)
	}
	w.time(`,"timestamp":`, m.Timestamp)
	w.float(`,"latitude":`, m.Latitude)
	w.float(`,"longitude":`, m.Longitude)
	w.float(`,"speed":`, m.Speed)
	w.float(`,"heading":`, m.Heading)
	w.raw(`}`)
	return w.b, w.err
}

// AppendGPSPing appends the JSON of p to b, as Encode writes it.
func AppendGPSPing(b []byte, p *GPSPing) ([]byte, error) { return p.appendJSON(b) }
