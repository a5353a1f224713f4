// Package kafka builds the system's Kafka clients from configuration, creates
// the catalog's topics and reads bounded offset ranges.
//
// It wraps nothing: callers get a *kgo.Client and use franz-go directly. What
// lives here is what every process would otherwise repeat: seed brokers,
// client ids, the slog adapter, per-client Prometheus metrics (kprom) and
// idempotent topic creation from the catalog.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/taxi-mlops/taxi-mlops/config"
	"github.com/taxi-mlops/taxi-mlops/contracts"
)

// Config says how to reach the brokers.
type Config struct {
	Brokers []string
	// ReplicationFactor of created topics; -1 uses the broker default.
	ReplicationFactor int
	// SessionTimeout of consumer group members: how long a silent
	// (crashed) member keeps its partitions. 0 = franz-go's 45s.
	SessionTimeout time.Duration
	// TransactionTimeout after which the broker aborts a transaction its
	// producer stopped tending (a crashed replica). 0 = franz-go's 40s.
	TransactionTimeout time.Duration
}

// Bind registers the flags of c.
func (c *Config) Bind(b *config.Binder) {
	b.List(&c.Brokers, "kafka-brokers", []string{"127.0.0.1:9092"}, "Kafka bootstrap brokers")
	b.Int(&c.ReplicationFactor, "kafka-replication-factor", -1, "replication factor of topics created at start-up (-1 = broker default)")
	b.Duration(&c.SessionTimeout, "kafka-session-timeout", 45*time.Second, "how long a crashed streamer replica keeps its partitions before the group moves them")
	b.Duration(&c.TransactionTimeout, "kafka-transaction-timeout", 40*time.Second, "how long a crashed replica's open transaction blocks its partitions before the broker aborts it")
}

// GroupOpts are the options of a consumer-group member with these settings.
func (c Config) GroupOpts() []kgo.Opt {
	var opts []kgo.Opt
	if c.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(c.SessionTimeout))
	}
	return opts
}

// TransactOpts are the options of a transactional producer.
func (c Config) TransactOpts() []kgo.Opt {
	var opts []kgo.Opt
	if c.TransactionTimeout > 0 {
		opts = append(opts, kgo.TransactionTimeout(c.TransactionTimeout))
	}
	return opts
}

// Deps are what every client is instrumented with.
type Deps struct {
	Logger  *slog.Logger
	Metrics prometheus.Registerer // nil: no client metrics
}

// NewClient returns a client named clientID (unique per process: it labels
// the client's metrics) with extra options.
func NewClient(cfg Config, clientID string, deps Deps, opts ...kgo.Opt) (*kgo.Client, error) {
	base, err := baseOpts(cfg, clientID, deps)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client %s: %w", clientID, err)
	}
	return cl, nil
}

func baseOpts(cfg Config, clientID string, deps Deps) ([]kgo.Opt, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafka client: no brokers configured (--kafka-brokers)")
	}
	base := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(clientID),
	}
	if deps.Logger != nil {
		// franz-go logs every metadata refresh and assignment at info;
		// only its warnings and errors belong in the process's log.
		l := slog.New(minLevel{deps.Logger.Handler(), slog.LevelWarn}).With("kafka_client", clientID)
		base = append(base, kgo.WithLogger(kslog.New(l)))
	}
	if deps.Metrics != nil {
		m := kprom.NewMetrics("kafka", kprom.Registerer(deps.Metrics), kprom.WithClientLabel())
		base = append(base, kgo.WithHooks(m))
	}
	return base, nil
}

// NewTransactSession is NewClient for a group transact session (exactly-once
// consume–transform–produce); opts must name a group and a transactional id.
func NewTransactSession(cfg Config, clientID string, deps Deps, opts ...kgo.Opt) (*kgo.GroupTransactSession, error) {
	base, err := baseOpts(cfg, clientID, deps)
	if err != nil {
		return nil, err
	}
	s, err := kgo.NewGroupTransactSession(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka transact session %s: %w", clientID, err)
	}
	return s, nil
}

