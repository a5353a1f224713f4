package xgb

import (
	"bytes"
	"math"
	"path/filepath"
	"testing"
)

func FuzzParse(f *testing.F) {
	paths, _ := filepath.Glob("testdata/models/*.json.gz")
	for _, p := range paths {
		if filepath.Base(p) == "fare_d6_t100.json.gz" || filepath.Base(p) == "tipper_d6_t100.json.gz" {
			continue // large; the small models cover the same layout
		}
		b := readFile(f, p)
		f.Add(b)
		for _, cut := range []int{1, 10, len(b) / 3, len(b) / 2, len(b) - 2} {
			f.Add(b[:cut])
		}
		f.Add(bytes.Replace(b, []byte(`"left_children":[1`), []byte(`"left_children":[0`), 1))
		f.Add(bytes.Replace(b, []byte(`"num_nodes":"`), []byte(`"num_nodes":"1`), 1))
		f.Add(bytes.Replace(b, []byte(`"split_indices":[`), []byte(`"split_indices":[9`), 1))
		f.Add(bytes.Replace(b, []byte(`"gbtree"`), []byte(`"dart"`), 1))
		f.Add(bytes.ReplaceAll(b, []byte(`-1`), []byte(`2`)))
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"version":[1,7,4],"learner":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		if m.NumFeatures() > 1<<16 {
			return
		}
		x := make([]float32, m.NumFeatures())
		a := m.PredictMargin(x)
		for i := range x {
			x[i] = float32(math.NaN())
		}
		c := m.PredictMargin(x)
		w, err := m.MarshalJSON()
		if err != nil {
			t.Fatalf("write parsed model: %v", err)
		}
		m2, err := Parse(w)
		if err != nil {
			t.Fatalf("parse written model: %v", err)
		}
		if got := m2.PredictMargin(x); got != c && !(math.IsNaN(got) && math.IsNaN(c)) {
			t.Fatalf("margin %v after a round trip, %v before", got, c)
		}
		clear(x)
		if got := m2.PredictMargin(x); got != a && !(math.IsNaN(got) && math.IsNaN(a)) {
			t.Fatalf("margin %v after a round trip, %v before", got, a)
		}
	})
}
