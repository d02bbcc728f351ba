// Package delta moves snapshots between stores: what one store has that
// another lacks (a set difference of blob digests), push and pull to OCI
// registries and between stores, mirrors with failover, and the offline
// queue.
package delta
