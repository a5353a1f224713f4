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
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	"github.com/taxi-mlops/taxi-mlops/schemas"
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

// FatalError stops the runner: the processor cannot go on (its state is
// lost) and the process should restart so another replica takes over.
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

// Fatal wraps err as a FatalError.
func Fatal(err error) error { return &FatalError{Err: err} }

func isFatal(err error) bool {
	var fe *FatalError
	return errors.As(err, &fe)
}

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

// Guarantee is the delivery guarantee of a runner.
type Guarantee string

const (
	// ExactlyOnce consumes, produces and commits offsets in one Kafka
	// transaction per batch (franz-go's GroupTransactSession): downstream
	// read-committed consumers see each input's output exactly once, even
	// across crashes and rebalances.
	ExactlyOnce Guarantee = "exactly-once"
	// AtLeastOnce produces, waits for the acknowledgements, then commits:
	// a crash between the two redelivers, so outputs may repeat.
	AtLeastOnce Guarantee = "at-least-once"
)

// Stateful processors keep state across records that must follow the
// batch's fate: Checkpoint after a batch committed, Rollback after it was
// aborted (its records will be processed again).
type Stateful interface {
	Checkpoint()
	Rollback()
}

// Rebalancing processors hear about partitions they gain and lose, to
// restore or drop per-partition state. Assigned runs before records of the
// new partitions are fetched; cl may be used to read a changelog.
type Rebalancing interface {
	Assigned(ctx context.Context, cl *kgo.Client, partitions map[string][]int32)
	Revoked(partitions map[string][]int32)
}

// BatchProcessor processes a whole batch at once, to amortise work across
// records (micro-batching). Result i belongs to in[i] and means what
// Process's results mean; records with a transient error are retried one by
// one through Process.
type BatchProcessor interface {
	Processor
	ProcessBatch(ctx context.Context, in []*kgo.Record) []Result
}

// Result is one record's outcome in a batch.
type Result struct {
	Out []*kgo.Record
	Err error
}

// Flusher processors emit records once per batch, after its last record
// and inside its transaction: a state store writing each changed key's
// latest value to its changelog once, not once per update.
type Flusher interface {
	Flush(ctx context.Context) ([]*kgo.Record, error)
}

// Sized processors report how many entries of state they hold, for the
// taxi_streamer_state_entries gauge.
type Sized interface {
	StateEntries() int
}

// Config configures one runner.
type Config struct {
	// Name is the streamer role; it names the consumer group, the dead-letter
	// topic and the metric labels.
	Name   string
	Topics []string
	// Guarantee defaults to ExactlyOnce.
	Guarantee Guarantee
	// Instance distinguishes replicas of a role in transactional ids and
	// client ids (default: host name, process id and a random suffix).
	Instance string
	// MaxPollRecords bounds a batch, and so a transaction (default 500).
	MaxPollRecords int
	// RetryMin and RetryMax bound the backoff of transient errors
	// (defaults 100ms and 5s).
	RetryMin, RetryMax time.Duration
	// CommitTimeout bounds producing and committing a batch after the runner
	// was asked to stop, so a stop does not redo finished work
	// (default 30s).
	CommitTimeout time.Duration
	// LagInterval is how often consumer lag is measured (default 15s).
	LagInterval time.Duration
	// Framer frames output values in the Schema Registry wire format (nil:
	// plain JSON).
	Framer *schemas.Framer
	// ManualPartitions lists output topics whose records carry their
	// partition (a changelog written to the partition of the input it
	// belongs to); other topics are partitioned by key.
	ManualPartitions []string
	// ExtraOpts are appended to the group client's options.
	ExtraOpts []kgo.Opt
}

func (c *Config) defaults() {
	if c.Guarantee == "" {
		c.Guarantee = ExactlyOnce
	}
	if c.Instance == "" {
		host, _ := os.Hostname()
		c.Instance = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randomSuffix())
	}
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
	if c.LagInterval <= 0 {
		c.LagInterval = 15 * time.Second
	}
}

func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ParseGuarantee reads a guarantee name.
func ParseGuarantee(s string) (Guarantee, error) {
	switch Guarantee(s) {
	case ExactlyOnce, AtLeastOnce:
		return Guarantee(s), nil
	}
	return "", fmt.Errorf("guarantee %q is not %q or %q", s, ExactlyOnce, AtLeastOnce)
}

