package main

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// healther is what /healthz and /readyz ask: *pbx.PBX.
type healther interface {
	// Ready is nil while the PBX serves SIP on all its listeners and its database answers.
	Ready(ctx context.Context) error
}

// healthWait bounds the database check of one health request.
const healthWait = 2 * time.Second

// healthz answers 200 "ok" while the PBX serves SIP on all its listeners and its database
// answers, and 503 with the reason while it does not: before it runs and after it stopped, when a
// listener has stopped, while the TCP listener cannot accept connections (out of file
// descriptors) and backs off, and while the database does not answer.
func healthz(p healther) http.Handler { return healthCheck(p, "ok") }

// readyz is the same check for load balancers: 200 "ready" when the PBX can take calls.
func readyz(p healther) http.Handler { return healthCheck(p, "ready") }

func healthCheck(p healther, okText string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		ctx, cancel := context.WithTimeout(r.Context(), healthWait)
		defer cancel()
		if err := p.Ready(ctx); err != nil {
			http.Error(w, "unavailable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, okText)
	})
}
