// Package media relays a call's RTP and RTCP through the PBX, so each side sees only the PBX's
// address (RFC 3550 RTP, RFC 4566/3264 SDP offer and answer), and plays the PBX's own audio.
//
// A Relay (NewRelay) makes one Session per call from a Ports range: two RTP/RTCP port pairs, one
// facing each side. Session.Rewrite takes the session description one side sent and returns the
// one the other side gets: the PBX's address and the port facing that side, codecs filtered to
// the allowed list (488 material when none is left: ErrNoCodec), ICE and address-revealing
// attributes dropped, one audio stream kept. ParseSDP reads descriptions leniently (phones do not
// keep RFC 4566's line order), AudioStream extracts where a side wants its audio.
//
// Port pairs are picked at random from the range, and a released pair rests before it is reused
// (Ports). A side's packets are taken from one source only (strict source learning, source.go):
// the address its description names, taken at once; or, behind NAT, a source that passes a
// probation within Config.LatchWindow of the description (from another host only after
// Config.LatchDelay, and never when the description names a public address); then locked until a
// new description. Everything else is dropped and counted (Stats.Strangers): a host that finds
// or sprays the relay's ports hears nothing and injects nothing, but for a race it can win before
// a phone behind NAT sends. docs/architecture.md has the threat model: what this stops and what
// it does not.
//
// The session counts each side's packets, loss and jitter (in each payload type's clock rate) and
// reads the RTCP it relays unchanged for the phones' own reception reports and the round trip
// (Stats); it reports RFC 4733 key presses (OnDTMF) and closes Idle when one side expected to send
// (neither on hold nor held) sent nothing for Config.Timeout, IdleSide naming it (idle.go).
//
// PBX audio: EarlyAnswer gives the SDP of the PBX's own early answer toward the caller, and Play
// sends a Source (Ringback, a tone, a WAV file via LoadWAV; G.711) paced at 20 ms from the port
// the caller already knows, so a callee answering later takes over that port with no new offer.
//
// Applications: Attach makes an App the PBX's own end of one side (an IVR, a recorder, a
// conference mixer): the side's audio reaches App.Receive decoded to 16-bit PCM instead of the
// other side, and App.Send's frames go to the side every 20 ms from the port facing it; detaching
// lets relaying go on through the same port. Sound gives the tones and WAV files an IVR plays as
// PCM (Samples), WriteWAV writes a recording.
// Recording: Session.StartRecording writes both sides of the call into one stereo WAV file (the
// caller on the left channel, the callee on the right, 16-bit PCM at 8 kHz), each side's audio
// placed by its RTP timestamps so the two stay aligned; the relay only copies each packet into a
// ring that a writer goroutine of the recording empties (record.go, recorder.go). G.711 only:
// other codecs are refused with ErrUndecodable. StopRecording, or Close, completes the file.
//
// Conference rooms: a Room (NewRoom) mixes the audio of its participants on the PBX. Each
// Participant is fed what its phone sends (ReceiveRTP, or ReceivePayload for a source without RTP
// timestamps) into a small jitter buffer; one clock per room takes a frame from every participant
// every 20 ms and sends each one the sum of everyone else's (mix-minus, saturated to 16 bits) in
// its own G.711 law through ParticipantConfig.Send, for which an RTPStream makes the RTP packets.
// Muted participants are heard by nobody but hear the room; a short beep tells everyone when
// someone joins or leaves. A frame allocates nothing; the room's goroutine ends with its last
// participant (docs/benchmarks.md has the cost per participant). Conferences keeps a PBX's rooms
// by name; who joins and leaves (hung up, kicked, the conference ended), mutes and unmutes, and a
// room's end are told in order to an observer (RoomConfig.OnChange, Conferences.OnChange:
// ConferenceEvent) outside the rooms' locks, never by the mixing clock.
//
// On Linux the relay's sockets are plain non-blocking descriptors served by a few event loops
// (epoll, one per CPU by default, Config.Loops) rather than a goroutine each; elsewhere a goroutine
// reads each socket. A session's sockets and goroutines end with Close.
package media
