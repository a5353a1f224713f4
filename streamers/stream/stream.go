// Package stream is the runner every streamer shares: consume a batch from a
// consumer group, hand each record to a pure Processor, produce what it
// returns, and commit the input offsets only once the output is durable.
//
// The runner owns Kafka, offsets, retries, the dead-letter topic and metrics,
// so a Processor is a function of its input that can be table-tested without
// a broker. A Processor error is either permanent (the record is malformed:
// contracts.InvalidError, or Permanent) and the record goes to the
// consumer's dead-letter topic with the reason in headers, or transient and
// the record is retried with backoff until it succeeds or the runner stops;
// nothing is skipped silently.
package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/kafka"
)

// Processor turns one input record into zero or more output records.
// Implementations do no I/O of their own except where their job is I/O
// (the bridge signals Temporal); returned records need Topic, Key and Value.
type Processor interface {
	Process(ctx context.Context, in *kgo.Record) ([]*kgo.Record, error)
}

// ProcessorFunc adapts a function to Processor.
type ProcessorFunc func(ctx context.Context, in *kgo.Record) ([]*kgo.Record, error)

// Process calls f.
func (f ProcessorFunc) Process(ctx context.Context, in *kgo.Record) ([]*kgo.Record, error) {
	return f(ctx, in)
}

// PermanentError marks an error that retrying cannot fix; the record goes to
// the dead-letter topic.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a PermanentError.
func Permanent(err error) error { return &PermanentError{Err: err} }

// IsPermanent reports whether err should send the record to the dead-letter topic.
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe) || contracts.IsInvalid(err)
}

// Dead-letter headers. The original key, value and headers are kept.
const (
	HeaderReason    = "dlq-reason"
	HeaderField     = "dlq-field"
	HeaderTopic     = "dlq-source-topic"
	HeaderPartition = "dlq-source-partition"
	HeaderOffset    = "dlq-source-offset"
	HeaderConsumer  = "dlq-consumer"
	HeaderTime      = "dlq-time"
)

// Config configures one runner.
type Config struct {
	// Name is the streamer role; it names the consumer group, the dead-letter
	// topic and the metric labels.
	Name   string
	Topics []string
	// MaxPollRecords bounds a batch (default 500).
	MaxPollRecords int
	// RetryMin and RetryMax bound the backoff of transient errors
	// (defaults 100ms and 5s).
	RetryMin, RetryMax time.Duration
	// CommitTimeout bounds producing and committing a batch after the runner
	// was asked to stop, so a stop does not duplicate finished work
	// (default 30s).
	CommitTimeout time.Duration
	// ExtraOpts are appended to the group client's options.
	ExtraOpts []kgo.Opt
}

func (c *Config) defaults() {
	if c.MaxPollRecords <= 0 {
		c.MaxPollRecords = 500
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 100 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 5 * time.Second
	}
	if c.CommitTimeout <= 0 {
		c.CommitTimeout = 30 * time.Second
	}
}

// Runner runs one Processor in one consumer group.
type Runner struct {
	cfg     Config
	proc    Processor
	cl      *kgo.Client
	dlq     string
	metrics *Metrics
	log     *slog.Logger
	ready   atomic.Bool
}

// New creates the runner's group client. The client is closed by Run.
func New(cfg Config, kcfg kafka.Config, proc Processor, m *Metrics, deps kafka.Deps) (*Runner, error) {
	cfg.defaults()
	if cfg.Name == "" || len(cfg.Topics) == 0 {
		return nil, errors.New("stream runner: a name and at least one topic are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Runner{
		cfg:     cfg,
		proc:    proc,
		dlq:     contracts.DeadLetterTopic(cfg.Name),
		metrics: m,
		log:     deps.Logger.With("role", cfg.Name),
	}
	opts := append([]kgo.Opt{
		kgo.ConsumerGroup(contracts.ConsumerGroup(cfg.Name)),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		// Rebalances wait until the batch in hand is produced and
		// committed, so no partition moves with work half done.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			r.log.Info("partitions assigned", "partitions", a)
			r.ready.Store(true)
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			r.log.Info("partitions revoked", "partitions", a)
		}),
	}, cfg.ExtraOpts...)
	cl, err := kafka.NewClient(kcfg, "taxi-mlops-"+cfg.Name, deps, opts...)
	if err != nil {
		return nil, err
	}
	r.cl = cl
	return r, nil
}

// Ready reports whether the runner has joined its group and got partitions.
func (r *Runner) Ready() bool { return r.ready.Load() }

// Client is the runner's Kafka client, for processors that need to know
// assignments; do not consume from it.
func (r *Runner) Client() *kgo.Client { return r.cl }

// Run consumes until ctx is cancelled, then finishes the batch in hand,
// leaves the group and closes the client. It returns an error only when
// output cannot be made durable; the caller should then stop the process so
// the uncommitted records are redelivered elsewhere.
func (r *Runner) Run(ctx context.Context) error {
	defer func() {
		// A poll blocks rebalances until allowed again; leaving the group
		// on close is a rebalance, so allow it first.
		r.cl.AllowRebalance()
		r.cl.Close()
	}()
	r.log.Info("streamer started", "topics", r.cfg.Topics, "dead_letter_topic", r.dlq)
	for {
		fs := r.cl.PollRecords(ctx, r.cfg.MaxPollRecords)
		if fs.IsClientClosed() || ctx.Err() != nil {
			r.log.Info("streamer stopping")
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			r.metrics.fetchErrors.WithLabelValues(r.cfg.Name).Inc()
			r.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
		})
		if err := r.handle(ctx, fs); err != nil {
			return err
		}
		r.cl.AllowRebalance()
	}
}

