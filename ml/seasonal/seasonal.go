// Package seasonal is a baseline of taxi demand learnt from history: how many
// trips start per hour city-wide, how they spread over the 168 hours of the
// week and over the 77 community areas. It answers "how many trips would an
// area usually see between two times", the yardstick of the demand score
// and the seasonal part of the demand forecast.
//
// The model is multiplicative, rate(area, t) = perHour × share(area) ×
// profile(hour of week of t), each factor smoothed toward uniform so sparse
// history (the sample has about ten trips a day) still gives every area and
// hour a positive expectation.
package seasonal

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Areas is the highest community area number.
const Areas = 77

// hoursPerWeek is the length of the weekly profile.
const hoursPerWeek = 7 * 24

// Event is one trip start.
type Event struct {
	Time time.Time
	Area int // 1..Areas; 0 = unknown (counts city-wide only)
}

// Baseline is the fitted model.
type Baseline struct {
	// PerHour is the mean number of trip starts per hour, city-wide.
	PerHour float64 `json:"per_hour"`
	// Share of trips starting in each area (index 1..Areas; index 0 unused).
	Share [Areas + 1]float64 `json:"share"`
	// Profile is the relative rate of each hour of the week (Sunday 00:00
	// first, on the city's clock), with mean 1.
	Profile [hoursPerWeek]float64 `json:"profile"`
	loc     *time.Location
}

// Smoothing is the weight, in pseudo-trips, of the uniform prior mixed
// into each area share and each hour of the profile.
const Smoothing = 1.0

// Fit learns a baseline from events, on the clock of loc.
func Fit(events []Event, loc *time.Location) (*Baseline, error) {
	if len(events) < 2 {
		return nil, errors.New("seasonal baseline: need at least two events")
	}
	if loc == nil {
		return nil, errors.New("seasonal baseline: a location is required")
	}
	first, last := events[0].Time, events[0].Time
	var areaN [Areas + 1]float64
	var hourN [hoursPerWeek]float64
	known := 0.0
	for _, e := range events {
		if e.Time.Before(first) {
			first = e.Time
		}
		if e.Time.After(last) {
			last = e.Time
		}
		if e.Area >= 1 && e.Area <= Areas {
			areaN[e.Area]++
			known++
		}
		hourN[HourOfWeek(e.Time, loc)]++
	}
	hours := last.Sub(first).Hours()
	if hours <= 0 {
		return nil, errors.New("seasonal baseline: events span no time")
	}
	b := &Baseline{PerHour: float64(len(events)) / hours, loc: loc}
	for a := 1; a <= Areas; a++ {
		b.Share[a] = (areaN[a] + Smoothing) / (known + Smoothing*Areas)
	}
	n := float64(len(events))
	for h := range hourN {
		// Mean 1 over the week: (count + s) / ((n + 168 s) / 168).
		b.Profile[h] = (hourN[h] + Smoothing) / ((n + Smoothing*hoursPerWeek) / hoursPerWeek)
	}
	return b, nil
}

// WithLocation returns b reading hours on loc's clock (after decoding).
func (b *Baseline) WithLocation(loc *time.Location) *Baseline {
	c := *b
	c.loc = loc
	return &c
}

// HourOfWeek is the hour of the week of t on loc's clock, 0 = Sunday 00:00.
func HourOfWeek(t time.Time, loc *time.Location) int {
	l := t.In(loc)
	return int(l.Weekday())*24 + l.Hour()
}

// Rate is the expected trip starts per hour in area at t (area 0: city-wide).
func (b *Baseline) Rate(area int, t time.Time) float64 {
	r := b.PerHour * b.Profile[HourOfWeek(t, b.loc)]
	if area >= 1 && area <= Areas {
		r *= b.Share[area]
	}
	return r
}

// Expected is the expected number of trip starts in area during [from, to),
// integrating the hourly rate exactly over the hours the span covers.
func (b *Baseline) Expected(area int, from, to time.Time) (float64, error) {
	if b.loc == nil {
		return 0, errors.New("seasonal baseline has no location")
	}
	if to.Before(from) {
		return 0, fmt.Errorf("seasonal baseline: span ends (%v) before it starts (%v)", to, from)
	}
	total := 0.0
	for t := from; t.Before(to); {
		next := t.Truncate(time.Hour).Add(time.Hour)
		if next.After(to) {
			next = to
		}
		total += b.Rate(area, t) * next.Sub(t).Hours()
		t = next
	}
	if math.IsNaN(total) {
		return 0, errors.New("seasonal baseline: not a number")
	}
	return total, nil
}
