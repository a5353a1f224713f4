package contracts

// Alert types of data-quality alerts beyond feature drift and schema
// failures (messages.go): findings about the raw rides themselves.
const (
	// AlertTypeMissingRequired: records lack a field every ride must have
	// (trip_id, pickup_datetime, trip_distance, fare_amount).
	AlertTypeMissingRequired = "missing_required"
	// AlertTypeNullRate: a nullable field is null more often than in the
	// reference.
	AlertTypeNullRate = "null_rate"
	// AlertTypeOutOfRange: values outside their plausible range (negative
	// or absurd amounts, coordinates outside Chicago).
	AlertTypeOutOfRange = "out_of_range"
)

// AlertTypes lists every alert type a data-quality alert may carry.
func AlertTypes() []string {
	return []string{AlertTypeDrift, AlertTypeSchema, AlertTypeMissingRequired, AlertTypeNullRate, AlertTypeOutOfRange}
}
