#!/usr/bin/env bash
# local/fetch_debs.sh — fetch Debian packages into a project folder WITHOUT installing them and
# WITHOUT touching the machine's apt configuration.
#
# Why: the mini corpus needs packages that a fresh machine lacks and that a normal user may not
# install (espeak-ng, mbrola, the MBROLA voices in contrib/non-free, Asterisk prompts). apt is given
# its own sources list and state/cache dirs under --apt-dir; the sources are DERIVED from the
# machine's own apt sources (deb822 *.sources and one-line *.list files, wherever `apt-config` says
# they are) with the components extended to "main contrib non-free" (on Ubuntu "main universe
# multiverse"), so the user's own mirror is used
# and no archive host is written anywhere in the project. Packages are fetched with
# `apt-get download` and unpacked with `dpkg -x` into <extract-dir>; a stamp per package makes a rerun
# skip everything (offline) once a package has been unpacked.
set -euo pipefail

apt_dir=downloads/apt        # private apt state: sources, lists, cache
deb_dir=downloads/debs       # where .deb files are downloaded
with_deps=false              # also fetch the dependencies that are not installed on this machine
keep_debs=false              # keep the .deb files after unpacking (the unpacked tree is the cache)
components="main contrib non-free"   # Debian's names; Ubuntu (os-release ID) gets its own below
if grep -qsE '^(ID|ID_LIKE)=.*ubuntu' /etc/os-release; then
  components="main universe multiverse"
fi

help_message="Usage: $0 [options] <extract-dir> <package> [<package> ...]
  Downloads Debian packages with a private apt configuration (derived from this machine's sources,
  components extended to '$components') and unpacks them with 'dpkg -x' into <extract-dir>.
  Already unpacked packages (stamp <extract-dir>/.fetched/<package>) are skipped: no network needed.
Options:
  --apt-dir DIR        private apt sources/lists/cache (default $apt_dir)
  --deb-dir DIR        download folder for .deb files (default $deb_dir)
  --with-deps BOOL     also fetch dependencies not installed on this machine (default $with_deps)
  --keep-debs BOOL     keep .deb files after unpacking (default $keep_debs)
  --components LIST    components of the private sources (default '$components')
Example:
  $0 --with-deps true downloads/tools espeak-ng mbrola"

. "$(dirname "$0")/../utils/parse_options.sh"

