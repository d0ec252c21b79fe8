package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDataDirectoryAbsolute: the data directory is absolute whatever the flag or the database
// says, so the message paths stored under it name their files from any working directory (vm rm
// run elsewhere removes the real file).
func TestDataDirectoryAbsolute(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ flag, db, want string }{
		{"data", "postgres://x/y", filepath.Join(wd, "data")},
		{"", "postgres://x/y", filepath.Join(wd, "officepbx-data")},
		{"", "sqlite:pbx.db", filepath.Join(wd, "officepbx-data")},
		{"", "sqlite:sub/pbx.db", filepath.Join(wd, "sub", "officepbx-data")},
		{"/srv/pbx", "sqlite:pbx.db", "/srv/pbx"},
	} {
		if got := dataDirectory(tc.flag, tc.db); got != tc.want {
			t.Errorf("dataDirectory(%q, %q) = %q, want %q", tc.flag, tc.db, got, tc.want)
		}
	}
	if got := absPath("rec"); got != filepath.Join(wd, "rec") {
		t.Errorf("absPath(rec) = %q", got)
	}
	if got := absPath(""); got != "" {
		t.Errorf(`absPath("") = %q`, got)
	}
}
