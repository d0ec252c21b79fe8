package media

import (
	"fmt"
	"strings"
	"time"
)

// HoldTone is the soft tone a parked or held party hears when no WAV file is given: 440 Hz,
// a quarter of a second every three seconds.
func HoldTone(c Codec) Source { return Tone(c, 250*time.Millisecond, 2750*time.Millisecond, 440) }

// G711Of returns the G.711 codec the PBX plays in to a side whose description is body: the first
// PCMU or PCMA of its audio stream.
func G711Of(body []byte) (Codec, error) {
	sd, err := ParseSDP(body)
	if err != nil {
		return Codec{}, err
	}
	st, ok := AudioStream(sd)
	if !ok {
		return Codec{}, ErrNoCodec
	}
	m := sd.MediaDescriptions[st.Index]
	for _, f := range m.MediaName.Formats {
		switch strings.ToUpper(codecName(m, f)) {
		case "PCMU":
			return PCMU, nil
		case "PCMA":
			return PCMA, nil
		}
	}
	return Codec{}, fmt.Errorf("%w: the PBX plays G.711 and the description has none", ErrNoCodec)
}