// EnsureTopics creates every topic of topics that does not exist yet. It is
// idempotent; an existing topic with fewer partitions is reported, not changed.
func EnsureTopics(ctx context.Context, cl *kgo.Client, cfg Config, topics []contracts.Topic) error {
	adm := kadm.NewClient(cl)
	existing, err := adm.ListTopics(ctx)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	for _, t := range topics {
		if d, ok := existing[t.Name]; ok && d.Err == nil {
			if got := int32(len(d.Partitions)); got < t.Partitions {
				return fmt.Errorf("topic %s has %d partitions, the catalog wants %d: add partitions by hand (kadm CreatePartitions) after checking key ordering", t.Name, got, t.Partitions)
			}
			continue
		}
		var cfgs map[string]*string
		if t.Compacted {
			cfgs = map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}
		}
		resp, err := adm.CreateTopic(ctx, t.Partitions, int16(cfg.ReplicationFactor), cfgs, t.Name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", t.Name, err)
		}
	}
	return nil
}

// Range is a half-open offset range [Start, End) of one partition.
type Range struct {
	Partition int32 `json:"partition"`
	Start     int64 `json:"start"`
	End       int64 `json:"end"`
}

// TailRanges returns, for every partition of topic, the range holding its
// last perPartition records (fewer where the partition is shorter).
func TailRanges(ctx context.Context, cl *kgo.Client, topic string, perPartition int64) ([]Range, error) {
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	// The last stable offset, not the high watermark: records of a
	// transaction still open are not readable yet.
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	var rs []Range
	ends.Each(func(o kadm.ListedOffset) {
		start := o.Offset - perPartition
		if s, ok := starts.Lookup(topic, o.Partition); ok && start < s.Offset {
			start = s.Offset
		}
		if start < 0 {
			start = 0
		}
		rs = append(rs, Range{Partition: o.Partition, Start: start, End: o.Offset})
	})
	return rs, nil
}

// ReadRanges reads every record of the given ranges of topic and calls fn for
// each, partition by partition in offset order within a partition. It
// returns when every range is read. Records of aborted transactions are
// skipped (read committed). Transaction markers are fetched but not passed
// to fn: they occupy offsets, and seeing them is how a read knows it reached
// the end of a transactionally written range.
func ReadRanges(ctx context.Context, cfg Config, clientID string, deps Deps, topic string, ranges []Range, fn func(*kgo.Record) error) error {
	offsets := map[int32]kgo.Offset{}
	remaining := map[int32]int64{}
	for _, r := range ranges {
		if r.End > r.Start {
			offsets[r.Partition] = kgo.NewOffset().At(r.Start)
			remaining[r.Partition] = r.End
		}
	}
	if len(offsets) == 0 {
		return nil
	}
	deps.Metrics = nil // a short-lived reader is not worth a metric series
	cl, err := NewClient(cfg, clientID, deps,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	for len(remaining) > 0 {
		// Nothing at all for idleWait means the rest of the ranges cannot
		// be read (deleted by retention, or compacted away at the tail):
		// the read ends with what it has.
		pctx, cancel := context.WithTimeout(ctx, idleWait)
		fs := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read %s: %w", topic, err)
		}
		if fs.NumRecords() == 0 && pctx.Err() != nil {
			if deps.Logger != nil {
				deps.Logger.Warn("read ended before the requested offsets", "topic", topic, "remaining", remaining)
			}
			return nil
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				ferr = fmt.Errorf("read %s[%d]: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		var cbErr error
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			end, ok := remaining[p.Partition]
			if !ok {
				return
			}
			for _, r := range p.Records {
				if r.Offset >= end {
					delete(remaining, p.Partition)
					break
				}
				if cbErr == nil && !r.Attrs.IsControl() {
					cbErr = fn(r)
				}
				if r.Offset+1 >= end {
					delete(remaining, p.Partition)
				}
			}
		})
		if cbErr != nil {
			return cbErr
		}
	}
	return nil
}

// idleWait bounds how long ReadRanges waits for records that may not come.
const idleWait = 10 * time.Second

// Header returns the value of the first header named key, "" when absent.
func Header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// PartitionLabel is the string form of a partition for labels and headers.
func PartitionLabel(p int32) string { return strconv.FormatInt(int64(p), 10) }

// minLevel drops records below a level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.level}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.level}
}
