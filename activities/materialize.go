package activities

import (
	"context"
	"errors"
)

// MaterializeFeatures writes the offline feature table of a snapshot and,
// when a Feast feature server is configured, materializes it online.
func (a *Activities) MaterializeFeatures(ctx context.Context, in MaterializeInput) (MaterializeResult, error) {
	return MaterializeResult{}, permanent(ErrTypeInvalidInput, errors.New("materialize: not built yet"))
}
