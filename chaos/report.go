package chaos

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Names of the files of a report folder, besides the linearizability
// package's history and visualisation.
const (
	ReportSummaryFile  = "summary.txt"
	ReportTimelineFile = "faults.txt"
	ReportMembersDir   = "members"
)

// writeReport fills the report folder; problems writing it are appended to
// the summary file rather than hiding the verdict.
func (r *runner) writeReport(res *Result, workDir string) {
	var problems []string
	if err := r.recorder.WriteReport(r.reportDir); err != nil {
		problems = append(problems, fmt.Sprintf("history: %v", err))
	}
	var timeline strings.Builder
	for _, e := range res.Timeline {
		timeline.WriteString(e.String() + "\n")
	}
	if err := os.WriteFile(filepath.Join(r.reportDir, ReportTimelineFile), []byte(timeline.String()), 0o644); err != nil {
		problems = append(problems, fmt.Sprintf("timeline: %v", err))
	}
	membersDir := filepath.Join(r.reportDir, ReportMembersDir)
	if err := os.MkdirAll(membersDir, 0o755); err != nil {
		problems = append(problems, fmt.Sprintf("members dir: %v", err))
	}
	for _, m := range r.c.Members {
		if err := copyFile(m.LogPath, filepath.Join(membersDir, m.Name+".log")); err != nil {
			problems = append(problems, fmt.Sprintf("log of %s: %v", m.Name, err))
		}
	}
	var summary strings.Builder
	summary.WriteString(res.Summary() + "\n\n")
	for _, c := range res.Checks {
		summary.WriteString(c.String() + "\n")
	}
	if r.cfg.Rerun != "" {
		fmt.Fprintf(&summary, "\nrerun this schedule: %s\n", r.cfg.Rerun)
	}
	for _, p := range problems {
		fmt.Fprintf(&summary, "report problem: %s\n", p)
	}
	if err := os.WriteFile(filepath.Join(r.reportDir, ReportSummaryFile), []byte(summary.String()), 0o644); err != nil {
		r.cfg.Logf("chaos: write summary: %v", err)
	}
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
