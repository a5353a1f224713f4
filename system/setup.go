package system

import (
	"context"
	"fmt"

	"github.com/minio/minio-go/v7"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	"github.com/taxi-mlops/taxi-mlops/registry"
)

// Setup creates what the system needs before it runs, idempotently: the
// catalog's topics, the buckets, and — when bootstrap is set — a first
// champion for each model that has none, trained on the shipped sample.
func Setup(ctx context.Context, cfg Config, deps Deps, bootstrap bool) error {
	cl, err := kafka.NewClient(cfg.Kafka, "taxi-mlops-setup", kafka.Deps{Logger: deps.Logger})
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := kafka.EnsureTopics(ctx, cl, cfg.Kafka, contracts.Catalog()); err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	mc, err := cfg.S3.NewClient()
	if err != nil {
		return err
	}
	for _, b := range cfg.S3.Buckets() {
		if err := ensureBucket(ctx, mc, b, cfg.S3.Region); err != nil {
			return err
		}
	}
	if bootstrap {
		rows, err := SampleRows(deps.Location)
		if err != nil {
			return err
		}
		if n := cfg.BootstrapTrips; n > 0 && n < len(rows) {
			rows = rows[:n]
		}
		return Bootstrap(ctx, registry.New(mc, cfg.S3.ModelBucket), rows, deps)
	}
	return nil
}

func ensureBucket(ctx context.Context, mc *minio.Client, bucket, region string) error {
	ok, err := mc.BucketExists(ctx, bucket)
	if err != nil {
		return fmt.Errorf("check bucket %s: %w", bucket, err)
	}
	if ok {
		return nil
	}
	if err := mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: region}); err != nil {
		if exists, _ := mc.BucketExists(ctx, bucket); exists {
			return nil
		}
		return fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	return nil
}