// Runner runs one Processor in one consumer group.
type Runner struct {
	cfg     Config
	proc    Processor
	cl      *kgo.Client
	sess    *kgo.GroupTransactSession // nil unless ExactlyOnce
	dlq     string
	metrics *Metrics
	log     *slog.Logger
	ready   atomic.Bool
	// Per-record series, resolved once: label lookups cost more than the
	// increments.
	latency prometheus.Observer
	in      map[string]prometheus.Counter
}

func (r *Runner) inCounter(topic string) prometheus.Counter {
	c, ok := r.in[topic]
	if !ok {
		c = r.metrics.in.WithLabelValues(r.cfg.Name, topic)
		r.in[topic] = c
	}
	return c
}

// New creates the runner's group client. The client is closed by Run.
func New(cfg Config, kcfg kafka.Config, proc Processor, m *Metrics, deps kafka.Deps) (*Runner, error) {
	cfg.defaults()
	if cfg.Name == "" || len(cfg.Topics) == 0 {
		return nil, errors.New("stream runner: a name and at least one topic are required")
	}
	if _, err := ParseGuarantee(string(cfg.Guarantee)); err != nil {
		return nil, fmt.Errorf("stream runner %s: %w", cfg.Name, err)
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
		latency: m.latency.WithLabelValues(cfg.Name),
		in:      map[string]prometheus.Counter{},
	}
	rebalancing, _ := proc.(Rebalancing)
	opts := append(kcfg.GroupOpts(),
		kgo.ConsumerGroup(contracts.ConsumerGroup(cfg.Name)),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(func(ctx context.Context, cl *kgo.Client, a map[string][]int32) {
			r.log.Info("partitions assigned", "partitions", a)
			if rebalancing != nil {
				rebalancing.Assigned(ctx, cl, a)
			}
			r.ready.Store(true)
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			r.log.Info("partitions revoked", "partitions", a)
			if rebalancing != nil {
				rebalancing.Revoked(a)
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			r.log.Warn("partitions lost", "partitions", a)
			if rebalancing != nil {
				rebalancing.Revoked(a)
			}
		}),
	)
	if len(cfg.ManualPartitions) > 0 {
		opts = append(opts, kgo.RecordPartitioner(partitioner{
			byKey:  kgo.StickyKeyPartitioner(nil),
			manual: cfg.ManualPartitions,
		}))
	}
	clientID := "taxi-mlops-" + cfg.Name + "-" + cfg.Instance
	if cfg.Guarantee == ExactlyOnce {
		opts = append(opts, kgo.TransactionalID(clientID), kgo.RequireStableFetchOffsets())
		opts = append(opts, kcfg.TransactOpts()...)
		sess, err := kafka.NewTransactSession(kcfg, clientID, deps, append(opts, cfg.ExtraOpts...)...)
		if err != nil {
			return nil, err
		}
		r.sess, r.cl = sess, sess.Client()
		return r, nil
	}
	// Rebalances wait until the batch in hand is produced and committed, so
	// no partition moves with work half done.
	opts = append(opts, kgo.BlockRebalanceOnPoll())
	cl, err := kafka.NewClient(kcfg, clientID, deps, append(opts, cfg.ExtraOpts...)...)
	if err != nil {
		return nil, err
	}
	r.cl = cl
	return r, nil
}

// Ready reports whether the runner has joined its group and got partitions.
func (r *Runner) Ready() bool { return r.ready.Load() }

// Run consumes until ctx is cancelled, then finishes the batch in hand,
// leaves the group and closes the client. It returns an error only when
// output cannot be made durable; the caller should then stop the process so
// the uncommitted records are processed again elsewhere.
func (r *Runner) Run(ctx context.Context) error {
	defer func() {
		if r.sess != nil {
			r.sess.CloseAllowingRebalance()
			return
		}
		// A poll blocks rebalances until allowed again; leaving the group
		// on close is a rebalance, so allow it first.
		r.cl.AllowRebalance()
		r.cl.Close()
	}()
	go r.measureLag(ctx)
	r.log.Info("streamer started", "topics", r.cfg.Topics, "guarantee", r.cfg.Guarantee, "dead_letter_topic", r.dlq)
	for {
		var fs kgo.Fetches
		if r.sess != nil {
			fs = r.sess.PollRecords(ctx, r.cfg.MaxPollRecords)
		} else {
			fs = r.cl.PollRecords(ctx, r.cfg.MaxPollRecords)
		}
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
		if r.sess == nil {
			r.cl.AllowRebalance()
		}
		if sz, ok := r.proc.(Sized); ok {
			r.metrics.state.WithLabelValues(r.cfg.Name).Set(float64(sz.StateEntries()))
		}
	}
}

// batch collects what processing a batch produced.
type batch struct {
	mu      sync.Mutex
	err     error
	records int
	out     map[string]int // by topic
}

func (b *batch) failed(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.mu.Unlock()
}

func (b *batch) firstErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// handle processes one batch and makes its output durable with its offsets:
// in one transaction (ExactlyOnce) or produce-then-commit (AtLeastOnce).
// Producing and committing use a context that outlives ctx by
// CommitTimeout, so a stop finishes the batch instead of redoing it.
func (r *Runner) handle(ctx context.Context, fs kgo.Fetches) error {
	in := fs.Records()
	if len(in) == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.CommitTimeout)
	defer cancel()
	if r.sess != nil {
		if err := r.sess.Begin(); err != nil {
			return fmt.Errorf("%s: begin transaction: %w", r.cfg.Name, err)
		}
	}
	b := &batch{out: map[string]int{}}
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			b.failed(err)
		}
	}
	produce := func(o *kgo.Record) {
		o.Value = r.cfg.Framer.Frame(o.Topic, o.Value)
		if r.sess != nil {
			r.sess.Produce(wctx, o, promise)
		} else {
			r.cl.Produce(wctx, o, promise)
		}
		b.out[o.Topic]++
	}
	var first []Result
	if bp, ok := r.proc.(BatchProcessor); ok {
		start := time.Now()
		first = bp.ProcessBatch(ctx, in)
		if len(first) != len(in) {
			return fmt.Errorf("%s: batch processor returned %d results for %d records", r.cfg.Name, len(first), len(in))
		}
		per := time.Since(start).Seconds() / float64(len(in))
		for range in {
			r.latency.Observe(per)
		}
	}
	stopped := false
	for i, rec := range in {
		r.inCounter(rec.Topic).Inc()
		var outs []*kgo.Record
		var err error
		if first != nil && (first[i].Err == nil || IsPermanent(first[i].Err) || isFatal(first[i].Err)) {
			outs, err = first[i].Out, first[i].Err
			if err != nil {
				r.metrics.failed.WithLabelValues(r.cfg.Name, "permanent").Inc()
			}
		} else {
			// One at a time, and transient failures of a batch, retry.
			outs, err = r.processWithRetry(ctx, rec)
		}
		if err != nil && ctx.Err() != nil {
			stopped = true // stopping in a retry: the rest stays unprocessed
			break
		}
		if isFatal(err) {
			if r.sess != nil {
				_, _ = r.sess.End(wctx, kgo.TryAbort)
			}
			return fmt.Errorf("%s: %w", r.cfg.Name, err)
		}
		if err != nil {
			outs = []*kgo.Record{r.deadLetter(rec, err)}
		}
		for _, o := range outs {
			produce(o)
		}
		b.records++
	}
	if f, ok := r.proc.(Flusher); ok && !stopped {
		outs, err := f.Flush(ctx)
		if err != nil {
			if r.sess != nil {
				_, _ = r.sess.End(wctx, kgo.TryAbort)
			}
			r.rollback()
			return fmt.Errorf("%s: flush state: %w", r.cfg.Name, err)
		}
		for _, o := range outs {
			produce(o)
		}
	}
	if r.sess != nil {
		return r.endTransaction(wctx, b, stopped)
	}
	if err := r.cl.Flush(wctx); err != nil {
		return fmt.Errorf("%s: flush: %w", r.cfg.Name, err)
	}
	if err := b.firstErr(); err != nil {
		return fmt.Errorf("%s: produce: %w", r.cfg.Name, err)
	}
	if err := r.cl.CommitRecords(wctx, in[:b.records]...); err != nil {
		// The output is durable; redelivery after a failed commit makes
		// duplicates, never losses.
		return fmt.Errorf("%s: commit offsets: %w", r.cfg.Name, err)
	}
	r.committed(b)
	return nil
}

