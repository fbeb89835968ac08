// Package e2e proves cutover's deployment scenarios end to end: the real
// cutover binary drives the real Docker engine and its own proxy process,
// deploying the example monorepo (examples/bluemed) while a bounded load
// generator sends requests to the production listener on 127.0.0.1.
//
// The package holds only tests. They need a Docker engine: without one they
// skip, or fail when CUTOVER_REQUIRE_DOCKER=1. Run them with
//
//	CUTOVER_REQUIRE_DOCKER=1 go test -count=1 -v ./e2e/
//
// Every test uses its own project, home directory and free ports, and
// removes its containers, images and proxy process when it ends.
package e2e
