package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
)

// logOptions are --logger, --log-outputs, --log-level and --log-format,
// checked.
type logOptions struct {
	level slog.Level
	// console is --log-format=console: slog's key=value text, not JSON.
	console bool
	// outputs are "stderr", "stdout" or file paths, without duplicates.
	outputs []string
}

// logOutputFileMode is the mode of a log file cairn creates.
const logOutputFileMode = 0o600

func (o *options) logOptions() (logOptions, error) {
	if o.logger != "zap" {
		return logOptions{}, fmt.Errorf("--logger: %q is not supported; only 'zap' (structured logging) is", o.logger)
	}
	level, ok := logLevels[o.logLevel]
	if !ok {
		return logOptions{}, fmt.Errorf("--log-level: %q is not one of debug, info, warn, error, panic, fatal", o.logLevel)
	}
	var console bool
	switch o.logFormat {
	case "json":
	case "console":
		console = true
	default:
		return logOptions{}, fmt.Errorf("--log-format: %q is not one of json, console", o.logFormat)
	}
	var outputs []string
	for _, out := range strings.Split(o.logOutputs, ",") {
		switch out = strings.TrimSpace(out); out {
		case "":
			continue
		// systemd keeps a service's stderr in its journal: where etcd
		// writes to journald directly, cairn writes to stderr.
		case "default", "systemd/journal":
			out = "stderr"
		}
		if !slices.Contains(outputs, out) {
			outputs = append(outputs, out)
		}
	}
	if len(outputs) == 0 {
		return logOptions{}, fmt.Errorf("--log-outputs: no output")
	}
	return logOptions{level: level, console: console, outputs: outputs}, nil
}

// openLogger builds the logger the options describe, on run's stdout
// and stderr. The files it opens
// stay open for the life of the process.
func openLogger(o logOptions, stdout, stderr io.Writer) (*slog.Logger, error) {
	writers := make([]io.Writer, 0, len(o.outputs))
	for _, out := range o.outputs {
		switch out {
		case "stderr":
			writers = append(writers, stderr)
		case "stdout":
			writers = append(writers, stdout)
		default:
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, logOutputFileMode)
			if err != nil {
				return nil, fmt.Errorf("--log-outputs: %w", err)
			}
			writers = append(writers, f)
		}
	}
	w := io.MultiWriter(writers...)
	handlerOptions := &slog.HandlerOptions{Level: o.level}
	if o.console {
		return slog.New(slog.NewTextHandler(w, handlerOptions)), nil
	}
	return slog.New(slog.NewJSONHandler(w, handlerOptions)), nil
}
