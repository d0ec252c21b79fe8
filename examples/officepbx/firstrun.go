package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// dialplanCandidates are the files serve loads, the first present, when no dialplan is named:
// dialplan.lua in the working folder, then the one shipped with officepbx as seen from the
// repository's root (where "go run ./examples/officepbx" runs). An explicit --dialplan ""
// (dialplan: "" in the config file) loads none.
func dialplanCandidates() []string {
	return []string{"dialplan.lua", filepath.Join("examples", "officepbx", "dialplan.lua")}
}

// defaultDialplan sets --dialplan to the first dialplan candidate present, unless the command
// line, the environment or the config file named one (or none).
func defaultDialplan(fs *flag.FlagSet) error {
	named := false
	fs.Visit(func(f *flag.Flag) { named = named || f.Name == "dialplan" })
	if named {
		return nil
	}
	for _, p := range dialplanCandidates() {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return fs.Set("dialplan", p)
		}
	}
	return nil
}

// demoExtension is an extension made on the first run, with its password in the clear.
type demoExtension struct{ number, name, password string }

// demoQueue is the queue the shipped dialplan sends 700 to; its agents are 102 and 103.
const demoQueue = "support"

// seedDemo fills an empty database (no extensions, queues or call records) with extensions
// 100-103 with random passwords and the support queue, and returns the extensions made; on any
// other database it makes nothing. So the passwords exist in the clear only in what serve prints
// on the first start.
func seedDemo(ctx context.Context, s *store.Store, realm string) ([]demoExtension, error) {
	empty, err := isEmpty(ctx, s)
	if err != nil || !empty {
		return nil, err
	}
	demo := []demoExtension{{"100", "Reception", ""}, {"101", "Office", ""}, {"102", "Support 1", ""}, {"103", "Support 2", ""}}
	for i := range demo {
		demo[i].password = randomPassword()
		e := &store.Extension{Number: demo[i].number, Name: demo[i].name, Enabled: true}
		if err := e.SetPassword(realm, demo[i].password); err != nil {
			return nil, err
		}
		if err := s.CreateExtension(ctx, e); err != nil {
			return nil, fmt.Errorf("demo extension %s: %w", e.Number, err)
		}
	}
	q := &store.Queue{Name: demoQueue, Strategy: store.StrategyRingAll, Music: "tone", Announce: 30,
		Members: []store.QueueMember{{Extension: "102", Position: 0}, {Extension: "103", Position: 1}}}
	if err := s.CreateQueue(ctx, q); err != nil {
		return nil, fmt.Errorf("demo queue: %w", err)
	}
	return demo, nil
}

func isEmpty(ctx context.Context, s *store.Store) (bool, error) {
	exts, err := s.Extensions(ctx)
	if err != nil || len(exts) > 0 {
		return false, err
	}
	qs, err := s.Queues(ctx)
	if err != nil || len(qs) > 0 {
		return false, err
	}
	cdrs, err := s.CDRs(ctx, store.CDRFilter{Limit: 1})
	return err == nil && len(cdrs) == 0, err
}

// randomPassword is 12 characters from an alphabet without look-alikes (no 0/O, 1/l/I):
// about 70 bits, typed into a phone's keypad menu without mistakes.
func randomPassword() string {
	const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 12)
	rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// startInfo is what serve says once the PBX is up.
type startInfo struct {
	sip, tls, http, db, dialplan, relay string
	phoneHost                           string // the address phones register to
	domain                              string
	extensions                          int
	demo                                []demoExtension
}

// welcome creates the demo extensions on an empty database and prints the start-up summary
// (and, that once, the demo extensions' passwords) to out.
func welcome(ctx context.Context, out io.Writer, p *pbx.PBX, httpAddr string) error {
	cfg := p.Config()
	info := startInfo{sip: p.UDPAddr().String(), http: httpAddr, db: store.RedactDSN(cfg.Database), dialplan: cfg.DialplanScript,
		domain: cfg.Domain, phoneHost: phoneHost(p.UDPAddr(), cfg.ExternalIP), extensions: -1}
	if a := p.TLSAddr(); a != nil {
		info.tls = a.String()
	}
	if cfg.RTPPortMin > 0 {
		info.relay = fmt.Sprintf("%s ports %d-%d", cfg.RTPAddress, cfg.RTPPortMin, cfg.RTPPortMax)
	}
	if strings.Contains(cfg.Database, ":memory:") { // the PBX's own, out of reach of another connection
		info.print(out)
		return nil
	}
	s, err := store.Open(ctx, cfg.Database, store.WithoutMigrate())
	if err != nil {
		return err
	}
	defer s.Close()
	if info.demo, err = seedDemo(ctx, s, cfg.Domain); err != nil {
		return fmt.Errorf("first run: %w", err)
	}
	exts, err := s.Extensions(ctx)
	if err != nil {
		return err
	}
	info.extensions = len(exts)
	info.print(out)
	return nil
}

// phoneHost is the address to give phones: --external-ip, else the SIP address, or this
// machine's first non-loopback IPv4 address when the PBX listens on all of them.
func phoneHost(a *net.UDPAddr, externalIP string) string {
	port := fmt.Sprint(a.Port)
	if externalIP != "" {
		return net.JoinHostPort(externalIP, port)
	}
	if !a.IP.IsUnspecified() {
		return net.JoinHostPort(a.IP.String(), port)
	}
	addrs, _ := net.InterfaceAddrs()
	for _, ad := range addrs {
		if n, ok := ad.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return net.JoinHostPort(n.IP.String(), port)
		}
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// print writes the summary in one piece, so that a reader of the log (or a test waiting for its
// first line) never sees half of it.
func (i startInfo) print(out io.Writer) {
	var w strings.Builder
	defer func() { io.WriteString(out, w.String()) }()
	fmt.Fprintf(&w, "officepbx is running\n")
	fmt.Fprintf(&w, "  SIP         udp+tcp %s (phones register to %s, domain %s)\n", i.sip, i.phoneHost, i.domain)
	fmt.Fprintf(&w, "  TLS         %s\n", orText(i.tls, "off (--tls ADDR --tls-cert FILE --tls-key FILE)"))
	fmt.Fprintf(&w, "  HTTP        %s\n", orText(i.http, "off (--http ADDR)"))
	if i.extensions < 0 {
		fmt.Fprintf(&w, "  database    %s (in memory: gone when the PBX stops)\n", i.db)
	} else {
		fmt.Fprintf(&w, "  database    %s, %s\n", i.db, plural(i.extensions, "extension"))
	}
	fmt.Fprintf(&w, "  dialplan    %s\n", orText(i.dialplan, "none: calls go to the extension dialled (--dialplan FILE)"))
	fmt.Fprintf(&w, "  media relay %s\n", orText(i.relay, "off: phones send RTP to each other (--rtp-ports LO-HI)"))
	if len(i.demo) == 0 {
		return
	}
	fmt.Fprintf(&w, "\nFirst run: demo extensions created. Their passwords are shown this once:\n")
	for _, d := range i.demo {
		fmt.Fprintf(&w, "  %s  %-10s  password %s\n", d.number, d.name, d.password)
	}
	fmt.Fprintf(&w, "Set a phone to server %s, user name = the extension, and its password.\n", i.phoneHost)
	fmt.Fprintf(&w, "Queue %q has agents 102 and 103. Change passwords with: officepbx ext set NUMBER --password PW\n\n", demoQueue)
}

func orText(s, none string) string {
	if s == "" {
		return none
	}
	return s
}

// plural is "1 extension", "4 extensions".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
