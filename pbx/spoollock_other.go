//go:build !unix

package pbx

import "os"

// lockSpool does nothing where flock(2) does not exist: one PBX per spool is then up to the
// operator.
func lockSpool(*os.File) error { return nil }
