// Package profiles holds settings and app links: OCI references pinned by
// digest, resolved per platform and pulled at login.
package profiles
