// Package pebblelog routes Pebble's log messages to a *slog.Logger.
//
// Pebble logs routine events (every flush and compaction, WAL replay)
// through Infof; they go to Debug, so that a server's log shows them only
// when asked. Errorf goes to Error. Fatalf logs at Error and panics, since
// Pebble does not expect Fatalf to return. A Logger may be used
// concurrently.
package pebblelog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
)

// Logger adapts a *slog.Logger to pebble.Logger.
type Logger struct {
	l    *slog.Logger
	name string // prefix of the panic message of Fatalf
}

var _ pebble.Logger = Logger{}

// New returns a pebble.Logger writing to l; name says whose database it is
// ("raftstore", "store") in Fatalf's panic.
func New(l *slog.Logger, name string) Logger { return Logger{l: l, name: name} }

// Infof logs routine events at Debug.
func (p Logger) Infof(format string, args ...any) {
	if p.l.Enabled(context.Background(), slog.LevelDebug) {
		p.l.Debug(fmt.Sprintf(format, args...))
	}
}

// Errorf logs at Error.
func (p Logger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
}

// Fatalf logs at Error and panics.
func (p Logger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "fatal", true)
	panic(p.name + ": pebble fatal: " + msg)
}
