// Package bench holds the system-level benchmarks: the streamer chain
// against an identity passthrough of the same topology on the same broker,
// and the cost of each processor per event.
//
//	go test -run '^$' -bench . -benchtime 1x ./bench
package bench
