package test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/internal/testenv"
)

// TestSippDialplan runs the officepbx binary with a Lua dialplan: sipp calls are connected and
// declined by the script, an edit of the script is picked up while the PBX runs, a broken edit
// (by file change and by SIGHUP) leaves the running version in place.
func TestSippDialplan(t *testing.T) {
	dsn := testenv.SQLiteDSN(t)
	cli(t, "ext", "add", "200", "--password", "pw200", "--db", dsn)
	script := filepath.Join(t.TempDir(), "office.lua")
	writeScript(t, script, `
function route(call)
  if call.to == "999" then return call:reject(603) end
  local r = call:connect(call.to, {timeout = 10})
  if not r.answered then call:reject(r.status) end
end`)
	srv := startServer(t, "--db", dsn, "--trust", "127.0.0.0/8", "--dialplan", script)

	wait := sippUAS(t, srv.addr, "200", 1)
	sipp(t, "", srv.addr, "-sn", "uac", "-s", "200", "-m", "1", "-d", "200")
	wait()
	sipp(t, "uac-declined.xml", srv.addr, "-s", "999", "-m", "1")

	// Version 2 also declines 998 (under version 1, 998 is an unknown extension: 404).
	writeScript(t, script, `
function route(call)
  if call.to == "999" or call.to == "998" then return call:reject(603) end
  local r = call:connect(call.to, {timeout = 10})
  if not r.answered then call:reject(r.status) end
end`)
	waitLog(t, srv, `msg="dialplan reloaded"`)
	sipp(t, "uac-declined.xml", srv.addr, "-s", "998", "-m", "1")

	writeScript(t, script, "function route(call) call:reject(486) end end")
	waitLog(t, srv, `msg="dialplan reload failed: the running version stays"`)
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(srv.logs(), "dialplan reload failed") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not reload:\n%s", srv.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	sipp(t, "uac-declined.xml", srv.addr, "-s", "998", "-m", "1") // version 2 still runs
}

func writeScript(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
