// Package registry is the model registry of taxi-mlops, kept in an S3
// bucket through minio-go.
//
// Layout in the bucket:
//
//	<name>/<version>/model.json     the model (XGBoost JSON; opaque here)
//	<name>/<version>/metadata.json  Metadata, written last
//	<name>/champion.json            Champion: the serving version and its history
//
// A version is visible (to Versions, Models, Get) once its metadata.json
// exists, which is written after model.json, so a reader never sees half a
// version. Versions are immutable: both files are created with
// If-None-Match: *, so two writers cannot both create a version, and a
// repeated Put of the same model is a no-op.
//
// The champion pointer is changed by compare-and-swap (Promote): the caller
// says which version it expects to replace, and the write is conditional on
// the ETag read, so concurrent promotions cannot overwrite one another.
// A rollback is a Promote of an older version, expecting the current one;
// it is recorded in the history like any promotion.
//
// The store must support conditional PUTs (If-Match, If-None-Match): AWS
// S3, MinIO and this project's s3server do.
package registry

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/taxi-mlops/taxi-mlops/ml/features"
)

// MaxHistory bounds the champion history kept in champion.json.
const MaxHistory = 100

const (
	modelFile    = "model.json"
	metadataFile = "metadata.json"
	championFile = "champion.json"
	contentType  = "application/json"
)

// Errors callers check with errors.Is.
var (
	// ErrNotFound: the model version does not exist.
	ErrNotFound = errors.New("model version not found")
	// ErrVersionExists: the version exists with a different model.
	ErrVersionExists = errors.New("model version already exists with a different model")
	// ErrChecksum: the stored model does not match the checksum in its metadata.
	ErrChecksum = errors.New("model checksum mismatch")
	// ErrNoChampion: the model has no champion.
	ErrNoChampion = errors.New("model has no champion")
	// ErrConflict: the champion is not the one the caller expected.
	ErrConflict = errors.New("champion conflict")
)

// Lineage says where a model version came from.
type Lineage struct {
	WorkflowID    string `json:"workflow_id"`
	RunID         string `json:"run_id"`
	TriggerType   string `json:"trigger_type"`
	TriggerID     string `json:"trigger_id"`
	Reason        string `json:"reason"`
	DatasetURI    string `json:"dataset_uri"`
	ParentVersion string `json:"parent_version"`
}

// Metadata describes a model version. Features is stored as read; call
// its Init before using it to build vectors.
type Metadata struct {
	Name      string        `json:"name"`
	Version   string        `json:"version"`
	CreatedAt time.Time     `json:"created_at"`
	Objective string        `json:"objective"`
	Features  features.Spec `json:"features"`
	// ReferenceProfile is the drift reference profile of the training
	// data, kept as JSON so that this package does not depend on its type.
	ReferenceProfile json.RawMessage    `json:"reference_profile,omitempty"`
	Metrics          map[string]float64 `json:"metrics"`
	Params           json.RawMessage    `json:"params,omitempty"`
	TrainingDataURI  string             `json:"training_data_uri"`
	// SHA256 (hex) and SizeBytes are of model.json; Put sets them.
	SHA256    string  `json:"sha256"`
	SizeBytes int64   `json:"size_bytes"`
	Lineage   Lineage `json:"lineage"`
}

// Champion is the version of a model that serves, with how it got there.
type Champion struct {
	Name       string    `json:"name"`
	Version    string    `json:"version"`
	PromotedAt time.Time `json:"promoted_at"`
	Reason     string    `json:"reason"`
	WorkflowID string    `json:"workflow_id"`
	// History lists the promotions, oldest first, at most MaxHistory.
	History []ChampionChange `json:"history"`
}

// ChampionChange is one promotion. Promote fills Version and Previous, and
// PromotedAt when zero.
type ChampionChange struct {
	Version    string    `json:"version"`
	Previous   string    `json:"previous"`
	PromotedAt time.Time `json:"promoted_at"`
	Reason     string    `json:"reason"`
	WorkflowID string    `json:"workflow_id"`
}

