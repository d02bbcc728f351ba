package media

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"
)

// fixGPT rewrites the checksums of the GPT header at sector lba of disk,
// and its sector number, wherever the header's fields leave them room, so
// that mutations reach the parsing past the checksums.
func fixGPT(disk []byte, lba int64) {
	off := lba * gptSector
	if lba < 0 || off+gptSector > int64(len(disk)) {
		return
	}
	h := disk[off : off+gptSector]
	if string(h[:8]) != "EFI PART" {
		return
	}
	binary.LittleEndian.PutUint64(h[24:], uint64(lba))
	ent := binary.LittleEndian.Uint64(h[72:])
	n, esize := binary.LittleEndian.Uint32(h[80:]), binary.LittleEndian.Uint32(h[84:])
	if total := uint64(n) * uint64(esize); n <= 1024 && esize <= 1024 && ent < uint64(len(disk))/gptSector &&
		ent*gptSector+total <= uint64(len(disk)) {
		binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(disk[ent*gptSector:ent*gptSector+total]))
	}
	if hsize := binary.LittleEndian.Uint32(h[12:]); hsize >= 92 && hsize <= gptSector {
		clear(h[16:20])
		binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:hsize]))
	}
}

// FuzzReadGPT reads hostile partition tables: readGPT must fail cleanly or
// return partitions that are whole sectors, in table order, never panic or
// allocate without bound. With fix set, the checksums are mended first, so
// that the fuzzer reaches the header fields and entries behind them.
//
// The disk is the fuzzed bytes followed by tail empty sectors, so a seed
// can stand for a large disk without being large itself.
func FuzzReadGPT(f *testing.F) {
	img := tinyUSB(f)
	head := img[:34*gptSector]
	tail := uint16((len(img) - len(head)) / gptSector)
	f.Add(head, tail, false)
	f.Add(head, tail, true)
	f.Add(head, uint16(0), true)
	f.Add(img, uint16(0), false)
	// The primary header gone: the backup at the end is read.
	noPrimary := bytes.Clone(img)
	clear(noPrimary[gptSector : 2*gptSector])
	f.Add(noPrimary, uint16(0), false)
	for _, n := range []int{0, 512, 1024, 2 * 512, 33 * 512} {
		f.Add(head[:n], tail, true)
	}
	f.Fuzz(func(t *testing.T, b []byte, tail uint16, fix bool) {
		disk := make([]byte, len(b)+int(tail%4096)*gptSector)
		copy(disk, b)
		size := int64(len(disk))
		if fix {
			fixGPT(disk, 1)
			fixGPT(disk, size/gptSector-1)
		}
		parts, err := readGPT(bytes.NewReader(disk), size)
		if err != nil {
			if parts != nil {
				t.Fatalf("error %v with %d partitions", err, len(parts))
			}
			return
		}
		last := 0
		for _, p := range parts {
			if p.index <= last || p.index > 1024 {
				t.Fatalf("partition index %d after %d", p.index, last)
			}
			last = p.index
			if p.start < gptSector || p.size < gptSector || p.start%gptSector != 0 || p.size%gptSector != 0 ||
				p.start+p.size < p.start {
				t.Fatalf("partition %d: %d bytes at %d", p.index, p.size, p.start)
			}
			if p.typ == ([16]byte{}) {
				t.Fatalf("partition %d has the empty type", p.index)
			}
		}
	})
}
