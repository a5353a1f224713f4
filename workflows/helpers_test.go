package workflows

import (
	"log/slog"

	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
)

// newEnv returns a test environment that logs nothing unless a test fails
// loudly on its own.
func newEnv() *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	return s.NewTestWorkflowEnvironment()
}