// Registry reads and writes models in one bucket.
type Registry struct {
	client *minio.Client
	bucket string
	now    func() time.Time
}

// New returns a registry over bucket.
func New(client *minio.Client, bucket string) *Registry {
	return &Registry{client: client, bucket: bucket, now: time.Now}
}

// URI is where a version lives: s3://<bucket>/<name>/<version>/.
func (r *Registry) URI(name, version string) string {
	return "s3://" + r.bucket + "/" + name + "/" + version + "/"
}

// EnsureBucket creates the bucket if it does not exist.
func (r *Registry) EnsureBucket(ctx context.Context) error {
	exists, err := r.client.BucketExists(ctx, r.bucket)
	if err != nil {
		return fmt.Errorf("ensure bucket %s: %w", r.bucket, err)
	}
	if exists {
		return nil
	}
	if err := r.client.MakeBucket(ctx, r.bucket, minio.MakeBucketOptions{}); err != nil {
		// Someone else may have created it meanwhile.
		if exists, err2 := r.client.BucketExists(ctx, r.bucket); err2 == nil && exists {
			return nil
		}
		return fmt.Errorf("ensure bucket %s: %w", r.bucket, err)
	}
	return nil
}

// Put stores a new version: model.json, then metadata.json. It sets
// meta.SHA256 and meta.SizeBytes, and meta.CreatedAt when zero, and
// returns the metadata stored. Putting a version that exists with the same
// model bytes is a no-op returning the stored metadata (so retries are
// safe); with different bytes it fails with ErrVersionExists.
func (r *Registry) Put(ctx context.Context, meta Metadata, model []byte) (Metadata, error) {
	fail := func(err error) (Metadata, error) {
		return Metadata{}, fmt.Errorf("put model %s/%s: %w", meta.Name, meta.Version, err)
	}
	if err := validate(meta.Name, meta.Version); err != nil {
		return fail(err)
	}
	if len(model) == 0 {
		return fail(errors.New("model is empty"))
	}
	for k, v := range meta.Metrics {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fail(fmt.Errorf("metric %s is %v; JSON has no such number", k, v))
		}
	}
	sum := sha256.Sum256(model)
	meta.SHA256 = hex.EncodeToString(sum[:])
	meta.SizeBytes = int64(len(model))
	if meta.CreatedAt.IsZero() {
		meta.CreatedAt = r.now().UTC()
	}
	metaJSON, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return fail(fmt.Errorf("encode metadata: %w", err))
	}

	stored, err := r.metadata(ctx, meta.Name, meta.Version)
	switch {
	case err == nil:
		return r.existing(stored, meta)
	case !errors.Is(err, ErrNotFound):
		return fail(err)
	}

	modelKey := r.key(meta.Name, meta.Version, modelFile)
	if err := r.create(ctx, modelKey, model); err != nil {
		if !isPreconditionFailed(err) {
			return fail(fmt.Errorf("write %s: %w", modelKey, err))
		}
		// model.json exists without metadata.json: another Put of this
		// version is under way, or one stopped between its two writes.
		// Completing it is fine only with the same model.
		have, _, err := r.read(ctx, modelKey)
		if err != nil {
			return fail(fmt.Errorf("read %s: %w", modelKey, err))
		}
		if got := sha256Hex(have); got != meta.SHA256 {
			return fail(fmt.Errorf("%w: %s holds a model with sha256 %s, not %s",
				ErrVersionExists, r.URI(meta.Name, meta.Version)+modelFile, got, meta.SHA256))
		}
	}
	metaKey := r.key(meta.Name, meta.Version, metadataFile)
	if err := r.create(ctx, metaKey, metaJSON); err != nil {
		if !isPreconditionFailed(err) {
			return fail(fmt.Errorf("write %s: %w", metaKey, err))
		}
		// A concurrent Put of the same version finished first.
		stored, err := r.metadata(ctx, meta.Name, meta.Version)
		if err != nil {
			return fail(err)
		}
		return r.existing(stored, meta)
	}
	return meta, nil
}

