// Command minimal is a custom PBX on package pbx: extensions from SQLite, calls routed in Go.
package main

import (
	"context"
	"flag"
	"log"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/dialplan"
	"github.com/pbxkit/pbxkit/pbx"
)

// route rings 100 and 101 at once for 0 (the reception), and any other number as dialled.
var route = dialplan.HandlerFunc(func(ctx context.Context, c *b2bua.Call) error {
	dests := []string{c.Callee()}
	if c.Callee() == "0" {
		dests = []string{"100", "101"}
	}
	_, err := c.Connect(ctx, dests, b2bua.ConnectOptions{}) // no answer: the caller gets why
	return err
})

func main() {
	port := flag.String("port", "5060", "SIP port, UDP and TCP")
	db := flag.String("db", "sqlite:minimal.db", "database of the extensions")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cfg := pbx.Config{SIP: "0.0.0.0:" + *port, Database: *db, Dialplan: route}
	if p, err := pbx.New(cfg, pbx.WithLogger(slog.Default())); err != nil {
		log.Fatal(err)
	} else if err := p.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
