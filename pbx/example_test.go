package pbx_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/pbxkit/pbxkit/pbx"
	"github.com/pbxkit/pbxkit/store"
)

// Example_embedding runs a PBX inside a program: an in-memory database with one extension, SIP on
// a free port of 127.0.0.1, then asks it what it supports, as a phone would.
func Example_embedding() {
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite::memory:")
	if err != nil {
		panic(err)
	}
	defer db.Close()
	ext := &store.Extension{Number: "100", Name: "Reception", Enabled: true}
	ext.SetPassword("example.test", "s3cret")
	if err := db.CreateExtension(ctx, ext); err != nil {
		panic(err)
	}

	p, err := pbx.New(pbx.Config{SIP: "127.0.0.1:0", Domain: "example.test"}, pbx.WithStore(db))
	if err != nil {
		panic(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()

	conn, _ := net.Dial("udp", p.UDPAddr().String())
	defer conn.Close()
	fmt.Fprintf(conn, "OPTIONS sip:example.test SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s;branch=z9hG4bK-example;rport\r\n"+
		"Max-Forwards: 70\r\nFrom: <sip:100@example.test>;tag=1\r\nTo: <sip:example.test>\r\n"+
		"Call-ID: example-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", conn.LocalAddr())
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, _ := conn.Read(buf)
	for _, line := range strings.Split(string(buf[:n]), "\r\n") {
		if strings.HasPrefix(line, "SIP/2.0") || strings.HasPrefix(line, "Allow:") {
			fmt.Println(line)
		}
	}
	stop()
	if err := <-done; err != nil {
		fmt.Println("run:", err)
	}
	// Output:
	// SIP/2.0 200 OK
	// Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, REFER, NOTIFY, SUBSCRIBE
}
