package main

import (
	"context"
	"errors"
	"io"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/internal/testenv"
	"github.com/pbxkit/pbxkit/pbx"
)

// TestServeTLS: serve --tls with --tls-cert and --tls-key serves SIP over TLS with the
// certificate, says so and names --external-ip in its start-up line, and SIGHUP reads a renewed
// certificate (well before the files' own check, every 10 s by default).
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	first, second := testenv.NewCert(t, "first"), testenv.NewCert(t, "second")
	certFile, keyFile := first.Write(t, dir)
	ctx, cancel := context.WithCancel(t.Context())
	logs := &b2buatest.LogBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--sip", "127.0.0.1:0", "--db", testenv.SQLiteDSN(t), "--tls", "127.0.0.1:0",
			"--tls-cert", certFile, "--tls-key", keyFile, "--external-ip", "192.0.2.9"}, io.Discard, logs)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d:\n%s", code, logs.String())
		}
	}()
	re := regexp.MustCompile(`msg="pbx listening" .*tls=(\S+) external_ip=192.0.2.9`)
	var m []string
	for deadline := time.Now().Add(10 * time.Second); m == nil; m = re.FindStringSubmatch(logs.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no TLS listener logged:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if cn := testenv.ServedCN(t, m[1]); cn != "first" {
		t.Fatalf("served %q", cn)
	}
	second.Write(t, dir)
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(3 * time.Second); testenv.ServedCN(t, m[1]) != "second"; {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not reload the certificate:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeTLSFlagErrors: TLS and NAT settings pbx refuses are reported with the flag's name.
func TestServeTLSFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		cfg  pbx.Config
		flag string
	}{
		{"tls without a key", []string{"--tls", "127.0.0.1:0", "--tls-cert", "cert.pem"},
			pbx.Config{TLS: "127.0.0.1:0", TLSCert: "cert.pem"}, "--tls-key"},
		{"tls without a certificate", []string{"--tls", "127.0.0.1:0", "--tls-key", "key.pem"},
			pbx.Config{TLS: "127.0.0.1:0", TLSKey: "key.pem"}, "--tls-cert"},
		{"certificate without tls", []string{"--tls-cert", "cert.pem", "--tls-key", "key.pem"},
			pbx.Config{TLSCert: "cert.pem", TLSKey: "key.pem"}, "--tls"},
		{"external ip a name", []string{"--external-ip", "pbx.example.com"}, pbx.Config{ExternalIP: "pbx.example.com"}, "--external-ip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ce *pbx.ConfigError
			if err := tc.cfg.Validate(); !errors.As(err, &ce) {
				t.Fatalf("pbx accepts %+v: %v", tc.cfg, err)
			}
			want := tc.flag + " " + ce.Value + ": " + ce.Reason
			code, _, errs := officepbx(t, append([]string{"serve"}, tc.args...)...)
			if code != 2 || !strings.Contains(errs, want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, errs, want)
			}
		})
	}
}
