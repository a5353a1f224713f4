// Package config binds the settings of taxi-mlops' processes to command-line
// flags with environment-variable fallbacks.
//
// Every flag --foo-bar can also be set with TAXI_FOO_BAR; a flag given on the
// command line wins over the environment, which wins over the default. The
// defaults point at the embedded development stack, so the same binaries
// reach a real Kafka, MinIO and Temporal by changing addresses only.
// Only main packages construct a Binder: it is handed the environment lookup
// so no other package reads the environment.
package config

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix prefixes every environment variable of the system.
const EnvPrefix = "TAXI_"

// EnvName is the environment variable that sets a flag.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Binder registers flags whose defaults come from the environment.
type Binder struct {
	fs     *flag.FlagSet
	lookup func(string) (string, bool)
	errs   []error
}

// NewBinder binds flags of fs; lookup is os.LookupEnv in a main.
func NewBinder(fs *flag.FlagSet, lookup func(string) (string, bool)) *Binder {
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	return &Binder{fs: fs, lookup: lookup}
}

func (b *Binder) env(name string) (string, bool) { return b.lookup(EnvName(name)) }

func (b *Binder) usage(name, usage string) string {
	return fmt.Sprintf("%s (env %s)", usage, EnvName(name))
}

// String binds a string flag.
func (b *Binder) String(p *string, name, def, usage string) {
	if v, ok := b.env(name); ok {
		def = v
	}
	b.fs.StringVar(p, name, def, b.usage(name, usage))
}

// Int binds an int flag.
func (b *Binder) Int(p *int, name string, def int, usage string) {
	if v, ok := b.env(name); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.errs = append(b.errs, fmt.Errorf("%s=%q: not an integer", EnvName(name), v))
		} else {
			def = n
		}
	}
	b.fs.IntVar(p, name, def, b.usage(name, usage))
}

// Float binds a float flag.
func (b *Binder) Float(p *float64, name string, def float64, usage string) {
	if v, ok := b.env(name); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			b.errs = append(b.errs, fmt.Errorf("%s=%q: not a number", EnvName(name), v))
		} else {
			def = f
		}
	}
	b.fs.Float64Var(p, name, def, b.usage(name, usage))
}

// Bool binds a bool flag.
func (b *Binder) Bool(p *bool, name string, def bool, usage string) {
	if v, ok := b.env(name); ok {
		f, err := strconv.ParseBool(v)
		if err != nil {
			b.errs = append(b.errs, fmt.Errorf("%s=%q: not true or false", EnvName(name), v))
		} else {
			def = f
		}
	}
	b.fs.BoolVar(p, name, def, b.usage(name, usage))
}

// Duration binds a duration flag (Go syntax: 90s, 5m, 1h30m).
func (b *Binder) Duration(p *time.Duration, name string, def time.Duration, usage string) {
	if v, ok := b.env(name); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.errs = append(b.errs, fmt.Errorf("%s=%q: not a duration like 90s or 5m", EnvName(name), v))
		} else {
			def = d
		}
	}
	b.fs.DurationVar(p, name, def, b.usage(name, usage))
}

// List binds a comma-separated list flag.
func (b *Binder) List(p *[]string, name string, def []string, usage string) {
	s := strings.Join(def, ",")
	if v, ok := b.env(name); ok {
		s = v
	}
	*p = SplitList(s)
	b.fs.Func(name, b.usage(name, usage)+" (comma-separated, default "+strconv.Quote(s)+")", func(v string) error {
		*p = SplitList(v)
		return nil
	})
}

// Func binds a flag parsed by set, which also receives the environment's
// value when there is one.
func (b *Binder) Func(name, usage string, set func(string) error) {
	if v, ok := b.env(name); ok {
		if err := set(v); err != nil {
			b.errs = append(b.errs, fmt.Errorf("%s=%q: %w", EnvName(name), v, err))
		}
	}
	b.fs.Func(name, b.usage(name, usage), set)
}

// SplitList splits a comma-separated list, dropping blanks.
func SplitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// Parse parses args and reports environment values that could not be read.
func (b *Binder) Parse(args []string) error {
	if len(b.errs) > 0 {
		return fmt.Errorf("environment: %w", b.errs[0])
	}
	return b.fs.Parse(args)
}

// Flags lists the flag names bound so far, sorted.
func (b *Binder) Flags() []string {
	var names []string
	b.fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	return names
}

// ReadSecret returns value, or the trimmed content of file when file is set.
// Secrets can then come from a mounted file instead of the environment.
func ReadSecret(value, file string) (string, error) {
	if file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read secret file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
