// Package feast is a client of the Feast feature server's HTTP API:
// materialize the offline store into the online store, push streaming
// features.
package feast

// Client talks to one Feast feature server.
type Client struct{}
