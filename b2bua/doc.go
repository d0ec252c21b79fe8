// Package b2bua is pbxkit's call core: a back-to-back user agent. For every call it terminates the
// caller's dialog (the A-leg) and opens new dialogs toward the callee's contacts (B-legs), so the
// two sides never see each other's Call-ID, tags, Via, Contact or (with a Media relay) media
// addresses.
//
// # A call's life
//
// The PBX hands an authenticated INVITE to Engine.Handle from the request's handler, with a
// RouteFunc that decides what becomes of the call through the Call's verbs: Connect and Dial ring
// destinations (forking to every contact; 180/183 reach the caller; the first 2xx wins and the
// others are cancelled; 3xx are followed), Forward sends 181 first, Reject and Redirect answer
// the caller, Ringing, Progress and Provisional tell it how things go, PlayToCaller plays PBX audio
// while it waits. When the route returns undecided, the caller gets the status of the last
// attempt (RFC 3261 §16.7's choice among the contacts' answers), or 500.
//
// An answered call goes on without the route: BYE from either side is mirrored to the other;
// re-INVITE (hold, resume), UPDATE, INFO, OPTIONS, MESSAGE and NOTIFY are passed through, with 491
// for crossing re-INVITEs; session timers (RFC 4028) are watched. Engine.HandleInDialog takes
// those requests. REFER is carried out by the PBX itself: blind transfer (RFC 3515, RFC 5589),
// attended transfer when the Refer-To carries Replaces (RFC 3891), and an INVITE with Replaces
// takes over the dialog it names. Every call moves through one state machine: setup, refused,
// application, answered, transferring, parked, unparking, ended (state.go draws it).
//
// With a Media relay the PBX can also answer a call itself (Answer) and be the caller's other
// end: Play sounds, Gather key presses (RFC 4733 and SIP INFO), RecordCaller to a WAV file,
// then Connect a callee through the same port (app.go). Key presses during a bridged call reach
// OnDTMF.
//
// Messages of one call are handled in the order they arrived, although sipgo hands each message to
// a goroutine of its own: the engine also listens to the transport layer, which reads one message
// after the other (order.go).
//
// Every call ends with one Record (a call detail record with the call's segments: who talked to
// whom, from when to when) given to the RecordWriter, and Config.OnEvent hears call.new,
// call.ringing, call.answered, call.transferred, call.dtmf and call.ended.
//
// # Underneath
//
// The engine works on sipgo's transactions rather than its dialog helpers: it keeps its own dialog
// table and retransmits its own 2xx until the ACK (RFC 3261 §13.3.1.4, RFC 6026), hanging up both
// sides when none comes within AckTimeout. Each dialog carries the PBX's Contact for its own
// transport (";transport=tcp" over TCP, ";transport=tls" and Config.TLSPort over TLS, a sips: URI
// toward a peer that used one, so phones keep the dialog on their connection), and a
// contact whose connection fails is reported through Config.OnUnreachable.
//
// Package b2buatest runs an Engine on real sockets with raw SIP phones, for tests of call flows.
package b2bua
