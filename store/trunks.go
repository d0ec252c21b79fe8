package store

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Trunk is a SIP provider: calls to numbers that are no extension go out through it, and calls
// from its addresses come in without digest authentication.
//
// Password is stored as given: the PBX must compute digest answers to the provider's challenges,
// whose realm and algorithm it only learns from them (see migrations/*/00008_trunks.sql).
type Trunk struct {
	ID       int64  `gorm:"column:id;primaryKey"`
	Name     string `gorm:"column:name"`
	Host     string `gorm:"column:host"` // host or host:port (default port 5060)
	Username string `gorm:"column:username"`
	Password string `gorm:"column:password"`
	Register bool   `gorm:"column:register"` // keep a registration at the provider
	// CallerID is the From user of calls going out; "" keeps the calling extension's number.
	CallerID string `gorm:"column:caller_id"`
	// Prefix, when set, is what a dialled number must start with to go out through this trunk;
	// it is stripped before dialling.
	Prefix string `gorm:"column:prefix"`
	// RegState, RegDetail and RegAt are what the PBX last saw of the registration.
	RegState  string     `gorm:"column:reg_state"`
	RegDetail string     `gorm:"column:reg_detail"`
	RegAt     *time.Time `gorm:"column:reg_at"`
	CreatedAt time.Time  `gorm:"column:created_at"`
	UpdatedAt time.Time  `gorm:"column:updated_at"`
}

// TableName tells gorm the table.
func (Trunk) TableName() string { return "trunks" }

// DefaultSIPPort is the port of a trunk host given without one.
const DefaultSIPPort = 5060

// SplitTrunkHost splits a trunk's "host[:port]" and checks it: a host name or IP address (IPv6
// in brackets when a port follows) and a port 1-65535, 5060 when none is given.
func SplitTrunkHost(hostport string) (host string, port int, err error) {
	host, port = hostport, DefaultSIPPort
	if h, p, splitErr := net.SplitHostPort(hostport); splitErr == nil {
		n, convErr := strconv.Atoi(p)
		if convErr != nil || n < 1 || n > 65535 {
			return "", 0, invalid("host", fmt.Sprintf("%q: the port must be 1-65535", hostport))
		}
		host, port = h, n
	}
	if net.ParseIP(host) == nil && !validHostName(host) {
		return "", 0, invalid("host", fmt.Sprintf("%q is not a host name or IP address (with an optional :port)", hostport))
	}
	return host, port, nil
}

// validHostName reports whether s is a DNS host name: labels of letters, digits and '-'.
func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c < unicode.MaxASCII && (unicode.IsLetter(c) || unicode.IsDigit(c)) || c == '-') {
				return false
			}
		}
	}
	return true
}

// Validate checks the trunk as CreateTrunk will.
func (t *Trunk) Validate() error {
	if err := validateName("name", t.Name); err != nil {
		return err
	}
	if _, _, err := SplitTrunkHost(t.Host); err != nil {
		return err
	}
	for _, f := range []struct{ field, v string }{{"user", t.Username}, {"password", t.Password}} {
		if len(f.v) > 128 || strings.ContainsAny(f.v, "\"\\") || strings.ContainsFunc(f.v, unicode.IsControl) {
			return invalid(f.field, "must be at most 128 characters without quotes, backslashes or control characters")
		}
	}
	switch {
	case t.Username != "" && t.Password == "":
		return invalid("password", "a user needs a password")
	case t.Username == "" && t.Password != "":
		return invalid("user", "a password needs a user")
	case t.Register && t.Username == "":
		return invalid("register", "registering needs a user and a password")
	}
	if t.CallerID != "" && !dialString(t.CallerID) {
		return invalid("caller_id", fmt.Sprintf("%q: want a number (digits, optionally a leading +)", t.CallerID))
	}
	if t.Prefix != "" && !dialString(t.Prefix) {
		return invalid("prefix", fmt.Sprintf("%q: want digits (and * # +)", t.Prefix))
	}
	return nil
}

// dialString reports whether s is a short string of what a phone dials: digits, '*', '#', '+'.
func dialString(s string) bool {
	if len(s) > MaxNumberLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || c == '*' || c == '#' || c == '+') {
			return false
		}
	}
	return true
}

// CreateTrunk adds t. The name must be new (else ErrConflict).
func (s *Store) CreateTrunk(ctx context.Context, t *Trunk) error {
	if err := t.Validate(); err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	t.ID, t.RegState, t.RegDetail, t.RegAt = 0, "", "", nil
	return mapErr("store: create trunk "+t.Name, s.db.WithContext(ctx).Create(t).Error)
}

// Trunks lists every trunk by name.
func (s *Store) Trunks(ctx context.Context) ([]Trunk, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var out []Trunk
	err := s.db.WithContext(ctx).Order("name").Find(&out).Error
	return out, mapErr("store: list trunks", err)
}

// DeleteTrunk removes the named trunk.
func (s *Store) DeleteTrunk(ctx context.Context, name string) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	res := s.db.WithContext(ctx).Where("name = ?", name).Delete(&Trunk{})
	if res.Error != nil {
		return mapErr("store: delete trunk "+name, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("store: delete trunk %s: %w", name, ErrNotFound)
	}
	return nil
}

// SetTrunkState records what the PBX saw of the named trunk's registration ("registered",
// "failed", ...) and when. A trunk removed meanwhile is not an error.
func (s *Store) SetTrunkState(ctx context.Context, name, state, detail string) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	now := s.now()
	err := s.db.WithContext(ctx).Model(&Trunk{}).Where("name = ?", name).
		Updates(map[string]any{"reg_state": state, "reg_detail": detail, "reg_at": now}).Error
	return mapErr("store: trunk state "+name, err)
}
