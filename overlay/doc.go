// Package overlay stacks a base store (a DVD or USB key) under the newer
// deltas from the mirrors and the local changes, materialising the person's
// current home, and syncs changes back.
package overlay