if [ $# -lt 2 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi
extract_dir=$1
shift
pkgs=("$@")

stamp_dir=$extract_dir/.fetched
missing=()
for p in "${pkgs[@]}"; do
  [ -f "$stamp_dir/$p" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

for tool in apt-get apt-config dpkg; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "$0: ERROR: '$tool' not found. Fetching ${missing[*]} needs Debian's apt (a Debian/Ubuntu machine" \
         "with access to a Debian archive). Alternatively install them yourself and put the unpacked tree" \
         "under $extract_dir (see README 'Data and licences')." >&2
    exit 1
  fi
done

mkdir -p "$apt_dir/sources.list.d" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" \
  "$deb_dir" "$stamp_dir"
apt_dir=$(cd "$apt_dir" && pwd)
deb_dir=$(cd "$deb_dir" && pwd)
extract_dir=$(cd "$extract_dir" && pwd)
stamp_dir=$extract_dir/.fetched

# --- private sources, derived from the machine's own --------------------------------------------
sys_list=; sys_parts=
eval "$(apt-config shell sys_list Dir::Etc::sourcelist/f sys_parts Dir::Etc::sourceparts/d)"
: > "$apt_dir/sources.list.tmp"
rm -f "$apt_dir"/sources.list.d/*
extend_list() {  # one-line format: deb [opts] URI SUITE COMP...
  awk -v comps="$components" '
    /^[ \t]*(deb|deb-src)[ \t]/ {
      n = split(comps, c, " "); line = $0
      for (i = 1; i <= n; i++) { if (index(" " line " ", " " c[i] " ") == 0) line = line " " c[i] }
      print line; next }
    { print }' "$1"
}
extend_deb822() {  # deb822 format: a Components: field per stanza
  awk -v comps="$components" '
    /^Components:/ {
      line = $0; n = split(comps, c, " ")
      for (i = 1; i <= n; i++) { if (index(" " line " ", " " c[i] " ") == 0) line = line " " c[i] }
      print line; next }
    { print }' "$1"
}
if [ -n "$sys_list" ] && [ -f "$sys_list" ]; then
  extend_list "$sys_list" > "$apt_dir/sources.list.tmp"
fi
n_src=0
if [ -n "$sys_parts" ] && [ -d "$sys_parts" ]; then
  for f in "$sys_parts"/*.list "$sys_parts"/*.sources; do
    [ -f "$f" ] || continue
    case "$f" in
      *.list) extend_list "$f" > "$apt_dir/sources.list.d/$(basename "$f")" ;;
      *.sources) extend_deb822 "$f" > "$apt_dir/sources.list.d/$(basename "$f")" ;;
    esac
    n_src=$((n_src + 1))
  done
fi
mv "$apt_dir/sources.list.tmp" "$apt_dir/sources.list"
if ! grep -qsE '^[ \t]*deb[ \t]|^Types:.*deb' "$apt_dir/sources.list" "$apt_dir"/sources.list.d/* 2>/dev/null; then
  echo "$0: ERROR: no apt sources found in $sys_list or $sys_parts; configure a Debian archive first" >&2
  exit 1
fi

apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o "Dir::Etc::sourceparts=$apt_dir/sources.list.d"
          -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "Debug::NoLocking=1"
          -o "Dir::Etc::Preferences=/dev/null" -o "Dir::Etc::PreferencesParts=$apt_dir/empty.d")
mkdir -p "$apt_dir/empty.d"
# As root apt drops to the _apt user for downloads, which cannot write into a user's folder.
[ "$(id -u)" -eq 0 ] && apt_opts+=(-o "APT::Sandbox::User=root")

# Refresh the private package lists when they are absent, older than a day, or lack a package.
sources_sum=$(cat "$apt_dir/sources.list" "$apt_dir"/sources.list.d/* | cksum | cut -d' ' -f1)
need_update=false
[ "$(cat "$apt_dir/.sources_sum" 2>/dev/null)" = "$sources_sum" ] || need_update=true
[ -n "$(find "$apt_dir/.sources_sum" -mmin -1440 2>/dev/null)" ] || need_update=true
do_update() {
  echo "$0: updating private package lists in $apt_dir" >&2
  if ! apt-get "${apt_opts[@]}" -qq update >&2; then
    echo "$0: ERROR: 'apt-get update' with the private sources in $apt_dir failed (no access to the" \
         "Debian archive?). Needed packages: ${missing[*]}" >&2
    exit 1
  fi
  echo "$sources_sum" > "$apt_dir/.sources_sum"
}
$need_update && do_update
if ! apt-cache "${apt_opts[@]}" show "${missing[@]}" >/dev/null 2>&1; then
  $need_update || do_update
fi
for p in "${missing[@]}"; do
  if ! apt-cache "${apt_opts[@]}" show "$p" >/dev/null 2>&1; then
    echo "$0: ERROR: package '$p' is not in the archive (sources: $apt_dir/sources.list.d)" >&2
    exit 1
  fi
done

# --- which packages to download -----------------------------------------------------------------
fetch=("${missing[@]}")
if $with_deps; then
  # A simulated install against the machine's own dpkg status lists exactly what is not installed.
  mapfile -t fetch < <(apt-get "${apt_opts[@]}" -s -qq install --no-install-recommends "${missing[@]}" 2>/dev/null \
                       | awk '$1 == "Inst" {print $2}')
  # Packages already installed system-wide are not in the list; the requested ones may be among them.
fi

# --- download and unpack ------------------------------------------------------------------------
to_download=()
for p in "${fetch[@]}"; do
  [ -f "$stamp_dir/$p" ] && continue
  compgen -G "$deb_dir/${p}_*.deb" >/dev/null || to_download+=("$p")
done
if [ ${#to_download[@]} -gt 0 ]; then
  echo "$0: downloading ${#to_download[@]} package(s) into $deb_dir" >&2
  if ! (cd "$deb_dir" && apt-get "${apt_opts[@]}" -qq download "${to_download[@]}" >&2); then
    echo "$0: ERROR: 'apt-get download ${to_download[*]}' failed" >&2
    exit 1
  fi
fi
for p in "${fetch[@]}"; do
  [ -f "$stamp_dir/$p" ] && continue
  deb=$(compgen -G "$deb_dir/${p}_*.deb" | sort | tail -n 1)
  if ! dpkg -x "$deb" "$extract_dir"; then
    # A truncated or damaged download: remove it so that a rerun fetches it again.
    rm -f "$deb"
    echo "$0: ERROR: cannot unpack $deb (truncated or damaged download of '$p'); it was removed," \
         "rerun to download it again" >&2
    exit 1
  fi
  basename "$deb" > "$stamp_dir/$p"   # written last: the package is complete
  $keep_debs || rm -f "$deb"
done
# Requested packages that were installed system-wide need no unpacking.
for p in "${missing[@]}"; do
  [ -f "$stamp_dir/$p" ] || echo "installed-system-wide" > "$stamp_dir/$p"
done
echo "$0: ${#missing[@]} package(s) ready under $extract_dir" >&2