// handle processes one batch, produces outputs and dead letters, then
// commits. Producing and committing use a context that outlives ctx by
// CommitTimeout so a stop finishes the batch instead of redoing it.
func (r *Runner) handle(ctx context.Context, fs kgo.Fetches) error {
	var in []*kgo.Record
	fs.EachRecord(func(rec *kgo.Record) { in = append(in, rec) })
	if len(in) == 0 {
		return nil
	}
	var out []*kgo.Record
	done := in[:0:0]
	for _, rec := range in {
		r.metrics.in.WithLabelValues(r.cfg.Name, rec.Topic).Inc()
		recs, err := r.processWithRetry(ctx, rec)
		if err != nil {
			if ctx.Err() != nil {
				break // stopping: the rest of the batch stays uncommitted
			}
			out = append(out, r.deadLetter(rec, err))
		} else {
			out = append(out, recs...)
		}
		done = append(done, rec)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.CommitTimeout)
	defer cancel()
	if len(out) > 0 {
		if err := r.cl.ProduceSync(wctx, out...).FirstErr(); err != nil {
			return fmt.Errorf("%s: produce %d records: %w", r.cfg.Name, len(out), err)
		}
		for _, o := range out {
			r.metrics.out.WithLabelValues(r.cfg.Name, o.Topic).Inc()
		}
	}
	if len(done) > 0 {
		if err := r.cl.CommitRecords(wctx, done...); err != nil {
			// The output is durable; redelivery after a failed commit makes
			// duplicates, never losses.
			return fmt.Errorf("%s: commit offsets: %w", r.cfg.Name, err)
		}
	}
	return nil
}

func (r *Runner) processWithRetry(ctx context.Context, rec *kgo.Record) ([]*kgo.Record, error) {
	backoff := r.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		start := time.Now()
		out, err := r.proc.Process(ctx, rec)
		r.metrics.latency.WithLabelValues(r.cfg.Name).Observe(time.Since(start).Seconds())
		if err == nil {
			return out, nil
		}
		if IsPermanent(err) {
			r.metrics.failed.WithLabelValues(r.cfg.Name, "permanent").Inc()
			return nil, err
		}
		r.metrics.failed.WithLabelValues(r.cfg.Name, "transient").Inc()
		r.log.Warn("process failed, will retry", "topic", rec.Topic, "partition", rec.Partition,
			"offset", rec.Offset, "attempt", attempt, "backoff", backoff, "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, r.cfg.RetryMax)
	}
}

func (r *Runner) deadLetter(rec *kgo.Record, err error) *kgo.Record {
	r.metrics.deadLetters.WithLabelValues(r.cfg.Name).Inc()
	r.log.Warn("record sent to dead-letter topic", "topic", rec.Topic, "partition", rec.Partition,
		"offset", rec.Offset, "dead_letter_topic", r.dlq, "err", err)
	return DeadLetter(r.dlq, r.cfg.Name, rec, err, time.Now())
}

// DeadLetter builds the dead-letter record of rec: the original key, value and
// headers plus the reason and where the record came from.
func DeadLetter(dlqTopic, consumer string, rec *kgo.Record, err error, now time.Time) *kgo.Record {
	field := ""
	var ie *contracts.InvalidError
	if errors.As(err, &ie) {
		field = ie.Field
	}
	hs := append([]kgo.RecordHeader(nil), rec.Headers...)
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderReason, Value: []byte(err.Error())},
		kgo.RecordHeader{Key: HeaderField, Value: []byte(field)},
		kgo.RecordHeader{Key: HeaderTopic, Value: []byte(rec.Topic)},
		kgo.RecordHeader{Key: HeaderPartition, Value: []byte(kafka.PartitionLabel(rec.Partition))},
		kgo.RecordHeader{Key: HeaderOffset, Value: []byte(strconv.FormatInt(rec.Offset, 10))},
		kgo.RecordHeader{Key: HeaderConsumer, Value: []byte(consumer)},
		kgo.RecordHeader{Key: HeaderTime, Value: []byte(now.UTC().Format(time.RFC3339Nano))},
	)
	return &kgo.Record{Topic: dlqTopic, Key: rec.Key, Value: rec.Value, Headers: hs}
}

// Metrics are the runner's Prometheus metrics, shared by every runner of a
// process and labelled by role.
type Metrics struct {
	in, out, failed, deadLetters, fetchErrors *prometheus.CounterVec
	latency                                   *prometheus.HistogramVec
}

// NewMetrics registers the runner metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		in: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taxi_streamer_records_in_total", Help: "Records consumed, by role and topic.",
		}, []string{"role", "topic"}),
		out: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taxi_streamer_records_out_total", Help: "Records produced, by role and topic (dead letters included).",
		}, []string{"role", "topic"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taxi_streamer_records_failed_total", Help: "Processing failures, by role and kind (permanent: sent to the dead-letter topic; transient: retried).",
		}, []string{"role", "kind"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taxi_streamer_dead_letters_total", Help: "Records sent to the dead-letter topic, by role.",
		}, []string{"role"}),
		fetchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taxi_streamer_fetch_errors_total", Help: "Fetch errors reported by the consumer, by role.",
		}, []string{"role"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "taxi_streamer_process_seconds", Help: "Time to process one record, by role.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12),
		}, []string{"role"}),
	}
	if reg != nil {
		reg.MustRegister(m.in, m.out, m.failed, m.deadLetters, m.fetchErrors, m.latency)
	}
	return m
}

// FailedCounter exposes one failure series, for tests and status pages.
func (m *Metrics) FailedCounter(role, kind string) prometheus.Counter {
	return m.failed.WithLabelValues(role, kind)
}
