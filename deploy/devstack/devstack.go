// Package devstack starts the embedded infrastructure of the development
// stack on one machine without Docker: the real Temporal dev server (from
// the Temporal CLI, installed on first use), an in-process Kafka-protocol
// broker (franz-go's kfake) and an in-process S3-protocol server backed by a
// directory. The same pieces serve the end-to-end tests, on free ports.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	"github.com/taxi-mlops/taxi-mlops/s3server"
	"github.com/taxi-mlops/taxi-mlops/workflows"
)

// TemporalCLIModule is what `go install` builds for the dev server; later
// releases cannot be installed with go install.
const TemporalCLIModule = "github.com/temporalio/cli/cmd/temporal@v1.5.1"

// FindTemporal returns the path of the temporal CLI: $TEMPORAL_CLI, then
// PATH, then the Go bin directory. It returns "" when there is none.
func FindTemporal(env func(string) (string, bool)) string {
	if p, ok := env("TEMPORAL_CLI"); ok && p != "" {
		return p
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p
	}
	for _, dir := range goBinDirs(env) {
		p := filepath.Join(dir, "temporal")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

func goBinDirs(env func(string) (string, bool)) []string {
	var dirs []string
	if v, ok := env("GOBIN"); ok && v != "" {
		dirs = append(dirs, v)
	}
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) > 0 && strings.TrimSpace(lines[0]) != "" {
			dirs = append(dirs, strings.TrimSpace(lines[0]))
		}
		if len(lines) > 1 {
			for _, p := range filepath.SplitList(strings.TrimSpace(lines[1])) {
				dirs = append(dirs, filepath.Join(p, "bin"))
			}
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	return dirs
}

// EnsureTemporal returns the temporal CLI, installing it with `go install`
// when it is missing (a few minutes, once).
func EnsureTemporal(ctx context.Context, env func(string) (string, bool), log *slog.Logger, out io.Writer) (string, error) {
	if p := FindTemporal(env); p != "" {
		return p, nil
	}
	log.Info("installing the Temporal CLI (first run only, a few minutes)", "module", TemporalCLIModule)
	cmd := exec.CommandContext(ctx, "go", "install", TemporalCLIModule)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go install %s: %w", TemporalCLIModule, err)
	}
	if p := FindTemporal(env); p != "" {
		return p, nil
	}
	return "", errors.New("temporal CLI installed but not found: add $(go env GOPATH)/bin to PATH or set TEMPORAL_CLI")
}

// TemporalOptions configure the dev server.
type TemporalOptions struct {
	CLIPath  string
	HostPort string // "" picks a free port on 127.0.0.1
	// UIPort of the Web UI; "" disables the UI.
	UIPort    string
	DBFile    string // "" keeps state in memory
	Namespace string
	Log       *slog.Logger
	Output    io.Writer // server output; nil discards it
}

// StartTemporal starts `temporal server start-dev` with the project's
// search attributes and waits until it serves.
func StartTemporal(ctx context.Context, o TemporalOptions) (*testsuite.DevServer, error) {
	if o.HostPort == "" {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		o.HostPort = "127.0.0.1:" + strconv.Itoa(p)
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	out := o.Output
	if out == nil {
		out = io.Discard
	}
	var extra []string
	for _, sa := range workflows.SearchAttributes() {
		extra = append(extra, "--search-attribute", sa[0]+"="+sa[1])
	}
	if o.DBFile != "" {
		if err := os.MkdirAll(filepath.Dir(o.DBFile), 0o755); err != nil {
			return nil, fmt.Errorf("temporal state directory: %w", err)
		}
	}
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: o.CLIPath,
		ClientOptions: &client.Options{
			HostPort:  o.HostPort,
			Namespace: o.Namespace,
			Logger:    tlog.NewStructuredLogger(o.Log.With("component", "temporal-devserver")),
		},
		DBFilename: o.DBFile,
		EnableUI:   o.UIPort != "",
		UIPort:     o.UIPort,
		LogLevel:   "warn",
		ExtraArgs:  extra,
		Stdout:     out,
		Stderr:     out,
	})
	if err != nil {
		return nil, fmt.Errorf("start temporal dev server on %s: %w", o.HostPort, err)
	}
	return srv, nil
}

// StartKafka starts an in-process Kafka-protocol broker on addr's port
// (0 = a free one) and creates the catalog's topics. dataDir keeps the
// broker's log across restarts ("" = in memory).
func StartKafka(ctx context.Context, port int, dataDir string, log *slog.Logger) (*kfake.Cluster, kafka.Config, error) {
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(port), kfake.ClusterID("taxi-mlops-dev")}
	if dataDir != "" {
		opts = append(opts, kfake.DataDir(dataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, kafka.Config{}, fmt.Errorf("start embedded kafka on port %d: %w", port, err)
	}
	cfg := kafka.Config{Brokers: c.ListenAddrs(), ReplicationFactor: 1}
	cl, err := kafka.NewClient(cfg, "taxi-mlops-devstack-admin", kafka.Deps{Logger: log})
	if err != nil {
		c.Close()
		return nil, cfg, err
	}
	defer cl.Close()
	if err := kafka.EnsureTopics(ctx, cl, cfg, contracts.Catalog()); err != nil {
		c.Close()
		return nil, cfg, err
	}
	return c, cfg, nil
}

// S3 is a running embedded S3-protocol server.
type S3 struct {
	Addr   string
	cancel context.CancelFunc
	done   chan error
}

// StartS3 serves an S3-protocol endpoint on addr (port 0 = free) backed by
// dir, with the given credentials and buckets.
func StartS3(addr, dir, accessKey, secretKey string, buckets []string, log *slog.Logger) (*S3, error) {
	srv, err := s3server.New(s3server.Config{Dir: dir, AccessKey: accessKey, SecretKey: secretKey, Buckets: buckets, Logger: log})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("start embedded s3 on %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &S3{Addr: ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- srv.Serve(ctx, ln) }()
	return s, nil
}

// Close stops the server.
func (s *S3) Close() error {
	s.cancel()
	select {
	case err := <-s.done:
		return err
	case <-time.After(10 * time.Second):
		return errors.New("embedded s3 did not stop within 10s")
	}
}

// FreePort returns a TCP port free on 127.0.0.1 at the time of asking.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
