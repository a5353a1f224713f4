package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/taxi-mlops/taxi-mlops/dataset"
	"github.com/taxi-mlops/taxi-mlops/rides"
	"github.com/taxi-mlops/taxi-mlops/training"
	"github.com/taxi-mlops/taxi-mlops/tripdata"
)

// table is the trips of a data file as the system's labelled rows.
type table struct {
	path string
	rows []dataset.Row
	// labelled[i] says whether trip i's outcome is known. Parquet
	// snapshots hold labelled trips only; in the city's CSV a trip without
	// a fare has none (its Actual would read as a $0 fare).
	labelled []bool
}

// Data file formats, by extension.
const (
	formatCSV     = "csv"
	formatCSVGzip = "csv.gz"
	formatParquet = "parquet"
)

func formatOf(path string) (string, error) {
	p := strings.ToLower(path)
	switch {
	case strings.HasSuffix(p, ".csv.gz"):
		return formatCSVGzip, nil
	case strings.HasSuffix(p, ".csv"):
		return formatCSV, nil
	case strings.HasSuffix(p, ".parquet"):
		return formatParquet, nil
	}
	return "", fmt.Errorf("data file %s: unknown format; name it .csv or .csv.gz (CSV in the city's format) or .parquet (a snapshot of the project's schema)", path)
}

// readFile reads a file, saying which one and why it could not be read.
func readFile(what, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		// The path once, then the operating system's reason.
		return nil, fmt.Errorf("read %s %s: %w", what, path, unwrapPath(err))
	}
	return b, nil
}

// readTable reads a data file, CSV or Parquet by its extension. The env must
// be loaded.
func (e *env) readTable(ctx context.Context, path string) (*table, error) {
	format, err := formatOf(path)
	if err != nil {
		return nil, err
	}
	b, err := readFile("data file", path)
	if err != nil {
		return nil, err
	}
	t := &table{path: path}
	switch format {
	case formatParquet:
		rows, err := dataset.Read(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("data file %s: %w", path, err)
		}
		t.rows = rows
		t.labelled = make([]bool, len(rows))
		for i := range t.labelled {
			t.labelled[i] = true
		}
	default:
		var r io.Reader = bytes.NewReader(b)
		if format == formatCSVGzip {
			zr, err := gzip.NewReader(r)
			if err != nil {
				return nil, fmt.Errorf("data file %s: gzip: %w", path, err)
			}
			r = zr
		}
		trips, err := tripdata.Parse(r, e.loc)
		if err != nil {
			return nil, fmt.Errorf("data file %s: %w", path, err)
		}
		// What the replayer publishes and a snapshot joins: the ride and
		// its actual.
		t.rows = make([]dataset.Row, len(trips))
		t.labelled = make([]bool, len(trips))
		for i := range trips {
			t.rows[i] = dataset.Row{Ride: rides.RawRide(&trips[i]), Actual: rides.Actual(&trips[i])}
			t.labelled[i] = !math.IsNaN(trips[i].Fare)
		}
	}
	if len(t.rows) == 0 {
		return nil, fmt.Errorf("data file %s has no trips", path)
	}
	return t, nil
}

// examples returns every trip in feature form, in file order.
func (e *env) examples(t *table) []training.Example {
	return training.Examples(t.rows, e.areas, e.loc)
}

// labelledExamples returns the trips whose outcome is known, in file order,
// and how many were left out.
func (e *env) labelledExamples(t *table) (ex []training.Example, skipped int) {
	rows := make([]dataset.Row, 0, len(t.rows))
	for i := range t.rows {
		if t.labelled[i] {
			rows = append(rows, t.rows[i])
		}
	}
	return training.Examples(rows, e.areas, e.loc), len(t.rows) - len(rows)
}
