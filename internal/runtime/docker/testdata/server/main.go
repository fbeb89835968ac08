// Command server is the tiny HTTP server the docker package's tests run in a
// FROM scratch image. PORT (default 8080) serves /healthz; EXTRA_PORT, when
// set, is a second listener; FAIL_AT_START makes it print that text to stderr
// and exit 3 at once. SIGTERM makes it say so and exit 0.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if msg := os.Getenv("FAIL_AT_START"); msg != "" {
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(3)
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{Addr: ":" + port, Handler: mux}
	if extra := os.Getenv("EXTRA_PORT"); extra != "" {
		go http.ListenAndServe(":"+extra, mux)
	}
	go func() {
		fmt.Println("listening on :" + port)
		if err := srv.ListenAndServe(); err != http.ErrServerClosed {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	fmt.Println("got", <-sig, "- shutting down")
	srv.Shutdown(context.Background())
	fmt.Println("bye")
}
