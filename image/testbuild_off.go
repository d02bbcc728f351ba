//go:build !dvpc_unsafe_test

package image

// unsafeTestBuild is false in every build for users: see
// [Argon2Params.validateNew].
const unsafeTestBuild = false
