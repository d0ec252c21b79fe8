//go:build unix

package pbx

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// lockSpool takes an exclusive lock on the spool file for the life of the process (it goes with
// the file's descriptor). Two PBX processes on one spool would each empty it once their own
// records were in the database, losing the other's.
func lockSpool(f *os.File) error {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return errSpoolInUse
	}
	return err
}
