package store_test

import (
	"errors"
	"testing"

	"github.com/pbxkit/pbxkit/store"
)

// TestValidateNumberDots: "." and ".." are refused as numbers (as a mailbox folder they would be
// the voicemail folder or the data directory); names with dots in them stay valid.
func TestValidateNumberDots(t *testing.T) {
	for _, n := range []string{".", ".."} {
		if err := store.ValidateNumber(n); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("ValidateNumber(%q) = %v, want ErrInvalid", n, err)
		}
	}
	for _, n := range []string{"1.2", ".x", "prompts", "..."} {
		if err := store.ValidateNumber(n); err != nil {
			t.Errorf("ValidateNumber(%q) = %v, want valid", n, err)
		}
	}
}
