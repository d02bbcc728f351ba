#!/usr/bin/env bash
# The main job end to end on a local store, no server: `make demo`.
# Usage: demo.sh DVPC_BINARY DEMO_DIR
set -euo pipefail
dvpc=$(realpath "$1")
demo=$2
here=$(cd "$(dirname "$0")" && pwd)

rm -rf "$demo"
mkdir -p "$demo"
demo=$(realpath "$demo")
export DVPC_STORE="$demo/store"
export DVPC_PASSPHRASE_FILE="$demo/passphrase"
echo "correct horse battery staple (demo only)" > "$DVPC_PASSPHRASE_FILE"
chmod 600 "$DVPC_PASSPHRASE_FILE"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "a home to keep: testdata/home plus the entries git cannot hold"
bash "$here/mkhome.sh" "$demo/home" >/dev/null
du -sh --apparent-size "$demo/home"
sleep 2 # let the new files' timestamps settle, so the next snapshot can trust them

step "dvpc init (store: $DVPC_STORE)"
"$dvpc" init --argon2-memory 64

step "dvpc snapshot"
first=$("$dvpc" snapshot "$demo/home")
echo "snapshot ID: $first"
sleep 1.2
between=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
sleep 1.2

step "a day of work: edit, add, delete"
echo "Thursday: moved the meeting to 3pm." >> "$demo/home/docs/notes.md"
echo "new draft" > "$demo/home/docs/draft.txt"
rm "$demo/home/docs/report.csv"

step "dvpc snapshot again (unchanged files are not read again)"
second=$("$dvpc" snapshot "$demo/home" 2>"$demo/snapshot.txt") || { cat "$demo/snapshot.txt" >&2; exit 1; }
cat "$demo/snapshot.txt"
echo "snapshot ID: $second"

step "dvpc log"
"$dvpc" log

step "dvpc diff $first $second"
"$dvpc" diff "$first" "$second"

step "dvpc log docs/notes.md: the distinct versions of one file"
"$dvpc" log docs/notes.md

step "dvpc restore --at $between docs/notes.md: the version before the edit"
"$dvpc" restore --at "$between" docs/notes.md --to "$demo/restored"
if cmp -s "$demo/restored/docs/notes.md" "$here/home/docs/notes.md"; then
  echo "restored docs/notes.md is the original, byte for byte"
else
  echo "restored docs/notes.md differs from the original" >&2
  exit 1
fi

step "dvpc restore latest: the whole home, checked against the live tree"
"$dvpc" restore latest --to "$demo/full" 2>"$demo/restore.txt" || { cat "$demo/restore.txt" >&2; exit 1; }
cat "$demo/restore.txt"
listing() { (cd "$1" && find . -printf '%p %y %m %T@ %s %n %l\n' | LC_ALL=C sort); }
diff <(listing "$demo/home") <(listing "$demo/full")
diff -r --no-dereference -x pipe.fifo "$demo/home" "$demo/full"
echo "identical: contents, types, modes, mtimes (ns), sizes, link counts and link targets"

step "why the restore counts fewer files and bytes than the snapshot"
# The snapshot counts every name of a file and every file's length; the
# restore counts the files whose content it writes and the bytes it writes.
count() { sed -n "s/.*: \([0-9]*\) files\{0,1\},.*/\1/p" "$1"; }
snapped=$(count "$demo/snapshot.txt")
restored=$(count "$demo/restore.txt")
names=$(find "$demo/home" -type f -printf . | wc -c)
inodes=$(find "$demo/home" -type f -printf '%i\n' | sort -u | wc -l)
links=$((names - inodes))
read -r length blocks blocksize < <(stat -c '%s %b %B' "$demo/home/sparse.img")
echo "the snapshot counted $snapped files: every name, and $links of the names are further hard links"
echo "to files already counted. The restore made those $links as links, and wrote $restored files."
echo "The snapshot's size counts sparse.img at its length, $(numfmt --to=iec "$length"); it holds"
echo "$(numfmt --to=iec $((blocks * blocksize))) of data, which is all the restore writes: the holes stay holes."
if [ "$snapped" -ne "$names" ] || [ "$restored" -ne $((names - links)) ]; then
  echo "the counts do not add up: $snapped names snapshotted, $restored files restored, $links links" >&2
  exit 1
fi

step "dvpc verify --read-data"
"$dvpc" verify --read-data

step "dvpc media iso: the weekly disc"
"$dvpc" media iso --no-clients --out "$demo/weekly.iso" >/dev/null
ls -l "$demo/weekly.iso"

step "dvpc login on a strange PC: its own store and HOME, the disc as the base"
pc="$demo/strange-pc"
mkdir -p "$pc"
HOME="$pc" "$dvpc" --store "$pc/store" login --from "$demo/weekly.iso" --to "$pc/work"
diff -r --no-dereference -x pipe.fifo "$demo/home" "$pc/work"
echo "the login's directory holds the home as snapshotted"
echo "a change on the strange PC" > "$pc/work/from-the-strange-pc.txt"
HOME="$pc" "$dvpc" --store "$pc/store" sync "$pc/work"
HOME="$pc" "$dvpc" --store "$pc/store" session "$pc/work"

printf '\nDone. The store is in %s; try: DVPC_STORE=%s DVPC_PASSPHRASE_FILE=%s %s ls latest\n' \
  "$demo/store" "$demo/store" "$DVPC_PASSPHRASE_FILE" "$dvpc"
