package contracts

import "time"

// SchemaVersion is the version every message of this package is written with.
// Decoders accept versions 1..SchemaVersion.
const SchemaVersion = 1

// RawRide is a completed taxi trip as it enters the system (taxi-rides-raw),
// published at its pickup time. Pointer fields are nullable in the source data.
type RawRide struct {
	SchemaVersion    int       `json:"schema_version"`
	TripID           string    `json:"trip_id"`
	PickupDatetime   time.Time `json:"pickup_datetime"`
	PickupLatitude   *float64  `json:"pickup_latitude"`
	PickupLongitude  *float64  `json:"pickup_longitude"`
	DropoffLatitude  *float64  `json:"dropoff_latitude"`
	DropoffLongitude *float64  `json:"dropoff_longitude"`
	// PassengerCount is not recorded by the City of Chicago; kept nullable for
	// sources that have it.
	PassengerCount *int     `json:"passenger_count"`
	TripDistance   *float64 `json:"trip_distance"` // miles, required
	TripSeconds    *float64 `json:"trip_seconds"`
	FareAmount     *float64 `json:"fare_amount"` // dollars, required
	PaymentType    string   `json:"payment_type"`
	Company        string   `json:"company"`
	// Community areas as labelled by the city (1..77), when known.
	PickupCommunityArea  *int   `json:"pickup_community_area"`
	DropoffCommunityArea *int   `json:"dropoff_community_area"`
	PickupCensusTract    string `json:"pickup_census_tract,omitempty"`
	DropoffCensusTract   string `json:"dropoff_census_tract,omitempty"`
}

// Actual is what a trip really cost, published at trip end (taxi-actuals).
type Actual struct {
	SchemaVersion   int       `json:"schema_version"`
	TripID          string    `json:"trip_id"`
	DropoffDatetime time.Time `json:"dropoff_datetime"`
	Fare            float64   `json:"fare"`
	Tips            float64   `json:"tips"`
	PaymentType     string    `json:"payment_type"`
}

// Features is the realtime feature record of one trip (taxi-features-realtime).
// It carries every input any model needs so inference does no lookups.
type Features struct {
	SchemaVersion int       `json:"schema_version"`
	TripID        string    `json:"trip_id"`
	Timestamp     time.Time `json:"timestamp"` // event time: the pickup
	PickupHour    int       `json:"pickup_hour"`
	// PickupDayOfWeek is 1 = Sunday … 7 = Saturday, as in the city's data.
	PickupDayOfWeek      int `json:"pickup_day_of_week"`
	PickupMonth          int `json:"pickup_month"`
	PickupCommunityArea  int `json:"pickup_community_area"`  // 0 = unknown
	DropoffCommunityArea int `json:"dropoff_community_area"` // 0 = unknown
	// TripDurationSeconds is null when the duration is unknown.
	TripDurationSeconds *float64 `json:"trip_duration_seconds"`
	TripDistanceMiles   float64  `json:"trip_distance_miles"`
	// AvgSpeedMph is null when the duration is zero.
	AvgSpeedMph *float64 `json:"avg_speed_mph"`
	// FareAmount is null for a ride request, whose fare is not known yet.
	FareAmount       *float64 `json:"fare_amount"`
	PaymentType      string   `json:"payment_type"`
	Company          string   `json:"company"`
	WeatherCondition string   `json:"weather_condition"`
	DemandLevel      string   `json:"demand_level"`
	// RequestID is set when the features answer a ride request of the API.
	RequestID string `json:"request_id,omitempty"`
}

// Prediction is what the champions predict for one trip (taxi-predictions).
type Prediction struct {
	SchemaVersion   int       `json:"schema_version"`
	TripID          string    `json:"trip_id"`
	Timestamp       time.Time `json:"timestamp"` // event time of the trip
	PredictedFare   float64   `json:"predicted_fare"`
	PredictedTip    *float64  `json:"predicted_tip"`
	BigTipperProb   *float64  `json:"big_tipper_probability"`
	ConfidenceScore float64   `json:"confidence_score"`
	// ModelVersion is the version of the fare model; ModelVersions has every
	// model that contributed, by model name.
	ModelVersion  string            `json:"model_version"`
	ModelVersions map[string]string `json:"model_versions"`
	RequestID     string            `json:"request_id,omitempty"`
}

// DataQualityAlert reports a data-quality or drift finding (data-quality-alerts).
type DataQualityAlert struct {
	SchemaVersion int       `json:"schema_version"`
	AlertID       string    `json:"alert_id"`
	Timestamp     time.Time `json:"timestamp"` // event time of the window end
	AlertType     string    `json:"alert_type"`
	Severity      string    `json:"severity"`
	Message       string    `json:"message"`
	// ModelName is the model whose reference profile the window was compared
	// with; the bridge routes the alert to that model's drift monitor.
	ModelName        string   `json:"model_name"`
	ModelVersion     string   `json:"model_version"`
	AffectedFeatures []string `json:"affected_features"`
	// Scores holds the drift statistic that decides, per feature (PSI).
	Scores map[string]float64 `json:"scores"`
	// Statistics holds every statistic computed, by feature then name
	// (psi, ks, ks_pvalue, wasserstein, js, chi2, chi2_pvalue, null_rate …).
	Statistics map[string]map[string]float64 `json:"statistics,omitempty"`
	// DriftScore is the largest of Scores.
	DriftScore  float64   `json:"drift_score"`
	Threshold   float64   `json:"threshold"`
	WindowSize  int       `json:"window_size"`
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
}

