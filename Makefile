# The two set-up commands of the README: `make demo` (the main job) and `make test`.
.PHONY: setup demo test bench
setup:
	./scripts/setup.sh
demo: setup
	./scripts/demo.sh
test: setup
	./scripts/ci-tools.sh
	npm test
bench: setup
	npm run bench
