package training

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/taxi-mlops/taxi-mlops/ml/drift"
	"github.com/taxi-mlops/taxi-mlops/ml/features"
	"github.com/taxi-mlops/taxi-mlops/ml/xgb"
	"github.com/taxi-mlops/taxi-mlops/registry"
)

// Loaded is a model version read from the registry and checked: the
// evaluator, the feature spec it was trained with and its reference profile.
type Loaded struct {
	Name    string
	Version string
	SHA256  string
	Eval    *xgb.Model
	Spec    *features.Spec
	Profile *drift.Profile
	Metrics map[string]float64
	Meta    registry.Metadata
}

// LoadModel reads a model version from the registry; the registry verifies
// the checksum, this checks that model and feature spec fit together.
func LoadModel(ctx context.Context, reg *registry.Registry, name, version string) (*Loaded, error) {
	meta, data, err := reg.Get(ctx, name, version)
	if err != nil {
		return nil, fmt.Errorf("load %s/%s: %w", name, version, err)
	}
	eval, err := xgb.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("load %s/%s: %w", name, version, err)
	}
	spec := meta.Features
	if err := spec.Init(); err != nil {
		return nil, fmt.Errorf("load %s/%s: %w", name, version, err)
	}
	if eval.NumFeatures() != spec.Len() {
		return nil, fmt.Errorf("load %s/%s: model has %d features, its spec %d", name, version, eval.NumFeatures(), spec.Len())
	}
	m := &Loaded{Name: name, Version: version, SHA256: meta.SHA256, Eval: eval, Spec: &spec, Metrics: meta.Metrics, Meta: meta}
	if len(meta.ReferenceProfile) > 0 {
		var p drift.Profile
		if err := json.Unmarshal(meta.ReferenceProfile, &p); err != nil {
			return nil, fmt.Errorf("load %s/%s: reference profile: %w", name, version, err)
		}
		m.Profile = &p
	}
	return m, nil
}
