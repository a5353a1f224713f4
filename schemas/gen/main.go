// Command gen writes the JSON Schema of every message type of the catalog
// into a directory (default json, for go generate in ./schemas):
//
//	go generate ./schemas
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/schemas"
)

func main() {
	dir := flag.String("dir", "json", "directory to write the schemas into")
	flag.Parse()
	if err := run(*dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(dir string) error {
	for _, name := range contracts.MessageNames() {
		t, _ := contracts.MessageType(name)
		b, err := schemas.Generate(t)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, schemas.FileName(name)), b, 0o644); err != nil {
			return fmt.Errorf("write schema of %s: %w", name, err)
		}
	}
	return nil
}
