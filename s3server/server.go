// Package s3server is an S3-protocol server that keeps its objects in a
// directory, so that taxi-mlops runs without Docker: minio-go talks to it as
// it talks to MinIO, and objects survive a restart.
//
// It is gofakes3 over its afero multi-bucket backend (objects as files under
// <Dir>/buckets/<bucket>/<key>, their MD5 and headers as JSON under
// <Dir>/metadata), with, in front of it:
//
//   - SigV4 authentication against one access key (header and presigned
//     URLs, including streaming chunk signatures); SigV2 and anonymous
//     requests are refused.
//   - Decoding of aws-chunked bodies, which minio-go sends over plain HTTP
//     for every object and part upload.
//   - Conditional writes as S3 and MinIO have them: PUT (and multipart
//     completion, copy, delete) with If-None-Match: * or If-Match: <etag>
//     fail with 412 PreconditionFailed. Every write of a key takes a lock
//     on that key, so the check and the write are one step.
//   - Atomic, synced object writes, correct listing with delimiters and
//     pagination, and clear errors for keys a directory cannot hold.
//
// Limits: one process per directory, and files under it are not to be
// edited by hand; no versioning, tagging, policies, ACLs or browser POST
// uploads (subresources are refused with 501 NotImplemented); multipart
// uploads in progress are held in memory and lost on restart; a key is at
// most 222 bytes and may not have empty, "." or ".." path segments, a key
// cannot be both an object and a prefix of others ("a" and "a/b"), and on a
// case-insensitive file system keys differing only in case are one object;
// overwriting an object keeps user metadata of the old one that the new
// PUT does not set.
package s3server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/johannesboyne/gofakes3"
)

// Config configures a Server.
type Config struct {
	// Dir holds the objects; it is created if missing.
	Dir string
	// AccessKey and SecretKey are the only credentials accepted.
	AccessKey, SecretKey string
	// Buckets are created at start if they do not exist.
	Buckets []string
	// Logger receives request and error logs; nil discards them.
	Logger *slog.Logger
}

// Server serves the S3 protocol over a directory.
type Server struct {
	log       *slog.Logger
	accessKey string
	secretKey string
	backend   *backend
	locks     keyLocks
	requestID atomic.Uint64
	handler   http.Handler
	now       func() time.Time
}

// New opens (creating if needed) the directory and the configured buckets.
func New(cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("s3server: Dir is required")
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, errors.New("s3server: AccessKey and SecretKey are required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("s3server: data directory %q: %w", cfg.Dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("s3server: create data directory: %w", err)
	}
	be, err := newBackend(dir)
	if err != nil {
		return nil, fmt.Errorf("s3server: %w", err)
	}
	for _, b := range cfg.Buckets {
		if err := gofakes3.ValidateBucketName(b); err != nil {
			return nil, fmt.Errorf("s3server: bucket %q: %w", b, err)
		}
		exists, err := be.BucketExists(b)
		if err != nil {
			return nil, fmt.Errorf("s3server: bucket %q: %w", b, err)
		}
		if !exists {
			if err := be.CreateBucket(b); err != nil {
				return nil, fmt.Errorf("s3server: create bucket %q: %w", b, err)
			}
			log.Info("created bucket", "bucket", b)
		}
	}
	s := &Server{
		log:       log,
		accessKey: cfg.AccessKey,
		secretKey: cfg.SecretKey,
		backend:   be,
		now:       time.Now,
	}
	fake := gofakes3.New(be,
		// Request time is checked with the signature, before the headers
		// carrying it are removed.
		gofakes3.WithTimeSkewLimit(0),
		gofakes3.WithIntegrityCheck(true),
		gofakes3.WithLogger(fakeLog{log}),
	)
	s.handler = s.routes(fake.Server())
	return s, nil
}

// Handler returns the HTTP handler serving the S3 protocol, and, without
// authentication, MinIO's liveness and readiness probes
// (/minio/health/live, /minio/health/ready).
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves on ln until ctx is cancelled, then shuts down, letting
// requests in flight finish for a few seconds. It returns nil after a
// shutdown caused by ctx.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.log.Info("serving S3", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("s3server: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := hs.Shutdown(shutdownCtx)
	if err != nil {
		hs.Close()
		err = fmt.Errorf("s3server: shut down %s: %w", ln.Addr(), err)
	}
	<-errc
	return err
}

// ListenAndServe listens on addr (e.g. "127.0.0.1:9000") and serves as
// Serve does.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("s3server: listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// fakeLog hands gofakes3's logs to slog; its info lines are per-request
// detail, so they go to debug.
type fakeLog struct{ log *slog.Logger }

func (l fakeLog) Print(level gofakes3.LogLevel, v ...any) {
	msg := fmt.Sprint(v...)
	switch level {
	case gofakes3.LogErr:
		l.log.Error("gofakes3", "detail", msg)
	case gofakes3.LogWarn:
		l.log.Warn("gofakes3", "detail", msg)
	default:
		l.log.Debug("gofakes3", "detail", msg)
	}
}
