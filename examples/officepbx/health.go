package main

import (
	"fmt"
	"net/http"
)

// healther is what /healthz asks: *pbx.PBX.
type healther interface{ Health() error }

// healthz answers 200 "ok" while the PBX serves SIP on all its listeners, and 503 with the reason
// while it does not: before it runs and after it stopped, when a listener has stopped, and while
// the TCP listener cannot accept connections (out of file descriptors) and backs off.
func healthz(p healther) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if err := p.Health(); err != nil {
			http.Error(w, "unavailable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
}
