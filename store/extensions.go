package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/pbxkit/pbxkit/migrations"
)

// CreateExtension adds e. The number must be new (else ErrConflict) and the credentials set with
// SetPassword. e.ID and the time stamps are filled in.
func (s *Store) CreateExtension(ctx context.Context, e *Extension) error {
	if err := e.validate(); err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	e.ID = 0
	err := s.db.WithContext(ctx).Create(e).Error
	s.exts.invalidate(e.Number)
	if err != nil {
		return mapErr(fmt.Sprintf("store: create extension %s", e.Number), err)
	}
	s.bumpSettings(ctx)
	return nil
}

// Extension returns the extension with that number from the cache or the database. Look-ups
// that miss at the same time share one query (under load, every call arriving while an entry
// was expired queued its own query behind the others).
func (s *Store) Extension(ctx context.Context, number string) (*Extension, error) {
	if ValidateNumber(number) != nil {
		return nil, fmt.Errorf("store: extension %q: %w", number, ErrNotFound)
	}
	v, found, ok, gen := s.exts.get(number)
	if !ok {
		r, err, _ := s.extFill.Do(number, func() (any, error) {
			return s.loadExtension(context.WithoutCancel(ctx), number, gen)
		})
		if err != nil {
			return nil, err
		}
		f := r.(extensionFill)
		v, found = f.e, f.found
	}
	if !found {
		return nil, fmt.Errorf("store: extension %s: %w", number, ErrNotFound)
	}
	return &v, nil
}

type extensionFill struct {
	e     Extension
	found bool
}

// loadExtension reads an extension from the database into the cache (a stale entry stands in
// while the database is away).
func (s *Store) loadExtension(ctx context.Context, number string, gen uint64) (extensionFill, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var e Extension
	err := s.db.WithContext(ctx).Where("number = ?", number).Take(&e).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		s.exts.put(number, gen, Extension{}, false)
		return extensionFill{}, nil
	case err != nil:
		err = mapErr("store: extension "+number, err)
		if v, ok := s.exts.stale(number); ok && errors.Is(err, ErrUnavailable) {
			return extensionFill{e: v, found: true}, nil
		}
		return extensionFill{}, err
	}
	s.exts.put(number, gen, e, true)
	return extensionFill{e: e, found: true}, nil
}

// Extensions lists every extension by number.
func (s *Store) Extensions(ctx context.Context) ([]Extension, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var out []Extension
	err := s.db.WithContext(ctx).Order("number").Find(&out).Error
	return out, mapErr("store: list extensions", err)
}

// PickupGroup returns the numbers of the enabled extensions in pickup group group, in order; none
// for "".
func (s *Store) PickupGroup(ctx context.Context, group string) ([]string, error) {
	if group == "" {
		return nil, nil
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var out []string
	err := s.db.WithContext(ctx).Model(&Extension{}).Where("pickup_group = ? AND enabled = ?", group, true).
		Order("number").Pluck("number", &out).Error
	return out, mapErr("store: pickup group "+group, err)
}

// UpdateExtension applies p to the extension with that number and returns the result.
func (s *Store) UpdateExtension(ctx context.Context, number string, p ExtensionPatch) (*Extension, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var e Extension
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Clauses(s.forUpdate()...).Where("number = ?", number).Take(&e).Error; err != nil {
			return err
		}
		if err := p.Apply(&e); err != nil {
			return err
		}
		return tx.Save(&e).Error
	})
	s.exts.invalidate(number)
	if errors.Is(err, ErrInvalid) {
		return nil, err
	}
	if err != nil {
		return nil, mapErr("store: update extension "+number, err)
	}
	s.bumpSettings(ctx)
	return &e, nil
}

func (s *Store) forUpdate() []clause.Expression {
	if s.dialect == migrations.Postgres {
		return []clause.Expression{clause.Locking{Strength: "UPDATE"}}
	}
	return nil
}

// DeleteExtension removes the extension with its bindings, queue memberships and voicemail
// messages: their WAV files too, and the mailbox's folder (voicemail/NUMBER, with a greeting.wav
// in it) when messages name it, so a new extension with the number starts with none of it.
func (s *Store) DeleteExtension(ctx context.Context, number string) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var paths []string
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// The row locked first: a message filed meanwhile waits, and its path is read below.
		var e Extension
		if err := tx.Clauses(s.forUpdate()...).Where("number = ?", number).Take(&e).Error; err != nil {
			return err
		}
		if err := tx.Model(&VoicemailMessage{}).Where("mailbox = ?", number).Pluck("path", &paths).Error; err != nil {
			return err
		}
		return tx.Where("number = ?", number).Delete(&Extension{}).Error
	})
	s.exts.invalidate(number)
	s.bindings.invalidate(number)
	if err != nil {
		return mapErr("store: delete extension "+number, err)
	}
	s.bumpSettings(ctx)
	if len(paths) > 0 {
		s.voicemailChanged(ctx)
	}
	s.removeMailboxFiles(number, paths)
	return nil
}

// removeMailboxFiles removes a deleted extension's message files, then the folders holding them
// that are its mailbox's (named after the number: voicemail/NUMBER), greeting and all.
func (s *Store) removeMailboxFiles(number string, paths []string) {
	folders := map[string]bool{}
	for _, p := range paths {
		if err := s.removeFile(p); err != nil {
			s.opt.log.Warn("voicemail file of a removed extension left behind", "ext", number, "path", p, "error", err)
		}
		if dir := filepath.Dir(p); filepath.Base(dir) == number && filepath.IsAbs(dir) {
			folders[dir] = true
		}
	}
	for dir := range folders {
		if err := os.RemoveAll(dir); err != nil {
			s.opt.log.Warn("mailbox folder of a removed extension left behind", "ext", number, "path", dir, "error", err)
		}
	}
}
