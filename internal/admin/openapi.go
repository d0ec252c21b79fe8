package admin

import (
	_ "embed"
	"net/http"
)

// openAPI is the API's description, written by hand beside the handlers (openapi.json); a test
// checks that it names every route.
//
//go:embed openapi.json
var openAPI []byte

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(openAPI)
}
