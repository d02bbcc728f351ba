#!/usr/bin/env bash
# mkhome.sh DEST — build the full sample home directory for tests.
#
# Copies testdata/home (the part git can hold) to DEST, then adds every kind
# of entry git cannot hold: empty files and directories, a sparse file, hard
# links, special modes, odd names, a FIFO, user xattrs, a deep path, and
# nanosecond mtimes on everything. The result is deterministic: every run
# produces the same names, contents, modes, xattrs and mtimes.
#
# DEST must not exist or must be an empty directory. See testdata/README.md.
set -euo pipefail

die() {
	printf 'mkhome.sh: %s\n' "$*" >&2
	exit 1
}

[ $# -eq 1 ] || die "usage: mkhome.sh DEST"
dest=$1
src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/home

export LC_ALL=C TZ=UTC
umask 022

for tool in cp mkfifo truncate dd touch find chmod ln cksum; do
	command -v "$tool" >/dev/null || die "required tool not found: $tool"
done
if ! command -v setfattr >/dev/null; then
	command -v python3 >/dev/null || die "need setfattr or python3 to set xattrs"
fi

[ -d "$src" ] || die "sample tree not found: $src"
if [ -e "$dest" ] || [ -L "$dest" ]; then
	[ -d "$dest" ] && [ ! -L "$dest" ] || die "$dest exists and is not a directory"
	[ -z "$(ls -A "$dest")" ] || die "$dest is not empty"
else
	mkdir "$dest"
fi

# 1. The part git holds. A checkout's modes depend on the umask and its mtimes
# on the checkout time, so normalise both below.
cp -a "$src/." "$dest/"
cd "$dest"
[ -L docs/latest ] && [ -L link-to-src ] ||
	die "testdata/home symlinks were checked out as plain files"
# Five octal digits, so GNU chmod also clears a setgid bit a directory
# inherited from a setgid parent of DEST.
find . -type d -exec chmod 00755 {} +
find . -type f -perm -u+x -exec chmod 00755 {} +
find . -type f ! -perm -u+x -exec chmod 00644 {} +

# 2. What git cannot hold.

# Empty file and empty directory.
: >empty.txt
mkdir empty-dir

# Sparse file: 8 MiB apparent size, 4 KiB of data at offset 0 and at 5 MiB.
truncate -s 8M sparse.img
# (yes dies of SIGPIPE, so it runs in a process substitution, out of
# pipefail's reach.)
dd of=sparse.img conv=notrunc iflag=fullblock status=none \
	< <(yes 'sparse region at offset 0' | head -c 4096)
dd of=sparse.img bs=1M seek=5 conv=notrunc iflag=fullblock status=none \
	< <(yes 'sparse region at offset 5 MiB' | head -c 4096)

# Symlinks: dangling, absolute, to a directory.
ln -s does-not-exist dangling-link
ln -s /etc/hostname absolute-link
ln -s photos photos-link

# Hard-link group: three names in two directories.
mkdir hardlinks
printf 'one inode, three names\n' >hardlinks/original.txt
ln hardlinks/original.txt hardlinks/second-name.txt
ln hardlinks/original.txt docs/third-name.txt

# Permission bits.
mkdir shared
chmod 2775 shared
printf 'in a setgid directory\n' >shared/team.txt
mkdir private
printf 'password=hunter2\n' >private/secret.txt
chmod 0600 private/secret.txt
chmod 0700 private
mkdir bin
printf '#!/bin/sh\necho tool\n' >bin/tool.sh
chmod 0755 bin/tool.sh
printf 'do not edit\n' >docs/readonly.txt
chmod 0444 docs/readonly.txt

# Awkward names: a newline, non-UTF-8 bytes, the 255-byte maximum.
printf 'newline in the name\n' >$'new\nline.txt'
printf 'not UTF-8\n' >$'latin1-\xff\xfe.bin'
long=$(printf '%0251d' 0 | tr 0 L).txt
[ ${#long} -eq 255 ] || die "long name has ${#long} bytes"
printf 'the longest name\n' >"$long"

# A FIFO.
mkfifo pipe.fifo

# A deep path: 20 nested directories.
deep=deep
for i in $(seq -w 1 20); do
	deep=$deep/level$i
done
mkdir -p "$deep"
printf 'bottom of the tree\n' >"$deep/bottom.txt"

# User xattrs on a file and a directory: text, binary and empty values.
if command -v setfattr >/dev/null; then
	setfattr -n user.comment -v 'weekly notes' docs/notes.md
	setfattr -n user.checksum -v 0x00ff10fe docs/notes.md
	setfattr -n user.empty docs/notes.md
	setfattr -n user.tag -v important docs
else
	python3 - <<'EOF'
import os
os.setxattr("docs/notes.md", "user.comment", b"weekly notes")
os.setxattr("docs/notes.md", "user.checksum", b"\x00\xff\x10\xfe")
os.setxattr("docs/notes.md", "user.empty", b"")
os.setxattr("docs", "user.tag", b"important")
EOF
fi

# 3. Mtimes, last, because creating entries changes directory mtimes.
# Every entry gets a distinct time derived from its path (so a tool that
# swaps or drops times is caught), with nanoseconds; a few get fixed ones.
stamp() { # PATH: deterministic time within 2023 with nanoseconds
	local sum
	sum=$(printf '%s' "$1" | cksum)
	sum=${sum%% *}
	printf '@%d.%09d' $((1672531200 + sum % 31536000)) $((sum % 1000000000))
}
settime() { # PATH
	local t
	case $1 in
	./docs/notes.md) t='2024-03-01 10:11:12.123456789' ;;
	./docs/latest) t='2024-03-01 10:11:13.987654321' ;;
	./src/project/main.go) t='2024-03-01 10:11:12.000000000' ;;
	./photos/sensor-noise.bin) t='2040-02-29 23:59:59.999999999' ;;
	./private) t='2022-12-31 23:59:59.000000001' ;;
	# One inode: a per-name time would depend on the order find visits them.
	./hardlinks/original.txt | ./hardlinks/second-name.txt | ./docs/third-name.txt)
		t='2023-06-15 08:00:00.000000042' ;;
	.) t='2024-04-01 00:00:00.500000000' ;;
	*) t=$(stamp "$1") ;;
	esac
	touch -h -d "$t" -- "$1"
}
while IFS= read -r -d '' p; do
	settime "$p"
done < <(find . ! -type d -print0)
# Directories deepest first, so setting a child never disturbs a parent.
while IFS= read -r -d '' p; do
	settime "$p"
done < <(find . -depth -type d -print0)
