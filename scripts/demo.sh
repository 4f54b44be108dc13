#!/usr/bin/env bash
# The main job: build and deploy examples/go-http as a VM, call it over HTTP, show its logs and status, destroy it.
set -euo pipefail
cd "$(dirname "$0")/.."
unikctl() { node bin/unikctl.js "$@"; }
port=${DEMO_PORT:-8080}
name=demo-go-http
unikctl destroy "$name" --wait >/dev/null 2>&1 || true
echo "\$ unikctl deploy examples/go-http --name $name -p $port:8080 --wait"
unikctl deploy examples/go-http --name "$name" -p "$port:8080" --wait
echo "\$ curl http://127.0.0.1:$port/demo"
for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$port/demo" 2>/dev/null && break; sleep 0.2; done
sleep 0.3
echo; echo "\$ unikctl logs $name"; unikctl logs "$name"
echo; echo "\$ unikctl status"; unikctl status
echo; echo "\$ unikctl destroy $name --wait"; unikctl destroy "$name" --wait
