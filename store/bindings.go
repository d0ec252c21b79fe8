package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm/clause"
)

// Bindings returns the live bindings of ext, highest q first, newest first among equals.
func (s *Store) Bindings(ctx context.Context, ext string) ([]Binding, error) {
	now := s.opt.now()
	v, _, ok, gen := s.bindings.get(ext)
	if ok {
		return liveBindings(v, now), nil
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var out []Binding
	err := s.db.WithContext(ctx).Where("extension = ? AND expires_at > ?", ext, s.now()).
		Order("q DESC, updated_at DESC, id").Find(&out).Error
	if err != nil {
		err = mapErr("store: bindings of "+ext, err)
		if v, ok := s.bindings.stale(ext); ok && errors.Is(err, ErrUnavailable) {
			return liveBindings(v, now), nil
		}
		return nil, err
	}
	s.bindings.put(ext, gen, out, true)
	return liveBindings(out, now), nil
}

// liveBindings copies the unexpired bindings, so callers never share the cached slice.
func liveBindings(bs []Binding, now time.Time) []Binding {
	out := make([]Binding, 0, len(bs))
	for _, b := range bs {
		if b.ExpiresAt.After(now) {
			out = append(out, b)
		}
	}
	return out
}

// PutBinding adds the binding or refreshes the existing one with the same extension and contact.
func (s *Store) PutBinding(ctx context.Context, b Binding) error {
	if err := b.validate(); err != nil {
		return err
	}
	now := s.now()
	b.ID = 0
	b.ExpiresAt = dbTime(b.ExpiresAt)
	b.CreatedAt, b.UpdatedAt = now, now
	if b.NodeID == "" {
		b.NodeID = s.opt.nodeID
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns: []clause.Column{{Name: "extension"}, {Name: "contact"}},
		DoUpdates: clause.AssignmentColumns([]string{
			"source", "transport", "expires_at", "call_id", "cseq", "user_agent", "q", "node_id", "updated_at",
		}),
	}).Create(&b).Error
	s.bindings.invalidate(b.Extension)
	return mapErr("store: put binding of "+b.Extension, err)
}

// DeleteBinding removes the binding of ext for contact.
func (s *Store) DeleteBinding(ctx context.Context, ext, contact string) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Where("extension = ? AND contact = ?", ext, contact).Delete(&Binding{}).Error
	s.bindings.invalidate(ext)
	return mapErr("store: delete binding of "+ext, err)
}

// DeleteBindings removes every binding of ext.
func (s *Store) DeleteBindings(ctx context.Context, ext string) (int64, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	res := s.db.WithContext(ctx).Where("extension = ?", ext).Delete(&Binding{})
	s.bindings.invalidate(ext)
	return res.RowsAffected, mapErr("store: delete bindings of "+ext, res.Error)
}

// PurgeExpired deletes expired bindings and returns how many went.
func (s *Store) PurgeExpired(ctx context.Context) (int64, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	res := s.db.WithContext(ctx).Where("expires_at <= ?", s.now()).Delete(&Binding{})
	if res.RowsAffected > 0 {
		s.bindings.invalidateAll()
	}
	return res.RowsAffected, mapErr("store: purge bindings", res.Error)
}

// LiveBindings returns every unexpired binding of every extension.
func (s *Store) LiveBindings(ctx context.Context) ([]Binding, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var out []Binding
	err := s.db.WithContext(ctx).Where("expires_at > ?", s.now()).
		Order("extension, q DESC, updated_at DESC, id").Find(&out).Error
	return out, mapErr("store: live bindings", err)
}

// loadBindings fills the binding cache after a (re)start, so the first calls to phones that
// registered before the restart are routed without a database round trip.
func (s *Store) loadBindings(ctx context.Context) error {
	gen := s.bindings.generation()
	all, err := s.LiveBindings(ctx)
	if err != nil {
		return err
	}
	byExt := make(map[string][]Binding)
	for _, b := range all {
		byExt[b.Extension] = append(byExt[b.Extension], b)
	}
	for ext, bs := range byExt {
		s.bindings.put(ext, gen, bs, true)
	}
	s.loaded.Store(int64(len(all)))
	if len(all) > 0 {
		s.opt.log.Info("store: registrations loaded", "bindings", len(all), "extensions", len(byExt))
	}
	return nil
}
