package drift

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

var nan = math.NaN()

func TestBin(t *testing.T) {
	num := &FeatureProfile{Kind: Numeric, Edges: []float64{1, 2, 3}, Counts: make([]float64, 5)}
	cat := &FeatureProfile{Kind: Categorical, Categories: []float64{8, 32, 6}, Counts: make([]float64, 5)}
	for _, c := range []struct {
		f    *FeatureProfile
		x    float64
		want int
	}{
		{num, 0.5, 0}, {num, 1, 0}, {num, 1.0000001, 1}, {num, 2, 1}, {num, 2.5, 2}, {num, 3, 2},
		{num, 3.5, 3}, {num, math.Inf(-1), 0}, {num, math.Inf(1), 3}, {num, nan, 4},
		{cat, 8, 0}, {cat, 32, 1}, {cat, 6, 2}, {cat, 7, 3}, {cat, math.Inf(1), 3}, {cat, nan, 4},
		{&FeatureProfile{Kind: Numeric, Counts: make([]float64, 2)}, 42, 0},
		{&FeatureProfile{Kind: Numeric, Counts: make([]float64, 2)}, nan, 1},
	} {
		if got := c.f.Bin(c.x); got != c.want {
			t.Errorf("%s edges %v categories %v: Bin(%v) = %d, want %d", c.f.Kind, c.f.Edges, c.f.Categories, c.x, got, c.want)
		}
	}
}

