#!/bin/sh
# Vendors the Zoom Meeting SDK for Web (npm package @zoom/meetingsdk) into examples/web/vendor/zoom,
# which git ignores: the page finds it there (vendor/zoom/sdk.json names the version) and then
# offers ZoomMtg.join. Needs npm; `npm pack` fetches the package without running its scripts.
#
#   examples/web/vendor-sdk.sh            # the version the example was written against
#   examples/web/vendor-sdk.sh 6.2.0      # or any other (`latest` too)
#
# Use of the SDK is subject to Zoom's terms (vendor/zoom/LICENSE.md).
set -eu

version="${1:-6.2.0}"
here="$(cd "$(dirname "$0")" && pwd)"
dest="$here/vendor/zoom"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "@zoom/meetingsdk@$version" >/dev/null)
tar -xzf "$work"/zoom-meetingsdk-*.tgz -C "$work"
# The exact version (`latest` resolved): it names the client view's file.
version="$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$work/package/package.json")"
if [ ! -f "$work/package/dist/zoom-meeting-$version.min.js" ]; then
    echo "vendor-sdk.sh: @zoom/meetingsdk $version has no dist/zoom-meeting-$version.min.js" >&2
    exit 1
fi

rm -rf "$dest"
mkdir -p "$dest"
cp -R "$work/package/dist/." "$dest/"
cp "$work/package/LICENSE.md" "$dest/"
printf '{"version": "%s"}\n' "$version" >"$dest/sdk.json"
echo "Zoom Meeting SDK $version vendored in $dest"
