package pbx

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pbxkit/pbxkit/store"
)

// spool is the call records' file on local disk: a record is appended and synced before the
// database is asked to take it, and the file is emptied once the database has taken everything
// in it. A PBX that stops while records wait for the database, or crashes, finds them there at
// its next start and writes them then; their keys make the database keep each once.
//
// The format is one JSON record per line. A last line torn by a crash is skipped.
// errSpoolInUse: another process holds the spool.
var errSpoolInUse = errors.New("in use by another PBX process (each needs a spool of its own: --record-spool)")

type spool struct {
	f    *os.File
	path string
}

// openSpool opens (or creates) the spool at path and returns the records it still holds.
func openSpool(path string) (*spool, []*store.CDR, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, nil, fmt.Errorf("pbx: record spool: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("pbx: record spool: %w", err)
	}
	if err := lockSpool(f); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("pbx: record spool %s: %w", path, err)
	}
	left, err := readSpool(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("pbx: record spool %s: %w", path, err)
	}
	return &spool{f: f, path: path}, left, nil
}

func readSpool(r io.Reader) ([]*store.CDR, error) {
	var out []*store.CDR
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var c store.CDR
		if err := json.Unmarshal(line, &c); err != nil {
			continue // a line torn by a crash: its record never left the PBX's memory as written
		}
		out = append(out, &c)
	}
	return out, sc.Err()
}

// append writes records and syncs the file.
func (s *spool) append(cdrs []*store.CDR) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, c := range cdrs {
		if err := enc.Encode(c); err != nil {
			return err
		}
	}
	if _, err := s.f.Write(buf.Bytes()); err != nil {
		return err
	}
	return s.f.Sync()
}

// clear empties the spool: the database holds everything it had.
func (s *spool) clear() error { return s.f.Truncate(0) }

func (s *spool) close() error { return errors.Join(s.f.Sync(), s.f.Close()) }
