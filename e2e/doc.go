// Package e2e holds the end-to-end tests of taxi-mlops: the whole loop —
// replayed trips, streamers, drift alert, Temporal retrain, promotion and hot
// swap — against a real Kafka-protocol broker (kfake), a real S3-protocol
// server over HTTP and a real Temporal dev server started from the
// installed Temporal CLI.
//
// The tests need the Temporal CLI (see deploy/devstack.FindTemporal). Without
// it they skip, unless TAXI_E2E_REQUIRE=1 is set, as CI does, in which case
// they fail.
package e2e
