// Package delta moves snapshots between stores: what one store has that
// another lacks (a set difference of blob digests), push and pull to OCI
// registries and between stores, mirrors with failover, and the offline
// queue.
//
// A [Registry] is one repository of an OCI registry (distribution API v2),
// read as an [image.Source]: its tags are the refs, and every blob or
// manifest it serves is checked against its digest before use. Plain HTTP
// is used only for loopback hosts unless asked for; credentials come from
// the Docker client configuration and its credential helpers, which run
// without dvpc's own DVPC_ variables (the passphrase among them).
//
// # What a registry is allowed to make dvpc do
//
// Credentials go only to the registry's own origin (scheme, host and port)
// and to the token realm its own challenge names: a redirect or a tag-list
// Link to another origin gets none, a Link to another origin is refused,
// a challenge from a host the registry redirected to is not answered, and
// HTTPS never drops to plain HTTP. A blob is never read past its declared
// size (the size a signed manifest gives it; else, for [Registry.OpenBlob],
// the size in a manifest this registry served or its Content-Length): a
// pull streams it through [Registry.FetchBlob] straight into the store's
// own temporary area and commits it only when it matches. The tag list is
// bounded in pages and tags, and the manifests kept in memory in bytes.
//
// # Why the registry client is written here
//
// go-containerregistry's remote and authn packages are dependencies (for
// types), but the client is not theirs, for reasons that still hold:
//   - Pull is a failover over several mirrors, blob by blob, with a stall
//     watchdog on every request and response body, uploads included, and
//     the next mirror as the retry. remote retries and backs off on its
//     own, and as an http.RoundTripper the watchdog would not see the
//     response body being read after RoundTrip returns.
//   - remote.List follows Link pages with no bound on pages or tags; its
//     transports attach credentials by host[:port] without the scheme,
//     so a same-host redirect from HTTPS to HTTP would still carry them.
//     Both need the checks above around it anyway.
//   - authn.DefaultKeychain runs credential helpers with the whole process
//     environment; dvpc must withhold its DVPC_ variables, so the keychain
//     would be ours in any case.
//   - Push orders blobs, manifests and signatures so a mirror never names
//     a manifest whose blobs are missing, mounts across repositories and
//     checks the digests the registry names; remote.Write decides its own
//     order. Its behaviour is pinned by the tests against real registries
//     (TestAuthBasic, TestAuthBearer, TestDockerHub, TestHostileMirrors).
//
// Replacing the client would change every request those tests pin down,
// for no gain in what a hostile registry can do; the bounds above are
// tested in network_test.go.
//
// [Push] sends a mirror what it lacks, blobs first, then the manifests and
// their tags, then the signatures, so a mirror never names a manifest whose
// blobs are not all there and a re-run sends nothing that arrived.
// [PushAll] pushes to several mirrors at once, each failing on its own.
//
// [Lacks] is the one answer to "what does this place lack": what a pull
// fetches, a push sends and `mirror status` counts.
//
// [Pull] copies into a local store the snapshots the mirrors hold and it
// lacks, each blob from the best mirror that serves it intact: by the rank
// the caller gives (health; media ranked first are asked first for every
// blob), then by the time it would take (answer time,
// bytes already asked of it, and its throughput as measured in this pull or
// known from before). A mirror that makes no progress for its timeout fails
// with [ErrStalled], and the next one is asked. That failover is a
// [MirrorSource], an [image.Source] a login also reads through; the packs
// a place under the store holds ([PullOptions.Lower], the attached media)
// are not copied at all. A snapshot
// is named only after its signature verifies and all its blobs are stored,
// under the tag rebuilt from its signed manifest. Which snapshots are taken
// is decided on the signed sequence numbers, home IDs and parents, never on
// tag names: a home's head only moves to a descendant, a snapshot that
// descends from no head is kept as a second head (the home diverged), and
// snapshots below [PullOptions.MinSeq] are refused. A mirror is behind
// when a head of the store is neither a snapshot it holds nor an ancestor
// of one. A store without a key trusts none a mirror offers: the caller
// settles one among [KeyCandidates] ([PullOptions.Key]), and mirrors
// offering another are named ([ErrForeignKey]). Push sends only snapshots
// that verify, under their rebuilt tags.
package delta
