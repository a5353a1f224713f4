package drift

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sync"
	"testing"
)

// Reference values from scipy and numpy: see testdata/gen_fixtures.py.

// floats is a JSON array in which null stands for NaN.
type floats []float64

func (f *floats) UnmarshalJSON(b []byte) error {
	var raw []*float64
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*f = make(floats, len(raw))
	for i, p := range raw {
		(*f)[i] = math.NaN()
		if p != nil {
			(*f)[i] = *p
		}
	}
	return nil
}

// number is a JSON number or null (NaN).
type number float64

func (n *number) UnmarshalJSON(b []byte) error {
	var p *float64
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*n = number(math.NaN())
	if p != nil {
		*n = number(*p)
	}
	return nil
}

// sample is literal values, or rows [From, To) of a column, optionally
// scaled then shifted.
type sample struct {
	Values       floats
	Column       string
	From, To     int
	Scale, Shift float64
}

type fixtureSet struct {
	Rows, Half   int
	PaymentVocab []string `json:"payment_vocab"`
	Columns      map[string]floats
	KS           []struct {
		Name        string
		A, B        sample
		MethodAuto  string `json:"method_auto"`
		StatAuto    number `json:"stat_auto"`
		PAuto       number `json:"p_auto"`
		StatAsymp   number `json:"stat_asymp"`
		PAsymp      number `json:"p_asymp"`
		Wasserstein number
	}
	KSTwoSF []struct {
		N  int
		D  float64
		SF number
	} `json:"kstwo_sf"`
	JS []struct {
		Name  string
		P, Q  floats
		Value number
	}
	Chi2 []struct {
		Name               string
		Expected, Observed floats
		Stat, P            number
		DoF                int
	}
	Chi2SF []struct {
		X  float64
		DF int
		SF number
	} `json:"chi2_sf"`
	PSI []struct {
		Name             string
		Expected, Actual floats
		Value            number
	}
	Profiles []struct {
		Bins              int
		Reference, Window [2]int
		Features          []struct {
			Name              string
			Kind              Kind
			Edges, Categories floats
			Counts            floats
			N                 float64
			WindowCounts      floats `json:"window_counts"`
			PSI, JS, Chi2     number
			Chi2P             number `json:"chi2_p"`
			Chi2DoF           int    `json:"chi2_dof"`
		}
	}
}

var (
	fixturesOnce sync.Once
	fixtures     fixtureSet
	fixturesErr  error
)

func loadFixtures(t testing.TB) *fixtureSet {
	t.Helper()
	fixturesOnce.Do(func() {
		b, err := os.ReadFile("testdata/fixtures.json")
		if err != nil {
			fixturesErr = err
			return
		}
		fixturesErr = json.Unmarshal(b, &fixtures)
	})
	if fixturesErr != nil {
		t.Fatalf("read fixtures: %v", fixturesErr)
	}
	return &fixtures
}

func (f *fixtureSet) resolve(s sample) []float64 {
	if s.Values != nil {
		return s.Values
	}
	x := f.Columns[s.Column][s.From:s.To]
	if s.Scale == 0 {
		return x
	}
	y := make([]float64, len(x))
	for i, v := range x {
		// The conversion keeps x*scale rounded (no fused multiply-add), as numpy does.
		y[i] = float64(v*s.Scale) + s.Shift
	}
	return y
}

// agreement tracks the largest differences from the reference of one
// quantity, and fails values outside the tolerance: |got−want| <= abs or
// <= rel·|want|. NaN matches only NaN.
type agreement struct {
	name     string
	rel, abs float64
	maxAbs   float64
	maxRel   float64
	checked  int
}

func (a *agreement) check(t *testing.T, what string, got, want float64) {
	t.Helper()
	a.checked++
	if math.IsNaN(got) || math.IsNaN(want) {
		if math.IsNaN(got) != math.IsNaN(want) {
			t.Errorf("%s %s: got %v, want %v", a.name, what, got, want)
		}
		return
	}
	d := math.Abs(got - want)
	a.maxAbs = max(a.maxAbs, d)
	if want != 0 {
		a.maxRel = max(a.maxRel, d/math.Abs(want))
	}
	if d > a.abs && d > a.rel*math.Abs(want) {
		t.Errorf("%s %s: got %.17g, want %.17g (diff %.3g, rel %.3g)", a.name, what, got, want, d, d/math.Abs(want))
	}
}

func (a *agreement) report(t *testing.T) {
	t.Helper()
	t.Logf("%-22s %4d values, max |diff| %.3g, max rel diff %.3g (tolerance rel %.0e or abs %.0e)", a.name, a.checked, a.maxAbs, a.maxRel, a.rel, a.abs)
}

func TestKSFixtures(t *testing.T) {
	f := loadFixtures(t)
	stat := &agreement{name: "KS statistic", rel: 1e-12, abs: 1e-15}
	pAuto := &agreement{name: "KS p (auto)", rel: 1e-9, abs: 1e-300}
	pAsymp := &agreement{name: "KS p (asymp)", rel: 1e-9, abs: 1e-300}
	wd := &agreement{name: "Wasserstein1", rel: 1e-12, abs: 1e-15}
	for _, c := range f.KS {
		a, b := f.resolve(c.A), f.resolve(c.B)
		d, p := KS(a, b)
		stat.check(t, c.Name+" (auto)", d, float64(c.StatAuto))
		pAuto.check(t, c.Name, p, float64(c.PAuto))
		d, p = KSAsymp(a, b)
		stat.check(t, c.Name+" (asymp)", d, float64(c.StatAsymp))
		pAsymp.check(t, c.Name, p, float64(c.PAsymp))
		// Symmetric in its arguments.
		if d2, p2 := KSAsymp(b, a); d2 != d || !(p2 == p || math.IsNaN(p) && math.IsNaN(p2)) {
			t.Errorf("%s: KSAsymp(b, a) = %v, %v; KSAsymp(a, b) = %v, %v", c.Name, d2, p2, d, p)
		}
		wd.check(t, c.Name, Wasserstein1(a, b), float64(c.Wasserstein))
	}
	for _, a := range []*agreement{stat, pAuto, pAsymp, wd} {
		a.report(t)
	}
}

