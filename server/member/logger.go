package member

import (
	"fmt"
	"log/slog"
)

// raftLogger sends raft's log lines to slog. Fatal and Panic also panic:
// raft calls them on broken invariants, and the member must stop.
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)              { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Debugf(f string, v ...any)   { r.l.Debug(fmt.Sprintf(f, v...)) }
func (r raftLogger) Info(v ...any)               { r.l.Info(fmt.Sprint(v...)) }
func (r raftLogger) Infof(f string, v ...any)    { r.l.Info(fmt.Sprintf(f, v...)) }
func (r raftLogger) Warning(v ...any)            { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(f string, v ...any) { r.l.Warn(fmt.Sprintf(f, v...)) }
func (r raftLogger) Error(v ...any)              { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(f string, v ...any)   { r.l.Error(fmt.Sprintf(f, v...)) }
func (r raftLogger) Fatal(v ...any)              { r.stop(fmt.Sprint(v...)) }
func (r raftLogger) Fatalf(f string, v ...any)   { r.stop(fmt.Sprintf(f, v...)) }
func (r raftLogger) Panic(v ...any)              { r.stop(fmt.Sprint(v...)) }
func (r raftLogger) Panicf(f string, v ...any)   { r.stop(fmt.Sprintf(f, v...)) }
func (r raftLogger) stop(msg string)             { r.l.Error(msg); panic("raft: " + msg) }
