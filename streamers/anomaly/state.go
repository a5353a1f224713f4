package anomaly

import (
	"container/heap"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Changelog keys. Each entry is JSON.
const (
	clockKey   = "c"  // {"r": ride clock, "p": prediction clock}, unix ns
	tripPrefix = "t|" // t|<trip id> → trip
	winPrefix  = "w|" // w|<area>|<hour> → [fares, oldest first]
)

// trip is what a partition remembers of one trip id.
type trip struct {
	// T is the event time (unix ns) of the first ride with this id, or of
	// the prediction while no ride has been seen.
	T int64 `json:"t"`
	// Rides counts the rides seen with this id (0: only a prediction).
	Rides int `json:"n,omitempty"`
	// Hash is FNV-1a of the first ride's bytes, to tell a redelivery of the
	// same record from a different trip reusing the id.
	Hash uint64 `json:"h,omitempty"`
	// Fare is the ride's fare while it waits for its prediction.
	Fare *float64 `json:"f,omitempty"`
	// Pred is the prediction while it waits for its ride.
	Pred *pred `json:"p,omitempty"`
	// Done: the ride met its prediction, or stopped waiting for it; a
	// prediction arriving later is ignored.
	Done bool `json:"d,omitempty"`
}

// pred is what the fare check needs of a prediction.
type pred struct {
	Fare       float64 `json:"f"`
	Confidence float64 `json:"c"`
	Version    string  `json:"v"`
}

type clocks struct {
	Ride int64 `json:"r"`
	Pred int64 `json:"p"`
}

type winKey struct {
	area, hour int
}

func (k winKey) String() string {
	return winPrefix + strconv.Itoa(k.area) + "|" + strconv.Itoa(k.hour)
}

func parseWinKey(s string) (winKey, bool) {
	f := strings.Split(strings.TrimPrefix(s, winPrefix), "|")
	if len(f) != 2 {
		return winKey{}, false
	}
	area, e1 := strconv.Atoi(f[0])
	hour, e2 := strconv.Atoi(f[1])
	if e1 != nil || e2 != nil || area < 1 || hour < 0 || hour > 23 {
		return winKey{}, false
	}
	return winKey{area, hour}, true
}

// item orders trips by event time, then id: the order entries expire in.
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
// both input topics).
type partition struct {
	clocks  clocks
	trips   map[string]*trip
	windows map[winKey][]float64
	// Expiry queues, with lazy deletion: an item is acted on only if the
	// trip it names is still in the state it was queued for.
	seen     itemHeap // trips with a ride: forgotten DedupTTL after T on the ride clock, once not waiting
	waitPred itemHeap // rides waiting for their prediction: give up JoinTTL after T on the prediction clock
	waitRide itemHeap // predictions waiting for their ride: give up JoinTTL after T on the ride clock
	dirty    map[string]struct{}
}

func newPartition() *partition {
	return &partition{trips: map[string]*trip{}, windows: map[winKey][]float64{}, dirty: map[string]struct{}{}}
}

func (p *partition) touch(key string) { p.dirty[key] = struct{}{} }

// queue files a trip in the expiry queues its state calls for.
func (p *partition) queue(id string, e *trip) {
	if e.Rides > 0 {
		heap.Push(&p.seen, item{e.T, id})
	}
	if e.Fare != nil {
		heap.Push(&p.waitPred, item{e.T, id})
	}
	if e.Rides == 0 && e.Pred != nil {
		heap.Push(&p.waitRide, item{e.T, id})
	}
}

// encode returns the changelog value of key, nil when the entry is gone.
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
		w, ok := p.windows[k]
		if !ok {
			return nil, nil
		}
		return json.Marshal(w)
	}
	return nil, fmt.Errorf("unknown state key %q", key)
}

// load adds one changelog entry to a partition being rebuilt.
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
		var w []float64
		if err := json.Unmarshal(v, &w); err != nil {
			return fmt.Errorf("window %s: %w", key, err)
		}
		p.windows[k] = w
	default:
		return fmt.Errorf("unknown state key %q", key)
	}
	return nil
}

// fnv64a hashes b (FNV-1a, 64 bits) without allocating.
func fnv64a(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}
