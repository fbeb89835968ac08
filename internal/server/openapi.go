package server

import (
	_ "embed"
	"net/http"
)

// openAPI is the API's contract (OpenAPI 3.1). TestOpenAPIMatchesRoutes
// fails when a /v1 route of the daemon is missing from it, or it names a
// route the daemon does not serve, or their roles differ.
//
//go:embed openapi.json
var openAPI []byte

// serveOpenAPI answers GET /v1/openapi.json. It is public (routePolicies):
// it describes the API of every cutover binary and holds no data of the
// daemon, and tools (client generators, schemathesis) fetch it before they
// hold a token.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(openAPI)
}
