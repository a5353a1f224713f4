package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/taxi-mlops/taxi-mlops/ml/features"
	"github.com/taxi-mlops/taxi-mlops/ml/xgb"
	"github.com/taxi-mlops/taxi-mlops/registry"
	"github.com/taxi-mlops/taxi-mlops/training"
)

// metaPathFor is where a model's metadata lives by default: model.json →
// model.meta.json.
func metaPathFor(modelPath string) string {
	return strings.TrimSuffix(modelPath, ".json") + ".meta.json"
}

// loaded is a model file with its metadata, checked to belong together.
type loaded struct {
	path, metaPath string
	model          training.Model
	eval           *xgb.Model
	spec           *features.Spec
	meta           registry.Metadata
}

// loadModel reads a model and its metadata (metaPath "" = the default
// beside the model) and checks that they belong together.
func loadModel(modelPath, metaPath string) (*loaded, error) {
	defaulted := metaPath == ""
	if defaulted {
		metaPath = metaPathFor(modelPath)
	}
	b, err := readFile("model", modelPath)
	if err != nil {
		return nil, err
	}
	eval, err := xgb.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", modelPath, err)
	}
	mb, err := os.ReadFile(metaPath)
	if errors.Is(err, fs.ErrNotExist) {
		where := "given with --meta"
		if defaulted {
			where = "beside the model; --meta FILE names another"
		}
		return nil, fmt.Errorf("no meta file for model %s: looked for %s (%s). "+
			"It holds the feature spec the model was trained with; mltool train --out %s writes both",
			modelPath, metaPath, where, modelPath)
	}
	if err != nil {
		return nil, fmt.Errorf("read meta file %s: %w", metaPath, unwrapPath(err))
	}
	var meta registry.Metadata
	if err := json.Unmarshal(mb, &meta); err != nil {
		return nil, fmt.Errorf("meta file %s: %w", metaPath, err)
	}
	m, err := training.Lookup(meta.Name)
	if err != nil {
		return nil, fmt.Errorf("meta file %s: %w", metaPath, err)
	}
	spec := meta.Features
	if err := spec.Init(); err != nil {
		return nil, fmt.Errorf("meta file %s: %w", metaPath, err)
	}
	if err := match(eval, b, &spec, &meta); err != nil {
		return nil, fmt.Errorf("model %s does not match meta file %s: %w; "+
			"use the meta file written with the model (mltool train --out %s)", modelPath, metaPath, err, modelPath)
	}
	return &loaded{path: modelPath, metaPath: metaPath, model: m, eval: eval, spec: &spec, meta: meta}, nil
}

// match checks that a model file is the one its metadata describes.
func match(eval *xgb.Model, raw []byte, spec *features.Spec, meta *registry.Metadata) error {
	if eval.NumFeatures() != spec.Len() {
		return fmt.Errorf("the model reads %d features, the meta file's %s spec has %d (%s)",
			eval.NumFeatures(), meta.Name, spec.Len(), strings.Join(spec.Names, ", "))
	}
	if names := eval.FeatureNames(); names != nil && !slices.Equal(names, spec.Names) {
		return fmt.Errorf("the model's features are %v, the meta file's %v", names, spec.Names)
	}
	if meta.Objective != "" && eval.Objective() != meta.Objective {
		return fmt.Errorf("the model's objective is %s, the meta file's %s", eval.Objective(), meta.Objective)
	}
	if meta.SHA256 != "" {
		if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != meta.SHA256 {
			return fmt.Errorf("the model's SHA-256 is %s, the meta file records %s", hex.EncodeToString(sum[:]), meta.SHA256)
		}
	}
	return nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// checkOut fails early, before any work, when an output file's directory
// is missing.
func checkOut(flagName, path string) error {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("--%s %s: directory %s: %w", flagName, path, dir, unwrapPath(err))
	}
	if !fi.IsDir() {
		return fmt.Errorf("--%s %s: %s is not a directory", flagName, path, dir)
	}
	return nil
}

// writeFile replaces path with data atomically, so a reader (or a crash)
// never sees half a model.
func writeFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, unwrapPath(err))
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, unwrapPath(err))
	}
	return nil
}
