// Package delta moves snapshots between stores: what one store has that
// another lacks (a set difference of blob digests), push and pull to OCI
// registries and between stores, mirrors with failover, and the offline
// queue.
//
// A [Registry] is one repository of an OCI registry (distribution API v2),
// read as an [image.Source]: its tags are the refs, and every blob or
// manifest it serves is checked against its digest before use. Plain HTTP
// is used only for loopback hosts unless asked for; credentials come from
// the Docker client configuration and its credential helpers.
//
// [Push] sends a mirror what it lacks, blobs first, then the manifests and
// their tags, then the signatures, so a mirror never names a manifest whose
// blobs are not all there and a re-run sends nothing that arrived.
// [PushAll] pushes to several mirrors at once, each failing on its own.
//
// [Pull] copies into a local store the snapshots the mirrors hold and it
// lacks, each blob from the best mirror that serves it intact: by the rank
// the caller gives (health), then by the time it would take (answer time,
// bytes already asked of it, and its throughput as measured in this pull or
// known from before). A mirror that makes no progress for its timeout fails
// with [ErrStalled], and the next one is asked. A snapshot
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
