package testenv

import (
	"os/exec"
	"testing"
)

// Chromium returns the path of a Chromium (or Chrome) binary, for the web console's browser
// test.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	missing(t, "chromium is not on PATH: install it (apt-get install -y chromium chromium-driver) to run the web console test")
	return ""
}
