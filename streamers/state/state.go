// Package state is the local state of stateful streamers: a key-value store
// per input partition, backed by a compacted changelog topic.
//
// Every write returns the changelog record the processor emits with its
// output, so under the exactly-once runner state and output commit in one
// transaction. When a partition is assigned its state is rebuilt by reading
// its changelog partition (read committed: aborted writes never come back);
// when it is revoked the state is dropped. Writes since the last checkpoint
// can be rolled back, for a batch whose transaction aborted. The changelog
// partition of a key is the input partition it was written for, so the
// changelog topic needs as many partitions as the input.
package state

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/kafka"
)

// Store holds the state of the partitions a replica owns.
type Store struct {
	changelog string
	kcfg      kafka.Config
	deps      kafka.Deps
	data      map[int32]map[string][]byte
	// undo holds, for each key written since the last checkpoint, its value
	// before the first such write (nil: it did not exist).
	undo map[int32]map[string][]byte
}

// New returns an empty store writing to the changelog topic.
func New(changelog string, kcfg kafka.Config, deps kafka.Deps) *Store {
	return &Store{
		changelog: changelog,
		kcfg:      kcfg,
		deps:      deps,
		data:      map[int32]map[string][]byte{},
		undo:      map[int32]map[string][]byte{},
	}
}

// Changelog is the store's changelog topic.
func (s *Store) Changelog() string { return s.changelog }

// Get returns the value of key in partition p.
func (s *Store) Get(p int32, key string) ([]byte, bool) {
	v, ok := s.data[p][key]
	return v, ok
}

func (s *Store) remember(p int32, key string) {
	u := s.undo[p]
	if u == nil {
		u = map[string][]byte{}
		s.undo[p] = u
	}
	if _, done := u[key]; done {
		return
	}
	u[key] = s.data[p][key] // nil when absent
}

// Put sets key in partition p and returns the changelog record to emit.
func (s *Store) Put(p int32, key string, v []byte) *kgo.Record {
	s.remember(p, key)
	m := s.data[p]
	if m == nil {
		m = map[string][]byte{}
		s.data[p] = m
	}
	m[key] = v
	return &kgo.Record{Topic: s.changelog, Partition: p, Key: []byte(key), Value: v}
}

// Delete removes key from partition p and returns the tombstone to emit.
func (s *Store) Delete(p int32, key string) *kgo.Record {
	s.remember(p, key)
	delete(s.data[p], key)
	return &kgo.Record{Topic: s.changelog, Partition: p, Key: []byte(key)}
}

// Keys lists the keys of partition p in order, so iteration is
// deterministic.
func (s *Store) Keys(p int32) []string {
	ks := make([]string, 0, len(s.data[p]))
	for k := range s.data[p] {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Partitions lists the partitions the store holds state for, in order.
func (s *Store) Partitions() []int32 {
	ps := make([]int32, 0, len(s.data))
	for p := range s.data {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// Len counts the entries of every partition.
func (s *Store) Len() int {
	n := 0
	for _, m := range s.data {
		n += len(m)
	}
	return n
}

// Checkpoint makes the writes so far permanent (their transaction committed).
func (s *Store) Checkpoint() { clear(s.undo) }

// Rollback undoes the writes since the last checkpoint.
func (s *Store) Rollback() {
	for p, u := range s.undo {
		for k, v := range u {
			if v == nil {
				delete(s.data[p], k)
			} else {
				s.data[p][k] = v
			}
		}
	}
	clear(s.undo)
}

// Drop forgets the state of partitions (revoked).
func (s *Store) Drop(partitions []int32) {
	for _, p := range partitions {
		delete(s.data, p)
		delete(s.undo, p)
	}
}

// Restore replaces the state of partitions with what their changelog holds.
func (s *Store) Restore(ctx context.Context, partitions []int32) error {
	if len(partitions) == 0 {
		return nil
	}
	cl, err := kafka.NewClient(s.kcfg, "taxi-mlops-restore-"+s.changelog, kafka.Deps{Logger: s.deps.Logger})
	if err != nil {
		return err
	}
	all, err := kafka.TailRanges(ctx, cl, s.changelog, 1<<62)
	cl.Close()
	if err != nil {
		return fmt.Errorf("restore %s: %w", s.changelog, err)
	}
	var ranges []kafka.Range
	for _, r := range all {
		if slices.Contains(partitions, r.Partition) {
			ranges = append(ranges, r)
		}
	}
	for _, p := range partitions {
		s.data[p] = map[string][]byte{}
		delete(s.undo, p)
	}
	err = kafka.ReadRanges(ctx, s.kcfg, "taxi-mlops-restore-"+s.changelog, s.deps, s.changelog, ranges, func(r *kgo.Record) error {
		if r.Value == nil {
			delete(s.data[r.Partition], string(r.Key))
		} else {
			s.data[r.Partition][string(r.Key)] = r.Value
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("restore %s: %w", s.changelog, err)
	}
	return nil
}