func TestNewProfile(t *testing.T) {
	// Rows of (numeric, categorical).
	X := []float32{
		0, 1,
		0, 1,
		0, 2,
		0, float32(nan),
		1, 3,
		2, 1,
		3, 2,
		4, 1,
		float32(nan), 2,
		float32(math.Inf(1)), float32(math.Inf(1)),
	}
	p, err := NewProfile([]string{"miles", "area"}, []Kind{Numeric, Categorical}, X, 2, 4)
	if err != nil {
		t.Fatal(err)
	}
	// 9 non-NaN miles sorted: 0 0 0 0 1 2 3 4 +Inf; k = ⌈9·i/4⌉ = 3, 5, 7: 0, 1, 3.
	miles := p.Features[0]
	if !equalFloats(miles.Edges, []float64{0, 1, 3}) {
		t.Errorf("edges %v, want [0 1 3]", miles.Edges)
	}
	// Bins: <=0, (0,1], (1,3], >3, missing.
	if !equalFloats(miles.Counts, []float64{4, 1, 2, 2, 1}) || miles.N != 10 {
		t.Errorf("counts %v n %v", miles.Counts, miles.N)
	}
	area := p.Features[1]
	// 1 ×4, 2 ×3, 3 ×1; +Inf is counted as "other", never a category.
	if !equalFloats(area.Categories, []float64{1, 2, 3}) || !equalFloats(area.Counts, []float64{4, 3, 1, 1, 1}) {
		t.Errorf("categories %v counts %v", area.Categories, area.Counts)
	}

	// Constant and empty columns, default bins.
	X = []float32{5, float32(nan), 5, float32(nan), 5, float32(nan)}
	p, err = NewProfile([]string{"c", "e"}, []Kind{Numeric, Numeric}, X, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !equalFloats(p.Features[0].Edges, []float64{5}) || !equalFloats(p.Features[0].Counts, []float64{3, 0, 0}) {
		t.Errorf("constant column: %+v", p.Features[0])
	}
	if len(p.Features[1].Edges) != 0 || !equalFloats(p.Features[1].Counts, []float64{0, 3}) {
		t.Errorf("all-NaN column: %+v", p.Features[1])
	}

	// Equal counts: ascending codes.
	p, err = NewProfile([]string{"c"}, []Kind{Categorical}, []float32{5, 3, 5, 3, 9}, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !equalFloats(p.Features[0].Categories, []float64{3, 5, 9}) {
		t.Errorf("tied categories %v, want [3 5 9]", p.Features[0].Categories)
	}

	// More categories than MaxCategories: the rarest share "other".
	var many []float32
	for code := 1; code <= 40; code++ {
		for range code {
			many = append(many, float32(code))
		}
	}
	p, err = NewProfile([]string{"area"}, []Kind{Categorical}, many, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := p.Features[0]
	if len(f.Categories) != MaxCategories || f.Categories[0] != 40 || f.Categories[29] != 11 {
		t.Errorf("categories %v", f.Categories)
	}
	if other := f.Counts[MaxCategories]; other != 55 { // 1+2+…+10
		t.Errorf("other bin %v, want 55", other)
	}
}

func TestNewProfileErrors(t *testing.T) {
	for _, c := range []struct {
		name  string
		names []string
		kinds []Kind
		X     []float32
		nf    int
		want  string
	}{
		{"no features", nil, nil, []float32{1}, 0, "0 features"},
		{"names", []string{"a"}, []Kind{Numeric, Numeric}, []float32{1, 2}, 2, "2 features but 1 names and 2 kinds"},
		{"ragged", []string{"a", "b"}, []Kind{Numeric, Numeric}, []float32{1, 2, 3}, 2, "3 values are not rows of 2 features"},
		{"no rows", []string{"a"}, []Kind{Numeric}, nil, 1, "0 values"},
		{"kind", []string{"a"}, []Kind{"ordinal"}, []float32{1}, 1, `feature "a" has kind "ordinal"`},
	} {
		_, err := NewProfile(c.names, c.kinds, c.X, c.nf, 10)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.name, err, c.want)
		}
	}
}

func testProfile(t testing.TB) *Profile {
	t.Helper()
	f := loadFixtures(t)
	names := []string{"trip_miles", "fare", "trip_seconds", "payment", "pickup_area", "hour"}
	kinds := []Kind{Numeric, Numeric, Numeric, Categorical, Categorical, Categorical}
	p, err := NewProfile(names, kinds, profileRows(f, names, 0, f.Half), len(names), 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProfileJSON(t *testing.T) {
	p := testProfile(t)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 4096 {
		t.Errorf("profile of 6 features is %d bytes of JSON", len(b))
	}
	var q Profile
	if err := json.Unmarshal(b, &q); err != nil {
		t.Fatal(err)
	}
	if err := q.Validate(); err != nil {
		t.Fatal(err)
	}
	for i := range p.Features {
		a, b := p.Features[i], q.Features[i]
		if a.Name != b.Name || a.Kind != b.Kind || a.N != b.N || !equalFloats(a.Edges, b.Edges) ||
			!equalFloats(a.Categories, b.Categories) || !equalFloats(a.Counts, b.Counts) {
			t.Errorf("feature %d after a JSON round trip: %+v, want %+v", i, b, a)
		}
	}
}

func TestValidate(t *testing.T) {
	good := func() *Profile {
		return &Profile{Features: []FeatureProfile{
			{Name: "x", Kind: Numeric, Edges: []float64{1, 2}, Counts: []float64{1, 2, 3, 0}, N: 6},
			{Name: "c", Kind: Categorical, Categories: []float64{4, 5}, Counts: []float64{1, 2, 3, 0}, N: 6},
		}}
	}
	if err := good().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		break_ func(p *Profile)
		want   string
	}{
		{"no features", func(p *Profile) { p.Features = nil }, "no features"},
		{"kind", func(p *Profile) { p.Features[0].Kind = "" }, `kind ""`},
		{"edges order", func(p *Profile) { p.Features[0].Edges = []float64{2, 1} }, "edges are not ascending"},
		{"duplicate edge", func(p *Profile) { p.Features[0].Edges = []float64{1, 1} }, "edges are not ascending"},
		{"infinite edge", func(p *Profile) { p.Features[0].Edges = []float64{1, math.Inf(1)} }, "edges are not ascending finite"},
		{"counts length", func(p *Profile) { p.Features[0].Counts = []float64{1, 2, 3} }, "3 counts, want 4"},
		{"negative count", func(p *Profile) { p.Features[1].Counts[0] = -1 }, "counts are not finite non-negative"},
		{"NaN count", func(p *Profile) { p.Features[1].Counts[0] = nan }, "counts are not finite non-negative"},
		{"duplicate category", func(p *Profile) { p.Features[1].Categories = []float64{4, 4} }, "categories are not distinct"},
		{"categories on numeric", func(p *Profile) { p.Features[0].Categories = []float64{1} }, "numeric feature has categories"},
		{"edges on categorical", func(p *Profile) { p.Features[1].Edges = []float64{1} }, "categorical feature has edges"},
	} {
		p := good()
		c.break_(p)
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrInvalidProfile) {
			t.Errorf("%s: %v, want ErrInvalidProfile containing %q", c.name, err, c.want)
		}
	}
}

func TestWindow(t *testing.T) {
	p := testProfile(t)
	w := p.NewWindow()
	if w.N() != 0 || !math.IsNaN(w.PSI()[0]) {
		t.Errorf("empty window: N %d, PSI %v", w.N(), w.PSI())
	}
	// The reference rows themselves: no drift at all.
	f := loadFixtures(t)
	names := []string{"trip_miles", "fare", "trip_seconds", "payment", "pickup_area", "hour"}
	ref := profileRows(f, names, 0, f.Half)
	for r := 0; r < len(ref); r += len(names) {
		w.Add(ref[r : r+len(names)])
	}
	for i, d := range w.Drift() {
		if d.PSI != 0 || d.JensenShannon != 0 || d.ChiSquare != 0 || d.ChiSquareP != 1 {
			t.Errorf("feature %d against its own reference: %+v", i, d)
		}
		if !equalFloats(w.Counts(i), p.Features[i].Counts) {
			t.Errorf("feature %d: window counts %v, profile %v", i, w.Counts(i), p.Features[i].Counts)
		}
	}
	// Counts returns a copy.
	c := w.Counts(0)
	c[0] = -1
	if w.Counts(0)[0] == -1 {
		t.Error("Counts shares the window's memory")
	}
	w.Reset()
	if w.N() != 0 || w.Counts(1)[0] != 0 {
		t.Error("Reset left counts")
	}
	defer func() {
		if recover() == nil {
			t.Error("Add with a short row did not panic")
		}
	}()
	w.Add([]float32{1, 2})
}

func TestWindowAddDoesNotAllocate(t *testing.T) {
	p := testProfile(t)
	w := p.NewWindow()
	row := []float32{1.5, 9.25, 600, 1, 8, 17}
	if a := testing.AllocsPerRun(1000, func() { w.Add(row) }); a != 0 {
		t.Errorf("Window.Add allocates %v times", a)
	}
	if a := testing.AllocsPerRun(1000, func() { p.Observe(row) }); a != 0 {
		t.Errorf("Profile.Observe allocates %v times", a)
	}
}

func TestMergeDecay(t *testing.T) {
	f := loadFixtures(t)
	p := testProfile(t)
	orig := p.Clone()
	names := []string{"trip_miles", "fare", "trip_seconds", "payment", "pickup_area", "hour"}
	w := p.NewWindow()
	win := profileRows(f, names, f.Half, f.Rows)
	for r := 0; r < len(win); r += len(names) {
		w.Add(win[r : r+len(names)])
	}
	// Merging a window equals observing its rows.
	obs := orig.Clone()
	for r := 0; r < len(win); r += len(names) {
		obs.Observe(win[r : r+len(names)])
	}
	if err := p.Merge(w); err != nil {
		t.Fatal(err)
	}
	for i := range p.Features {
		if !equalFloats(p.Features[i].Counts, obs.Features[i].Counts) || p.Features[i].N != float64(f.Rows) {
			t.Errorf("feature %d merged: %v (n %v), observed %v", i, p.Features[i].Counts, p.Features[i].N, obs.Features[i].Counts)
		}
	}
	// Clone is deep: orig is unchanged.
	if orig.Features[0].N != float64(f.Half) {
		t.Errorf("merge changed a clone: n %v", orig.Features[0].N)
	}
	// Decay then merge weighs the old counts by the factor.
	q := orig.Clone()
	if err := q.Decay(0.5); err != nil {
		t.Fatal(err)
	}
	if err := q.Merge(w); err != nil {
		t.Fatal(err)
	}
	for i := range q.Features {
		for j, c := range q.Features[i].Counts {
			if want := orig.Features[i].Counts[j]*0.5 + w.Counts(i)[j]; c != want {
				t.Fatalf("feature %d bin %d after decay and merge: %v, want %v", i, j, c, want)
			}
		}
	}
	if err := q.Decay(1.5); err == nil {
		t.Error("Decay(1.5) succeeded")
	}
	// A window of a profile with other bins is refused.
	other, err := NewProfile(names, []Kind{Numeric, Numeric, Numeric, Categorical, Categorical, Categorical}, win, len(names), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Merge(other.NewWindow()); err == nil || !strings.Contains(err.Error(), "has other bins") {
		t.Errorf("merging a window of other bins: %v", err)
	}
	// A window of a JSON copy of the profile is accepted.
	b, _ := json.Marshal(orig)
	var copyOf Profile
	if err := json.Unmarshal(b, &copyOf); err != nil {
		t.Fatal(err)
	}
	if err := orig.Merge(copyOf.NewWindow()); err != nil {
		t.Errorf("merging a window of an equal profile: %v", err)
	}
}

func TestStatisticEdgeCases(t *testing.T) {
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"PSI length mismatch", PSI([]float64{1, 2}, []float64{1, 2, 3}), nan},
		{"PSI empty expected", PSI([]float64{0, 0}, []float64{1, 2}), nan},
		{"PSI negative", PSI([]float64{-1, 2}, []float64{1, 2}), nan},
		{"PSI NaN", PSI([]float64{nan, 2}, []float64{1, 2}), nan},
		{"PSI identical", PSI([]float64{1, 2, 3}, []float64{2, 4, 6}), 0},
		// One bin empty in actual: q is floored at 1e-4.
		{"PSI floor", PSI([]float64{1, 1}, []float64{0, 1}), (1e-4-0.5)*math.Log(1e-4/0.5) + 0.5*math.Log(2)},
		{"JS disjoint", JensenShannon([]float64{1, 0}, []float64{0, 1}), math.Sqrt(math.Ln2)},
		{"JS identical", JensenShannon([]float64{1, 2}, []float64{1, 2}), 0},
		{"JS empty", JensenShannon(nil, nil), nan},
		{"Wasserstein shift", Wasserstein1([]float64{0, 1, 2}, []float64{10, 11, 12}), 10},
		{"Wasserstein empty", Wasserstein1(nil, []float64{1}), nan},
		{"Wasserstein NaN ignored", Wasserstein1([]float64{0, nan}, []float64{1}), 1},
	} {
		if !(c.got == c.want || math.IsNaN(c.got) && math.IsNaN(c.want) || math.Abs(c.got-c.want) < 1e-15) {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	if s, p, dof := ChiSquare([]float64{1, 2}, []float64{1}); !math.IsNaN(s) || !math.IsNaN(p) || dof != 0 {
		t.Errorf("ChiSquare of mismatched lengths: %v %v %v", s, p, dof)
	}
	if s, p, dof := ChiSquare([]float64{0, 0}, []float64{1, 2}); !math.IsNaN(s) || !math.IsNaN(p) || dof != 0 {
		t.Errorf("ChiSquare with an empty row: %v %v %v", s, p, dof)
	}
	if d, p := KS(nil, []float64{1}); !math.IsNaN(d) || !math.IsNaN(p) {
		t.Errorf("KS of an empty sample: %v %v", d, p)
	}
	if d, p := KS([]float64{nan}, []float64{1}); !math.IsNaN(d) || !math.IsNaN(p) {
		t.Errorf("KS of an all-NaN sample: %v %v", d, p)
	}
	// Exact p-value of disjoint samples of 3 and 4: 2/C(7,3).
	if d, p := KS([]float64{1, 2, 3}, []float64{4, 5, 6, 7}); d != 1 || math.Abs(p-2.0/35) > 1e-15 {
		t.Errorf("KS of disjoint samples: %v %v, want 1 %v", d, p, 2.0/35)
	}
	for _, c := range []struct{ x, df, want float64 }{
		{0, 3, 1}, {-1, 3, 1}, {math.Inf(1), 3, 0}, {2, 2, math.Exp(-1)},
	} {
		if got := chi2SF(c.x, int(c.df)); math.Abs(got-c.want) > 1e-15 {
			t.Errorf("chi2SF(%v, %v) = %v, want %v", c.x, c.df, got, c.want)
		}
	}
	if got := chi2SF(1, 0); !math.IsNaN(got) {
		t.Errorf("chi2SF with 0 degrees of freedom = %v", got)
	}
}

func BenchmarkWindowAdd(b *testing.B) {
	p := testProfile(b)
	f := loadFixtures(b)
	names := []string{"trip_miles", "fare", "trip_seconds", "payment", "pickup_area", "hour"}
	rows := profileRows(f, names, f.Half, f.Rows)
	n := len(rows) / len(names)
	w := p.NewWindow()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := i % n
		w.Add(rows[r*len(names) : (r+1)*len(names)])
		i++
	}
}

func BenchmarkWindowDrift(b *testing.B) {
	p := testProfile(b)
	w := p.NewWindow()
	w.Add([]float32{1.5, 9.25, 600, 1, 8, 17})
	b.ReportAllocs()
	for b.Loop() {
		w.Drift()
	}
}

func BenchmarkKSHalves(b *testing.B) {
	f := loadFixtures(b)
	x, y := f.Columns["fare"][:f.Half], f.Columns["fare"][f.Half:]
	for b.Loop() {
		KS(x, y)
	}
}

func BenchmarkNewProfile(b *testing.B) {
	f := loadFixtures(b)
	names := []string{"trip_miles", "fare", "trip_seconds", "payment", "pickup_area", "hour"}
	kinds := []Kind{Numeric, Numeric, Numeric, Categorical, Categorical, Categorical}
	X := profileRows(f, names, 0, f.Rows)
	for b.Loop() {
		if _, err := NewProfile(names, kinds, X, len(names), 0); err != nil {
			b.Fatal(err)
		}
	}
}