func (r *Runner) endTransaction(ctx context.Context, b *batch, stopped bool) error {
	perr := b.firstErr()
	try := kgo.TryCommit
	if stopped || perr != nil {
		try = kgo.TryAbort
	}
	committed, err := r.sess.End(ctx, try)
	if err != nil {
		r.rollback()
		return fmt.Errorf("%s: end transaction: %w", r.cfg.Name, err)
	}
	if perr != nil {
		r.rollback()
		return fmt.Errorf("%s: produce: %w", r.cfg.Name, perr)
	}
	if !committed {
		// A rebalance or a stop: the batch's records are consumed again
		// from the last committed offsets, here or by another replica.
		r.metrics.aborted.WithLabelValues(r.cfg.Name).Inc()
		if !stopped {
			r.log.Info("transaction aborted, batch will be processed again", "records", b.records)
		}
		r.rollback()
		return nil
	}
	r.committed(b)
	return nil
}

func (r *Runner) committed(b *batch) {
	for t, n := range b.out {
		r.metrics.out.WithLabelValues(r.cfg.Name, t).Add(float64(n))
	}
	r.metrics.batches.WithLabelValues(r.cfg.Name).Inc()
	if s, ok := r.proc.(Stateful); ok {
		s.Checkpoint()
	}
}

