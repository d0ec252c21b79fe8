package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/pbxkit/pbxkit/internal/admin"
	"github.com/pbxkit/pbxkit/pbx"
)

// httpOptions are serve's --http settings.
type httpOptions struct {
	addr     string
	pprof    bool
	apiToken string    // --api-token; "" the stored one or a new one
	out      io.Writer // where a new token is printed, once
}

// startAdmin adds the admin API and the web console to mux. A token generated now (the database
// had none) is printed once: only its hash is kept.
func startAdmin(ctx context.Context, log *slog.Logger, p *pbx.PBX, mux *http.ServeMux, ho httpOptions) (*admin.Server, error) {
	adm, err := admin.New(ctx, admin.Config{PBX: p, Token: ho.apiToken, Logger: log.With("component", "admin")})
	if err != nil {
		return nil, fmt.Errorf("--http: %w", err)
	}
	if t := adm.NewToken(); t != "" && ho.out != nil {
		fmt.Fprintf(ho.out, "\nAdmin API and web console token (shown once; keep it, or set --api-token):\n\n    %s\n\n", t)
	}
	adm.Register(mux)
	return adm, nil
}
