// go-service: the app of unikctl's service tests (replicas, health checks, rollouts, restarts). Standard library
// only. It answers GET / with its version and replica, GET /healthz with 200 (500 with FAIL_HEALTH=1), can crash on
// purpose (EXIT_AFTER) and stops gracefully on SIGTERM.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	log.SetFlags(0)
	port := envOr("PORT", "8080")
	version := envOr("VERSION", "v1")
	failHealth := os.Getenv("FAIL_HEALTH") == "1"
	host, _ := os.Hostname()

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "version=%s replica=%s", version, host)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if failHealth {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintln(w, "unhealthy (FAIL_HEALTH=1)")
			return
		}
		fmt.Fprintln(w, "ok")
	})

	if s := os.Getenv("EXIT_AFTER"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			log.Fatalf("go-service: EXIT_AFTER=%q is not a duration (e.g. 2s): %v", s, err)
		}
		time.AfterFunc(d, func() {
			log.Printf("go-service: exiting with code 1 after %s (EXIT_AFTER)", d)
			os.Exit(1)
		})
	}

	srv := &http.Server{Addr: "0.0.0.0:" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Printf("go-service %s listening on 0.0.0.0:%s (replica %s, fail-health=%t)", version, port, host, failHealth)

	select {
	case err := <-errc:
		log.Fatalf("go-service: %v", err)
	case <-ctx.Done():
	}
	log.Printf("go-service: SIGTERM, shutting down (up to 5s for requests in flight)")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Printf("go-service: shutdown: %v", err)
		os.Exit(1)
	}
	log.Printf("go-service: stopped")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
