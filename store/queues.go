package store

import (
	"context"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// CreateQueue adds q with its members. The name must be new; members must be extensions.
func (s *Store) CreateQueue(ctx context.Context, q *Queue) error {
	if err := q.validate(); err != nil {
		return err
	}
	for _, m := range q.Members {
		if err := ValidateNumber(m.Extension); err != nil {
			return err
		}
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	q.ID = 0
	for i := range q.Members {
		q.Members[i].ID, q.Members[i].QueueID = 0, 0
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return tx.Create(q).Error
	})
	return mapErr("store: create queue "+q.Name, err)
}

// Queue returns the named queue with its members, lowest penalty first.
func (s *Store) Queue(ctx context.Context, name string) (*Queue, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var q Queue
	err := s.db.WithContext(ctx).Preload("Members", func(db *gorm.DB) *gorm.DB {
		return db.Order("penalty, id")
	}).Where("name = ?", name).Take(&q).Error
	if err != nil {
		return nil, mapErr("store: queue "+name, err)
	}
	return &q, nil
}

// Queues lists every queue with its members, by name.
func (s *Store) Queues(ctx context.Context) ([]Queue, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var out []Queue
	err := s.db.WithContext(ctx).Preload("Members", func(db *gorm.DB) *gorm.DB {
		return db.Order("penalty, id")
	}).Order("name").Find(&out).Error
	return out, mapErr("store: list queues", err)
}

// DeleteQueue removes the named queue and its member list.
func (s *Store) DeleteQueue(ctx context.Context, name string) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	res := s.db.WithContext(ctx).Where("name = ?", name).Delete(&Queue{})
	if res.Error != nil {
		return mapErr("store: delete queue "+name, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("store: delete queue %s: %w", name, ErrNotFound)
	}
	return nil
}

// SetQueueMember adds m.Extension to the named queue or updates its penalty and pause state.
func (s *Store) SetQueueMember(ctx context.Context, queue string, m QueueMember) error {
	if err := ValidateNumber(m.Extension); err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var q Queue
		if err := tx.Where("name = ?", queue).Take(&q).Error; err != nil {
			return err
		}
		m.ID, m.QueueID = 0, q.ID
		return tx.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "queue_id"}, {Name: "extension"}},
			DoUpdates: clause.AssignmentColumns([]string{"penalty", "paused", "updated_at"}),
		}).Create(&m).Error
	})
	return mapErr("store: set member "+m.Extension+" of queue "+queue, err)
}

// RemoveQueueMember takes ext out of the named queue.
func (s *Store) RemoveQueueMember(ctx context.Context, queue, ext string) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	res := s.db.WithContext(ctx).
		Where("extension = ? AND queue_id IN (?)", ext, s.db.Model(&Queue{}).Select("id").Where("name = ?", queue)).
		Delete(&QueueMember{})
	if res.Error != nil {
		return mapErr("store: remove member "+ext+" of queue "+queue, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("store: remove member %s of queue %s: %w", ext, queue, ErrNotFound)
	}
	return nil
}
