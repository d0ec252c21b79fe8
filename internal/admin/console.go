package admin

import (
	"embed"
	"io/fs"
	"net/http"
)

// The web console: static files, no build step. They call the API with the token the user signs
// in with; the server only serves them (no token needed for the files themselves).
//
//go:embed console/*.html console/*.js console/*.css
var consoleFiles embed.FS

func consoleHandler() http.Handler {
	sub, err := fs.Sub(consoleFiles, "console")
	if err != nil {
		// The embedded tree is fixed at build time: this cannot happen at run time.
		return http.NotFoundHandler()
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		// media-src blob: lets the voicemail players play the audio the console fetched with the
		// token (an <audio> element cannot send the Authorization header itself).
		h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; img-src 'self' data:; media-src 'self' blob:; frame-ancestors 'none'")
		files.ServeHTTP(w, r)
	})
}
