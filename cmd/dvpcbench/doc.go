//go:build linux

// Command dvpcbench measures dvpc against restic and borg on a generated
// home directory, and dvpc's ISO build against xorriso.
//
// Usage:
//
//	go run ./cmd/dvpcbench -dvpc ./bin/dvpc -work DIR [-size MiB] [-tools dvpc,restic,borg] [-json FILE] [-keep]
//
// It generates a deterministic home from a seed (about 1.5 GiB by default;
// -size shrinks it): source projects of many small Go, C and Python files
// with their .git directories, office-like documents (half random blocks,
// half XML text) including one large document deep in the tree, photos and
// videos of random bytes (videos of 20–200 MiB), compressible logs and CSV
// tables, exact copies of files in other directories, dotfiles and caches,
// empty directories, symbolic links (one dangling) and hard links.
//
// Then, in this order, the same for every tool:
//
//  1. the limits of the machine: tar -cf - home | cat >/dev/null (read)
//     and tar -xf of a tar of the home made beforehand, untimed (write);
//  2. init and an initial snapshot with each tool; for dvpc, in between,
//     the unlock of a session, on its own row (see below);
//  3. a deterministic week of work of about 1% of the home: same-size edits,
//     appends, a new file, 1 MiB changed in the middle of the largest file,
//     deletions and a directory rename, in place;
//  4. an incremental snapshot with each tool, and the bytes it added to the
//     repository (the sum of the repository's file sizes before and after);
//  5. a full restore into an empty directory with each tool, checked
//     against the home (untimed);
//  6. a one-file restore of the large document with each tool, checked;
//  7. dvpc media iso --capacity bd-dl --no-clients of the store, which
//     then holds both snapshots; osirrox takes the files out of the
//     image (untimed), they are checked against the store, and xorriso
//     -as mkisofs -R -J builds an image of the same files. The two
//     images must be within 4 MiB of each other in size; both are
//     deleted afterwards unless -keep;
//  8. dvpc only (the peers show "-"), on local registries (Debian's
//     docker-registry on free loopback ports, storage under DIR/registries,
//     killed at the end): dvpc --json push of the store, with both
//     snapshots, to one empty registry, then to four others, with the CPU
//     time the registries pushed to spent meanwhile (utime+stime of
//     /proc/PID/stat, just before and just after the push); and dvpc
//     --json pull of the week: right after step 2 the store is pushed to
//     a sixth registry and pulled into DIR/pulled, and the mirror removed
//     again (the "pull-initial" step, in no row); after the ISO build the
//     store is pushed there again (untimed) and the pull into DIR/pulled
//     is timed, its bytes_fetched compared with the bytes_new of dvpc's
//     incremental snapshot. The incremental bytes of step 4 are counted
//     from after that set-up, which writes the store's list of mirrors.
//  9. dvpc only, a login on a strange PC (see login.go): right after the
//     pull-initial set-up, dvpc media iso writes the store, which holds
//     the initial snapshot alone, to DIR/out/login.iso (the "login-iso"
//     step, in no row: last week's disc). At the end the store is pushed
//     (untimed) to registry 0, fronted by a counting proxy of the bench;
//     dvpc restore of the incremental snapshot from the full store is
//     timed, then dvpc --json login --from login.iso --mirror PROXY/REPO
//     --to DIR on a PC with its own HOME and XDG directories and an empty
//     --store (so the login makes an ephemeral cache), checked against
//     the home (untimed). Its net bytes are the bytes of every response
//     the proxy passed on during the login, printed against restic's
//     whole repository (what restic downloads to restore the home from a
//     remote repository) and against the incremental's new blobs. The
//     login takes the keys from the run's agent, as every dvpc step does;
//  10. the login's session kept in sync (see sync.go), with the disc named
//     by --from, as a person leaves it in the drive: dvpc sync --watch
//     --debounce 10ms runs under the wrapper while one small file of the
//     directory is changed 5 times, each time timed from the end of the
//     write to the session record naming a new snapshot (durable in the
//     local cache; polled every 2 ms), the row being the median; then the
//     same file is changed once more and dvpc sync (no --watch: the scan,
//     the snapshot, the look for newer snapshots on the mirror and the
//     push) is timed against restic backup and borg create of the home
//     after the same change.
//  11. dvpc's apps (see apps.go): three apps of 200 MiB unpacked in all,
//     built from generated data as OCI images and pushed to a local
//     registry; dvpc app install of the three on a PC of their own,
//     against skopeo copy of the same images; then the bytes a snapshot of that home stores, against the
//     same home with the apps' files inside it.
//
// Each step records its wall time, CPU time and the peak RSS of the tool's
// process (ru_maxrss from wait4). On Linux a child's ru_maxrss is never
// below the peak RSS of the process that spawned it (exec keeps the
// high-water mark, and Go spawns with vfork semantics), so every command
// runs under a small dvpcbench process in wrapper mode that reports the
// figures; the floor this leaves (about 3 MiB) is printed. The CPU time
// the machine spent outside the command (and outside the registries a push
// talks to) during a step is recorded too, and a warning names the steps
// and limits that other work disturbed. The page cache is not dropped: every tool
// reads a warm home and a warm repository. Every timed command is preceded
// by an untimed sync so that one step's writeback does not slow the next.
// Encryption is on for all tools: dvpc with DVPC_PASSPHRASE_FILE, restic with
// a repository of version 2 (zstd) and borg with -e repokey-blake2 and
// --compression zstd,3 (both flags can be changed). dvpc runs as in a
// session: its store has the default argon2id parameters, and the
// "unlock" step (with the agent emptied first, untimed) unlocks it once
// with `dvpc --json log` and hands the keys to an unlock agent private to
// the run (XDG_RUNTIME_DIR in a new temporary directory, ended with `dvpc
// lock` at the end). Every later dvpc command takes the keys from the
// agent, so no other figure includes the key derivation; the step checks
// that a command with a wrong passphrase then still opens the store. restic
// and borg derive their keys in every command, as they always do. restic, borgbackup,
// xorriso, docker-registry and skopeo are installed with apt-get when missing.
//
// dvpcbench prints a table (rows: measurements; columns: dvpc, restic,
// borg, dvpc/restic, dvpc/borg), the limits (tar, xorriso with the sizes
// of both images, and the CPU floor of the push to 4 mirrors: the CPU time
// of dvpc and of its four registries over the number of CPUs, with its
// ratio to the push to 1; every latency of the watch), and dvpc's aims, each met or missed: initial
// snapshot ≤ 0.5× borg, incremental snapshot ≤ 0.5× the fastest peer,
// incremental bytes ≤ restic, full restore ≤ 1.1× tar -x, one-file
// restore ≤ borg, peak RSS ≤ borg (snapshots and restores), ISO build ≤
// 1.2× xorriso -as mkisofs -R -J, push to 4 mirrors ≤ 1.3× push to 1,
// pull of the week ≤ 1.1× its new blobs, login ≤ 1.2× the restore of the
// same snapshot, sync --watch ≤ 0.3 s from a change to a local snapshot,
// sync after a one-file change ≤ 0.5× restic, peak RSS of the login ≤ 100
// MiB, installed apps ≤ 1% of their bytes stored; a missed push aim says so when the machine's CPU floor is above it.
// A tool that fails shows "failed" in its cells and the others go on; "-"
// means not run. -json writes all figures (the ISO comparison under
// "iso"), and the logs of every command are in DIR/logs.
//
// The measurements are tables: steps (what each tool does), stages (when),
// limits (reference commands) and rows and aims (what is printed). A new
// measurement is a new entry in each, as the mirror steps are (see
// mirror.go).
package main
