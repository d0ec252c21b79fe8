package store

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// MaxNumberLen is the longest extension number or queue name accepted.
const MaxNumberLen = 64

// validName reports whether s has only digits, ASCII letters, '.', '-' and '_'. The set keeps
// numbers safe inside a SIP URI user part without escaping (RFC 3261 §25.1 "unreserved"), in Lua
// scripts and in log lines. A loop, not a regexp: it runs on every look-up of a call.
func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ValidateNumber reports whether number is a usable extension number.
func ValidateNumber(number string) error {
	return validateName("number", number)
}

func validateName(field, s string) error {
	switch {
	case s == "":
		return invalid(field, "must not be empty")
	case s == "." || s == "..":
		// As a mailbox folder name (voicemail/NNN) they would be the voicemail folder or the
		// data directory itself.
		return invalid(field, "must not be . or ..")
	case len(s) > MaxNumberLen:
		return invalid(field, fmt.Sprintf("is longer than %d characters", MaxNumberLen))
	case !validName(s):
		return invalid(field, fmt.Sprintf("%q may contain only digits, letters, '.', '-' and '_'", s))
	}
	return nil
}

// ValidateTarget reports whether t is a usable forwarding target: empty (no forwarding), an
// extension number, or a sip:/sips: URI.
func ValidateTarget(field, t string) error {
	if t == "" {
		return nil
	}
	lower := strings.ToLower(t)
	if strings.HasPrefix(lower, "sip:") || strings.HasPrefix(lower, "sips:") {
		rest := t[strings.IndexByte(t, ':')+1:]
		if rest == "" || strings.ContainsAny(rest, " \t\r\n<>\"") {
			return invalid(field, fmt.Sprintf("%q is not a valid SIP URI", t))
		}
		return nil
	}
	if err := validateName(field, t); err != nil {
		return invalid(field, fmt.Sprintf("%q is neither an extension number nor a sip: URI", t))
	}
	return nil
}

// Extension is one phone account of the PBX.
//
// Passwords are never stored: only the digest HA1 values for the extension's realm, for MD5
// (RFC 2617) and SHA-256 (RFC 8760). Changing the realm therefore needs a new password; SetPassword
// computes both hashes.
type Extension struct {
	ID              int64  `gorm:"column:id;primaryKey"`
	Number          string `gorm:"column:number"`
	Name            string `gorm:"column:name"`
	Realm           string `gorm:"column:realm"`
	HA1MD5          string `gorm:"column:ha1_md5"`
	HA1SHA256       string `gorm:"column:ha1_sha256"`
	Enabled         bool   `gorm:"column:enabled"`
	DND             bool   `gorm:"column:dnd"`
	ForwardAlways   string `gorm:"column:forward_always"`
	ForwardBusy     string `gorm:"column:forward_busy"`
	ForwardNoAnswer string `gorm:"column:forward_noanswer"`
	RingTimeout     int    `gorm:"column:ring_timeout"` // seconds; 0 means the PBX default
	// PickupGroup names the extension's pickup group ("" none): its members answer each other's
	// ringing calls with the group pickup code.
	PickupGroup string `gorm:"column:pickup_group"`
	// Voicemail switches the extension's mailbox on: default routing sends calls it does not
	// answer there, and its owner hears the messages with the voicemail feature codes.
	Voicemail bool `gorm:"column:voicemail"`
	// VMPINHash is the mailbox PIN as HashPIN keeps it ("" when none is set); SetPIN sets it.
	VMPINHash string `gorm:"column:vm_pin"`
	// Record records every call to or from the extension under default routing (a stereo WAV
	// file per call, named in the call's record).
	Record    bool      `gorm:"column:record"`
	CreatedAt time.Time `gorm:"column:created_at"`
	UpdatedAt time.Time `gorm:"column:updated_at"`
}

// TableName tells gorm the table; the schema itself comes from migrations/.
func (Extension) TableName() string { return "extensions" }

// SetPassword replaces the stored credentials with HA1 hashes of password for realm.
func (e *Extension) SetPassword(realm, password string) error {
	if realm == "" {
		return invalid("realm", "must not be empty")
	}
	if password == "" {
		return invalid("password", "must not be empty")
	}
	e.Realm = realm
	e.HA1MD5 = HA1(AlgMD5, e.Number, realm, password)
	e.HA1SHA256 = HA1(AlgSHA256, e.Number, realm, password)
	return nil
}

// HA1 returns the stored hash for the digest algorithm alg ("MD5" or "SHA-256", case-insensitive,
// with or without the "-sess" suffix), or "" when there is none.
func (e *Extension) HA1(alg string) string {
	switch normalizeAlg(alg) {
	case AlgMD5:
		return e.HA1MD5
	case AlgSHA256:
		return e.HA1SHA256
	}
	return ""
}

