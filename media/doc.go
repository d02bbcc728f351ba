// Package media writes ISO images (DVD, BD) and USB disk images that carry a
// store, and reads them back without mounting.
package media
