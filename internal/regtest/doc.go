// Package regtest runs real OCI registries for dvpc's tests.
//
// [Start] launches Debian's docker-registry (the distribution 2.8 registry)
// as a plain child process listening on 127.0.0.1 on a free port, with its
// configuration file, filesystem storage and log in the test's temporary
// directory, and stops it when the test ends. Tests then talk to it over
// the distribution HTTP API at [Registry.Addr], exactly as dvpc talks to a
// remote store.
//
// [WithBasicAuth] makes a registry require HTTP Basic authentication, with
// distribution's htpasswd access controller and a bcrypt password file.
// The 2.8 registry accepts it over plain HTTP, and says nothing about it in
// its log; a request without the right credentials is answered 401
// UNAUTHORIZED with WWW-Authenticate: Basic realm="regtest".
//
// Deletion is enabled (storage.delete.enabled), so that tests can remove
// tags as a mirror that allows it does; [WithoutDelete] starts a registry
// that answers every DELETE 405 UNSUPPORTED, as distribution does by
// default.
//
// The binary must be installed (apt-get install -y docker-registry); when it
// is missing the test fails rather than being skipped, so a machine without
// it cannot pass silently.
//
// What the 2.8 registry does with dvpc's artifacts:
//
//   - it stores OCI artifact manifests (artifactType, a custom config media
//     type, custom layer media types, subject) byte for byte under their own
//     digest, and accepts tags such as "sha256-<hex>.sig";
//   - it serves an OCI manifest only to a request whose Accept header lists
//     application/vnd.oci.image.manifest.v1+json (otherwise 404
//     MANIFEST_UNKNOWN);
//   - it refuses a manifest whose config or layer blobs were not uploaded
//     first (400 MANIFEST_BLOB_UNKNOWN), but does not check that a subject
//     exists, and has no referrers API.
package regtest
