package linearizability

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// defaultReportTimeout bounds the check WriteReport runs when none ran.
const defaultReportTimeout = time.Minute

// Names of the files WriteReport writes.
const (
	ReportHistoryFile       = "history.txt"
	ReportVisualizationFile = "linearization.html"
)

// WriteReport writes history to dir as ReportHistoryFile, one operation per
// line, and the porcupine visualisation of info (from Check of the same
// history and startRevision) as ReportVisualizationFile. dir is created if
// needed.
func WriteReport(dir string, startRevision int64, history []porcupine.Operation, info porcupine.LinearizationInfo) error {
	return writeReport(dir, startRevision, nil, history, info)
}

func writeReport(dir string, startRevision int64, foreign *foreignRevisions, history []porcupine.Operation, info porcupine.LinearizationInfo) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create report dir: %w", err)
	}
	if err := writeHistoryFile(filepath.Join(dir, ReportHistoryFile), history); err != nil {
		return err
	}
	model := newModel(startRevision, foreign, prepare(startRevision, foreign, history))
	if err := porcupine.VisualizePath(model, info, filepath.Join(dir, ReportVisualizationFile)); err != nil {
		return fmt.Errorf("write visualization: %w", err)
	}
	return nil
}

func writeHistoryFile(path string, history []porcupine.Operation) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create history file: %w", err)
	}
	w := bufio.NewWriter(f)
	err = WriteHistory(w, history)
	if flushErr := w.Flush(); err == nil {
		err = flushErr
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return fmt.Errorf("write history file: %w", err)
	}
	return nil
}

// WriteHistory writes history as text, one operation per line, ordered by
// invocation time, then client, then position in history, so the same
// history always prints the same bytes:
//
//	[call, return] client 3 op 12: put("k1","v3") → rev 7
//
// An unknown outcome prints its return time as "?".
func WriteHistory(w io.Writer, history []porcupine.Operation) error {
	order := make([]int, len(history))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		x, y := history[order[a]], history[order[b]]
		if x.Call != y.Call {
			return x.Call < y.Call
		}
		return x.ClientId < y.ClientId
	})
	for _, i := range order {
		if _, err := io.WriteString(w, formatOperation(i, history[i])+"\n"); err != nil {
			return err
		}
	}
	return nil
}

func formatOperation(index int, op porcupine.Operation) string {
	req, resp := op.Input.(Request), op.Output.(Response)
	returned := fmt.Sprint(op.Return)
	if resp.Unknown {
		returned = "?"
	}
	id := fmt.Sprint(index)
	if opID, ok := op.Metadata.(OpID); ok {
		id = fmt.Sprint(int(opID))
	}
	return fmt.Sprintf("[%d, %s] client %d op %s: %s", op.Call, returned, op.ClientId, id, DescribeOperation(req, resp))
}
