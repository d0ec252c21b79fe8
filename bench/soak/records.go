package main

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// record is what the cdrs table holds for one Call-ID (the caller's: store.CDR.CallID).
type record struct {
	n      int    // rows
	reason string // the reason of one of them
}

// readRecords reads every call record's Call-ID from the PBX's database (directly, not through
// the proxy).
func readRecords(ctx context.Context, url string) (map[string]record, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT call_id, count(*), max(reason) FROM cdrs GROUP BY call_id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]record{}
	for rows.Next() {
		var id, reason string
		var n int
		if err := rows.Scan(&id, &n, &reason); err != nil {
			return nil, err
		}
		out[id] = record{n: n, reason: reason}
	}
	return out, rows.Err()
}