// existing resolves a Put of a version that already exists.
func (r *Registry) existing(stored, meta Metadata) (Metadata, error) {
	if stored.SHA256 != meta.SHA256 {
		return Metadata{}, fmt.Errorf("put model %s/%s: %w: stored model has sha256 %s, this one %s",
			meta.Name, meta.Version, ErrVersionExists, stored.SHA256, meta.SHA256)
	}
	return stored, nil
}

// Get returns a version's metadata and model, checking the model against
// the checksum and size in the metadata (ErrChecksum).
func (r *Registry) Get(ctx context.Context, name, version string) (Metadata, []byte, error) {
	fail := func(err error) (Metadata, []byte, error) {
		return Metadata{}, nil, fmt.Errorf("get model %s/%s: %w", name, version, err)
	}
	if err := validate(name, version); err != nil {
		return fail(err)
	}
	meta, err := r.metadata(ctx, name, version)
	if err != nil {
		return fail(err)
	}
	key := r.key(name, version, modelFile)
	model, _, err := r.read(ctx, key)
	if errors.Is(err, errMissing) {
		return fail(fmt.Errorf("%w: %s is missing though its metadata exists", ErrNotFound, r.URI(name, version)+modelFile))
	}
	if err != nil {
		return fail(fmt.Errorf("read %s: %w", key, err))
	}
	if got := sha256Hex(model); got != meta.SHA256 || int64(len(model)) != meta.SizeBytes {
		return fail(fmt.Errorf("%w: %s has sha256 %s (%d bytes), its metadata says %s (%d bytes)",
			ErrChecksum, r.URI(name, version)+modelFile, got, len(model), meta.SHA256, meta.SizeBytes))
	}
	return meta, model, nil
}

// GetMetadata returns a version's metadata.
func (r *Registry) GetMetadata(ctx context.Context, name, version string) (Metadata, error) {
	if err := validate(name, version); err != nil {
		return Metadata{}, fmt.Errorf("get metadata %s/%s: %w", name, version, err)
	}
	meta, err := r.metadata(ctx, name, version)
	if err != nil {
		return Metadata{}, fmt.Errorf("get metadata %s/%s: %w", name, version, err)
	}
	return meta, nil
}

func (r *Registry) metadata(ctx context.Context, name, version string) (Metadata, error) {
	key := r.key(name, version, metadataFile)
	data, _, err := r.read(ctx, key)
	if errors.Is(err, errMissing) {
		return Metadata{}, fmt.Errorf("%w: %s", ErrNotFound, r.URI(name, version))
	}
	if err != nil {
		return Metadata{}, fmt.Errorf("read %s: %w", key, err)
	}
	var meta Metadata
	if err := json.Unmarshal(data, &meta); err != nil {
		return Metadata{}, fmt.Errorf("decode %s: %w", key, err)
	}
	if meta.Name != name || meta.Version != version {
		return Metadata{}, fmt.Errorf("%s describes %s/%s", key, meta.Name, meta.Version)
	}
	return meta, nil
}

// Versions lists a model's complete versions (those with metadata), in
// natural order: digit runs compare as numbers, so v2 < v10, and
// fixed-width timestamps sort in time order. A model without versions has
// an empty list.
func (r *Registry) Versions(ctx context.Context, name string) ([]string, error) {
	if err := validName("model name", name); err != nil {
		return nil, fmt.Errorf("list versions of %s: %w", name, err)
	}
	var versions []string
	for o := range r.client.ListObjects(ctx, r.bucket, minio.ListObjectsOptions{Prefix: name + "/", Recursive: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("list versions of %s: %w", name, o.Err)
		}
		if _, v, ok := splitMetadataKey(o.Key); ok {
			versions = append(versions, v)
		}
	}
	slices.SortFunc(versions, naturalCompare)
	return versions, nil
}

