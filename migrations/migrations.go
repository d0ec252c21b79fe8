// Package migrations holds pbxkit's versioned SQL schema, one goose migration set per SQL dialect,
// embedded into every binary that imports it.
//
// The two sets describe the same schema. They are separate because the dialects spell
// auto-increment keys, booleans and time stamps differently and goose has no per-dialect sections
// inside one file. A change to the schema adds a file with the same version number to both folders;
// store's tests run every migration up, down and up again on both databases.
package migrations

import "embed"

// FS holds postgres/*.sql and sqlite/*.sql.
//
//go:embed postgres/*.sql sqlite/*.sql
var FS embed.FS

// Dialect folder names inside FS.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)
