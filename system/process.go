package system

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/taxi-mlops/taxi-mlops/config"
)

// Process is what every main starts from: its parsed configuration, the
// common flags, the shared dependencies and the Prometheus registry.
type Process struct {
	Config   Config
	Common   Common
	Setup    bool
	Deps     Deps
	Registry *prometheus.Registry
}

// ProcessOptions describe a main's defaults.
type ProcessOptions struct {
	Name      string
	OpsAddr   string // default of --ops-addr ("" = off)
	LogFormat string // default of --log-format
	// Setup is the default of --setup; SetupUsage says what it does.
	Setup      bool
	SetupUsage string
	// Bind registers the main's own flags.
	Bind func(b *config.Binder)
	// Defaults override flag defaults (by flag name) unless the flag's
	// environment variable is set.
	Defaults map[string]string
	// Env is os.LookupEnv in a main.
	Env    func(string) (string, bool)
	Stderr io.Writer
}

// NewProcess parses args and builds the logger and dependencies.
func NewProcess(args []string, o ProcessOptions) (*Process, error) {
	fs := flag.NewFlagSet(o.Name, flag.ContinueOnError)
	b := config.NewBinder(fs, o.Env)
	p := &Process{}
	p.Config.Bind(b)
	p.Common.Bind(b, o.OpsAddr, o.LogFormat)
	if o.SetupUsage != "" {
		b.Bool(&p.Setup, "setup", o.Setup, o.SetupUsage)
	}
	if o.Bind != nil {
		o.Bind(b)
	}
	env := o.Env
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	for name, v := range o.Defaults {
		if _, set := env(config.EnvName(name)); set {
			continue
		}
		if err := fs.Set(name, v); err != nil {
			return nil, fmt.Errorf("default of --%s: %w", name, err)
		}
	}
	if err := b.Parse(args); err != nil {
		return nil, err
	}
	log, err := NewLogger(o.Stderr, p.Common.LogLevel, p.Common.LogFormat)
	if err != nil {
		return nil, err
	}
	if p.Deps, p.Registry, err = NewDeps(log); err != nil {
		return nil, err
	}
	return p, nil
}

// Run runs fns and, when --ops-addr is set, the ops endpoints, until ctx
// ends or one of them fails. ready backs /readyz (nil: ready).
func (p *Process) Run(ctx context.Context, ready func() bool, fns ...func(context.Context) error) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, f := range fns {
		g.Go(func() error { return f(ctx) })
	}
	if p.Common.OpsAddr != "" {
		g.Go(func() error { return ServeOps(ctx, p.Common.OpsAddr, p.Registry, ready, p.Deps.Logger) })
	}
	return g.Wait()
}
