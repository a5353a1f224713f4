// Package kfp is a client of the Kubeflow Pipelines v2beta1 REST API: start
// a run of a pipeline version with runtime parameters, follow it, cancel it.
package kfp

// Client talks to one Kubeflow Pipelines API server.
type Client struct{}
