#!/bin/sh
# Publish the index when it is missing or the policies changed (incremental: unchanged
# policies are not re-embedded), then run the given policybot command (default: serve).
# A failed build keeps the previously published index serving; with no index at all
# the container stops with the error, which names the file to fix.
set -e
if ! policybot index; then
    python -c "from index import store; store.read_manifest(store.resolve_current('${POLICYBOT_DATA:-/data}/index'))" \
        || { echo "No usable index; fix the policies named above and restart." >&2; exit 1; }
    echo "Index build failed; serving the previously published index." >&2
fi
exec policybot "$@"
