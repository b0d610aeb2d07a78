// Command ferretdb runs FerretDB v1 embedded, with its SQLite backend, as virtflow's
// default MongoDB-compatible server, or with its PostgreSQL backend (--postgresql-url) for the
// cluster stack. It is built from the module proxy by scripts/bootstrap
// because FerretDB's own cmd panics when installed with `go install` (its version file is
// not part of the module zip), while the embeddable package has no such dependency.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	dir := flag.String("dir", ".virtflow/ferretdb", "directory holding the SQLite databases")
	logLevel := flag.String("log-level", "warn", "log level: debug, info, warn or error")
	pgURL := flag.String("postgresql-url", "", "store the data in PostgreSQL at this URL instead of SQLite files in --dir")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fail("invalid --log-level %q: %v", *logLevel, err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	abs, err := filepath.Abs(*dir)
	if err != nil {
		fail("invalid --dir %q: %v", *dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		fail("cannot create --dir %q: %v", abs, err)
	}

	config := ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: *listen},
		Logger:   logger,
		Handler:  "sqlite",
		// WAL with synchronous=NORMAL: a commit no longer waits for an fsync, which made every
		// write (and every writer queued behind it) slow. A crashed process loses nothing; a
		// power loss can lose the last commits but never corrupts the files.
		SQLiteURL: "file:" + abs + "/?_pragma=synchronous(normal)",
	}
	where := abs
	if *pgURL != "" {
		config.Handler, config.PostgreSQLURL, config.SQLiteURL = "postgresql", *pgURL, ""
		where = "PostgreSQL"
	}
	f, err := ferretdb.New(&config)
	if err != nil {
		// The listener binds in New, so a taken port is reported here, at once.
		fail("cannot start FerretDB on %s: %v", *listen, err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Fprintf(os.Stderr, "ferretdb: listening on %s, data in %s\n", *listen, where)
	if err := f.Run(ctx); err != nil {
		fail("FerretDB stopped: %v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "ferretdb: "+format+"\n", args...)
	os.Exit(1)
}
