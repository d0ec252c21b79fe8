// Package admin is the office PBX's HTTP admin interface: a JSON API under /api/ protected by a
// bearer token, a live event stream (Server-Sent Events at /api/events), the OpenAPI description
// (/api/openapi.json) and a web console (plain HTML and JavaScript, embedded) at /.
//
// A Server serves one *pbx.PBX and its store:
//
//	adm, err := admin.New(ctx, admin.Config{PBX: p, Token: flagToken, Logger: log})
//	if err != nil { ... }
//	if t := adm.NewToken(); t != "" { fmt.Println("admin API token:", t) } // printed once
//	adm.Register(mux)
//	srv.RegisterOnShutdown(adm.Close) // ends the event streams
//
// Errors are JSON objects {"error": "..."} with the status saying what kind: 400 malformed
// request, 401 no or wrong token, 404 unknown object, 409 conflict, 413 body too large, 422 a
// well-formed request with invalid values, 503 database away. docs/architecture.md says why
// Server-Sent Events and how the token is kept.
package admin
