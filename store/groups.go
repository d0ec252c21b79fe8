package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Ring group strategies.
const (
	GroupParallel = "parallel" // every member rings at once; the first to answer takes the call
	GroupHunt     = "hunt"     // one member after the other, in order, each for the member timeout
)

// GroupStrategies lists every ring group strategy.
var GroupStrategies = []string{GroupParallel, GroupHunt}

// MaxGroupMembers is the most members a ring group may have.
const MaxGroupMembers = 64

// RingGroup is a number that rings its member extensions, in parallel or in turn (hunt).
type RingGroup struct {
	ID            int64             `gorm:"column:id;primaryKey"`
	Number        string            `gorm:"column:number"`
	Strategy      string            `gorm:"column:strategy"`
	MemberTimeout int               `gorm:"column:member_timeout"` // seconds each member rings (hunt) or all ring (parallel); 0 = the PBX's ring timeout
	Members       []RingGroupMember `gorm:"foreignKey:GroupID"`
	CreatedAt,
	UpdatedAt time.Time
}

// TableName tells gorm the table.
func (RingGroup) TableName() string { return "ring_groups" }

// RingGroupMember is one extension of a ring group; Position orders a hunt.
type RingGroupMember struct {
	ID        int64  `gorm:"column:id;primaryKey"`
	GroupID   int64  `gorm:"column:group_id"`
	Extension string `gorm:"column:extension"`
	Position  int    `gorm:"column:position"`
	CreatedAt,
	UpdatedAt time.Time
}

// TableName tells gorm the table.
func (RingGroupMember) TableName() string { return "ring_group_members" }

func (g *RingGroup) validate() error {
	if err := ValidateNumber(g.Number); err != nil {
		return err
	}
	switch g.Strategy {
	case "":
		g.Strategy = GroupParallel
	case GroupParallel, GroupHunt:
	default:
		return invalid("strategy", fmt.Sprintf("%q is not parallel or hunt", g.Strategy))
	}
	if g.MemberTimeout < 0 || g.MemberTimeout > 3600 {
		return invalid("member_timeout", "must be 0 to 3600 seconds")
	}
	if len(g.Members) == 0 || len(g.Members) > MaxGroupMembers {
		return invalid("members", fmt.Sprintf("a ring group needs 1 to %d members", MaxGroupMembers))
	}
	seen := map[string]bool{}
	for _, m := range g.Members {
		if err := ValidateNumber(m.Extension); err != nil {
			return err
		}
		if seen[m.Extension] {
			return invalid("members", fmt.Sprintf("%s is listed twice", m.Extension))
		}
		seen[m.Extension] = true
	}
	return nil
}

// CreateGroup adds g with its members, in the order given. The number must be new and must not
// be an extension's; members must be extensions.
func (s *Store) CreateGroup(ctx context.Context, g *RingGroup) error {
	if err := g.validate(); err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	g.ID = 0
	for i := range g.Members {
		g.Members[i].ID, g.Members[i].GroupID, g.Members[i].Position = 0, 0, i
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&Extension{}).Where("number = ?", g.Number).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%s is an extension's number: %w", g.Number, ErrConflict)
		}
		return tx.Create(g).Error
	})
	return mapErr("store: create ring group "+g.Number, err)
}

func groupMemberOrder(db *gorm.DB) *gorm.DB { return db.Order("position, id") }

// Group returns the ring group with that number, members in order, or an error wrapping
// ErrNotFound.
func (s *Store) Group(ctx context.Context, number string) (*RingGroup, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var g RingGroup
	err := s.db.WithContext(ctx).Preload("Members", groupMemberOrder).Where("number = ?", number).Take(&g).Error
	if err != nil {
		return nil, mapErr("store: ring group "+number, err)
	}
	return &g, nil
}

// Groups lists every ring group with its members, by number.
func (s *Store) Groups(ctx context.Context) ([]RingGroup, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var out []RingGroup
	err := s.db.WithContext(ctx).Preload("Members", groupMemberOrder).Order("number").Find(&out).Error
	return out, mapErr("store: list ring groups", err)
}

// DeleteGroup removes the ring group with that number.
func (s *Store) DeleteGroup(ctx context.Context, number string) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	res := s.db.WithContext(ctx).Where("number = ?", number).Delete(&RingGroup{})
	if res.Error != nil {
		return mapErr("store: delete ring group "+number, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("store: delete ring group %s: %w", number, ErrNotFound)
	}
	return nil
}