// Alert types and severities.
const (
	AlertTypeDrift  = "feature_drift"
	AlertTypeSchema = "schema"

	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// ModelMetric is one measurement of a model's quality (model-metrics).
type ModelMetric struct {
	SchemaVersion int       `json:"schema_version"`
	MetricID      string    `json:"metric_id"`
	ModelName     string    `json:"model_name"`
	ModelVersion  string    `json:"model_version"`
	Timestamp     time.Time `json:"timestamp"`
	MetricName    string    `json:"metric_name"`
	MetricValue   float64   `json:"metric_value"`
	// Threshold is the value past which the metric counts as a breach;
	// HigherIsBetter says which side of it is bad.
	Threshold      float64   `json:"threshold"`
	HigherIsBetter bool      `json:"higher_is_better"`
	SampleSize     int       `json:"sample_size"`
	WindowStart    time.Time `json:"window_start"`
	WindowEnd      time.Time `json:"window_end"`
	Source         string    `json:"source"` // e.g. "evaluation-workflow", "metrics-streamer"
}

// Breached reports whether the metric is on the bad side of its threshold.
func (m ModelMetric) Breached() bool {
	if m.HigherIsBetter {
		return m.MetricValue < m.Threshold
	}
	return m.MetricValue > m.Threshold
}

// ModelUpdate tells the streamers that a model's champion changed (model-updates).
type ModelUpdate struct {
	SchemaVersion int       `json:"schema_version"`
	ModelName     string    `json:"model_name"`
	Version       string    `json:"version"`
	Previous      string    `json:"previous"`
	ModelURI      string    `json:"model_uri"`
	SHA256        string    `json:"sha256"`
	Timestamp     time.Time `json:"timestamp"`
	WorkflowID    string    `json:"workflow_id"`
}

// GPSPing is one position report of a vehicle (taxi-gps-stream).
type GPSPing struct {
	SchemaVersion int    `json:"schema_version"`
	VehicleID     string `json:"vehicle_id"`
	// TripID is the trip the vehicle is on, "" when it is idle.
	TripID    string    `json:"trip_id,omitempty"`
	Timestamp time.Time `json:"timestamp"`
	Latitude  float64   `json:"latitude"`
	Longitude float64   `json:"longitude"`
	Speed     float64   `json:"speed"`   // mph
	Heading   float64   `json:"heading"` // degrees from north
}

// AreaAggregate is a windowed aggregate of one community area
// (taxi-features-aggregated).
type AreaAggregate struct {
	SchemaVersion   int       `json:"schema_version"`
	AreaID          int       `json:"area_id"`
	TimeWindow      string    `json:"time_window"`
	WindowStart     time.Time `json:"window_start"`
	WindowEnd       time.Time `json:"window_end"`
	AvgTripDuration float64   `json:"avg_trip_duration"`
	TripCount       int       `json:"trip_count"`
	AvgFare         float64   `json:"avg_fare"`
	DemandScore     float64   `json:"demand_score"`
}

// Anomaly is a trip that looks wrong, with why (taxi-anomalies).
type Anomaly struct {
	SchemaVersion int            `json:"schema_version"`
	TripID        string         `json:"trip_id"`
	Timestamp     time.Time      `json:"timestamp"`
	AnomalyType   string         `json:"anomaly_type"`
	AnomalyScore  float64        `json:"anomaly_score"`
	Details       map[string]any `json:"details"`
}

// RideRequest asks for a prediction for a ride not yet taken (taxi-ride-requests).
type RideRequest struct {
	SchemaVersion    int       `json:"schema_version"`
	RequestID        string    `json:"request_id"`
	PickupDatetime   time.Time `json:"pickup_datetime"`
	PickupLatitude   *float64  `json:"pickup_latitude"`
	PickupLongitude  *float64  `json:"pickup_longitude"`
	DropoffLatitude  *float64  `json:"dropoff_latitude"`
	DropoffLongitude *float64  `json:"dropoff_longitude"`
	TripDistance     *float64  `json:"trip_distance"`
	PaymentType      string    `json:"payment_type"`
	Company          string    `json:"company"`
}

// DemandPrediction forecasts trip starts of an area (demand-predictions).
type DemandPrediction struct {
	SchemaVersion int       `json:"schema_version"`
	AreaID        int       `json:"area_id"`
	Timestamp     time.Time `json:"timestamp"` // event time the forecast was made at
	// Horizon is how far ahead the forecast looks ("15m", "60m"); it
	// covers [PeriodStart, PeriodEnd).
	Horizon        string    `json:"horizon"`
	PeriodStart    time.Time `json:"period_start"`
	PeriodEnd      time.Time `json:"period_end"`
	PredictedTrips float64   `json:"predicted_trips"`
	// Baseline is the seasonal expectation for the period; Level the
	// recent demand relative to its own baseline that scales it.
	Baseline float64 `json:"baseline"`
	Level    float64 `json:"level"`
	// ActiveVehicles seen in the area recently (GPS pings), the supply
	// side of demand.
	ActiveVehicles int    `json:"active_vehicles"`
	ModelVersion   string `json:"model_version"`
}

// WeatherObservation is the weather at a station (weather-observations), a
// table: the latest observation per station holds until the next.
type WeatherObservation struct {
	SchemaVersion int       `json:"schema_version"`
	Station       string    `json:"station"`
	Timestamp     time.Time `json:"timestamp"`
	// Condition is one of clear, cloudy, rain, snow, fog, storm.
	Condition       string   `json:"condition"`
	TemperatureC    *float64 `json:"temperature_c"`
	PrecipitationMM *float64 `json:"precipitation_mm"`
}
