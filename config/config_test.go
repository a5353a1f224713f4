package config_test

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taxi-mlops/taxi-mlops/config"
)

func TestEnvName(t *testing.T) {
	for flagName, want := range map[string]string{
		"kafka-brokers":       "TAXI_KAFKA_BROKERS",
		"s3-endpoint":         "TAXI_S3_ENDPOINT",
		"rate":                "TAXI_RATE",
		"temporal-task-queue": "TAXI_TEMPORAL_TASK_QUEUE",
		"drift_after":         "TAXI_DRIFT_AFTER",
		"Log-Level":           "TAXI_LOG_LEVEL",
	} {
		if got := config.EnvName(flagName); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", flagName, got, want)
		}
	}
}

type settings struct {
	name  string
	port  int
	rate  float64
	loop  bool
	wait  time.Duration
	roles []string
}

func bind(env map[string]string) (*config.Binder, *settings, *flag.FlagSet) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	b := config.NewBinder(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	s := &settings{}
	b.String(&s.name, "name", "default-name", "a name")
	b.Int(&s.port, "port", 9092, "a port")
	b.Float(&s.rate, "rate", 50, "a rate")
	b.Bool(&s.loop, "loop", false, "loop")
	b.Duration(&s.wait, "wait", 15*time.Minute, "a duration")
	b.List(&s.roles, "roles", []string{"features", "inference"}, "roles")
	return b, s, fs
}

func TestPrecedence(t *testing.T) {
	env := map[string]string{
		"TAXI_NAME": "env-name", "TAXI_PORT": "19092", "TAXI_RATE": "200.5", "TAXI_LOOP": "true",
		"TAXI_WAIT": "90s", "TAXI_ROLES": "quality, bridge,,",
	}
	flags := []string{"--name", "flag-name", "--port=29092", "--rate", "0.25", "--loop=false", "--wait", "1h30m", "--roles", "bridge"}
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		want settings
	}{
		{"defaults", nil, nil, settings{"default-name", 9092, 50, false, 15 * time.Minute, []string{"features", "inference"}}},
		{"environment beats default", env, nil, settings{"env-name", 19092, 200.5, true, 90 * time.Second, []string{"quality", "bridge"}}},
		{"flag beats environment", env, flags, settings{"flag-name", 29092, 0.25, false, 90 * time.Minute, []string{"bridge"}}},
		{"flag beats default", nil, flags, settings{"flag-name", 29092, 0.25, false, 90 * time.Minute, []string{"bridge"}}},
		{"a bare bool flag is true", nil, []string{"--loop"}, settings{"default-name", 9092, 50, true, 15 * time.Minute, []string{"features", "inference"}}},
		{"an empty environment value is a value", map[string]string{"TAXI_NAME": "", "TAXI_ROLES": ""}, nil,
			settings{"", 9092, 50, false, 15 * time.Minute, nil}},
		{"other variables are ignored", map[string]string{"NAME": "x", "TAXI_NAME_X": "y", "taxi_name": "z"}, nil,
			settings{"default-name", 9092, 50, false, 15 * time.Minute, []string{"features", "inference"}}},
		{"some from each", map[string]string{"TAXI_PORT": "1", "TAXI_RATE": "2"}, []string{"--rate", "3", "--roles", " a ,b "},
			settings{"default-name", 1, 3, false, 15 * time.Minute, []string{"a", "b"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, s, fs := bind(c.env)
			if err := b.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			if s.name != c.want.name || s.port != c.want.port || s.rate != c.want.rate || s.loop != c.want.loop ||
				s.wait != c.want.wait || !slices.Equal(s.roles, c.want.roles) {
				t.Errorf("got  %+v\nwant %+v", *s, c.want)
			}
			if fs.NArg() != 0 {
				t.Errorf("arguments left: %q", fs.Args())
			}
		})
	}
}

