package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pbxkit/pbxkit/store"
)

// TestSettingsChangedElsewhere: a change of an extension made by another process sharing the
// database (here another Store, as the officepbx CLI is) reaches this Store's next look-ups long
// before its cache entries expire (an hour here): a new extension, a changed setting, a removed
// extension.
func TestSettingsChangedElsewhere(t *testing.T) {
	each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		pbx := open(t, dsn, store.WithCacheTTL(time.Hour))
		cli := open(t, dsn, store.WithCacheTTL(time.Hour))
		if _, err := pbx.Extension(ctx, "100"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("before: %v", err) // cached as not found
		}
		mustCreate(t, cli, "100")
		eventually(t, "the new extension", func() bool { _, err := pbx.Extension(ctx, "100"); return err == nil })

		on := true
		if _, err := cli.UpdateExtension(ctx, "100", store.ExtensionPatch{DND: &on}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "do not disturb", func() bool { e, err := pbx.Extension(ctx, "100"); return err == nil && e.DND })

		if err := cli.DeleteExtension(ctx, "100"); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the removal", func() bool {
			_, err := pbx.Extension(ctx, "100")
			return errors.Is(err, store.ErrNotFound)
		})
	})
}

// eventually polls cond for up to 3 s (the settings version is checked every 0.1 s).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s not seen by the other store", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
