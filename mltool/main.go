// Command mltool trains, scores and checks the system's models offline, on
// files: CSV in the city's format (.csv, .csv.gz) or Parquet snapshots of the
// project's schema (.parquet). It goes the system's one way from a trip to
// a model input (rides, training, ml/features), so what it reports is what
// the control plane would see.
//
//	go run ./mltool train    --model fare --data trips.csv [--out model.json]
//	go run ./mltool predict  --model model.json --data trips.csv [--out preds.csv]
//	go run ./mltool evaluate --model model.json --data holdout.parquet
//	go run ./mltool drift    --reference old.csv --current new.csv [--fail-over 0.25]
//
// Exit status: 0 on success, 1 on an error, 2 on a usage error, 3 when
// drift --fail-over is reached.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/taxi-mlops/taxi-mlops/geo"
	"github.com/taxi-mlops/taxi-mlops/system"
)

const usage = `usage: mltool <command> [flags]

commands:
  train    --model fare|big_tipper --data FILE   fit a model, write model.json and model.meta.json
  predict  --model model.json --data FILE        one prediction per trip, as CSV
  evaluate --model model.json --data FILE        the model's metrics on labelled trips, as JSON
  drift    --reference FILE --current FILE       per-feature drift of current against reference, as JSON

FILE is CSV in the city's format (.csv, .csv.gz) or a Parquet snapshot (.parquet).
run "mltool <command> -h" for the flags of a command`

// Exit codes.
const (
	exitError   = 1
	exitUsage   = 2
	exitDrifted = 3
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) && !isReported(err) {
		fmt.Fprintln(os.Stderr, "mltool:", err)
	}
	os.Exit(exitCode(err))
}

// run executes one command; args exclude the program name.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	e := &env{stdout: stdout, stderr: stderr}
	return e.run(ctx, args)
}

func (e *env) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(e.stderr, usage)
		return &codeError{code: exitUsage, err: errors.New("no command given")}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "train":
		return e.train(ctx, rest)
	case "predict":
		return e.predict(ctx, rest)
	case "evaluate":
		return e.evaluate(ctx, rest)
	case "drift":
		return e.drift(ctx, rest)
	case "help", "-h", "-help", "--help":
		fmt.Fprintln(e.stdout, usage)
		return nil
	}
	fmt.Fprintln(e.stderr, usage)
	return &codeError{code: exitUsage, err: fmt.Errorf("unknown command %q", cmd)}
}

// codeError carries the exit status of an error. reported errors were
// already printed (by the flag package) and are not printed again.
type codeError struct {
	code     int
	err      error
	reported bool
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &codeError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// exitCode is the process status for the error run returned.
func exitCode(err error) int {
	var ce *codeError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ce):
		return ce.code
	}
	return exitError
}

func isReported(err error) bool {
	var ce *codeError
	return errors.As(err, &ce) && ce.reported
}

// env is what the commands share: the output streams and, once loaded, the
// city's clock and community areas (loaded once per process; tests hand a
// loaded env to several runs).
type env struct {
	stdout, stderr io.Writer
	loc            *time.Location
	areas          *geo.Areas
}

// load reads the time zone and the boundaries, the two inputs of the shared
// transform besides the trips.
func (e *env) load() error {
	if e.loc != nil {
		return nil
	}
	loc, err := time.LoadLocation(system.City)
	if err != nil {
		return fmt.Errorf("load time zone %s: %w", system.City, err)
	}
	areas, err := geo.LoadCommunityAreas()
	if err != nil {
		return err
	}
	e.loc, e.areas = loc, areas
	return nil
}

// newFlags returns a flag set for a command that reports to stderr.
func (e *env) newFlags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("mltool "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: mltool %s %s\n\nflags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses a command's flags and checks that the required ones are set.
func parse(fs *flag.FlagSet, args []string, required ...string) error {
	cmd := strings.TrimPrefix(fs.Name(), "mltool ")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &codeError{code: exitUsage, err: fmt.Errorf("%s: %w", cmd, err), reported: true}
	}
	if fs.NArg() > 0 {
		return usageErr("%s: unexpected arguments %q (every input is a flag; see mltool %s -h)", cmd, fs.Args(), cmd)
	}
	var missing []string
	for _, name := range required {
		if fs.Lookup(name).Value.String() == "" {
			missing = append(missing, "--"+name)
		}
	}
	if len(missing) > 0 {
		noun := "flag"
		if len(missing) > 1 {
			noun = "flags"
		}
		return usageErr("%s: missing required %s %s (see mltool %s -h)", cmd, noun, strings.Join(missing, ", "), cmd)
	}
	return nil
}

// isSet says whether a flag was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// num is a float that encodes NaN and infinities as JSON null: a statistic
// that is undefined for the data (AUC of one class, a p-value of an empty
// sample) must not make the whole report fail.
type num float64

func (n num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(f)
}

func nums(m map[string]float64) map[string]num {
	out := make(map[string]num, len(m))
	for k, v := range m {
		out[k] = num(v)
	}
	return out
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// formatFloat writes the shortest text that reads back as the same value.
func formatFloat(v float64, bits int) string {
	return strconv.FormatFloat(v, 'g', -1, bits)
}

// modelNames is for messages: "fare|big_tipper".
func modelNames(names []string) string { return strings.Join(names, "|") }