// CheckPassword reports whether password matches the stored MD5 and SHA-256 credentials.
func (e *Extension) CheckPassword(password string) bool {
	if e.HA1MD5 == "" || e.HA1SHA256 == "" {
		return false
	}
	return equalHex(e.HA1MD5, HA1(AlgMD5, e.Number, e.Realm, password)) &&
		equalHex(e.HA1SHA256, HA1(AlgSHA256, e.Number, e.Realm, password))
}

func (e *Extension) validate() error {
	if err := ValidateNumber(e.Number); err != nil {
		return err
	}
	if len(e.Name) > 128 || strings.ContainsAny(e.Name, "\r\n\"") {
		return invalid("name", "must be at most 128 characters without quotes or line breaks")
	}
	if e.HA1MD5 == "" || e.HA1SHA256 == "" {
		return invalid("password", "must be set")
	}
	for _, f := range []struct{ field, v string }{
		{"forward_always", e.ForwardAlways},
		{"forward_busy", e.ForwardBusy},
		{"forward_noanswer", e.ForwardNoAnswer},
	} {
		if err := ValidateTarget(f.field, f.v); err != nil {
			return err
		}
	}
	if len(e.PickupGroup) > 64 || strings.ContainsAny(e.PickupGroup, "\r\n\"' ") {
		return invalid("pickup_group", "must be at most 64 characters without spaces, quotes or line breaks")
	}
	if e.RingTimeout < 0 || e.RingTimeout > 600 {
		return invalid("ring_timeout", "must be between 0 and 600 seconds")
	}
	return nil
}

// ExtensionPatch changes some fields of an extension; nil fields stay as they are.
type ExtensionPatch struct {
	Name            *string
	Password        *string // hashed with the extension's realm (or Realm when also given)
	Realm           *string // requires Password: the stored hashes depend on the realm
	Enabled         *bool
	DND             *bool
	ForwardAlways   *string
	ForwardBusy     *string
	ForwardNoAnswer *string
	RingTimeout     *int
	PickupGroup     *string
	Voicemail       *bool
	// VMPIN is a new mailbox PIN (digits), stored hashed; "" removes the PIN.
	VMPIN  *string
	Record *bool
}

// Apply sets the fields p carries on e (hashing a new password for e's realm, or p's) and
// checks the result; UpdateExtension applies a patch this way, and a new extension can be
// filled from one before CreateExtension.
func (p ExtensionPatch) Apply(e *Extension) error {
	if p.Name != nil {
		e.Name = *p.Name
	}
	if p.Realm != nil && p.Password == nil {
		return invalid("realm", "changing the realm needs a new password")
	}
	if p.Password != nil {
		realm := e.Realm
		if p.Realm != nil {
			realm = *p.Realm
		}
		if err := e.SetPassword(realm, *p.Password); err != nil {
			return err
		}
	}
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = *src
		}
	}
	set(&e.ForwardAlways, p.ForwardAlways)
	set(&e.ForwardBusy, p.ForwardBusy)
	set(&e.ForwardNoAnswer, p.ForwardNoAnswer)
	set(&e.PickupGroup, p.PickupGroup)
	if p.Enabled != nil {
		e.Enabled = *p.Enabled
	}
	if p.DND != nil {
		e.DND = *p.DND
	}
	if p.RingTimeout != nil {
		e.RingTimeout = *p.RingTimeout
	}
	if p.Voicemail != nil {
		e.Voicemail = *p.Voicemail
	}
	if p.VMPIN != nil {
		if err := e.SetPIN(*p.VMPIN); err != nil {
			return err
		}
	}
	if p.Record != nil {
		e.Record = *p.Record
	}
	return e.validate()
}

// Binding is one registered contact of an extension (RFC 3261 §10.3): a REGISTER's Contact with
// where it came from, so that requests reach the phone through NAT (RFC 3581).
type Binding struct {
	ID        int64     `gorm:"column:id;primaryKey"`
	Extension string    `gorm:"column:extension"`
	Contact   string    `gorm:"column:contact"`   // the Contact URI as the phone sent it
	Source    string    `gorm:"column:source"`    // "ip:port" the REGISTER came from
	Transport string    `gorm:"column:transport"` // "udp", "tcp", ...
	ExpiresAt time.Time `gorm:"column:expires_at"`
	CallID    string    `gorm:"column:call_id"`
	CSeq      uint32    `gorm:"column:cseq"`
	UserAgent string    `gorm:"column:user_agent"`
	Q         float64   `gorm:"column:q"`
	NodeID    string    `gorm:"column:node_id"` // the PBX node that holds the connection
	CreatedAt time.Time `gorm:"column:created_at"`
	UpdatedAt time.Time `gorm:"column:updated_at"`
}

