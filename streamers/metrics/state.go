package metrics

import (
	"container/heap"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// Changelog keys. Each entry is JSON.
const (
	clockKey   = "c"  // clocks
	tripPrefix = "t|" // t|<trip id> → trip
	winPrefix  = "w|" // w|<model>|<version> → window
)

type clocks struct {
	Pred   int64 `json:"p"` // largest prediction event time (pickup), unix ns
	Actual int64 `json:"a"` // largest actual event time (dropoff), unix ns
}

// watermark is the event time both streams have passed by grace; pairs
// up to it are final. ok is false until both streams have been seen.
func (c clocks) watermark(grace int64) (int64, bool) {
	if c.Pred == 0 || c.Actual == 0 {
		return 0, false
	}
	return min(c.Pred, c.Actual) - grace, true
}

// trip is what a partition remembers of one trip id: a prediction waiting
// for its actual, an actual waiting for its prediction, both (a pair
// waiting for the watermark), or neither (the pair was counted: Done is its
// time, and later copies of either side are ignored).
type trip struct {
	Pred   *pred   `json:"p,omitempty"`
	Actual *actual `json:"a,omitempty"`
	Done   int64   `json:"d,omitempty"`
}

// time is the pair's event time: when its label became known, the later of
// the prediction's and the actual's.
func (e *trip) time() int64 { return max(e.Pred.T, e.Actual.T) }

type pred struct {
	T    int64    `json:"t"`
	Fare float64  `json:"f"`
	Tip  *float64 `json:"tip,omitempty"`
	Prob *float64 `json:"bt,omitempty"`
	// Versions of the models that made it, by model name.
	Versions map[string]string `json:"v"`
}

type actual struct {
	T    int64   `json:"t"`
	Fare float64 `json:"f"`
	Tips float64 `json:"tips"`
}

type winKey struct {
	model, version string
}

func (k winKey) String() string { return winPrefix + k.model + "|" + k.version }

func parseWinKey(s string) (winKey, bool) {
	model, version, ok := strings.Cut(strings.TrimPrefix(s, winPrefix), "|")
	if !ok || model == "" || version == "" {
		return winKey{}, false
	}
	return winKey{model, version}, true
}

// window is an open count window of one model version: its pairs so far.
type window struct {
	// First names the window: the trip id of its first pair.
	First string `json:"first"`
	Start int64  `json:"start"` // time of the first pair
	End   int64  `json:"end"`   // time of the last pair
	Y     floats `json:"y"`     // labels
	P     floats `json:"p"`     // predictions
}

// floats is written to the changelog as base64 of the values' IEEE 754
// bits, little-endian: exact, and far quicker to write and read than
// decimal numbers (an open window of up to WindowSize pairs is rewritten in
// every batch that adds to it).
type floats []float64

// MarshalJSON writes the bits.
func (f floats) MarshalJSON() ([]byte, error) {
	raw := make([]byte, 8*len(f))
	for i, v := range f {
		binary.LittleEndian.PutUint64(raw[8*i:], math.Float64bits(v))
	}
	out := make([]byte, 0, base64.StdEncoding.EncodedLen(len(raw))+2)
	out = append(out, '"')
	out = base64.StdEncoding.AppendEncode(out, raw)
	return append(out, '"'), nil
}

// UnmarshalJSON reads the bits.
func (f *floats) UnmarshalJSON(b []byte) error {
	var raw []byte
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if len(raw)%8 != 0 {
		return fmt.Errorf("%d bytes are not float64s", len(raw))
	}
	out := make(floats, len(raw)/8)
	for i := range out {
		out[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
	}
	*f = out
	return nil
}

// item orders trips by event time, then id.
type item struct {
	t  int64
	id string
}

type itemHeap []item

func (h itemHeap) Len() int { return len(h) }
func (h itemHeap) Less(i, j int) bool {
	if h[i].t != h[j].t {
		return h[i].t < h[j].t
	}
	return h[i].id < h[j].id
}
func (h itemHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *itemHeap) Push(x any)   { *h = append(*h, x.(item)) }
func (h *itemHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// partition is the state of one input partition (the same partition of
// both inputs).
type partition struct {
	clocks  clocks
	trips   map[string]*trip
	windows map[winKey]*window
	// Queues with lazy deletion: an item is acted on only if its trip is
	// still in the state it was queued for.
	ready      itemHeap // pairs, by pair time: counted once the watermark passes
	waitActual itemHeap // predictions, by their time: expire on the actual clock
	waitPred   itemHeap // actuals, by their time: expire on the prediction clock
	done       itemHeap // counted pairs, by pair time: forgotten JoinTTL after the watermark passes
	dirty      map[string]struct{}
}

func newPartition() *partition {
	return &partition{trips: map[string]*trip{}, windows: map[winKey]*window{}, dirty: map[string]struct{}{}}
}

func (p *partition) touch(key string) { p.dirty[key] = struct{}{} }

// queue files a trip in the queue its state calls for.
func (p *partition) queue(id string, e *trip) {
	switch {
	case e.Pred != nil && e.Actual != nil:
		heap.Push(&p.ready, item{e.time(), id})
	case e.Pred != nil:
		heap.Push(&p.waitActual, item{e.Pred.T, id})
	case e.Actual != nil:
		heap.Push(&p.waitPred, item{e.Actual.T, id})
	default:
		heap.Push(&p.done, item{e.Done, id})
	}
}

func (p *partition) encode(key string) ([]byte, error) {
	switch {
	case key == clockKey:
		return json.Marshal(p.clocks)
	case strings.HasPrefix(key, tripPrefix):
		e := p.trips[key[len(tripPrefix):]]
		if e == nil {
			return nil, nil
		}
		return json.Marshal(e)
	case strings.HasPrefix(key, winPrefix):
		k, ok := parseWinKey(key)
		if !ok {
			return nil, fmt.Errorf("state key %q is not a window", key)
		}
		w := p.windows[k]
		if w == nil {
			return nil, nil
		}
		return json.Marshal(w)
	}
	return nil, fmt.Errorf("unknown state key %q", key)
}

func (p *partition) load(key string, v []byte) error {
	switch {
	case key == clockKey:
		if err := json.Unmarshal(v, &p.clocks); err != nil {
			return fmt.Errorf("clocks: %w", err)
		}
	case strings.HasPrefix(key, tripPrefix):
		var e trip
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("trip %s: %w", key, err)
		}
		id := key[len(tripPrefix):]
		p.trips[id] = &e
		p.queue(id, &e)
	case strings.HasPrefix(key, winPrefix):
		k, ok := parseWinKey(key)
		if !ok {
			return fmt.Errorf("state key %q is not a window", key)
		}
		var w window
		if err := json.Unmarshal(v, &w); err != nil {
			return fmt.Errorf("window %s: %w", key, err)
		}
		if len(w.Y) != len(w.P) || len(w.Y) == 0 {
			return fmt.Errorf("window %s: %d labels and %d predictions", key, len(w.Y), len(w.P))
		}
		p.windows[k] = &w
	default:
		return fmt.Errorf("unknown state key %q", key)
	}
	return nil
}
