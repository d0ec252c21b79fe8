package pbx

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"

	"github.com/pbxkit/pbxkit/internal/callmedia"
)

// Voicemail prompts are WAV files (8 kHz mono) under the data directory's voicemail-prompts
// folder, one per name below. The PBX writes short tone sequences there for the ones missing, so
// voicemail works without recorded speech; an office replaces a file with a recording of its own
// (same name, 8 kHz mono WAV) and the PBX leaves it alone. A mailbox's own greeting is
// voicemail/NNN/greeting.wav; without it callers hear the default greeting prompt.
// voicemailPrompts is the prompts' folder in the data directory: beside voicemail/, so that no
// extension number names it (an extension "prompts" has its mailbox in voicemail/prompts).
const voicemailPrompts = "voicemail-prompts"

const (
	promptGreeting   = "greeting"   // "leave a message after the beep": three rising notes
	promptMailbox    = "mailbox"    // "mailbox number, then #": two equal notes
	promptPIN        = "pin"        // "PIN, then #": three short high notes
	promptInvalid    = "invalid"    // "wrong mailbox or PIN": two falling notes
	promptNoMessages = "nomessages" // "no (more) messages": one low note
	promptMenu       = "menu"       // "1 replay, 7 delete, 9 save, # next": two quick notes
	promptDeleted    = "deleted"    // two low notes
	promptSaved      = "saved"      // two rising high notes
	promptGoodbye    = "goodbye"    // three falling notes
	// promptUnavailable: "this message cannot be played": three short 440 Hz notes.
	promptUnavailable = "unavailable"
	// promptFull: "the mailbox is full": one long low note, twice.
	promptFull = "full"
)

// note is one tone of a generated prompt: freq Hz for ms milliseconds (freq 0: a pause).
type note struct {
	freq float64
	ms   int
}

// defaultPrompts are the generated prompts: distinct tone patterns between 330 and 880 Hz, all
// under a second and a half, well apart from the 1 kHz recording beep.
var defaultPrompts = map[string][]note{
	promptGreeting:    {{523, 200}, {0, 60}, {659, 200}, {0, 60}, {784, 300}, {0, 300}},
	promptMailbox:     {{659, 200}, {0, 100}, {659, 200}, {0, 200}},
	promptPIN:         {{784, 120}, {0, 80}, {784, 120}, {0, 80}, {784, 120}, {0, 200}},
	promptInvalid:     {{494, 250}, {0, 60}, {392, 400}, {0, 200}},
	promptNoMessages:  {{392, 600}, {0, 200}},
	promptMenu:        {{880, 100}, {0, 60}, {660, 100}, {0, 200}},
	promptDeleted:     {{330, 150}, {0, 60}, {330, 150}, {0, 200}},
	promptSaved:       {{660, 150}, {0, 60}, {880, 150}, {0, 200}},
	promptGoodbye:     {{784, 150}, {0, 50}, {659, 150}, {0, 50}, {523, 300}, {0, 200}},
	promptUnavailable: {{440, 150}, {0, 60}, {440, 150}, {0, 60}, {440, 150}, {0, 200}},
	promptFull:        {{349, 500}, {0, 150}, {349, 500}, {0, 200}},
}

// synthesize renders notes as 16-bit audio at 8 kHz, each note faded in and out over 5 ms so it
// starts and stops without a click.
func synthesize(notes []note) []int16 {
	const rate, amp, fade = 8000, 8000.0, 40
	var out []int16
	for _, n := range notes {
		count := n.ms * rate / 1000
		for i := range count {
			if n.freq == 0 {
				out = append(out, 0)
				continue
			}
			gain := math.Min(1, math.Min(float64(i)/fade, float64(count-1-i)/fade))
			out = append(out, int16(amp*gain*math.Sin(2*math.Pi*n.freq*float64(i)/rate)))
		}
	}
	return out
}

// writePrompts writes the generated prompts that are missing from dir.
func writePrompts(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("pbx: voicemail prompts: %w", err)
	}
	for name, notes := range defaultPrompts {
		path := filepath.Join(dir, name+".wav")
		if _, err := os.Stat(path); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("pbx: voicemail prompt %s: %w", name, err)
		}
		if err := callmedia.WriteWAVFile(path, synthesize(notes)); err != nil {
			return fmt.Errorf("pbx: voicemail prompt %s: %w", name, err)
		}
	}
	return nil
}
