#!/bin/sh
# Submit the demo's jobs once both clusters are registered; the server picks a cluster for each.
# The server runs with a global submit token (RAINBOW_SERVER_GLOBAL_TOKEN_FILE), so one token serves both.
set -eu
host=${RAINBOW_HOST:-server:50051}
config=/tmp/submit-config.yaml
token=$(cat "${RAINBOW_SUBMIT_TOKEN_FILE:-/run/secrets/submit_token}")
umask 077
cat > "$config" <<YAML
graphdatabase: {host: "$host"}
clusters:
  - {name: keebler, token: "$token"}
  - {name: tioga, token: "$token"}
YAML
until said=$(rainbow jobs --config-path "$config" --cluster keebler 2>&1) \
    && said=$(rainbow jobs --config-path "$config" --cluster tioga 2>&1); do
    echo "waiting for keebler and tioga to register ($(printf '%s\n' "$said" | tail -n 1))"
    sleep 2
done
submit() { rainbow submit --config-path "$config" "$@"; }
submit --job-name hello-1 -c 'echo hello from $RAINBOW_CLUSTER'
submit --job-name hello-2 -c 'echo hello again from $RAINBOW_CLUSTER'
submit --job-name two-nodes -n 2 -c 'echo two nodes of $RAINBOW_CLUSTER'
submit --job-name wide -n 8 -c 'echo eight nodes: only tioga has them'
