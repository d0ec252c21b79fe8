package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// CreateQueue adds q with its members. The name must be new; members must be extensions.
func (s *Store) CreateQueue(ctx context.Context, q *Queue) error {
	if err := q.validate(); err != nil {
		return err
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

// memberOrder is the order of a queue's members: their position, then when they joined.
func memberOrder(db *gorm.DB) *gorm.DB { return db.Order("position, id") }

// Queue returns the named queue with its members in the queue's order (Position).
func (s *Store) Queue(ctx context.Context, name string) (*Queue, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var q Queue
	err := s.db.WithContext(ctx).Preload("Members", memberOrder).Where("name = ?", name).Take(&q).Error
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
	err := s.db.WithContext(ctx).Preload("Members", memberOrder).Order("name").Find(&out).Error
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

// SetQueueMember adds m.Extension to the named queue or updates its position, penalty and state.
func (s *Store) SetQueueMember(ctx context.Context, queue string, m QueueMember) error {
	if err := m.validate(); err != nil {
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
			DoUpdates: clause.AssignmentColumns([]string{"position", "penalty", "paused", "pause_reason", "logged_out", "updated_at"}),
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

// QueueMemberPatch changes an agent's state; nil fields stay as they are.
type QueueMemberPatch struct {
	Paused      *bool
	PauseReason *string // kept only while paused: unpausing clears it
	LoggedOut   *bool
	Penalty     *int
}

func (p QueueMemberPatch) columns(now time.Time) (map[string]any, error) {
	cols := map[string]any{}
	if p.Paused != nil {
		cols["paused"] = *p.Paused
		if !*p.Paused {
			cols["pause_reason"] = ""
		}
	}
	if p.PauseReason != nil && (p.Paused == nil || *p.Paused) {
		if err := validateReason(*p.PauseReason); err != nil {
			return nil, err
		}
		cols["pause_reason"] = *p.PauseReason
	}
	if p.LoggedOut != nil {
		cols["logged_out"] = *p.LoggedOut
	}
	if p.Penalty != nil {
		if *p.Penalty < 0 {
			return nil, invalid("penalty", "must not be negative")
		}
		cols["penalty"] = *p.Penalty
	}
	if len(cols) == 0 {
		return nil, invalid("member", "nothing to change")
	}
	cols["updated_at"] = now
	return cols, nil
}

// UpdateQueueMembers changes ext's state as a member of the named queue, or of every queue it is
// a member of when queue is "" (a feature code pausing the caller everywhere). It returns how
// many memberships it changed, and an error wrapping ErrNotFound when ext is a member of no such
// queue.
func (s *Store) UpdateQueueMembers(ctx context.Context, queue, ext string, p QueueMemberPatch) (int64, error) {
	cols, err := p.columns(s.now())
	if err != nil {
		return 0, err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	db := s.db.WithContext(ctx).Model(&QueueMember{}).Where("extension = ?", ext)
	what := "store: update member " + ext + " of every queue"
	if queue != "" {
		db = db.Where("queue_id IN (?)", s.db.Model(&Queue{}).Select("id").Where("name = ?", queue))
		what = "store: update member " + ext + " of queue " + queue
	}
	res := db.Updates(cols)
	if res.Error != nil {
		return 0, mapErr(what, res.Error)
	}
	if res.RowsAffected == 0 {
		return 0, fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return res.RowsAffected, nil
}

// Membership is an agent's place in one queue.
type Membership struct {
	Queue       string `gorm:"column:queue"`
	QueueMember `gorm:"embedded"`
}

// QueueMemberships lists the queues ext is a member of, by queue name, with its state in each.
func (s *Store) QueueMemberships(ctx context.Context, ext string) ([]Membership, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var out []Membership
	err := s.db.WithContext(ctx).Table("queue_members").
		Select("queues.name AS queue, queue_members.*").
		Joins("JOIN queues ON queues.id = queue_members.queue_id").
		Where("queue_members.extension = ?", ext).Order("queues.name").Scan(&out).Error
	return out, mapErr("store: memberships of "+ext, err)
}
