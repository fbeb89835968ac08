package registry

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/sirupsen/logrus"
)

// distribution logs through logrus's standard logger (it offers no way to
// give it another one from outside its module), so the bridge is
// process-wide: installed once, pointing at the logger of the most recent
// Start.
var (
	bridgeOnce sync.Once
	bridgeLog  atomic.Pointer[slog.Logger]
)

func routeLogrus(log *slog.Logger) {
	bridgeLog.Store(log)
	bridgeOnce.Do(func() {
		std := logrus.StandardLogger()
		std.SetOutput(io.Discard)
		std.AddHook(slogHook{})
	})
}

// slogHook forwards logrus entries to slog.
type slogHook struct{}

func (slogHook) Levels() []logrus.Level { return logrus.AllLevels }

// fields worth keeping from distribution's request loggers.
var keptFields = []string{
	"http.request.method", "http.request.uri", "http.response.status",
	"vars.name", "vars.reference", "vars.digest",
	"err.code", "err.message", "err.detail", "error",
}

func (slogHook) Fire(e *logrus.Entry) error {
	log := bridgeLog.Load()
	if _, fromRegistry := e.Data["go.version"]; !fromRegistry {
		// Another library in the process (compose-go logs through logrus
		// too): keep its messages, under its own name.
		log = slog.Default().With("component", "logrus")
	}
	level := slog.LevelDebug // routine: started, response completed, purging
	switch e.Level {
	case logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel:
		level = slog.LevelError
	case logrus.WarnLevel:
		level = slog.LevelWarn
	}
	if status, ok := e.Data["http.response.status"].(int); ok && status < 500 {
		// A 404 for a blob the client is probing before upload is normal;
		// the client gets the error itself.
		level = slog.LevelDebug
	}
	ctx := context.Background()
	if !log.Enabled(ctx, level) {
		return nil
	}
	attrs := make([]slog.Attr, 0, len(keptFields))
	for _, k := range keptFields {
		if v, ok := e.Data[k]; ok {
			attrs = append(attrs, slog.Any(k, v))
		}
	}
	log.LogAttrs(ctx, level, e.Message, attrs...)
	return nil
}
