package store

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// Mailbox PINs are kept as PBKDF2-HMAC-SHA256 hashes (RFC 8018) with a random 16-byte salt:
// "pbkdf2-sha256$ITERATIONS$SALT$HASH", salt and hash in unpadded base64. PBKDF2 is in Go's
// standard library (no new dependency, unlike bcrypt's golang.org/x/crypto) and its cost is a
// parameter kept with each hash, so it can be raised later without invalidating stored PINs.
//
// No hash makes a 4-digit PIN safe from someone holding a copy of the database: 10,000 guesses
// cost seconds even at this work factor. The hash keeps PINs out of database dumps, logs and the
// admin API; what protects a mailbox against guessing is the PBX's limit on PIN attempts per
// call.
const (
	pinScheme     = "pbkdf2-sha256"
	pinIterations = 100_000
	pinSaltLen    = 16
	pinKeyLen     = 32
	// MinPINLen and MaxPINLen bound a mailbox PIN's length (digits only).
	MinPINLen = 4
	MaxPINLen = 16
)

// ValidatePIN reports whether pin is a usable mailbox PIN: MinPINLen to MaxPINLen digits, which
// every phone's keypad can send.
func ValidatePIN(pin string) error {
	if len(pin) < MinPINLen || len(pin) > MaxPINLen {
		return invalid("vm_pin", fmt.Sprintf("must be %d to %d digits", MinPINLen, MaxPINLen))
	}
	for i := 0; i < len(pin); i++ {
		if pin[i] < '0' || pin[i] > '9' {
			return invalid("vm_pin", "must be digits only")
		}
	}
	return nil
}

// HashPIN returns the stored form of pin.
func HashPIN(pin string) (string, error) {
	if err := ValidatePIN(pin); err != nil {
		return "", err
	}
	salt := make([]byte, pinSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("store: pin salt: %w", err)
	}
	return hashPIN(pin, salt, pinIterations)
}

func hashPIN(pin string, salt []byte, iter int) (string, error) {
	key, err := pbkdf2.Key(sha256.New, pin, salt, iter, pinKeyLen)
	if err != nil {
		return "", fmt.Errorf("store: pin hash: %w", err)
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("%s$%d$%s$%s", pinScheme, iter, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// SetPIN sets the mailbox PIN; "" removes it.
func (e *Extension) SetPIN(pin string) error {
	if pin == "" {
		e.VMPINHash = ""
		return nil
	}
	h, err := HashPIN(pin)
	if err != nil {
		return err
	}
	e.VMPINHash = h
	return nil
}

// HasPIN reports whether the mailbox has a PIN.
func (e *Extension) HasPIN() bool { return e.VMPINHash != "" }

// CheckPIN reports whether pin is the mailbox PIN. A mailbox without a PIN matches no PIN.
func (e *Extension) CheckPIN(pin string) bool {
	parts := strings.Split(e.VMPINHash, "$")
	if len(parts) != 4 || parts[0] != pinScheme || pin == "" {
		return false
	}
	iter, err := strconv.Atoi(parts[1])
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[2])
	want, err2 := enc.DecodeString(parts[3])
	if err != nil || err1 != nil || err2 != nil || iter < 1 || iter > 10_000_000 {
		return false
	}
	key, err := pbkdf2.Key(sha256.New, pin, salt, iter, len(want))
	return err == nil && hmac.Equal(key, want)
}
