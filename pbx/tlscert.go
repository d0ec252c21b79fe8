package pbx

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// certificate is the TLS listener's certificate chain and key, read from Config.TLSCert and
// TLSKey, and read again when the files change or on ReloadTLS. The listener's tls.Config asks it
// for the certificate at every handshake, so a new one serves new connections at once and open
// connections keep the one they started with. Files are watched by polling their modification
// time and size, not with inotify: certificate renewals (certbot, Kubernetes secrets) replace the
// files or the symbolic links to them, which an inotify watch on the old file does not see.
type certificate struct {
	certFile, keyFile string
	log               *slog.Logger

	cur atomic.Pointer[tls.Certificate]

	mu    sync.Mutex // one reload at a time
	stamp fileStamp  // of the files the certificate in use was read from
}

// fileStamp is what tells a changed file: its modification time and size, of both files.
type fileStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

func loadCertificate(certFile, keyFile string, log *slog.Logger) (*certificate, error) {
	c := &certificate{certFile: certFile, keyFile: keyFile, log: log}
	if err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// statFiles reads the stamp of the two files.
func (c *certificate) statFiles() (fileStamp, error) {
	cs, err := os.Stat(c.certFile)
	if err != nil {
		return fileStamp{}, err
	}
	ks, err := os.Stat(c.keyFile)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{certMod: cs.ModTime(), keyMod: ks.ModTime(), certSize: cs.Size(), keySize: ks.Size()}, nil
}

// reload reads the files and, when they hold a valid pair, puts it in use. On error the
// certificate in use stays.
func (c *certificate) reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reloadLocked()
}

func (c *certificate) reloadLocked() error {
	// The stamp is taken before reading: a file that changes while it is read is read again at
	// the next look.
	stamp, err := c.statFiles()
	if err != nil {
		return fmt.Errorf("pbx: tls certificate: %w", err)
	}
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("pbx: tls certificate %s, key %s: %w", c.certFile, c.keyFile, err)
	}
	if pair.Leaf == nil {
		return errors.New("pbx: tls certificate: no certificate in " + c.certFile)
	}
	c.cur.Store(&pair)
	c.stamp = stamp
	c.log.Info("tls certificate loaded", "file", c.certFile, "subject", pair.Leaf.Subject.String(),
		"dns_names", pair.Leaf.DNSNames, "not_after", pair.Leaf.NotAfter.UTC().Format(time.RFC3339))
	if time.Until(pair.Leaf.NotAfter) < 0 {
		c.log.Warn("tls certificate has expired", "file", c.certFile, "not_after", pair.Leaf.NotAfter)
	}
	return nil
}

// reloadIfChanged reads the files again when their stamp changed since the certificate in use
// was read; a pair that does not load is logged and left in place.
func (c *certificate) reloadIfChanged() {
	c.mu.Lock()
	defer c.mu.Unlock()
	stamp, err := c.statFiles()
	if err != nil {
		c.log.Warn("tls certificate files unreadable; keeping the certificate in use", "error", err)
		return
	}
	if stamp == c.stamp {
		return
	}
	if err := c.reloadLocked(); err != nil {
		c.log.Error("tls certificate changed but does not load; keeping the certificate in use", "error", err)
	}
}

// watch looks at the files every interval until stop is closed.
func (c *certificate) watch(stop <-chan struct{}, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			c.reloadIfChanged()
		}
	}
}

// get is the tls.Config's GetCertificate: the certificate in use.
func (c *certificate) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cur.Load(), nil }

// serverConfig is the listener's TLS configuration. TLS 1.2 is the oldest version RFC 8996 and
// the SIP phones of today leave standing. Client certificates are not asked for: phones
// authenticate with digest, as over TCP.
func (c *certificate) serverConfig() *tls.Config {
	return &tls.Config{GetCertificate: c.get, MinVersion: tls.VersionTLS12}
}
