package state_test

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	"github.com/taxi-mlops/taxi-mlops/streamers/state"
)

func TestRollbackAndCheckpoint(t *testing.T) {
	s := state.New("changelog", kafka.Config{}, kafka.Deps{})
	s.Put(0, "a", []byte("1"))
	s.Checkpoint()
	s.Put(0, "a", []byte("2"))
	s.Put(0, "b", []byte("x"))
	s.Delete(0, "a")
	s.Put(1, "c", []byte("y"))
	s.Rollback()
	if v, ok := s.Get(0, "a"); !ok || string(v) != "1" {
		t.Fatalf("a = %q %v after rollback, want 1", v, ok)
	}
	if _, ok := s.Get(0, "b"); ok {
		t.Fatal("b survived the rollback")
	}
	if _, ok := s.Get(1, "c"); ok {
		t.Fatal("c survived the rollback")
	}
	if s.Len() != 1 {
		t.Fatalf("len %d", s.Len())
	}
	rec := s.Put(3, "k", []byte("v"))
	if rec.Topic != "changelog" || rec.Partition != 3 || string(rec.Key) != "k" {
		t.Fatalf("changelog record %+v", rec)
	}
	if del := s.Delete(3, "k"); del.Value != nil {
		t.Fatal("a delete must write a tombstone")
	}
}

func TestRestoreReadsOnlyCommittedWrites(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := kafka.Config{Brokers: c.ListenAddrs(), ReplicationFactor: 1}
	topic := contracts.ChangelogTopic("aggregates")
	adm, err := kafka.NewClient(cfg, "admin", kafka.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ctx := context.Background()
	if err := kafka.EnsureTopics(ctx, adm, cfg, []contracts.Topic{{Name: topic, Partitions: 6, Compacted: true}}); err != nil {
		t.Fatal(err)
	}
	w := state.New(topic, cfg, kafka.Deps{})
	prod, err := kafka.NewClient(cfg, "writer", kafka.Deps{}, kgo.TransactionalID("writer"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	txn := func(commit bool, recs ...*kgo.Record) {
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := prod.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	txn(true, w.Put(2, "a", []byte("1")), w.Put(2, "b", []byte("1")), w.Put(4, "z", []byte("9")))
	txn(true, w.Put(2, "a", []byte("2")), w.Delete(2, "b"))
	txn(false, w.Put(2, "a", []byte("aborted")), w.Put(2, "c", []byte("aborted")))

	r := state.New(topic, cfg, kafka.Deps{})
	if err := r.Restore(ctx, []int32{2}); err != nil {
		t.Fatal(err)
	}
	if v, _ := r.Get(2, "a"); string(v) != "2" {
		t.Errorf("a = %q, want the last committed 2", v)
	}
	if _, ok := r.Get(2, "b"); ok {
		t.Error("b was deleted")
	}
	if _, ok := r.Get(2, "c"); ok {
		t.Error("c was written by an aborted transaction")
	}
	if _, ok := r.Get(4, "z"); ok {
		t.Error("partition 4 was not asked for")
	}
	r.Drop([]int32{2})
	if r.Len() != 0 {
		t.Fatalf("%d entries after drop", r.Len())
	}
}