func (r *Runner) rollback() {
	if s, ok := r.proc.(Stateful); ok {
		s.Rollback()
	}
}

// partitioner honours the record's partition on some topics and hashes
// keys (as Kafka's default partitioner does) on the others.
type partitioner struct {
	byKey  kgo.Partitioner
	manual []string
}

func (p partitioner) ForTopic(t string) kgo.TopicPartitioner {
	if slices.Contains(p.manual, t) {
		return kgo.ManualPartitioner().ForTopic(t)
	}
	return p.byKey.ForTopic(t)
}

// measureLag reports the group's lag per topic until ctx ends.
func (r *Runner) measureLag(ctx context.Context) {
	adm := kadm.NewClient(r.cl)
	group := contracts.ConsumerGroup(r.cfg.Name)
	t := time.NewTicker(r.cfg.LagInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lags, err := adm.Lag(ctx, group)
		if err != nil {
			continue
		}
		lags.Each(func(l kadm.DescribedGroupLag) {
			for topic, tl := range l.Lag.TotalByTopic() {
				r.metrics.lag.WithLabelValues(r.cfg.Name, topic).Set(float64(tl.Lag))
			}
		})
	}
}

func (r *Runner) processWithRetry(ctx context.Context, rec *kgo.Record) ([]*kgo.Record, error) {
	backoff := r.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		start := time.Now()
		out, err := r.proc.Process(ctx, rec)
		r.latency.Observe(time.Since(start).Seconds())
		if err == nil {
			return out, nil
		}
		if IsPermanent(err) {
			r.metrics.failed.WithLabelValues(r.cfg.Name, "permanent").Inc()
			return nil, err
		}
		if isFatal(err) {
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
	in, out, failed, deadLetters, fetchErrors, aborted, batches *prometheus.CounterVec
	latency                                                     *prometheus.HistogramVec
	lag, state                                                  *prometheus.GaugeVec
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
		aborted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taxi_streamer_transactions_aborted_total", Help: "Batches whose transaction was aborted (rebalance or stop) and will be processed again, by role.",
		}, []string{"role"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taxi_streamer_batches_committed_total", Help: "Batches whose output and offsets were committed, by role.",
		}, []string{"role"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "taxi_streamer_consumer_lag", Help: "Records not yet consumed by the role's group, by role and topic.",
		}, []string{"role", "topic"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "taxi_streamer_state_entries", Help: "Entries of state a stateful role holds (window state size), by role.",
		}, []string{"role"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "taxi_streamer_process_seconds", Help: "Time to process one record, by role.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12),
		}, []string{"role"}),
	}
	if reg != nil {
		reg.MustRegister(m.in, m.out, m.failed, m.deadLetters, m.fetchErrors, m.aborted, m.batches, m.latency, m.lag, m.state)
	}
	return m
}

// FailedCounter exposes one failure series, for tests and status pages.
func (m *Metrics) FailedCounter(role, kind string) prometheus.Counter {
	return m.failed.WithLabelValues(role, kind)
}
