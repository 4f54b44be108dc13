// go-config: a Go server configured by a file in its working directory (config.toml), as many frameworks
// are (Rocket.toml, config/*.yaml); its static/ directory is served from the working directory too.
package main

import (
	"bufio"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
)

// readConfig reads flat `key = value` lines (a TOML subset: strings and numbers), enough for this example.
func readConfig(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cfg := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		cfg[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	return cfg, s.Err()
}

func main() {
	log.SetFlags(0)
	cfg, err := readConfig("config.toml")
	if err != nil {
		log.Fatalf("config: %v", err)
	}
	http.Handle("/static/", http.StripPrefix("/static/", http.FileServer(http.Dir("static"))))
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s (listening on %s:%s)\n", cfg["greeting"], cfg["address"], cfg["port"])
	})
	addr := cfg["address"] + ":" + cfg["port"]
	log.Printf("go-config listening on %s", addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}
