// Package contracts is the topic catalog and the message types that cross it.
//
// It is the only place topic names are spelled. Every topic is declared once
// with its partition count, what its record key is, and which message type its
// values carry. Messages are JSON with a schema_version field; Decode
// validates them at the boundary so a processor never sees a half-formed
// value.
package contracts

import "fmt"

// Topic describes one Kafka topic of the system.
type Topic struct {
	Name       string
	Partitions int32
	// Key says what the record key is; records with the same key land in the
	// same partition, which is what per-key ordering relies on.
	Key string
	// Message names the Go type carried as the record value.
	Message string
	// Compacted topics keep the latest value per key (changelogs, tables).
	Compacted bool
}

// Topic names. Use these constants, never string literals.
const (
	TopicRidesRaw           = "taxi-rides-raw"
	TopicGPSStream          = "taxi-gps-stream"
	TopicFeaturesRealtime   = "taxi-features-realtime"
	TopicFeaturesAggregated = "taxi-features-aggregated"
	TopicPredictions        = "taxi-predictions"
	TopicAnomalies          = "taxi-anomalies"
	TopicModelMetrics       = "model-metrics"
	TopicDataQualityAlerts  = "data-quality-alerts"
	TopicRideRequests       = "taxi-ride-requests"
	TopicActuals            = "taxi-actuals"
	TopicDemandPredictions  = "demand-predictions"
	TopicModelUpdates       = "model-updates"
	TopicWeather            = "weather-observations"

	// Internal topics: records re-keyed by community area so one replica
	// sees every record of an area (repartitioning).
	TopicFeaturesByArea = "taxi-features-by-area"
	TopicGPSByArea      = "taxi-gps-by-area"
)

// Consumers names every consumer group of the system. Each has its own
// dead-letter topic, see DeadLetterTopic.
var consumers = []string{
	"features", "inference", "quality", "bridge",
	"area-repartition", "aggregates", "gps-repartition", "demand", "anomaly", "metrics",
}

// stateful lists the consumers that keep state in a changelog topic, with
// the partition count of their (co-partitioned) inputs.
var stateful = map[string]int32{"aggregates": 6, "demand": 6, "anomaly": 6, "metrics": 6}

// ChangelogTopic is the compacted topic holding a stateful consumer's state.
func ChangelogTopic(consumer string) string { return "taxi-mlops-" + consumer + "-changelog" }

// Consumers returns the names of the system's consumers (streamer roles).
func Consumers() []string { return append([]string(nil), consumers...) }

// DeadLetterTopic is the dead-letter topic of a consumer: records it could not
// decode or validate, with the reason in headers.
func DeadLetterTopic(consumer string) string { return "taxi-dlq-" + consumer }

// ConsumerGroup is the Kafka consumer group a streamer role joins.
func ConsumerGroup(consumer string) string { return "taxi-mlops-" + consumer }

// Catalog returns every topic of the system, dead-letter topics included.
func Catalog() []Topic {
	ts := []Topic{
		{Name: TopicRidesRaw, Partitions: 6, Key: "trip_id", Message: "RawRide"},
		{Name: TopicGPSStream, Partitions: 12, Key: "vehicle_id", Message: "GPSPing"},
		{Name: TopicFeaturesRealtime, Partitions: 6, Key: "trip_id", Message: "Features"},
		{Name: TopicFeaturesAggregated, Partitions: 3, Key: "area_id:time_window", Message: "AreaAggregate", Compacted: true},
		{Name: TopicPredictions, Partitions: 6, Key: "trip_id", Message: "Prediction"},
		{Name: TopicAnomalies, Partitions: 3, Key: "trip_id", Message: "Anomaly"},
		{Name: TopicModelMetrics, Partitions: 3, Key: "model_name", Message: "ModelMetric"},
		{Name: TopicDataQualityAlerts, Partitions: 3, Key: "alert_id", Message: "DataQualityAlert"},
		{Name: TopicRideRequests, Partitions: 6, Key: "request_id", Message: "RideRequest"},
		{Name: TopicActuals, Partitions: 6, Key: "trip_id", Message: "Actual"},
		{Name: TopicDemandPredictions, Partitions: 3, Key: "area_id", Message: "DemandPrediction"},
		// One partition: every replica reads every update in order.
		{Name: TopicModelUpdates, Partitions: 1, Key: "model_name", Message: "ModelUpdate"},
		{Name: TopicWeather, Partitions: 1, Key: "station", Message: "WeatherObservation", Compacted: true},
		{Name: TopicFeaturesByArea, Partitions: 6, Key: "pickup_community_area", Message: "Features"},
		{Name: TopicGPSByArea, Partitions: 6, Key: "community area", Message: "GPSPing"},
	}
	for _, c := range consumers {
		ts = append(ts, Topic{Name: DeadLetterTopic(c), Partitions: 1, Key: "original key", Message: "original bytes"})
		if n, ok := stateful[c]; ok {
			ts = append(ts, Topic{Name: ChangelogTopic(c), Partitions: n, Key: "state key", Message: "state entry", Compacted: true})
		}
	}
	return ts
}

// Lookup returns the catalog entry of a topic.
func Lookup(name string) (Topic, error) {
	for _, t := range Catalog() {
		if t.Name == name {
			return t, nil
		}
	}
	return Topic{}, fmt.Errorf("topic %q is not in the catalog", name)
}
