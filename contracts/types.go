package contracts

import (
	"reflect"
	"slices"
)

// messageTypes maps the Message names of the catalog to their Go types.
var messageTypes = map[string]reflect.Type{
	"RawRide":            reflect.TypeFor[RawRide](),
	"Actual":             reflect.TypeFor[Actual](),
	"Features":           reflect.TypeFor[Features](),
	"Prediction":         reflect.TypeFor[Prediction](),
	"DataQualityAlert":   reflect.TypeFor[DataQualityAlert](),
	"ModelMetric":        reflect.TypeFor[ModelMetric](),
	"ModelUpdate":        reflect.TypeFor[ModelUpdate](),
	"GPSPing":            reflect.TypeFor[GPSPing](),
	"AreaAggregate":      reflect.TypeFor[AreaAggregate](),
	"Anomaly":            reflect.TypeFor[Anomaly](),
	"RideRequest":        reflect.TypeFor[RideRequest](),
	"DemandPrediction":   reflect.TypeFor[DemandPrediction](),
	"WeatherObservation": reflect.TypeFor[WeatherObservation](),
}

// MessageType returns the Go type a catalog Message name stands for; ok is
// false for the names that are not message types of this package
// (dead-letter and changelog topics carry other bytes).
func MessageType(name string) (t reflect.Type, ok bool) {
	t, ok = messageTypes[name]
	return t, ok
}

// MessageNames lists the message types of the catalog, sorted.
func MessageNames() []string {
	names := make([]string, 0, len(messageTypes))
	for n := range messageTypes {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
