package features

import (
	"slices"
	"sort"
	"time"
)

// entry is one row of a table: what holds from at on.
type entry struct {
	at    time.Time
	value string  // weather: the condition
	score float64 // demand: the demand score
}

// series is the short history of one key, ascending by time, with the
// partition of the table topic it was read from.
type series struct {
	partition int32
	entries   []entry
}

// table is a versioned table read from a compacted topic: per key, the last
// keep entries by time. Changes since the last checkpoint can be rolled
// back, for a batch whose transaction aborted.
type table struct {
	keep int
	rows map[string]*series
	// undo holds, for each key changed since the last checkpoint, its
	// series before the first change (nil: the key was absent).
	undo map[string]*series
}

func newTable(keep int) *table {
	return &table{keep: keep, rows: map[string]*series{}, undo: map[string]*series{}}
}

func (t *table) remember(key string) {
	if _, done := t.undo[key]; done {
		return
	}
	var before *series
	if s := t.rows[key]; s != nil {
		before = &series{partition: s.partition, entries: slices.Clone(s.entries)}
	}
	t.undo[key] = before
}

// put adds e to key's history; an entry at the same time is replaced (a
// correction), and only the newest keep entries are kept.
func (t *table) put(key string, partition int32, e entry) {
	t.remember(key)
	s := t.rows[key]
	if s == nil {
		s = &series{}
		t.rows[key] = s
	}
	s.partition = partition
	i := sort.Search(len(s.entries), func(i int) bool { return !s.entries[i].at.Before(e.at) })
	if i < len(s.entries) && s.entries[i].at.Equal(e.at) {
		s.entries[i] = e
	} else {
		s.entries = slices.Insert(s.entries, i, e)
	}
	if over := len(s.entries) - t.keep; over > 0 {
		s.entries = slices.Delete(s.entries, 0, over)
	}
}

// delete forgets key (a tombstone).
func (t *table) delete(key string) {
	if t.rows[key] == nil {
		return
	}
	t.remember(key)
	delete(t.rows, key)
}

// asOf returns the latest entry of key at or before at.
func (t *table) asOf(key string, at time.Time) (entry, bool) {
	s := t.rows[key]
	if s == nil {
		return entry{}, false
	}
	// The first entry after at; the one before it holds at at.
	i := sort.Search(len(s.entries), func(i int) bool { return s.entries[i].at.After(at) })
	if i == 0 {
		return entry{}, false
	}
	return s.entries[i-1], true
}

// drop forgets the keys read from partitions, without undo: what follows
// (a restore, or nothing) is not part of a batch.
func (t *table) drop(partitions []int32) {
	for k, s := range t.rows {
		if slices.Contains(partitions, s.partition) {
			delete(t.rows, k)
			delete(t.undo, k)
		}
	}
	for k, s := range t.undo {
		if s != nil && slices.Contains(partitions, s.partition) {
			delete(t.undo, k)
		}
	}
}

// settled drops the undo of keys read from partitions: a restore read
// committed records, which no batch may roll back.
func (t *table) settled(partitions []int32) {
	for k, s := range t.rows {
		if slices.Contains(partitions, s.partition) {
			delete(t.undo, k)
		}
	}
}

func (t *table) checkpoint() { clear(t.undo) }

func (t *table) rollback() {
	for k, s := range t.undo {
		if s == nil {
			delete(t.rows, k)
		} else {
			t.rows[k] = s
		}
	}
	clear(t.undo)
}

func (t *table) len() int {
	n := 0
	for _, s := range t.rows {
		n += len(s.entries)
	}
	return n
}