// TableName tells gorm the table.
func (Binding) TableName() string { return "registrations" }

func (b *Binding) validate() error {
	if err := ValidateNumber(b.Extension); err != nil {
		return err
	}
	if b.Contact == "" || len(b.Contact) > 1024 {
		return invalid("contact", "must be 1 to 1024 characters")
	}
	if b.ExpiresAt.IsZero() {
		return invalid("expires_at", "must be set")
	}
	if b.Q < 0 || b.Q > 1 {
		return invalid("q", "must be between 0 and 1")
	}
	return nil
}

// Queue strategies: how a queued caller is offered to the members.
const (
	StrategyRingAll     = "ringall"     // every free member at once
	StrategyRoundRobin  = "roundrobin"  // one member at a time, continuing after the last one tried
	StrategyLeastRecent = "leastrecent" // the member whose last call ended longest ago
	StrategyFewestCalls = "fewestcalls" // the member who took the fewest calls
	StrategyRandom      = "random"
	StrategyLinear      = "linear" // one at a time, always in member order
)

// Strategies lists every queue strategy name.
var Strategies = []string{StrategyRingAll, StrategyRoundRobin, StrategyLeastRecent, StrategyFewestCalls, StrategyRandom, StrategyLinear}

// Queue is a call queue: callers wait with hold audio until a member answers.
type Queue struct {
	ID          int64         `gorm:"column:id;primaryKey"`
	Name        string        `gorm:"column:name"`
	Strategy    string        `gorm:"column:strategy"`
	MaxWait     int           `gorm:"column:max_wait"`     // seconds a caller waits at most; 0 = no limit
	MaxLen      int           `gorm:"column:max_len"`      // callers waiting at most; 0 = no limit
	Announce    int           `gorm:"column:announce"`     // seconds between position announcements (182); 0 = once
	Music       string        `gorm:"column:music"`        // WAV file for hold audio, "" or "tone"
	WrapUp      int           `gorm:"column:wrapup"`       // seconds an agent is left alone after a queue call
	RingTimeout int           `gorm:"column:ring_timeout"` // seconds members ring per attempt; 0 = the PBX's default
	Members     []QueueMember `gorm:"foreignKey:QueueID"`
	CreatedAt,
	UpdatedAt time.Time
}

// TableName tells gorm the table.
func (Queue) TableName() string { return "queues" }

func (q *Queue) validate() error {
	if err := validateName("name", q.Name); err != nil {
		return err
	}
	if q.Strategy == "" {
		q.Strategy = StrategyRingAll
	}
	if !slices.Contains(Strategies, q.Strategy) {
		return invalid("strategy", fmt.Sprintf("%q is not one of %s", q.Strategy, strings.Join(Strategies, ", ")))
	}
	if q.MaxWait < 0 || q.MaxLen < 0 || q.Announce < 0 || q.WrapUp < 0 || q.RingTimeout < 0 {
		return invalid("queue", "max wait, max length, announce interval, wrap-up and ring timeout must not be negative")
	}
	for _, m := range q.Members {
		if err := m.validate(); err != nil {
			return err
		}
	}
	return nil
}

// QueueMember is an extension that answers a queue's calls: an agent. A new member is logged in
// and not paused.
type QueueMember struct {
	ID          int64  `gorm:"column:id;primaryKey"`
	QueueID     int64  `gorm:"column:queue_id"`
	Extension   string `gorm:"column:extension"`
	Position    int    `gorm:"column:position"` // place in the queue's order (linear, roundrobin)
	Penalty     int    `gorm:"column:penalty"`  // tier: lower tiers are offered first
	Paused      bool   `gorm:"column:paused"`
	PauseReason string `gorm:"column:pause_reason"`
	LoggedOut   bool   `gorm:"column:logged_out"`
	CreatedAt,
	UpdatedAt time.Time
}

// TableName tells gorm the table.
func (QueueMember) TableName() string { return "queue_members" }

// MaxPauseReason is the longest pause reason kept.
const MaxPauseReason = 64

func (m QueueMember) validate() error {
	if err := ValidateNumber(m.Extension); err != nil {
		return err
	}
	if m.Penalty < 0 || m.Position < 0 {
		return invalid("member", "penalty and position must not be negative")
	}
	return validateReason(m.PauseReason)
}

// validateReason keeps a pause reason printable and short: it is shown in lists and logs.
func validateReason(r string) error {
	if len(r) > MaxPauseReason || strings.ContainsFunc(r, func(c rune) bool { return c < ' ' || c == 0x7f }) {
		return invalid("reason", fmt.Sprintf("must be at most %d printable characters", MaxPauseReason))
	}
	return nil
}
