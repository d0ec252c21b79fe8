package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"gorm.io/gorm/clause"
)

// Node is one PBX serving from this database: a row its heartbeat refreshes every few seconds and
// its clean shutdown removes. A node whose LastSeen is old has died (or lost the database).
type Node struct {
	ID        string    `gorm:"primaryKey;column:id"`
	SIPAddr   string    `gorm:"column:sip_addr"`  // where the other nodes reach it over SIP
	HTTPAddr  string    `gorm:"column:http_addr"` // its admin API, metrics and health, if served
	Version   string    `gorm:"column:version"`
	StartedAt time.Time `gorm:"column:started_at"`
	LastSeen  time.Time `gorm:"column:last_seen"`
}

// TableName tells gorm the table.
func (Node) TableName() string { return "nodes" }

// Heartbeat writes n's row with LastSeen now, adding it on the first beat.
func (s *Store) Heartbeat(ctx context.Context, n Node) error {
	if err := validateName("node id", n.ID); err != nil {
		return err
	}
	n.StartedAt = dbTime(n.StartedAt)
	n.LastSeen = s.now()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "id"}},
		DoUpdates: clause.AssignmentColumns([]string{"sip_addr", "http_addr", "version", "started_at", "last_seen"}),
	}).Create(&n).Error
	return mapErr("store: heartbeat of node "+n.ID, err)
}

// RemoveNode deletes the row of node id (a node that stops cleanly); a missing row is not an error.
func (s *Store) RemoveNode(ctx context.Context, id string) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	return mapErr("store: remove node "+id, s.db.WithContext(ctx).Where("id = ?", id).Delete(&Node{}).Error)
}

// Nodes lists every node row, live or not, by ID.
func (s *Store) Nodes(ctx context.Context) ([]Node, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var out []Node
	err := s.db.WithContext(ctx).Order("id").Find(&out).Error
	return out, mapErr("store: nodes", err)
}

// Node returns the row of node id, or an error wrapping ErrNotFound.
func (s *Store) Node(ctx context.Context, id string) (*Node, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var n Node
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&n).Error
	if err != nil {
		return nil, mapErr("store: node "+id, err)
	}
	return &n, nil
}

// nonceKey is one generation of the shared digest nonce key.
type nonceKey struct {
	Generation int64     `gorm:"primaryKey;column:generation;autoIncrement:false"`
	Key        []byte    `gorm:"column:key"`
	CreatedAt  time.Time `gorm:"column:created_at"`
}

func (nonceKey) TableName() string { return "nonce_keys" }

// NonceKeyLen is the length of a nonce key.
const NonceKeyLen = 32

// NonceKey returns the shared HMAC key of a generation (a time slot the caller numbers), making
// one if no node has yet. Every node that asks for the same generation gets the same key: the
// first writer wins and the others read its key. Keys of generations older than
// keepGenerations below the asked one are deleted, so a stolen database copy holds no key that
// still signs.
func (s *Store) NonceKey(ctx context.Context, generation int64) ([]byte, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var k nonceKey
	err := s.db.WithContext(ctx).Where("generation = ?", generation).Take(&k).Error
	if err == nil {
		return k.Key, nil
	}
	if err = mapErr("store: nonce key", err); !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	k = nonceKey{Generation: generation, Key: make([]byte, NonceKeyLen), CreatedAt: s.now()}
	_, _ = rand.Read(k.Key)
	err = s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&k).Error
	if err != nil {
		return nil, mapErr("store: nonce key", err)
	}
	if err := s.db.WithContext(ctx).Where("generation = ?", generation).Take(&k).Error; err != nil {
		return nil, mapErr("store: nonce key", err)
	}
	s.db.WithContext(ctx).Where("generation < ?", generation-keepGenerations).Delete(&nonceKey{})
	return k.Key, nil
}

// keepGenerations is how many generations of nonce keys stay before the newest.
const keepGenerations = 2

// Ban is a source address banned until a time, by the node that saw its failures.
type Ban struct {
	IP        string    `gorm:"primaryKey;column:ip"`
	Until     time.Time `gorm:"column:until"`
	NodeID    string    `gorm:"column:node_id"`
	CreatedAt time.Time `gorm:"column:created_at"`
}

// TableName tells gorm the table.
func (Ban) TableName() string { return "bans" }

// PutBan bans ip until the given time for every node (a later ban of the same address replaces
// an earlier one).
func (s *Store) PutBan(ctx context.Context, ip string, until time.Time) error {
	b := Ban{IP: ip, Until: dbTime(until), NodeID: s.opt.nodeID, CreatedAt: s.now()}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "ip"}},
		DoUpdates: clause.AssignmentColumns([]string{"until", "node_id", "created_at"}),
	}).Create(&b).Error
	return mapErr("store: ban "+ip, err)
}

// LiftBan ends the ban of ip at once, for every node (each rereads the bans when told, or at its
// next heartbeat). ErrNotFound when no ban of ip is in force; ErrInvalid when ip is not an IP
// address.
func (s *Store) LiftBan(ctx context.Context, ip string) error {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return fmt.Errorf("store: lift ban: %w", invalid("ip", fmt.Sprintf("%q is not an IP address", ip)))
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	res := s.db.WithContext(ctx).Where("ip = ? AND until > ?", addr.Unmap().String(), s.now()).Delete(&Ban{})
	if res.Error != nil {
		return mapErr("store: lift ban "+ip, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("store: ban of %s: %w", ip, ErrNotFound)
	}
	return nil
}

// Bans returns the bans in force, and deletes those that have ended.
func (s *Store) Bans(ctx context.Context) ([]Ban, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	now := s.now()
	var out []Ban
	if err := s.db.WithContext(ctx).Where("until > ?", now).Order("ip").Find(&out).Error; err != nil {
		return nil, mapErr("store: bans", err)
	}
	s.db.WithContext(ctx).Where("until <= ?", now).Delete(&Ban{})
	return out, nil
}
