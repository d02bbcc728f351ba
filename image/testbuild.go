//go:build dvpc_unsafe_test

package image

// unsafeTestBuild: this dvpc was built for tests (tag dvpc_unsafe_test)
// and accepts argon2id parameters below the floor. Never ship it.
const unsafeTestBuild = true
