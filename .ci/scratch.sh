# Sourced by the scripts that build in a throwaway copy of the working tree
# (portable.sh, sanitize.sh, aarch64.sh), so that the checkout's own build is
# never touched. The copy holds the tracked files and the untracked ones that
# are not ignored: uncommitted edits count.
#
#   root=...; source "$root/.ci/scratch.sh"; scratch_copy portable
#
# scratch_copy NAME makes $scratch (removed when the script exits), copies the
# tree of $root into it and changes into it.
scratch_copy() {
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/ice-$1.XXXXXX")
    trap 'rm -rf "$scratch"' EXIT
    (cd "$root" && git ls-files -z --cached --others --exclude-standard \
        | xargs -0 sh -c 'for f; do [ -f "$f" ] && printf "%s\0" "$f"; done' sh \
        | tar --null -T - -cf -) | tar -xf - -C "$scratch"
    cd "$scratch"
}
