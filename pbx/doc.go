// Package pbx is pbxkit's embeddable SIP server: listeners on UDP and TCP, the front door that
// validates every request, digest authentication, the registrar, and calls: the B2BUA call core
// (package b2bua) routed by a Go dialplan, a Lua script (package dialplan) or default routing,
// with the RTP relay (package media) when Config gives it a port range, and the store for
// extensions, registrations and call records. Subscribe delivers call, registration, queue and
// conference events.
//
// A PBX in a few lines (see Example_embedding):
//
//	p, err := pbx.New(pbx.Config{SIP: "0.0.0.0:5060", Database: "sqlite:office.db", Domain: "office.example"})
//	if err != nil { ... }
//	err = p.Run(ctx) // until ctx ends; Shutdown stops it from elsewhere
//
// New binds the sockets, so UDPAddr and TCPAddr are known before Run (port 0 picks a free one).
// Every zero field of Config takes its default (the Default... constants), and Config.Validate,
// which New runs, reports every value New would refuse, each as a *ConfigError.
//
// # A process-wide setting
//
// pbx changes nothing when it is imported. The first New raises sipgo's package variable
// sip.UDPMTUSize to 65535, once per process: sipgo refuses to send UDP messages over 1300 bytes,
// but a PBX must answer over UDP whatever the size, because phones registered over UDP listen on
// nothing else. Any other sipgo user agent in the process then may send large datagrams too. To
// keep the race detector quiet, start the first PBX before other sipgo user agents, or set
// sip.UDPMTUSize yourself first.
//
// # What happens to a request
//
// UDP datagrams are parsed once by the front door before sipgo sees them: a message sipgo's parser
// would drop is answered 400, 416 or 505 from its raw header lines when it can be addressed (RFC
// 3261 §18.3, RFC 4475 §3.1.2), or dropped with a log line. Parsed requests are then checked in
// the order of RFC 3261 §8.2: SIP version (505); mandatory and single-valued headers, CSeq, branch,
// Request-URI headers (400); URI scheme (416); sizes (414, 413); method (501 unknown, 405 with
// Allow for known but not served); loops (482, including merged requests of §8.2.2.2);
// Max-Forwards (483); Require and Proxy-Require (420 with Unsupported); body type (415 with
// Accept) and Accept (406). Every rejection carries a Warning header saying why.
//
// REGISTER is handled as RFC 3261 §10.3 describes, behind a digest challenge (401, qop=auth; MD5
// by default, SHA-256 per RFC 8760 when Config.DigestAlgorithms names it). INVITE needs proxy authentication (407) unless it comes from a
// trusted network (Config.Trusted); then default routing rings every registered contact of the
// dialled extension (or answers 404, 410, 486 or 480). Requests inside a call's dialogs go to the
// call core, others get 481. OPTIONS is answered 200 with Allow, Accept, Supported and
// Allow-Events.
//
// # Busy lamps
//
// SUBSCRIBE with Event: dialog (RFC 4235, RFC 6665) to an extension's URI subscribes to its calls:
// the PBX answers 200, sends a NOTIFY with application/dialog-info+xml at once and another on
// every change (early while it rings, confirmed in a call, terminated when the call ends), fed by
// the call core's events. Subscriptions are authenticated like REGISTER (401, unless Trusted),
// last between SubscriptionMinExpires (423 below it) and SubscriptionMaxExpires, are refreshed or
// removed (Expires: 0) by a SUBSCRIBE in their dialog, end with a final NOTIFY when they expire or
// the PBX shuts down, and end silently when the watcher answers a NOTIFY 481. MaxSubscriptions and
// MaxSubscriptionsPerSource bound them (503, 403).
//
// SUBSCRIBE with Event: message-summary (RFC 3842) to the subscriber's own extension is its
// message-waiting lamp, on the same machinery: NOTIFYs carry application/simple-message-summary
// (Messages-Waiting: yes or no, Voice-Message: new/old) at once and whenever the mailbox's counts
// move, changes made by other processes sharing the database included (store.WatchVoicemail).
// Another extension's mailbox is 403. It is served when the store implements Mailboxes. Other
// event packages get 489 Bad Event.
// docs/status-codes.md lists every status code with the test that shows it.
//
// # Security
//
// Nothing a remote sends can panic the process: handlers and the read filter recover, and the
// front door is fuzzed (FuzzFrontDoor). Unknown users and wrong passwords get the same answer at
// the same cost. A source IP that fails authentication AuthFailLimit times within AuthFailWindow
// is refused (403) for AuthBanTime, and each failure is logged once as
// msg="sip auth failed" src_ip=IP, for log-based banning tools.
//
// TCP connections are bounded: MaxConnections in all and MaxConnectionsPerSource from one address
// (Trusted networks exempt); a connection without a SIP message for ConnIdleTimeout is closed
// unless a phone registered over it, and one that takes longer than MessageTimeout to deliver a
// message is cut. The TCP listener retries failed accepts (out of file descriptors) instead of
// stopping, and Health reports it meanwhile, for a health check endpoint.
package pbx