// Models lists the models having at least one complete version, sorted.
func (r *Registry) Models(ctx context.Context) ([]string, error) {
	var names []string
	for o := range r.client.ListObjects(ctx, r.bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("list models in %s: %w", r.bucket, o.Err)
		}
		if n, _, ok := splitMetadataKey(o.Key); ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// splitMetadataKey recognises <name>/<version>/metadata.json.
func splitMetadataKey(key string) (name, version string, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 3 || parts[2] != metadataFile {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// Champion returns the model's champion, or ErrNoChampion.
func (r *Registry) Champion(ctx context.Context, name string) (Champion, error) {
	if err := validName("model name", name); err != nil {
		return Champion{}, fmt.Errorf("get champion of %s: %w", name, err)
	}
	c, _, err := r.champion(ctx, name)
	if err != nil {
		return Champion{}, fmt.Errorf("get champion of %s: %w", name, err)
	}
	return c, nil
}

// champion reads champion.json and its ETag.
func (r *Registry) champion(ctx context.Context, name string) (Champion, string, error) {
	key := name + "/" + championFile
	data, etag, err := r.read(ctx, key)
	if errors.Is(err, errMissing) {
		return Champion{}, "", ErrNoChampion
	}
	if err != nil {
		return Champion{}, "", fmt.Errorf("read %s: %w", key, err)
	}
	var c Champion
	if err := json.Unmarshal(data, &c); err != nil {
		return Champion{}, "", fmt.Errorf("decode %s: %w", key, err)
	}
	return c, etag, nil
}

// Promote makes version the champion of name if the current champion is
// expected ("" for none), by compare-and-swap on champion.json. It returns
// the champion and whether this call changed it:
//
//   - version is already the champion: (current, false, nil), so retries
//     are safe;
//   - the champion is not expected, or changes during the call:
//     ErrConflict, saying which it is;
//   - version does not exist: ErrNotFound.
//
// The change is appended to the history (MaxHistory kept) with Version
// and Previous set, and PromotedAt set to now when zero. A rollback is a
// Promote of an older version.
func (r *Registry) Promote(ctx context.Context, name, version, expected string, change ChampionChange) (Champion, bool, error) {
	fail := func(err error) (Champion, bool, error) {
		return Champion{}, false, fmt.Errorf("promote %s/%s: %w", name, version, err)
	}
	if err := validate(name, version); err != nil {
		return fail(err)
	}
	if expected != "" {
		if err := validName("expected version", expected); err != nil {
			return fail(err)
		}
	}
	if _, err := r.metadata(ctx, name, version); err != nil {
		return fail(err)
	}
	cur, etag, err := r.champion(ctx, name)
	if err != nil && !errors.Is(err, ErrNoChampion) {
		return fail(err)
	}
	if cur.Version == version {
		return cur, false, nil
	}
	if cur.Version != expected {
		return fail(fmt.Errorf("%w: the champion is %s, the caller expected %s", ErrConflict, describe(cur.Version), describe(expected)))
	}

	change.Version = version
	change.Previous = cur.Version
	if change.PromotedAt.IsZero() {
		change.PromotedAt = r.now().UTC()
	}
	history := append(slices.Clone(cur.History), change)
	if len(history) > MaxHistory {
		history = history[len(history)-MaxHistory:]
	}
	next := Champion{
		Name:       name,
		Version:    version,
		PromotedAt: change.PromotedAt,
		Reason:     change.Reason,
		WorkflowID: change.WorkflowID,
		History:    history,
	}
	data, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return fail(fmt.Errorf("encode champion: %w", err))
	}
	key := name + "/" + championFile
	if etag == "" {
		err = r.create(ctx, key, data)
	} else {
		err = r.replace(ctx, key, data, etag)
	}
	if err == nil {
		return next, true, nil
	}
	if !isPreconditionFailed(err) {
		return fail(fmt.Errorf("write %s: %w", key, err))
	}
	// champion.json changed since it was read. If it now names version, a
	// concurrent promotion to the same version won (or this call's own
	// write went through and its answer was lost), which is success.
	now, _, rerr := r.champion(ctx, name)
	if rerr != nil && !errors.Is(rerr, ErrNoChampion) {
		return fail(fmt.Errorf("%w: the champion changed while promoting, and reading it again failed: %v", ErrConflict, rerr))
	}
	if now.Version == version {
		return now, false, nil
	}
	return fail(fmt.Errorf("%w: the champion changed to %s while promoting (the caller expected %s)", ErrConflict, describe(now.Version), describe(expected)))
}

func describe(version string) string {
	if version == "" {
		return "none"
	}
	return fmt.Sprintf("%q", version)
}

func (r *Registry) key(name, version, file string) string {
	return name + "/" + version + "/" + file
}

// errMissing: the object does not exist.
var errMissing = errors.New("object does not exist")

// read returns an object and its ETag, both from the same response.
func (r *Registry) read(ctx context.Context, key string) ([]byte, string, error) {
	obj, err := r.client.GetObject(ctx, r.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, "", err
	}
	defer obj.Close()
	// Read first: the first read is one GET, whose response Stat then
	// describes. Stat first would be a HEAD and a later GET, which could
	// see two different versions of the object.
	data, err := io.ReadAll(obj)
	if err != nil {
		if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
			return nil, "", errMissing
		}
		return nil, "", err
	}
	info, err := obj.Stat()
	if err != nil {
		return nil, "", err
	}
	return data, info.ETag, nil
}

// create writes an object that must not exist yet (If-None-Match: *).
func (r *Registry) create(ctx context.Context, key string, data []byte) error {
	opts := minio.PutObjectOptions{ContentType: contentType}
	opts.SetMatchETagExcept("*")
	_, err := r.client.PutObject(ctx, r.bucket, key, bytes.NewReader(data), int64(len(data)), opts)
	return err
}

// replace overwrites an object whose ETag is still etag (If-Match).
func (r *Registry) replace(ctx context.Context, key string, data []byte, etag string) error {
	opts := minio.PutObjectOptions{ContentType: contentType}
	opts.SetMatchETag(etag)
	_, err := r.client.PutObject(ctx, r.bucket, key, bytes.NewReader(data), int64(len(data)), opts)
	return err
}

func isPreconditionFailed(err error) bool {
	e := minio.ToErrorResponse(err)
	return e.StatusCode == 412 || e.Code == minio.PreconditionFailed
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func validate(name, version string) error {
	if err := validName("model name", name); err != nil {
		return err
	}
	if err := validName("version", version); err != nil {
		return err
	}
	if version == championFile {
		return fmt.Errorf("version may not be %q", championFile)
	}
	return nil
}

// validName accepts 1 to 128 of [A-Za-z0-9._-], not starting with '.':
// names that are one path segment in a key and in a directory-backed store.
func validName(what, s string) error {
	if s == "" || len(s) > 128 || s[0] == '.' {
		return fmt.Errorf("invalid %s %q: want 1 to 128 of A-Z a-z 0-9 . _ - not starting with '.'", what, s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("invalid %s %q: character %q not allowed", what, s, c)
		}
	}
	return nil
}

// naturalCompare orders strings with runs of digits compared by value.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Compare(len(na), len(nb)); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			if c := cmp.Compare(da, db); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if c := cmp.Compare(a[0], b[0]); c != 0 {
			return c
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digits(s string) int {
	n := 0
	for n < len(s) && '0' <= s[n] && s[n] <= '9' {
		n++
	}
	return n
}
