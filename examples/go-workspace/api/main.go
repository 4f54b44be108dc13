// api: the workspace's server (chi router), built because unik.yaml says `main: ./api`. It imports the
// workspace module example.com/greet, which go.work resolves to ../greet (no replace directive).
package main

import (
	"encoding/json"
	"log"
	"net/http"
	"os"
	"time"

	"example.com/greet"
	"github.com/go-chi/chi/v5"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	log.SetFlags(0)
	r := chi.NewRouter()
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			start := time.Now()
			next.ServeHTTP(w, req)
			log.Printf("request method=%s path=%s duration=%s", req.Method, req.URL.Path, time.Since(start))
		})
	})
	// a framework route: {name} comes from chi's router
	r.Get("/hello/{name}", func(w http.ResponseWriter, req *http.Request) {
		host, _ := os.Hostname()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"hello": chi.URLParam(req, "name"), "greeting": greet.Hello(chi.URLParam(req, "name")), "framework": "chi", "host": host, "program": "api"})
	})
	log.Printf("go-workspace api listening on :%s", port)
	log.Fatal(http.ListenAndServe(":"+port, r))
}