func TestKolmogorovFixtures(t *testing.T) {
	f := loadFixtures(t)
	sf := &agreement{name: "kstwo.sf", rel: 1e-9, abs: 1e-300}
	for _, c := range f.KSTwoSF {
		sf.check(t, fmt.Sprintf("n=%d d=%v", c.N, c.D), kstwoSF(c.N, c.D), float64(c.SF))
	}
	sf.report(t)
}

func TestChiSquareFixtures(t *testing.T) {
	f := loadFixtures(t)
	sf := &agreement{name: "chi2.sf", rel: 1e-9, abs: 1e-300}
	for _, c := range f.Chi2SF {
		sf.check(t, fmt.Sprintf("x=%v df=%d", c.X, c.DF), chi2SF(c.X, c.DF), float64(c.SF))
	}
	stat := &agreement{name: "chi2_contingency stat", rel: 1e-12, abs: 1e-12}
	p := &agreement{name: "chi2_contingency p", rel: 1e-9, abs: 1e-300}
	for _, c := range f.Chi2 {
		s, pv, dof := ChiSquare(c.Expected, c.Observed)
		stat.check(t, c.Name, s, float64(c.Stat))
		p.check(t, c.Name, pv, float64(c.P))
		if dof != c.DoF {
			t.Errorf("%s: dof %d, want %d", c.Name, dof, c.DoF)
		}
	}
	for _, a := range []*agreement{sf, stat, p} {
		a.report(t)
	}
}

func TestDistanceFixtures(t *testing.T) {
	f := loadFixtures(t)
	js := &agreement{name: "jensenshannon", rel: 1e-12, abs: 1e-15}
	for _, c := range f.JS {
		js.check(t, c.Name, JensenShannon(c.P, c.Q), float64(c.Value))
	}
	psi := &agreement{name: "PSI", rel: 1e-12, abs: 1e-15}
	for _, c := range f.PSI {
		psi.check(t, c.Name, PSI(c.Expected, c.Actual), float64(c.Value))
	}
	js.report(t)
	psi.report(t)
}

// profileRows returns the fixture's profile features as float32 rows.
func profileRows(f *fixtureSet, names []string, from, to int) []float32 {
	X := make([]float32, 0, (to-from)*len(names))
	for r := from; r < to; r++ {
		for _, n := range names {
			X = append(X, float32(f.Columns[n][r]))
		}
	}
	return X
}

func TestProfileFixtures(t *testing.T) {
	f := loadFixtures(t)
	psi := &agreement{name: "window PSI", rel: 1e-12, abs: 1e-15}
	js := &agreement{name: "window jensenshannon", rel: 1e-12, abs: 1e-15}
	chi := &agreement{name: "window chi2 stat", rel: 1e-12, abs: 1e-12}
	chiP := &agreement{name: "window chi2 p", rel: 1e-9, abs: 1e-300}
	for _, fp := range f.Profiles {
		var names []string
		var kinds []Kind
		for _, ft := range fp.Features {
			names = append(names, ft.Name)
			kinds = append(kinds, ft.Kind)
		}
		ref := profileRows(f, names, fp.Reference[0], fp.Reference[1])
		p, err := NewProfile(names, kinds, ref, len(names), fp.Bins)
		if err != nil {
			t.Fatal(err)
		}
		w := p.NewWindow()
		win := profileRows(f, names, fp.Window[0], fp.Window[1])
		for r := 0; r < len(win); r += len(names) {
			w.Add(win[r : r+len(names)])
		}
		if w.N() != fp.Window[1]-fp.Window[0] {
			t.Errorf("window N %d", w.N())
		}
		drift := w.Drift()
		for i, want := range fp.Features {
			got := p.Features[i]
			where := fmt.Sprintf("bins=%d %s", fp.Bins, want.Name)
			if !equalFloats(got.Edges, want.Edges) || !equalFloats(got.Categories, want.Categories) {
				t.Errorf("%s: edges %v categories %v, want %v %v", where, got.Edges, got.Categories, want.Edges, want.Categories)
			}
			if !equalFloats(got.Counts, want.Counts) || got.N != want.N {
				t.Errorf("%s: counts %v (n %v), want %v (n %v)", where, got.Counts, got.N, want.Counts, want.N)
			}
			if wc := w.Counts(i); !equalFloats(wc, want.WindowCounts) {
				t.Errorf("%s: window counts %v, want %v", where, wc, want.WindowCounts)
			}
			d := drift[i]
			psi.check(t, where, d.PSI, float64(want.PSI))
			js.check(t, where, d.JensenShannon, float64(want.JS))
			chi.check(t, where, d.ChiSquare, float64(want.Chi2))
			chiP.check(t, where, d.ChiSquareP, float64(want.Chi2P))
			if d.DoF != want.Chi2DoF {
				t.Errorf("%s: dof %d, want %d", where, d.DoF, want.Chi2DoF)
			}
			if w.PSI()[i] != d.PSI || w.JensenShannon()[i] != d.JensenShannon {
				t.Errorf("%s: Window.PSI/JensenShannon disagree with Drift", where)
			}
		}
	}
	for _, a := range []*agreement{psi, js, chi, chiP} {
		a.report(t)
	}
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && !(math.IsNaN(a[i]) && math.IsNaN(b[i])) {
			return false
		}
	}
	return true
}
