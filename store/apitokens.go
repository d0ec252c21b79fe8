package store

import (
	"context"
	"fmt"
	"time"
)

// APIToken is the stored form of an admin API token: its SHA-256 hash (hex), never the token.
type APIToken struct {
	ID        int64     `gorm:"column:id;primaryKey"`
	Name      string    `gorm:"column:name"`
	Hash      string    `gorm:"column:hash"`
	CreatedAt time.Time `gorm:"column:created_at"`
}

// TableName tells gorm the table.
func (APIToken) TableName() string { return "api_tokens" }

// APITokenHash returns the stored hash of the token called name, or ErrNotFound.
func (s *Store) APITokenHash(ctx context.Context, name string) (string, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var t APIToken
	err := s.db.WithContext(ctx).Where("name = ?", name).Take(&t).Error
	if err != nil {
		return "", mapErr(fmt.Sprintf("store: api token %q", name), err)
	}
	return t.Hash, nil
}

// CreateAPIToken stores the hash of a new token called name; ErrConflict when one exists (another
// node made it first: read that one).
func (s *Store) CreateAPIToken(ctx context.Context, name, hash string) error {
	if err := validateName("name", name); err != nil {
		return err
	}
	if hash == "" {
		return invalid("hash", "must not be empty")
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Create(&APIToken{Name: name, Hash: hash, CreatedAt: s.now()}).Error
	return mapErr(fmt.Sprintf("store: create api token %q", name), err)
}