func TestMalformedEnvironment(t *testing.T) {
	for _, c := range []struct {
		variable, value string
		want            string
	}{
		{"TAXI_PORT", "9o92", "not an integer"},
		{"TAXI_PORT", "1.5", "not an integer"},
		{"TAXI_RATE", "fast", "not a number"},
		{"TAXI_LOOP", "yes please", "not true or false"},
		{"TAXI_WAIT", "15", "not a duration"},
		{"TAXI_WAIT", "a while", "not a duration"},
	} {
		t.Run(c.variable+"="+c.value, func(t *testing.T) {
			b, _, _ := bind(map[string]string{c.variable: c.value})
			err := b.Parse(nil)
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			for _, w := range []string{c.variable, c.value, c.want} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	// A malformed value is reported even when a flag overrides it: the
	// environment is wrong and someone should know.
	b, _, _ := bind(map[string]string{"TAXI_PORT": "x"})
	if err := b.Parse([]string{"--port", "1"}); err == nil || !strings.Contains(err.Error(), "TAXI_PORT") {
		t.Errorf("Parse with a flag over a malformed environment value: %v", err)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--port", "x"}, {"--wait", "15"}, {"--no-such-flag"}, {"--rate"}} {
		b, _, _ := bind(nil)
		if err := b.Parse(args); err == nil {
			t.Errorf("Parse(%q) succeeded", args)
		}
	}
	b, _, _ := bind(nil)
	if err := b.Parse([]string{"-h"}); err != flag.ErrHelp {
		t.Errorf("Parse(-h) = %v, want flag.ErrHelp", err)
	}
}

func TestUsageNamesTheVariable(t *testing.T) {
	_, _, fs := bind(nil)
	for _, name := range []string{"name", "port", "rate", "loop", "wait", "roles"} {
		f := fs.Lookup(name)
		if f == nil {
			t.Fatalf("flag %s is not bound", name)
		}
		if want := "(env " + config.EnvName(name) + ")"; !strings.Contains(f.Usage, want) {
			t.Errorf("usage of --%s is %q; want it to say %s", name, f.Usage, want)
		}
	}
	if f := fs.Lookup("roles"); !strings.Contains(f.Usage, `default "features,inference"`) {
		t.Errorf("usage of --roles is %q; want it to show the default", f.Usage)
	}
}

func TestFlags(t *testing.T) {
	b, _, _ := bind(nil)
	want := []string{"loop", "name", "port", "rate", "roles", "wait"}
	if got := b.Flags(); !slices.Equal(got, want) {
		t.Errorf("Flags = %q, want %q", got, want)
	}
}

func TestNilLookupReadsNoEnvironment(t *testing.T) {
	t.Setenv("TAXI_NAME", "from the process environment")
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	b := config.NewBinder(fs, nil)
	var name string
	b.String(&name, "name", "default", "")
	if err := b.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if name != "default" {
		t.Errorf("name = %q: a binder without lookup read the environment", name)
	}
}

func TestSplitList(t *testing.T) {
	for in, want := range map[string][]string{
		"":                     nil,
		" , ,":                 nil,
		"a":                    {"a"},
		"a,b":                  {"a", "b"},
		" features ,  bridge ": {"features", "bridge"},
		"a,,b,":                {"a", "b"},
	} {
		if got := config.SplitList(in); !slices.Equal(got, want) {
			t.Errorf("SplitList(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("  s3cr3t with spaces \n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := config.ReadSecret("from-env", ""); err != nil || got != "from-env" {
		t.Errorf("without a file: %q, %v", got, err)
	}
	if got, err := config.ReadSecret("from-env", file); err != nil || got != "s3cr3t with spaces" {
		t.Errorf("with a file: %q, %v; want the file's trimmed content", got, err)
	}
	if got, err := config.ReadSecret("", file); err != nil || got != "s3cr3t with spaces" {
		t.Errorf("with only a file: %q, %v", got, err)
	}
	missing := filepath.Join(dir, "nope")
	got, err := config.ReadSecret("from-env", missing)
	if err == nil || got != "" {
		t.Fatalf("missing file: %q, %v; want an error and no secret", got, err)
	}
	if !strings.Contains(err.Error(), "read secret file") || !strings.Contains(err.Error(), missing) {
		t.Errorf("error %q does not say which file could not be read", err)
	}
	if _, err := config.ReadSecret("", dir); err == nil {
		t.Error("reading a directory as a secret succeeded")
	}
}
