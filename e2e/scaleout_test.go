package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/deploy/devstack"
	"github.com/taxi-mlops/taxi-mlops/geo"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	"github.com/taxi-mlops/taxi-mlops/ml/features"
	"github.com/taxi-mlops/taxi-mlops/registry"
	"github.com/taxi-mlops/taxi-mlops/rides"
	"github.com/taxi-mlops/taxi-mlops/system"
)

// build compiles one of the project's commands, the binary a deployment runs.
func build(t *testing.T, command string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), command)
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	cmd := exec.Command(goBin, "build", "-o", bin, "github.com/taxi-mlops/taxi-mlops/"+command)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", command, err, out)
	}
	return bin
}

// replica is one streamers process.
type replica struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process exited
	err  error
}

func startProcess(t *testing.T, bin, name string, env []string) *replica {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &replica{cmd: cmd, done: make(chan struct{})}
	go func() { r.err = cmd.Wait(); logf.Close(); close(r.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s log:\n%s", name, tail(b, 4000))
		}
	})
	return r
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// TestInferenceReplicaKilledMidStream runs two inference replicas, real
// processes, in one consumer group, kills one with SIGKILL while trips are
// flowing, and checks every trip got exactly one prediction: the survivor
// takes over the dead replica's partitions once the group notices, and the
// dead replica's open transaction is aborted, not half-applied.
func TestInferenceReplicaKilledMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the streamers command and runs it as two processes")
	}
	bin := build(t, "streamers")
	ctx := context.Background()
	log := logger(t)
	broker, kcfg, err := devstack.StartKafka(ctx, 0, "", log)
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	s3cfg := system.S3Config{AccessKey: "e2e", SecretKey: "e2e-secret-key", Region: "us-east-1",
		ModelBucket: "models", DatasetBucket: "datasets", FeatureBucket: "features"}
	s3, err := devstack.StartS3("127.0.0.1:0", t.TempDir(), s3cfg.AccessKey, s3cfg.SecretKey, s3cfg.Buckets(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	s3cfg.Endpoint = s3.Addr
	mc, err := s3cfg.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := time.LoadLocation(system.City)
	areas, err := geo.LoadCommunityAreas()
	if err != nil {
		t.Fatal(err)
	}
	rows, err := system.SampleRows(loc)
	if err != nil {
		t.Fatal(err)
	}
	deps := system.Deps{Logger: log, Location: loc, Areas: areas}
	if err := system.Bootstrap(ctx, registry.New(mc, s3cfg.ModelBucket), rows[:3000], deps); err != nil {
		t.Fatal(err)
	}

	env := []string{
		"TAXI_KAFKA_BROKERS=" + kcfg.Brokers[0],
		"TAXI_S3_ENDPOINT=" + s3cfg.Endpoint,
		"TAXI_S3_ACCESS_KEY=" + s3cfg.AccessKey,
		"TAXI_S3_SECRET_KEY=" + s3cfg.SecretKey,
		"TAXI_ROLE=inference",
		"TAXI_SETUP=false",
		"TAXI_OPS_ADDR=",
		"TAXI_LOG_LEVEL=info",
		"TAXI_KAFKA_SESSION_TIMEOUT=6s",
		"TAXI_KAFKA_TRANSACTION_TIMEOUT=5s",
	}
	a := startProcess(t, bin, "replica-a", env)
	startProcess(t, bin, "replica-b", env)

	adm, err := kafka.NewClient(kcfg, "e2e-admin", kafka.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	group := contracts.ConsumerGroup("inference")
	eventually(t, time.Minute, "both replicas in the group with partitions", func() (bool, string) {
		d, err := kadm.NewClient(adm).DescribeGroups(ctx, group)
		if err != nil {
			return false, err.Error()
		}
		g := d[group]
		owning := 0
		for _, m := range g.Members {
			if ca, ok := m.Assigned.AsConsumer(); ok && len(ca.Topics) > 0 && len(ca.Topics[0].Partitions) > 0 {
				owning++
			}
		}
		return owning == 2, fmt.Sprintf("state %s, %d members owning partitions", g.State, owning)
	})

	// The trips, as the features streamer would publish them.
	const n = 6000
	recs := make([]*kgo.Record, n)
	for i := range n {
		r := &rows[i].Ride
		row := features.Transform(rides.FeatureTrip(r, areas), loc)
		msg := rides.FeaturesMessage(r.TripID, r.PickupDatetime, &row)
		b, err := contracts.Encode(&msg)
		if err != nil {
			t.Fatal(err)
		}
		recs[i] = &kgo.Record{Topic: contracts.TopicFeaturesRealtime, Key: []byte(r.TripID), Value: b}
	}
	prod, err := kafka.NewClient(kcfg, "e2e-producer", kafka.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	// Replica A's partitions; its predictions land in the same partition
	// numbers (same keys, same partition count).
	var ownedByA []int32
	d, err := kadm.NewClient(adm).DescribeGroups(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range d[group].Members {
		if ca, ok := m.Assigned.AsConsumer(); ok && strings.Contains(m.ClientID, fmt.Sprintf("-%d-", a.cmd.Process.Pid)) {
			for _, tp := range ca.Topics {
				ownedByA = append(ownedByA, tp.Partitions...)
			}
		}
	}
	if len(ownedByA) == 0 {
		t.Fatal("replica A owns no partitions")
	}
	written := func() int64 {
		// High watermarks count records of open transactions too.
		ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, contracts.TopicPredictions)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, p := range ownedByA {
			if o, ok := ends.Lookup(contracts.TopicPredictions, p); ok {
				n += o.Offset
			}
		}
		return n
	}
	// 6000 trips in bursts of 500. A third of the way, replica A is killed
	// the moment its first output of the burst is written: mid-batch, with
	// output written and offsets not yet committed.
	for i := 0; i < n; i += 500 {
		before := written()
		if err := prod.ProduceSync(ctx, recs[i:i+500]...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if i == 2000 {
			deadline := time.Now().Add(10 * time.Second)
			for written() == before && time.Now().Before(deadline) {
			}
			if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(300 * time.Millisecond)
	}

	s := &stack{t: t, cfg: system.Config{Kafka: kcfg}}
	var preds map[string]int
	eventually(t, 2*time.Minute, "a prediction for every trip", func() (bool, string) {
		preds = map[string]int{}
		for _, r := range s.read(contracts.TopicPredictions) {
			preds[string(r.Key)]++
		}
		return len(preds) == n, fmt.Sprintf("%d of %d trips predicted", len(preds), n)
	})
	for _, r := range recs {
		if c := preds[string(r.Key)]; c != 1 {
			t.Fatalf("trip %s has %d predictions, want exactly 1", r.Key, c)
		}
	}
	<-a.done
	if a.err == nil {
		t.Fatal("replica A exited cleanly; it was meant to be killed")
	}
}
